"""What can go wrong with a ledger file, as errors that name the file and the fix.

SQLite reports these as ``sqlite3`` exceptions with terse messages ("database is
locked", "file is not a database"); :func:`ledger_errors` turns the ones a user can act
on into :class:`LedgerError` subclasses, which the CLI prints as one line. Anything else
(a constraint violation, an SQL error) is a bug and keeps its traceback.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from config.errors import UserError


class LedgerError(UserError):
    """A ledger file that cannot be used as asked; the message names the file."""


class LedgerNotFoundError(LedgerError):
    """The ledger file does not exist (readers never create one)."""


class NotALedgerError(LedgerError):
    """The file is not SQLite, is damaged, or is a SQLite file with someone else's tables."""


class SchemaVersionError(LedgerError):
    """The file's schema is newer than this code, or (for readers) older and not yet migrated."""


class LedgerLockedError(LedgerError):
    """Another connection held the write lock for longer than the lock timeout."""


class LedgerFullError(LedgerError):
    """The disk (or the file's size limit) is full; the transaction was rolled back whole."""


class LedgerConsistencyError(ValueError):
    """A decision that contradicts the ledger (older than the symbol's last decision, or
    another interval): a bug in the caller, so not a :class:`UserError`."""


@contextmanager
def ledger_errors(path: Path | str, lock_timeout_s: float) -> Iterator[None]:
    """Translate the SQLite failures a user can fix into :class:`LedgerError`."""
    try:
        yield
    except sqlite3.Error as exc:
        translated = _translate(exc, path, lock_timeout_s)
        if translated is None:
            raise
        raise translated from exc


def _translate(exc: sqlite3.Error, path: Path | str, lock_timeout_s: float) -> LedgerError | None:
    code = getattr(exc, "sqlite_errorcode", -1) & 0xFF
    detail = str(exc)
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return LedgerLockedError(
            f"ledger {path}: still locked by another writer after {lock_timeout_s:g} s ({detail}); "
            "is another shadow daemon using this file? Raise [ledger] lock_timeout_s if it is just slow"
        )
    if code == sqlite3.SQLITE_FULL:
        return LedgerFullError(
            f"ledger {path}: disk full ({detail}); the last write was rolled back whole, "
            "nothing was half-written. Free space and start again"
        )
    if code in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
        return NotALedgerError(f"ledger {path}: not a usable SQLite database ({detail})")
    if code in (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR):
        return LedgerError(f"ledger {path}: cannot open or write the file ({detail}); check the path and permissions")
    return None
