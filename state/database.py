"""Opening a ledger file: the writer's preparation and the readers' read-only connections.

The file is in WAL mode, so readers (the CLI, pandas, a BI tool) read a consistent
snapshot while the one writer commits. Readers open ``mode=ro``: they can never change
the ledger, and never create an empty one by mistyping ``--db``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Literal

from config.errors import UserError
from config.paths import check_creatable
from state.errors import LedgerError, LedgerNotFoundError, SchemaVersionError, ledger_errors
from state.migrations import LATEST_VERSION, check_version, migrate

Synchronous = Literal["NORMAL", "FULL"]


def prepare_for_writing(path: Path, lock_timeout_s: float) -> tuple[int, list[int]]:
    """Create the file if needed, refuse files this code cannot use, switch it to WAL
    and migrate it to :data:`~state.migrations.LATEST_VERSION`.

    Returns:
        ``(version before, versions applied)``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        raise LedgerError(f"ledger {path}: is a directory, expected a SQLite file")
    with ledger_errors(path, lock_timeout_s):
        conn = sqlite3.connect(path, timeout=lock_timeout_s, isolation_level=None)
        try:
            before = check_version(conn, path)
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise LedgerError(f"ledger {path}: cannot switch to WAL mode (journal_mode stays {mode!r})")
            return before, migrate(conn, path)
        finally:
            conn.close()


def check_for_writing(path: Path, lock_timeout_s: float) -> None:
    """Refuse, writing nothing, a file :func:`prepare_for_writing` could not use: a folder,
    a file that is not a ledger, a schema newer than this code, or a place where no file
    can be created. Lets a command check its inputs before it starts work.

    Raises:
        LedgerError: what is wrong, naming the file.
    """
    if path.is_dir():
        raise LedgerError(f"ledger {path}: is a directory, expected a SQLite file")
    if not path.exists():
        try:
            check_creatable(path, "ledger")
        except UserError as exc:
            raise LedgerError(str(exc)) from None
        return
    with ledger_errors(path, lock_timeout_s):
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=lock_timeout_s)
        try:
            check_version(conn, path)
        finally:
            conn.close()


def writer_pragmas(synchronous: Synchronous) -> tuple[str, ...]:
    """Per-connection settings of the writer. ``NORMAL`` in WAL mode survives a crash of
    the process (SIGKILL) without loss; a power cut may lose the last commits, which the
    engine re-does because decisions are idempotent. ``FULL`` fsyncs every commit."""
    if synchronous not in ("NORMAL", "FULL"):
        raise ValueError(f"synchronous must be NORMAL or FULL, got {synchronous!r}")
    return ("PRAGMA foreign_keys = ON", f"PRAGMA synchronous = {synchronous}")


def connect_reader(path: Path | str, lock_timeout_s: float = 5.0, *,
                   check_same_thread: bool = True) -> sqlite3.Connection:
    """A read-only connection to an existing ledger at the current schema version
    (``check_same_thread=False`` for a connection that a worker thread uses and another
    thread closes).

    Raises:
        LedgerNotFoundError: no such file.
        NotALedgerError: not SQLite, or not a Shadow ledger.
        SchemaVersionError: newer than this code, or older and not migrated yet.
    """
    path = Path(path)
    if not path.is_file():
        raise LedgerNotFoundError(
            f"ledger {path}: no such file (the daemon creates it; pass --db or set [ledger] db_path)"
        )
    with ledger_errors(path, lock_timeout_s):
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=lock_timeout_s,
                               check_same_thread=check_same_thread)
        try:
            version = check_version(conn, path)
        except BaseException:
            conn.close()
            raise
    if version < LATEST_VERSION:
        conn.close()
        label = "has no Shadow schema yet" if version == 0 else f"is at schema version {version}"
        raise SchemaVersionError(
            f"ledger {path}: {label}, this Shadow reads version {LATEST_VERSION}; "
            f"upgrade it with `shadow migrate --db {path}` (the daemon also does this when it starts)"
        )
    return conn


def check_writable(path: Path | str, lock_timeout_s: float = 1.0) -> None:
    """Prove a writer could commit to the ledger now: take the write lock and give it back.

    Nothing is written (``BEGIN IMMEDIATE`` then ``ROLLBACK``), and a missing file is not
    created. Used by the health endpoint and ``shadow doctor``.

    Raises:
        LedgerNotFoundError: no such file.
        LedgerLockedError: another connection kept the write lock beyond ``lock_timeout_s``.
        LedgerError: the file (or its folder, for the WAL files) is read-only or unreadable.
        NotALedgerError: the file is not SQLite.
    """
    path = Path(path)
    if not path.is_file():
        raise LedgerNotFoundError(f"ledger {path}: no such file")
    with ledger_errors(path, lock_timeout_s):
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=lock_timeout_s,
                               isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
        finally:
            conn.close()
