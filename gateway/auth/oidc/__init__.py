"""OpenID Connect: browser login through identity providers, bearer JWTs for API clients.

`component.build_oidc` is the one entry point the composition root uses.
"""
