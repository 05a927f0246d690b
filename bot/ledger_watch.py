"""Watching a ledger for commits: the source of the dashboard's live updates and of alerts.

One thread polls the ledger a few times a second on its own read-only connection. SQLite's
``PRAGMA data_version`` changes only when another connection committed, so an idle ledger
costs one pragma per poll; after a commit :func:`state.queries.changes.changes_since`
reads what is new, and every subscriber's queue gets the same :class:`Changes`. The
daemon's writer is never touched, never waits, and never knows who watches.

What was committed before the watch started is the past, not news; but a ledger that
does not exist yet (the daemon creates it as it starts) is watched from its very first row.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from state.database import connect_reader
from state.errors import LedgerError, LedgerNotFoundError, SchemaVersionError
from state.queries.changes import Changes, Cursor, changes_since, cursor_now

log = logging.getLogger(__name__)

QUEUE_SIZE = 100
"""Changes a slow subscriber may fall behind by; older ones are dropped for it."""


class LedgerWatch:
    """``async with LedgerWatch(path) as watch: queue = watch.subscribe()``.

    Args:
        path: the ledger file (it may not exist yet: the watch waits for it).
        poll_s: seconds between two looks.
        lock_timeout_s: how long a read waits for a lock.
    """

    def __init__(self, path: Path, *, poll_s: float = 0.25, lock_timeout_s: float = 5.0) -> None:
        self.path = path
        self.poll_s = poll_s
        self.lock_timeout_s = lock_timeout_s
        self._subscribers: set[asyncio.Queue[Changes | None]] = set()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="ledger-watch")
        self._conn: sqlite3.Connection | None = None
        self._cursor: Cursor | None = None
        self._data_version: int | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LedgerWatch:
        self._task = asyncio.create_task(self._run(), name="ledger-watch")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self.release()
        await asyncio.get_running_loop().run_in_executor(self._thread, self._close)
        self._thread.shutdown(wait=True)

    def release(self) -> None:
        """Tell every subscriber the watch is ending (each queue gets ``None``), so open
        event streams finish before a server stops."""
        for queue in self._subscribers:
            _offer(queue, None)

    def subscribe(self) -> asyncio.Queue[Changes | None]:
        """A queue of every :class:`Changes` from now on (``None`` when the watch ends)."""
        queue: asyncio.Queue[Changes | None] = asyncio.Queue(QUEUE_SIZE)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Changes | None]) -> None:
        self._subscribers.discard(queue)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                changes = await loop.run_in_executor(self._thread, self._poll)
            except LedgerError as exc:  # not created yet, or being migrated: look again later
                log.debug("ledger watch: %s", exc)
                if self._cursor is None and isinstance(exc, LedgerNotFoundError | SchemaVersionError):
                    self._cursor = Cursor()  # a new ledger: everything in it will be news
                changes = None
            except sqlite3.Error:
                log.exception("ledger watch: reading %s failed; retrying", self.path)
                await loop.run_in_executor(self._thread, self._close)
                changes = None
            if changes is not None and changes.any:
                for queue in self._subscribers:
                    _offer(queue, changes)
            await asyncio.sleep(self.poll_s)

    def _poll(self) -> Changes | None:
        if self._conn is None:
            self._conn = connect_reader(self.path, self.lock_timeout_s)
            self._cursor = cursor_now(self._conn) if self._cursor is None else self._cursor
        version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        if version == self._data_version:
            return None
        self._data_version = version
        assert self._cursor is not None
        changes = changes_since(self._conn, self._cursor)
        self._cursor = changes.cursor
        return changes

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
            self._data_version = None


def _offer(queue: asyncio.Queue[Changes | None], item: Changes | None) -> None:
    """Put without waiting; a full queue loses its oldest item (the subscriber re-reads anyway)."""
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(item)
