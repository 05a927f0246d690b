"""Risk guard: the drawdown stop latches, the daily limit releases at the next UTC day."""

from __future__ import annotations

from env.portfolio import Portfolio, PortfolioConfig
from env.risk import DAY_MS, RiskGuard
from env.types import Action

T0 = 1_700_000_000_000 - (1_700_000_000_000 % DAY_MS)  # a UTC midnight


def long_account(entry: float = 100.0) -> Portfolio:
    p = Portfolio(PortfolioConfig(commission=0.0))
    p.apply(Action.BUY, entry)
    return p


def test_passes_decisions_through_within_limits() -> None:
    guard = RiskGuard(max_drawdown=0.2, daily_loss_limit=0.1)
    p = long_account()
    p.mark(95.0)
    assert guard.check(Action.SELL, p, T0) == (Action.SELL, [])


def test_max_drawdown_stop_goes_flat_and_stays_out() -> None:
    guard = RiskGuard(max_drawdown=0.2, daily_loss_limit=None)
    p = long_account()
    p.mark(79.0)
    action, events = guard.check(Action.HOLD, p, T0)
    assert action == Action.CLOSE  # the strategy would hold a losing position: the guard closes it
    action, events2 = guard.check(Action.BUY, p, T0 + 60_000)
    assert action == Action.CLOSE and events2 == []
    assert [e.kind for e in events] == ["max_drawdown"]
    p.apply(Action.CLOSE, 79.0)
    p.mark(200.0)
    assert guard.check(Action.BUY, p, T0 + 10 * DAY_MS)[0] == Action.HOLD  # latched, even days later


def test_daily_loss_limit_releases_on_the_next_utc_day() -> None:
    guard = RiskGuard(max_drawdown=None, daily_loss_limit=0.05)
    p = long_account()
    assert guard.check(Action.HOLD, p, T0 + 60_000) == (Action.HOLD, [])  # day starts at equity 100
    p.mark(94.0)
    action, events = guard.check(Action.SELL, p, T0 + 3_600_000)
    assert action == Action.CLOSE and [e.kind for e in events] == ["daily_loss"]
    p.apply(Action.CLOSE, 94.0)
    assert guard.check(Action.BUY, p, T0 + DAY_MS - 60_000)[0] == Action.HOLD
    action, events = guard.check(Action.BUY, p, T0 + DAY_MS)
    assert action == Action.BUY and [e.kind for e in events] == ["daily_reset"]
