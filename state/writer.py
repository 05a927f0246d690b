"""The one writer connection of a ledger (aiosqlite) and its short transactions.

Every write is one ``BEGIN IMMEDIATE ... COMMIT``: the write lock is taken up front, so a
transaction never fails half-way for lack of it, and a busy file is reported after the
lock timeout as :class:`~state.errors.LedgerLockedError`. An ``asyncio.Lock`` keeps two
coroutines of the same process from interleaving statements on the shared connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from state.database import Synchronous, prepare_for_writing, writer_pragmas
from state.errors import ledger_errors

Params = Iterable[Any] | dict[str, Any]
"""Parameters of one statement: positional (``?``) or named (``:name``)."""


async def fetch_all(db: aiosqlite.Connection, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
    """Every row of one statement, as tuples."""
    # aiosqlite annotates sqlite3.Row; with no row_factory set (as here) sqlite3 returns tuples.
    return list(await db.execute_fetchall(sql, params))  # type: ignore[arg-type]


class WriterConnection:
    """Owns the aiosqlite connection; use :meth:`open`, then :meth:`transaction` / :meth:`read`."""

    def __init__(self, path: Path, db: aiosqlite.Connection, lock_timeout_s: float) -> None:
        self.path = path
        self.lock_timeout_s = lock_timeout_s
        self._db = db
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path, *, lock_timeout_s: float, synchronous: Synchronous) -> WriterConnection:
        """Prepare (create, check, WAL, migrate) the file, then connect."""
        await asyncio.to_thread(prepare_for_writing, path, lock_timeout_s)
        with ledger_errors(path, lock_timeout_s):
            db = await aiosqlite.connect(path, timeout=lock_timeout_s, isolation_level=None)
            try:
                for pragma in writer_pragmas(synchronous):
                    await db.execute(pragma)
            except BaseException:
                await db.close()
                raise
        return cls(path, db, lock_timeout_s)

    async def close(self) -> None:
        async with self._lock:
            await self._db.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One ``BEGIN IMMEDIATE ... COMMIT``; any exception (a full disk, a cancelled
        task) rolls the whole transaction back before it propagates."""
        async with self._lock:
            with ledger_errors(self.path, self.lock_timeout_s):
                await self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                    await self._db.execute("COMMIT")
                except BaseException:
                    if self._db.in_transaction:  # SQLite may already have rolled back (e.g. SQLITE_FULL)
                        await self._db.execute("ROLLBACK")
                    raise

    async def read(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        """Rows of one query (not inside another coroutine's transaction)."""
        async with self._lock:
            with ledger_errors(self.path, self.lock_timeout_s):
                return await fetch_all(self._db, sql, params)

    async def write(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        """One statement in its own transaction; returns its ``RETURNING`` rows, if any."""
        async with self.transaction() as db:
            return await fetch_all(db, sql, params)
