from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .idp import Idp, start_idp


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Idp]:
    provider = start_idp(Path(tmp_path_factory.mktemp("idp")))
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
def gateway_url() -> str:
    from .gateway_app import free_port

    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def web_idp(tmp_path_factory: pytest.TempPathFactory, gateway_url: str) -> Iterator[Idp]:
    """A provider whose web client redirects to (and back-channel-logs-out at) `gateway_url`."""
    provider = start_idp(Path(tmp_path_factory.mktemp("webidp")), gateway=gateway_url)
    yield provider
    provider.stop()
