"""Shared fixtures: the bundled real candles and small synthetic frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parent.parent
BTC_SAMPLE = REPO / "data" / "sample" / "btcusdt_1m_2023-03.csv.gz"
ETH_SAMPLE = REPO / "data" / "sample" / "ethusdt_1m_2023-10.csv.gz"


@pytest.fixture(scope="session")
def btc_candles() -> pd.DataFrame:
    """30,240 real BTC/USDT 1-minute candles (Binance.US, March 2023)."""
    from env.candles import load_candles

    return load_candles(BTC_SAMPLE)


@pytest.fixture(scope="session")
def eth_candles() -> pd.DataFrame:
    """10,000 real ETH/USDT 1-minute candles (Binance, October 2023)."""
    from env.candles import load_candles

    return load_candles(ETH_SAMPLE)


def make_candles(closes: list[float] | np.ndarray, start_ms: int = 1_700_000_000_000, step_ms: int = 60_000,
                 volume: float = 1.0) -> pd.DataFrame:
    """Flat-bodied candles at the given closes (open = previous close), for hand-made cases."""
    closes = np.asarray(closes, dtype=float)
    opens = np.concatenate([[closes[0]], closes[:-1]])
    return pd.DataFrame({
        "timestamp": start_ms + step_ms * np.arange(len(closes)),
        "open": opens,
        "high": np.maximum(opens, closes),
        "low": np.minimum(opens, closes),
        "close": closes,
        "volume": np.full(len(closes), volume),
    })
