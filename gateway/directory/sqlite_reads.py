"""One directory read on SQLite = one hop to aiosqlite's worker thread.

Why: through SQLAlchemy's async adapter a single SELECT costs five hops to the thread
that owns the sqlite3 connection (cursor, execute, fetchall, close, and the rollback an
autocommit connection still gets on close); each hop is a queue put, a thread wake-up
and a future resolved on the loop. Here the statement is compiled once per fixed
statement object, and ``execute_fetchall`` runs the cursor, the query and the fetch in
one call on that thread. The connection comes from the reader's pool as is (no ping, no
reset on return: the reader is in autocommit mode, so nothing is left open) and goes back
to it inside a greenlet (closing an overflow connection awaits its thread).

Rows come back as named tuples with the statement's column names. SQLite has no date
type: SQLAlchemy keeps dates as ISO text, which the caller reads as such.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import greenlet_spawn

__all__ = ["SqliteReader"]

#: SQL text, bind names in order, row type, the statement's own bind values.
_Compiled = tuple[str, tuple[str, ...], type[tuple[Any, ...]], dict[str, Any]]


class SqliteReader:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        #: id(statement) → (SQL text, bind names in order, row type); the statements
        #: are module-level constants, so their ids are stable for the process.
        self._compiled: dict[int, _Compiled] = {}

    def _compile(self, statement: Select[Any]) -> _Compiled:
        found = self._compiled.get(id(statement))
        if found is None:
            compiled = statement.compile(dialect=self.engine.dialect)
            names = tuple(compiled.positiontup or ())
            columns = [str(c.key) for c in statement.selected_columns]
            row_type = namedtuple("Row", columns, rename=True)  # type: ignore[misc]
            # Values the statement carries itself (a LIMIT), beside the caller's "key".
            fixed = {name: value for name, value in compiled.params.items() if value is not None}
            found = self._compiled[id(statement)] = (str(compiled), names, row_type, fixed)
        return found

    async def read(self, statement: Select[Any], params: Mapping[str, Any]) -> Sequence[Any]:
        """Every row of `statement`; raises sqlite3.Error / OSError for the caller to map."""
        sql, names, row_type, fixed = self._compile(statement)
        raw = await self.engine.raw_connection()
        try:
            driver = raw.driver_connection
            assert driver is not None
            rows = await driver.execute_fetchall(sql, [params[n] if n in params else fixed[n] for n in names])
        finally:
            # Given back inside a greenlet, as SQLAlchemy's async engine does: when the pool is
            # full it closes an overflow connection, and closing an aiosqlite connection is an
            # await (its thread ends). A plain raw.close() failed there with MissingGreenlet
            # and left the thread running.
            await greenlet_spawn(raw.close)
        return [row_type(*row) for row in rows]
