"""Decision ids are drawn from the OS in batches: still unique, also across a fork."""

from __future__ import annotations

import os

from gateway.policy.decision import DecisionIds


def test_ids_are_unique_across_batches() -> None:
    ids = DecisionIds()
    drawn = [ids() for _ in range(2000)]
    assert len(set(drawn)) == 2000
    assert all(i.startswith("dec_") and len(i) == 28 for i in drawn)


def test_forked_worker_does_not_repeat_its_parents_ids() -> None:
    ids = DecisionIds()
    ids()  # the pool is filled before the fork, as in a gateway that forks its workers
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, ",".join(ids() for _ in range(5)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = set(os.read(read, 4096).decode().split(","))
    os.close(read)
    parent = {ids() for _ in range(5)}
    assert len(child) == 5 and not child & parent
