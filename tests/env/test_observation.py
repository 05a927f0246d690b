"""The observation: the env's fast table equals the live engine's builder bit for bit, and
its five portfolio features are the account's own read-outs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from env.execution import Account
from env.features import compute_features, warmup_prefix
from env.observation import PORTFOLIO_FEATURE_NAMES, ObservationTable, build_observation, observation_size
from env.portfolio import Portfolio, PortfolioConfig
from state.records import observation_hash


def test_table_equals_build_observation_bit_for_bit_on_real_data(btc_candles: pd.DataFrame) -> None:
    candles = btc_candles.iloc[:3000].reset_index(drop=True)
    features = compute_features(candles).astype(np.float32)
    closes, times = candles["close"].tolist(), candles["open_time_ms"].tolist()
    rng = np.random.default_rng(11)
    for lookback in (1, 20, 45):
        table = ObservationTable(features, lookback)
        account = Account(Portfolio(PortfolioConfig(commission=0.00055, slippage_bps=2.0, max_position_size=1.5)))
        sides = set()
        for t in range(warmup_prefix(lookback), len(candles)):
            account.mark(closes[t], times[t])
            fast = table.at(t, account.portfolio)
            built = build_observation(features[t - lookback + 1 : t + 1], account.portfolio)
            assert fast.dtype == built.dtype == np.float32 and fast.shape == (observation_size(lookback),)
            assert fast.tobytes() == built.tobytes(), f"lookback {lookback}, candle {t}"
            assert observation_hash(fast) == observation_hash(built)
            sides.add(account.portfolio.side)
            account.execute(int(rng.choice(4, p=[0.85, 0.05, 0.05, 0.05])))
        assert sides == {-1, 0, 1}  # every kind of account was observed


def test_portfolio_features_are_the_accounts_read_outs() -> None:
    account = Account(Portfolio(PortfolioConfig(initial_balance=200.0, commission=0.001)))
    account.mark(100.0, 0)
    account.execute(1)  # long
    account.mark(90.0, 60_000)
    p = account.portfolio
    window = np.zeros((1, 15), np.float32)
    tail = dict(zip(PORTFOLIO_FEATURE_NAMES, build_observation(window, p)[-5:].tolist(), strict=True))
    expected = {"balance": 100 * (p.cash / 200 - 1), "position": 1.0, "unrealized_pnl": 100 * p.unrealized_pnl / 200,
                "total_pnl": 100 * p.total_pnl / 200, "max_drawdown": 100 * p.max_drawdown}
    assert tail == {k: float(np.float32(v)) for k, v in expected.items()}
    assert p.unrealized_pnl < 0 and p.max_drawdown > 0.09
