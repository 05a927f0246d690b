"""Candles in the ledger: the insert both the writer and the decision use, and the read
that returns them in :mod:`env.candles` layout (for warm-up and retraining), with the
``funding_rate`` column of a perpetual built from the funding rates stored beside them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from env.candles import OHLCV_COLUMNS, RepairPolicy, infer_interval_ms, normalize_candles
from env.funding import FUNDING_RATE_COLUMN, funding_rate_column
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

# Funding settlements (market data, like candles): the first stored rate of a time wins.
INSERT_FUNDING_RATE = (
    "INSERT INTO funding_rates (symbol, time_ms, rate, source) VALUES (:symbol, :time_ms, :rate, :source) "
    "ON CONFLICT DO NOTHING"
)
SELECT_FUNDING_RATES = "SELECT time_ms, rate FROM funding_rates WHERE symbol = ? ORDER BY time_ms"

_MAX_MS = 2**62


def candle_params(candle: Candle) -> tuple[Any, ...]:
    """Parameters of :data:`INSERT_CANDLE` (a tuple: ``dataclasses.asdict`` per candle was a
    third of the warm-up's CPU time)."""
    c = candle
    return (c.symbol, c.interval, c.open_time_ms, c.open, c.high, c.low, c.close, c.volume)


def select_candles_params(symbol: str, interval: str, start_ms: int | None, end_ms: int | None) -> tuple[Any, ...]:
    """Parameters of :data:`SELECT_CANDLES`; ``None`` bounds mean open-ended."""
    return (symbol, interval, start_ms if start_ms is not None else -_MAX_MS, end_ms if end_ms is not None else _MAX_MS)


def candles_frame(rows: Sequence[tuple[Any, ...]], source: str, repair: RepairPolicy, interval: str,
                  funding: Sequence[tuple[int, float]] | None = None) -> pd.DataFrame:
    """Rows of :data:`SELECT_CANDLES` as the frame :func:`env.candles.load_candles` returns,
    validated the same way on the ``interval``'s grid (a gap raises unless ``repair`` fills
    it). No rows give an empty frame with the same columns.

    Args:
        funding: the symbol's stored funding settlements (:data:`SELECT_FUNDING_RATES`)
            for a perpetual, ``None`` for spot: they become the ``funding_rate`` column
            (:func:`env.funding.funding_rate_column`), so the candles trade as the daemon
            traded them.
    """
    if not rows:
        empty = pd.DataFrame({"open_time_ms": np.array([], dtype=np.int64)})
        empty["timestamp"] = pd.to_datetime(empty["open_time_ms"], unit="ms")
        for column in OHLCV_COLUMNS:
            empty[column] = np.array([], dtype=np.float64)
        return empty
    raw = pd.DataFrame.from_records(rows, columns=["timestamp", *OHLCV_COLUMNS])
    frame = normalize_candles(raw, source=source, repair=repair, grid=GRIDS.get(interval))
    if funding is not None:
        times = frame["open_time_ms"].to_numpy()
        frame[FUNDING_RATE_COLUMN] = funding_rate_column(times, infer_interval_ms(times), funding)
    return frame
