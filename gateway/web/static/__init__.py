"""Static files of the login pages; a package so that they ship in the wheel."""
