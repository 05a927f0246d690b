"""Candles in the ledger: the insert both the writer and the decision use, and the read
that returns them in :mod:`env.candles` layout (for warm-up and retraining)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from env.candles import OHLCV_COLUMNS, RepairPolicy, normalize_candles
from env.intervals import GRIDS
from env.types import Candle

CANDLE_COLUMNS: tuple[str, ...] = ("symbol", "interval", "open_time_ms", *OHLCV_COLUMNS)

# A closed candle never changes; the first stored copy wins, so replays are harmless.
INSERT_CANDLE = (
    f"INSERT INTO candles ({', '.join(CANDLE_COLUMNS)}) VALUES ({', '.join('?' for _ in CANDLE_COLUMNS)}) "
    "ON CONFLICT DO NOTHING"
)

SELECT_CANDLES = (
    f"SELECT open_time_ms, {', '.join(OHLCV_COLUMNS)} FROM candles "
    "WHERE symbol = ? AND interval = ? AND open_time_ms >= ? AND open_time_ms <= ? ORDER BY open_time_ms"
)

_MAX_MS = 2**62


def candle_params(candle: Candle) -> tuple[Any, ...]:
    """Parameters of :data:`INSERT_CANDLE` (a tuple: ``dataclasses.asdict`` per candle was a
    third of the warm-up's CPU time)."""
    c = candle
    return (c.symbol, c.interval, c.open_time_ms, c.open, c.high, c.low, c.close, c.volume)


def select_candles_params(symbol: str, interval: str, start_ms: int | None, end_ms: int | None) -> tuple[Any, ...]:
    """Parameters of :data:`SELECT_CANDLES`; ``None`` bounds mean open-ended."""
    return (symbol, interval, start_ms if start_ms is not None else -_MAX_MS, end_ms if end_ms is not None else _MAX_MS)


def candles_frame(rows: Sequence[tuple[Any, ...]], source: str, repair: RepairPolicy, interval: str) -> pd.DataFrame:
    """Rows of :data:`SELECT_CANDLES` as the frame :func:`env.candles.load_candles` returns,
    validated the same way on the ``interval``'s grid (a gap raises unless ``repair`` fills
    it). No rows give an empty frame with the same columns."""
    if not rows:
        empty = pd.DataFrame({"open_time_ms": np.array([], dtype=np.int64)})
        empty["timestamp"] = pd.to_datetime(empty["open_time_ms"], unit="ms")
        for column in OHLCV_COLUMNS:
            empty[column] = np.array([], dtype=np.float64)
        return empty
    raw = pd.DataFrame.from_records(rows, columns=["timestamp", *OHLCV_COLUMNS])
    return normalize_candles(raw, source=source, repair=repair, grid=GRIDS.get(interval))
