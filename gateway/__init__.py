"""portal-gateway: a policy-as-code authorization gateway for a business self-care portal."""

__version__ = "0.1.0"
