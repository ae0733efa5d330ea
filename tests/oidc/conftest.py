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
