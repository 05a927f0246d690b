"""The money step (``env.execution.Account``): fills at the marked close, the guard between
the decision and the fill, a target order's mapping before the guard, and one code path for
the env and the live engine."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bot.engine import ServingStrategy
from config.settings import EnvSettings, RiskSettings
from env.crypto_trading_env import CryptoTradingEnv
from env.execution import Account
from env.portfolio import Portfolio, PortfolioConfig
from env.risk import DAY_MS, RiskEventKind, RiskGuard
from env.types import Action, Candle, Side, Target
from strategies.specs import build_strategy
from tests.bot.engines import one_account_engine

T0 = 1_700_000_000_000 - (1_700_000_000_000 % DAY_MS)


def account(guard: RiskGuard | None = None) -> Account:
    return Account(Portfolio(PortfolioConfig(commission=0.001)), guard)


def test_a_decision_fills_at_the_close_and_time_it_was_marked_at() -> None:
    acc = account()
    assert acc.mark(100.0, T0) == 100.0
    execution = acc.execute(Action.BUY)
    (fill,) = execution.fills
    assert (execution.action, fill.price, fill.market_price, fill.time_ms) == (Action.BUY, 100.0, 100.0, T0)
    acc.mark(110.0, T0 + 60_000)
    close = acc.execute(Action.CLOSE)
    assert (close.fills[0].price, close.fills[0].time_ms) == (110.0, T0 + 60_000)
    assert close.fills[0].trade is not None and acc.portfolio.side == Side.FLAT
    assert acc.execute(Action.HOLD) == (Action.HOLD, (), ())


def test_the_guard_sees_the_marked_account_and_replaces_the_action() -> None:
    acc = account(RiskGuard(max_drawdown=0.1, daily_loss_limit=None))
    acc.mark(100.0, T0)
    acc.execute(Action.BUY)
    acc.mark(85.0, T0 + 60_000)  # 15% below the peak
    execution = acc.execute(Action.BUY)  # the strategy would hold on; the guard closes
    assert execution.action == Action.CLOSE and execution.fills[0].price == 85.0
    assert [e.kind for e in execution.risk_events] == [RiskEventKind.MAX_DRAWDOWN]
    assert execution.risk_events[0].time_ms == T0 + 60_000
    assert execution.risk_events[0].kind == "max_drawdown"  # the ledger's text


def test_a_target_order_maps_to_a_trade_action_before_the_guard() -> None:
    acc = account(RiskGuard(max_drawdown=None, daily_loss_limit=0.05))
    acc.mark(100.0, T0)
    assert acc.execute(Target.LONG).action == Action.BUY  # target long from flat
    acc.mark(101.0, T0 + 60_000)
    assert acc.execute(Target.LONG) == (Action.HOLD, (), ())  # already long
    acc.mark(90.0, T0 + 120_000)
    guarded = acc.execute(Target.SHORT)  # target short: SELL, but the daily limit has tripped
    assert guarded.action == Action.CLOSE and acc.portfolio.side == Side.FLAT
    assert [e.kind for e in guarded.risk_events] == [RiskEventKind.DAILY_LOSS]


def test_a_target_reverses_and_closes_through_the_trade_actions() -> None:
    acc = account()
    acc.mark(100.0, T0)
    acc.execute(Target.SHORT)
    reversal = acc.execute(Target.LONG)  # short -> long: BUY, a close and an open
    assert reversal.action == Action.BUY and [f.opens for f in reversal.fills] == [False, True]
    assert acc.execute(Target.FLAT).action == Action.CLOSE and acc.portfolio.side == Side.FLAT
    assert acc.execute(Target.FLAT) == (Action.HOLD, (), ())
    with pytest.raises(ValueError, match="invalid order 7"):
        acc.execute(7)


def test_the_env_and_the_live_engine_move_money_through_the_same_account(btc_candles: pd.DataFrame,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The env's step and the engine's candle both end in ``Account.execute``: recorded calls
    (price, time, action in, action out) are the same sequence."""
    frame = btc_candles.iloc[:400].reset_index(drop=True)
    calls: dict[str, list[tuple]] = {"env": [], "engine": []}
    original = Account.execute

    def recording(label: str):
        def execute(self: Account, action: int):
            result = original(self, action)
            calls[label].append((self.portfolio.last_price, self.time_ms, action, result.action, result.fills))
            return result
        return execute

    strategy = build_strategy("random:seed=2,trade_prob=0.3")
    risk = RiskSettings(max_drawdown=0.004, daily_loss_limit=0.0)
    env = CryptoTradingEnv.from_settings(frame, EnvSettings())
    obs, _ = env.reset(options={"risk_guard": RiskGuard.from_settings(risk)})
    decide = strategy.prepare(_context(frame))
    monkeypatch.setattr(Account, "execute", recording("env"))
    done = False
    while not done:
        obs, _, terminated, truncated, _ = env.step(decide(env.current_index, obs))
        done = terminated or truncated
    monkeypatch.setattr(Account, "execute", recording("engine"))
    engine = one_account_engine("BTCUSDT", EnvSettings(), risk, ServingStrategy(strategy, "random"))
    for r in frame.iloc[:-1].itertuples(index=False):
        engine.on_candle(Candle("BTCUSDT", "1m", int(r.open_time_ms), r.open, r.high, r.low, r.close, r.volume),
                         decided_ms=0)
    assert len(calls["env"]) == len(frame) - 1 - env.first_step
    assert calls["env"] == calls["engine"]
    assert any(asked != done for _, _, asked, done, _ in calls["env"])  # the guard overrode some decisions


def _context(frame: pd.DataFrame):
    from strategies.base import MarketContext

    return MarketContext(frame["close"].to_numpy(np.float64), frame["open_time_ms"].to_numpy(np.int64))
