"""Builds the swappable components (store, database, directory, policy, auth, OIDC)
from the settings. Called only by `gateway.app.build_app`."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry

from gateway.app import Components
from gateway.settings import Settings

__all__ = ["build_components"]


def build_components(
    settings: Settings, *, registry: CollectorRegistry, clock: Callable[[], float]
) -> Components:
    return Components()
