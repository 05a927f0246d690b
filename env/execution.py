"""The per-candle money step, written once: act -> risk check -> fill, then the mark.

The training env, the backtester (which steps the env) and the live engine all move money
through :class:`Account`, so they agree by construction, not only by test. One candle of
any of them is::

    account.mark(close_t, open_time_t, funding_t)  # the account at candle t's close (funding settled first)
    obs = observation(features_t, account)    # what the strategy sees
    execution = account.execute(strategy(obs))  # risk check and fill at close t

and the env's step ends with the mark of candle ``t + 1``, where the engine's next candle
begins with it: the same calls in the same order. A policy that decides every ``stride``
candles (:class:`env.decisions.DecisionCadence`) holds in between: ``execute(HOLD)``, so the
guard still looks at every candle.

- **Action modes.** A strategy answers with an order (:data:`env.types.Order`): a trade
  action, or a target position for the ``target`` and ``long_flat`` modes
  (:mod:`env.decisions`). :meth:`Account.execute` maps it to the trade action 0-3 that
  reaches the target from the position held, *before* the risk check; the ledger records
  that trade action. One vocabulary for every strategy, so strategies of different modes
  can take turns on one account.

Extension points, so later features plug in here instead of into three callers:

- **Costs at marks**: :meth:`Account.mark` takes the perpetual funding due at the candle's
  close (:mod:`env.funding`) and settles it on the position held over the candle before
  marking it; any other cost due inside a candle belongs there too.
- **Several accounts on one observation**: an account is only its portfolio and its guard;
  the market part of the observation is built once and each account adds its own five
  portfolio features (:func:`env.observation.build_observation`).
"""

from __future__ import annotations

from typing import NamedTuple

from env.decisions import trade_action
from env.funding import FundingPayment, FundingRate
from env.portfolio import Fill, Portfolio
from env.risk import RiskEvent, RiskGuard
from env.types import Order


class Execution(NamedTuple):
    """What one decision did to the account.

    Args:
        action: the trade action carried out (:class:`env.types.Action`, 0-3), after the
            order's mapping and the risk guard; what the ledger records.
        fills: ``Portfolio.apply``'s fills, in order (closing fills carry their trade).
        risk_events: what the guard raised at this candle.
    """

    action: int
    fills: tuple[Fill, ...]
    risk_events: tuple[RiskEvent, ...]


class Account:
    """One paper account: a :class:`Portfolio` and its optional :class:`RiskGuard`.

    Call :meth:`mark` with each candle's close, then :meth:`execute` with the decision
    taken at that close (the fill is at the marked close and time, never another price).

    Args:
        portfolio: the account's money.
        guard: the drawdown stop and daily loss limit; ``None``: unguarded (training).
    """

    __slots__ = ("funding", "funding_payment", "guard", "portfolio", "time_ms")

    def __init__(self, portfolio: Portfolio, guard: RiskGuard | None = None) -> None:
        self.portfolio = portfolio
        self.guard = guard
        self.time_ms = 0
        """Open time (epoch ms) of the candle the account was last marked at."""
        self.funding: FundingRate | None = None
        """The funding due at the last marked close, if any (recorded even when flat)."""
        self.funding_payment: FundingPayment | None = None
        """What the position paid (or received) for it; ``None`` when nothing was due or flat."""

    def mark(self, price: float, time_ms: int, funding: FundingRate | None = None) -> float:
        """Mark the account at the close ``price`` of the candle opened at ``time_ms``, first
        settling the ``funding`` due at that close on the position held over the candle
        (:meth:`env.portfolio.Portfolio.apply_funding`, valued at ``price``); returns equity."""
        self.time_ms = time_ms
        self.funding = funding
        portfolio = self.portfolio
        self.funding_payment = (None if funding is None
                                else portfolio.apply_funding(funding.rate, price, funding.time_ms))
        return portfolio.mark(price)

    def execute(self, order: Order) -> Execution:
        """Carry out a decision at the last marked close: map the order to a trade action
        (:func:`env.decisions.trade_action`), let the guard veto it, fill it."""
        portfolio = self.portfolio
        action = trade_action(order, portfolio.side)
        events: tuple[RiskEvent, ...] = ()
        if self.guard is not None:
            action, raised = self.guard.check(action, portfolio, self.time_ms)
            events = tuple(raised)
        return Execution(action, portfolio.apply(action, portfolio.last_price, self.time_ms), events)
