"""Loopback ports for the servers that `make cluster`, `make bench`, `make soak` and the tests start.

A port chosen by binding port 0 and closing the socket is only free at that instant: the
kernel hands the same ephemeral port to the next outgoing connection or to another process
that asks for port 0, and a server started a moment later fails to bind ("address already
in use"). Under pytest-xdist two workers ask all the time, and the suite saw exactly that.

So under a test worker (PYTEST_XDIST_WORKER=gwN) ports come from a range of the worker's
own, below the kernel's ephemeral range (which starts at 32768 on Linux, so no outgoing
connection is ever given one), walked from a start derived from the process id so that a
worker's subprocesses begin elsewhere; every candidate is bound once to check that nothing
holds it. Outside the tests port 0 is fine: nobody else is choosing at the same time.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
from collections.abc import Iterator
from functools import cache

__all__ = ["free_port"]

_FIRST = 20000
_SPAN = 3000  # gw0 20000-22999, gw1 23000-25999, ... gw3 29000-31999
_WORKERS = 4


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@cache
def _candidates(worker: int, pid: int) -> Iterator[int]:
    """The worker's range as an endless walk, one per process (cached: the walk goes on)."""
    base = _FIRST + (worker % _WORKERS) * _SPAN
    start = (pid * 97) % _SPAN
    return (base + (start + i) % _SPAN for i in itertools.count())


def _worker_index() -> int | None:
    match = re.fullmatch(r"gw(\d+)", os.environ.get("PYTEST_XDIST_WORKER", ""))
    return int(match.group(1)) if match else None


def free_port() -> int:
    """A loopback TCP port that nothing listens on; see the module docstring for why not port 0."""
    worker = _worker_index()
    if worker is None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])
    walk = _candidates(worker, os.getpid())
    for port in itertools.islice(walk, _SPAN):
        if _bindable(port):
            return port
    raise RuntimeError(f"no free loopback port in the range of test worker gw{worker}")
