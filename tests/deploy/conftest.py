"""The whole-gateway fixture of the integration tests, for the dashboard test."""

from tests.integration.conftest import portal  # noqa: F401
