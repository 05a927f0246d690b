"""Forward-only schema migrations, applied in order under ``PRAGMA user_version``.

Each step is one SQL script in ``state/sql/`` and runs in one ``BEGIN IMMEDIATE``
transaction together with the ``user_version`` bump, so a ledger is always exactly at
one version: a crash or an error inside a step leaves it at the previous one. A fresh
file and a file written by any earlier version both end at :data:`LATEST_VERSION`.

A step that reshapes a table copies its rows the freqtrade way (rename the old table
aside, create the new one, ``INSERT ... SELECT`` with a value for each new column, drop
the old one) with foreign keys off for the step and ``PRAGMA foreign_key_check`` before
its commit. The step turns ``legacy_alter_table`` on around its rename so that views
naming the table keep that name; :func:`migrate` turns it off again whatever happens.

.. warning:: Never edit a released step: add a new one. Files opened by an older Shadow
   are told the schema is too new (:class:`state.errors.SchemaVersionError`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from state.errors import LedgerError, NotALedgerError, SchemaVersionError

_SQL_DIR = Path(__file__).resolve().parent / "sql"


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: ``script`` (a file in ``state/sql/``) takes the ledger from
    ``version - 1`` to ``version``.

    ``columns`` are ``(table, column, definition)`` added before the script, each only when
    the table lacks it (freqtrade's ``has_column`` check: SQLite has no ``ADD COLUMN IF NOT
    EXISTS``), so a step that only adds columns and ``IF NOT EXISTS`` objects can be applied
    again to a file that already has them.
    """

    version: int
    description: str
    script: str
    columns: tuple[tuple[str, str, str], ...] = ()

    def add_columns(self, conn: sqlite3.Connection) -> None:
        """Add the step's missing columns."""
        for table, column, definition in self.columns:
            if column not in {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")

    def statements(self) -> Iterator[str]:
        """The script's statements one by one (``executescript`` would commit our
        transaction before running)."""
        buffer = ""
        for line in (_SQL_DIR / self.script).read_text(encoding="utf-8").splitlines(keepends=True):
            buffer += line
            if sqlite3.complete_statement(buffer):
                yield buffer
                buffer = ""
        if buffer.strip():
            raise ValueError(f"{self.script}: unterminated statement at the end: {buffer.strip()[:80]!r}")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "core ledger: runs, candles, decisions, fills, trades, positions, equity", "0001_core_ledger.sql"),
    Migration(2, "model registry, retrain and risk journals, trades credited to decisions",
              "0002_registry_and_attribution.sql"),
    Migration(3, "risk guard state kept with each position", "0003_risk_guard_state.sql"),
    Migration(4, "each daemon session records its settings", "0004_run_settings.sql"),
    Migration(5, "v_model_performance: a win rate without trades is 0.0, as everywhere else",
              "0005_win_rate_without_trades.sql"),
    Migration(6, "symbols the live feed cannot stream (Bybit refused them), per session", "0006_feed_problems.sql"),
    Migration(7, "indexes for the dashboard's reads; every model promotion logged", "0007_dashboard_reads.sql"),
    Migration(8, "perpetual funding: payments, applied rates, funding with positions, trades and equity",
              "0008_perpetual_funding.sql",
              columns=tuple((table, column, "REAL NOT NULL DEFAULT 0") for table, column in (
                  ("positions", "funding_paid"), ("positions", "position_funding"), ("trades", "funding"),
                  ("equity", "funding_paid")))),
)
LATEST_VERSION = MIGRATIONS[-1].version


def schema_version(conn: sqlite3.Connection) -> int:
    """The ledger's schema version (0 for an empty file). Raises ``sqlite3.DatabaseError``
    for a file that is not SQLite."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def check_version(conn: sqlite3.Connection, path: Path | str) -> int:
    """Refuse files this code cannot use: newer schemas, and SQLite files that hold
    someone else's tables. Returns the version."""
    version = schema_version(conn)
    if version > LATEST_VERSION:
        raise SchemaVersionError(
            f"ledger {path}: schema version {version} is newer than this Shadow understands "
            f"(up to {LATEST_VERSION}); upgrade Shadow or use another --db file"
        )
    if version == 0 and conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
        raise NotALedgerError(f"ledger {path}: a SQLite database, but not a Shadow ledger (it has other tables)")
    return version


def migrate(conn: sqlite3.Connection, path: Path | str, *, target: int = LATEST_VERSION) -> list[int]:
    """Bring the ledger to ``target``, one transaction per step.

    Args:
        conn: a connection in autocommit mode (``isolation_level=None``).
        path: the file, for error messages.
        target: stop at this version (tests build older fixtures with it).

    Returns:
        The versions applied, in order (empty when already current).
    """
    applied: list[int] = []
    check_version(conn, path)
    for step in MIGRATIONS:
        if step.version > target:
            break
        if schema_version(conn) >= step.version:
            continue
        conn.execute("PRAGMA foreign_keys = OFF")  # has no effect inside a transaction
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Another process may have migrated while we waited for the write lock.
                if schema_version(conn) < step.version:
                    step.add_columns(conn)
                    for statement in step.statements():
                        conn.execute(statement)
                    broken = conn.execute("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise LedgerError(
                            f"ledger {path}: migration to version {step.version} would break "
                            f"{len(broken)} foreign key(s), first {tuple(broken[0])}; nothing was changed"
                        )
                    conn.execute(f"PRAGMA user_version = {step.version}")
                    applied.append(step.version)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        finally:
            conn.execute("PRAGMA legacy_alter_table = OFF")
            conn.execute("PRAGMA foreign_keys = ON")
    return applied
