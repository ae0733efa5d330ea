"""Metrics that add up across the workers of one gateway process group.

With `server.workers > 1` a scrape of the operations listener reaches one worker. Each worker
therefore writes a snapshot of its registry to `<data_dir>/metrics/<pid>.prom` every
`interval` seconds (and once more at shutdown), and the scraped worker answers with the sum of
every snapshot plus its own live registry: counters and histograms are summed (a worker that
exited keeps its counts, as prometheus_client's multiprocess mode does, so totals never go
backwards), gauges of live workers are combined by their minimum (`dependency_ready` is 1 only
when every worker's last check passed). `portal_gateway_workers` says how many workers answered.

prometheus_client's own multiprocess mode was not used: it cannot carry the collector-based
per-request counters of `gateway/metrics.py`, which exist because a locked Counter per request
showed in the data plane's profile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["WorkerSnapshots", "merge_snapshots"]

log = logging.getLogger("gateway.metrics")

_Key = tuple[str, tuple[tuple[str, str], ...]]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _format_value(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    return repr(float(value))


def merge_snapshots(snapshots: Iterable[tuple[str, bool]]) -> tuple[str, int]:
    """Merge Prometheus text snapshots `(text, alive)`; return the merged text and live count."""
    kinds: dict[str, str] = {}
    helps: dict[str, str] = {}
    order: list[str] = []
    sums: dict[str, dict[_Key, float]] = {}
    live = 0
    for text, alive in snapshots:
        live += alive
        for family in text_string_to_metric_families(text):
            if family.name not in kinds:
                kinds[family.name], helps[family.name] = family.type, family.documentation
                order.append(family.name)
                sums[family.name] = {}
            samples = sums[family.name]
            gauge = family.type == "gauge"
            if gauge and not alive:
                continue
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                if key not in samples:
                    samples[key] = sample.value
                elif gauge:
                    samples[key] = min(samples[key], sample.value)
                else:
                    samples[key] += sample.value
    lines: list[str] = []
    for name in order:
        lines.append(f"# HELP {name} {helps[name]}")
        lines.append(f"# TYPE {name} {kinds[name]}")
        for (sample_name, labels), value in sums[name].items():
            rendered = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            lines.append(f"{sample_name}{{{rendered}}} {_format_value(value)}" if rendered
                         else f"{sample_name} {_format_value(value)}")
    lines.append("# HELP portal_gateway_workers Workers whose metrics this answer adds up.")
    lines.append("# TYPE portal_gateway_workers gauge")
    lines.append(f"portal_gateway_workers {float(live)!r}")
    return "\n".join(lines) + "\n", live


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class WorkerSnapshots:
    """Writes this worker's snapshot periodically and merges everybody's on a scrape."""

    def __init__(self, registry: CollectorRegistry, directory: Path, *, interval: float = 1.0) -> None:
        self.registry = registry
        self.directory = directory
        self.interval = interval
        self.pid = os.getpid()
        self._task: asyncio.Task[None] | None = None

    @property
    def own_file(self) -> Path:
        return self.directory / f"{self.pid}.prom"

    def write(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f".{self.pid}.prom.tmp"
        tmp.write_bytes(generate_latest(self.registry))
        tmp.replace(self.own_file)  # atomic: a reader never sees half a snapshot

    async def start(self) -> None:
        self.write()
        self._task = asyncio.create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.write()
            except OSError:
                log.warning("cannot write the metrics snapshot to %s", self.directory, exc_info=True)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(OSError):
            self.write()

    def merged(self) -> bytes:
        snapshots: list[tuple[str, bool]] = [(generate_latest(self.registry).decode(), True)]
        for path in sorted(self.directory.glob("*.prom")):
            try:
                pid = int(path.stem)
            except ValueError:
                continue
            if pid == self.pid:
                continue
            with contextlib.suppress(OSError, UnicodeDecodeError):
                snapshots.append((path.read_text(), _alive(pid)))
        text, _ = merge_snapshots(snapshots)
        return text.encode()
