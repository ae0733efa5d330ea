"""Shared fixtures: the real policy, loaded once, and the demo world in memory."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.directory.memory import MemoryDirectory
from gateway.policy.engine import PolicyEngine, load_engine, read_route_actions
from gateway.policy.testing import demo_world, memory_directory

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "policies" / "portal.polar"
TESTS = ROOT / "policies" / "tests"
ROUTES = ROOT / "config" / "routes.toml"
MBS = "https://business-station.example.at/"


@pytest.fixture(scope="session")
def engine() -> PolicyEngine:
    return load_engine(POLICY, route_actions=read_route_actions(ROUTES), business_station_url=MBS)


@pytest.fixture
def directory() -> MemoryDirectory:
    return memory_directory(demo_world())


@pytest.fixture
def policy_source() -> str:
    return POLICY.read_text(encoding="utf-8")
