"""Several workers start on one fresh SQLite file at once (`serve --workers N` with Redis): the
migrations run once and every worker finds the schema current, none fails with "table exists"."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import asyncio, sys
from gateway.database import Database

async def main() -> None:
    db = Database(sys.argv[1])
    try:
        await db.migrate()
        print(sorted(await db.current_revisions()))
    finally:
        await db.close()

asyncio.run(main())
"""


def test_processes_migrating_one_sqlite_file_at_once(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'portal.db'}"
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT, url], stdout=subprocess.PIPE,  # noqa: S603
                              stderr=subprocess.PIPE, text=True) for _ in range(8)]
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in results]
    assert len({out for out, _ in results}) == 1  # the same schema revision everywhere
