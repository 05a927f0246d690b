"""Online backups of a ledger: a consistent copy while the daemon keeps writing.

SQLite's backup API copies the file page by page. Asked for all pages in one step, it
reads them under one read transaction, so in WAL mode the copy is exactly the ledger as
of one commit (whole decisions only) while the writer goes on committing beside it.
Copying the file with ``cp`` instead can catch a half-applied WAL checkpoint, or miss
the commits that still live only in the ``-wal`` file.

The copy is then made self-contained (rollback journal instead of WAL, so it is one
file with no ``-wal``/``-shm``), checked with ``PRAGMA integrity_check``, fsynced and
renamed into place: a backup file either is complete and checked, or does not exist.
"""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from config.errors import UserError
from state.errors import LedgerNotFoundError, ledger_errors
from state.migrations import check_version

BACKUP_PREFIX = "shadow-"
BACKUP_SUFFIX = ".sqlite"


class BackupError(UserError):
    """The backup could not be written (the ledger itself is untouched)."""


@dataclass(frozen=True, slots=True)
class BackupResult:
    """What a backup holds."""

    path: Path
    size_bytes: int
    schema_version: int
    decisions: int
    last_decision_ms: int | None
    seconds: float


def backup_name(now_ms: int) -> str:
    """``shadow-20240301T120000Z.sqlite``: UTC, so names sort by time."""
    return BACKUP_PREFIX + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now_ms / 1000)) + BACKUP_SUFFIX


def backup_ledger(source: Path, target: Path, *, now_ms: int, lock_timeout_s: float = 5.0,
                  folder: bool = False) -> BackupResult:
    """Copy the ledger ``source`` to ``target`` while it may be in use.

    Nothing is written until ``source`` has proved to be a ledger this Shadow can read.

    Args:
        source: the ledger file.
        target: the backup file (never overwritten), or with ``folder`` (or when it is an
            existing directory) the folder, created if missing, to put :func:`backup_name` in.
        now_ms: names the file in a folder.
        lock_timeout_s: how long to wait for a lock on ``source``.
        folder: ``target`` is a folder.

    Raises:
        LedgerNotFoundError: no ``source``.
        NotALedgerError / SchemaVersionError: ``source`` is not a ledger this Shadow can read.
        BackupError: ``target`` exists, cannot be written, or the copy failed its check.
    """
    started = time.perf_counter()
    if not source.is_file():
        raise LedgerNotFoundError(f"ledger {source}: no such file (pass --db or set [ledger] db_path)")
    with ledger_errors(source, lock_timeout_s):
        src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True, timeout=lock_timeout_s)
    with closing(src):
        with ledger_errors(source, lock_timeout_s):
            version = check_version(src, source)
        if folder or target.is_dir():
            target = target / backup_name(now_ms)
        if target.exists():
            raise BackupError(f"backup {target}: already exists; choose another --out (backups are never overwritten)")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackupError(f"backup {target}: cannot create its folder ({exc.strerror or exc})") from None
        partial = target.with_name(f".{target.name}.partial")
        try:
            _copy(src, source, partial, target, lock_timeout_s)
            decisions, last_ms = _check(partial, target)
            _fsync(partial)
            os.replace(partial, target)
            _fsync(target.parent)
        except OSError as exc:
            reason = exc.strerror or exc
            raise BackupError(f"backup {target}: cannot write it ({reason}); nothing was written") from None
        finally:
            for leftover in (partial, partial.with_name(partial.name + "-journal")):
                leftover.unlink(missing_ok=True)
    return BackupResult(target, target.stat().st_size, version, decisions, last_ms, time.perf_counter() - started)


def _copy(src: sqlite3.Connection, source: Path, partial: Path, target: Path, lock_timeout_s: float) -> None:
    """One-step backup (one read snapshot) of ``src`` into ``partial``."""
    try:
        with closing(sqlite3.connect(partial, isolation_level=None)) as dst:
            with ledger_errors(source, lock_timeout_s):
                src.backup(dst)  # pages=-1: every page in one step, under one read transaction
            dst.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
    except sqlite3.Error as exc:  # writing the copy: e.g. disk full
        raise BackupError(f"backup {target}: the copy failed ({exc}); nothing was written") from None


def _check(partial: Path, target: Path) -> tuple[int, int | None]:
    """Integrity of the copy, and what it holds."""
    with closing(sqlite3.connect(f"{partial.resolve().as_uri()}?mode=ro", uri=True)) as conn:
        verdict = conn.execute("PRAGMA integrity_check").fetchall()
        if verdict != [("ok",)]:
            raise BackupError(f"backup {target}: the copy fails PRAGMA integrity_check ({verdict[:3]}); "
                              "nothing was written. Run `shadow doctor` on the ledger")
        has_decisions = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'decisions'").fetchone()
        if not has_decisions:
            return 0, None
        decisions, last_decided_ms = conn.execute("SELECT count(*), max(decided_ms) FROM decisions").fetchone()
        return decisions, last_decided_ms


def prune_backups(directory: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` backups named by :func:`backup_name` in ``directory``
    (other files are left alone); returns the deleted paths."""
    backups = sorted(p for p in directory.glob(f"{BACKUP_PREFIX}*{BACKUP_SUFFIX}") if p.is_file())
    doomed = backups[: max(0, len(backups) - keep)]
    for path in doomed:
        path.unlink()
    return doomed


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
