"""Options and helpers shared by several command groups."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

# Piped or captured output is not cut to rich's 80-column default: tables stay readable in
# logs and files (an explicit COLUMNS still wins).
console = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 160)

ConfigOption = Annotated[
    Optional[Path], typer.Option("--config", "-c", help="TOML settings file (default: $SHADOW_CONFIG).")
]

SAMPLE_CANDLES = Path(__file__).resolve().parents[2] / "data" / "sample" / "btcusdt_1m_2023-03.csv.gz"
"""The bundled real candles: what ``shadow backtest`` and ``shadow evaluate`` read by default."""


def load_candle_file(path: Path, repair: bool) -> Any:
    """A validated candle file; ``repair`` fixes bad candles instead of failing."""
    from env.candles import load_candles

    return load_candles(path, repair=repair_policy(repair))


def repair_policy(repair: bool) -> Any:
    """The ``--repair`` flag as a :class:`env.candles.RepairPolicy`."""
    from env.candles import RepairPolicy

    return RepairPolicy.REPAIR if repair else RepairPolicy.STRICT
