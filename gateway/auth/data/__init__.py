"""Data files of the auth package (the common-password list); a package so that it ships in the wheel."""
