"""Jinja2 templates of the login pages; a package so that they ship in the wheel."""
