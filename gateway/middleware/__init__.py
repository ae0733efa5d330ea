"""Pure ASGI middleware of the request pipeline (one concept per module)."""
