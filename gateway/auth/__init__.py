"""Authentication: accounts, sessions, passwords, TOTP, SMS-TAN, registration, pages (docs/authentication.md)."""
