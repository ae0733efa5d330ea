"""Templates (Jinja2) and static files of the gateway's login pages (used by `gateway.auth.pages`)."""
