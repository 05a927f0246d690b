"""Ledger reads off the event loop: worker threads, each with its own read-only connection.

A page asks several things at once; each runs in a worker thread on a connection opened
once for that thread (:func:`state.database.connect_reader`), so the event loop, and with
it the daemon's decisions, never waits on SQLite. A ledger that does not exist yet (the
daemon creates it at start) is retried at the next request.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from state.database import connect_reader

T = TypeVar("T")


class LedgerReader:
    """``await reader.run(fn, *args)`` calls ``fn(conn, *args)`` in a worker thread.

    Args:
        path: the ledger file.
        lock_timeout_s: how long a read waits for a lock (a checkpoint, a migration).
        workers: threads reading at once.
    """

    def __init__(self, path: Path, lock_timeout_s: float = 5.0, workers: int = 2) -> None:
        self.path = path
        self.lock_timeout_s = lock_timeout_s
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="ledger-read")
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(conn, *args)`` on a worker's connection; its exceptions propagate."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, partial(self._call, fn, *args))

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect_reader(self.path, self.lock_timeout_s, check_same_thread=False)
            self._local.conn = conn
            with self._lock:
                self._opened.append(conn)
        return fn(conn, *args)

    def close(self) -> None:
        """Wait for the reads under way, then close every connection."""
        self._pool.shutdown(wait=True)
        with self._lock:
            for conn in self._opened:
                conn.close()
            self._opened.clear()
