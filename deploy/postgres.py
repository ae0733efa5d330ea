"""A PostgreSQL server of one's own (initdb + pg_ctl on a free loopback port), to restart at will.

The PostgreSQL on 127.0.0.1:5432 is shared (other tests, CI, developers); a chaos run or a test
that restarts the database starts this one instead. Used by `make soak` (deploy/chaos.py) and
tests/operations/test_postgres_restart.py. The work directory must be enterable by the
``postgres`` user when running as root (initdb refuses root).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from deploy.ports import free_port

__all__ = ["OwnPostgres", "PostgresMissing"]


class PostgresMissing(RuntimeError):
    """The server binaries are not installed."""


def _pg_bin() -> Path:
    for version in sorted(Path("/usr/lib/postgresql").glob("*"), reverse=True):
        if (version / "bin" / "pg_ctl").exists():
            return version / "bin"
    raise PostgresMissing("PostgreSQL server binaries (initdb, pg_ctl) are not installed")


class OwnPostgres:
    """A PostgreSQL cluster of the caller only, so it can be restarted without touching anyone else's."""

    def __init__(self, work: Path) -> None:
        self.bin = _pg_bin()
        self.data = work / "pgdata"
        self.sockets = work / "pgsock"
        self.port = free_port()
        self.as_postgres: list[str] = []
        if os.geteuid() == 0:  # initdb refuses to run as root
            self.as_postgres = ["runuser", "-u", "postgres", "--"]
            shutil.chown(work, "postgres")

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_postgres, *args], check=True, capture_output=True, timeout=120)  # noqa: S603 - fixed server binaries

    def init(self) -> None:
        self.sockets.mkdir()
        if self.as_postgres:
            shutil.chown(self.sockets, "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-l", str(self.data / "log"),
                  "-o", f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-m", "fast", "stop")

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"
