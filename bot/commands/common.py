"""What several command groups share: the console, the bundled candles, read-only ledger
access, review tables.

(Options shared with the trainer live in :mod:`config.cli`.)
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from config.settings import LedgerSettings

# Piped or captured output is not cut to rich's 80-column default: tables stay readable in
# logs and files (an explicit COLUMNS still wins).
console = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160)

SAMPLE_CANDLES = Path(__file__).resolve().parents[2] / "data" / "sample" / "btcusdt_1m_2023-03.csv.gz"
"""The bundled real candles: what ``shadow backtest`` and ``shadow evaluate`` read by default."""

_LEFT_COLUMNS = {"#", "account", "symbol", "symbols", "side", "model", "version", "status", "market", "parent",
                 "metrics", "sha256", "reason", "live trial"}


def load_candle_file(path: Path, repair: bool) -> Any:
    """A validated candle file; ``repair`` fixes bad candles instead of failing."""
    from env.candles import load_candles

    return load_candles(path, repair=repair_policy(repair))


def repair_policy(repair: bool) -> Any:
    """The ``--repair`` flag as a :class:`env.candles.RepairPolicy`."""
    from env.candles import RepairPolicy

    return RepairPolicy.REPAIR if repair else RepairPolicy.STRICT


@contextmanager
def ledger_reader(ledger: LedgerSettings) -> Iterator[sqlite3.Connection]:
    """A read-only connection to the ledger at ``ledger.db_path`` (works while the daemon writes).

    Raises:
        UserError: no such file, not a ledger, or a ledger newer than this code.
    """
    from state.database import connect_reader

    with closing(connect_reader(ledger.db_path, ledger.lock_timeout_s)) as conn:
        yield conn


def review_table(title: str, *columns: str) -> Table:
    """A compact table of ledger rows: text columns left, numbers right, no wrapping
    except in ``metrics``."""
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for column in columns:
        table.add_column(column, justify="left" if column in _LEFT_COLUMNS else "right", no_wrap=column != "metrics")
    return table
