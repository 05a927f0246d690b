"""Shared fixtures: real BTCUSDT 1m candles and decisions replayed through the real Portfolio."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from env.candles import load_candles
from state.records import DecisionRecord
from state.replay import replay_decisions

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "btcusdt_1m_2023-03.csv.gz"


@pytest.fixture(scope="session")
def btc_candles() -> pd.DataFrame:
    """The first 3000 real candles of the bundled March 2023 file (two days and a bit)."""
    return load_candles(SAMPLE).iloc[:3000].reset_index(drop=True)


@pytest.fixture(scope="session")
def btc_records(btc_candles: pd.DataFrame) -> list[tuple[DecisionRecord, float]]:
    """1500 decisions with the portfolio's equity right after each one; the model in
    service changes half-way, and about 6% of decisions trade."""
    return [(record, portfolio.equity) for record, portfolio in
            replay_decisions(btc_candles.iloc[:1500], seed=11, model_versions=("ppo-0001", "ppo-0002"))]
