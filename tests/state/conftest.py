"""Decisions replayed through the real Portfolio over the real BTCUSDT candles
(``btc_candles`` comes from tests/conftest.py)."""

from __future__ import annotations

import pandas as pd
import pytest

from state.records import DecisionRecord
from state.replay import replay_decisions


@pytest.fixture(scope="session")
def btc_records(btc_candles: pd.DataFrame) -> list[tuple[DecisionRecord, float]]:
    """1500 decisions with the portfolio's equity right after each one; the model in
    service changes half-way, and about 6% of decisions trade."""
    return [(record, portfolio.equity) for record, portfolio in
            replay_decisions(btc_candles.iloc[:1500], seed=11, model_versions=("ppo-0001", "ppo-0002"))]
