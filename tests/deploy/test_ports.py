"""deploy/ports.py: under a test worker, ports come from the worker's own range below the
kernel's ephemeral range, never one that something already listens on."""

from __future__ import annotations

import socket

import pytest

from deploy import ports


def test_each_worker_has_its_own_range_below_the_ephemeral_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, set[int]] = {}
    for worker in ("gw0", "gw1", "gw2", "gw3"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        seen[worker] = {ports.free_port() for _ in range(50)}
        assert len(seen[worker]) == 50, "a worker was handed the same port twice"
        assert all(20000 <= p < 32768 for p in seen[worker])
    for a in seen:
        for b in seen:
            if a != b:
                assert not seen[a] & seen[b], f"{a} and {b} share ports"


def test_a_port_something_listens_on_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw2")
    first = ports.free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", first + 1))
        holder.listen()
        # The walk goes on from `first`: the next candidate is held, so it must be passed over.
        assert ports.free_port() != first + 1


def test_outside_the_tests_the_kernel_chooses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    port = ports.free_port()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))
