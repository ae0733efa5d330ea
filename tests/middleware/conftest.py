from tests.upstream.conftest import gateway  # noqa: F401
