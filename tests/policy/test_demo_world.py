"""The demo world of the decision tables is the one in demo/directory.yaml."""

from __future__ import annotations

from gateway.directory.world import load_world
from gateway.policy.testing import demo_world, demo_world_path

from .conftest import ROOT


def test_builtin_demo_world_matches_demo_directory_yaml() -> None:
    assert demo_world_path().resolve() == (ROOT / "demo" / "directory.yaml").resolve()
    assert demo_world() == load_world(ROOT / "demo" / "directory.yaml")
