"""The accounts side by side: each account's results on each symbol and in total, over the
same candles, beside buy & hold (``shadow accounts``; a live trial's verdict reads the same
figures).

Per account and symbol, the curve the ledger holds (:mod:`state.account_curves`) is scored
by the one metrics module (:func:`trainer.evaluation.metrics.compute_metrics`, skill figures
included): the equity ``E_0`` before the range's first decision, then after each decision;
the position held over each step is the signed notional over equity at its start (measured,
so leverage and a position's drift with the price count: ``position_size`` 1); the closes
from the one before the range. The total of an account is the sum of its symbols' equity
(each symbol trades its own money), so its return is the mean of the symbols' returns
weighted by their starting equity; its buy & hold return and net exposure are weighted the
same way, and its timing is :func:`~trainer.evaluation.metrics.timing` of those, as on every
row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from env.intervals import grid
from state.account_curves import AccountCurve
from trainer.evaluation.metrics import Metrics, compute_metrics, timing

TOTAL = "total"
"""The ``symbol`` of an account's figures over all its symbols."""


@dataclass(frozen=True, slots=True)
class AccountFigures:
    """One account's results on one symbol (or in total) over a range.

    Args:
        account / symbol: whose (``symbol`` is :data:`TOTAL` for the sum of its symbols).
        decisions: decisions in the range (in total: the candles decided on any symbol).
        first_ms / last_ms: the first and last decided candle.
        start_equity / final_equity: the equity before the first decision and after the last.
        metrics: :class:`~trainer.evaluation.metrics.Metrics` of the curve (return, Sharpe,
            max drawdown, trades, fees, funding, exposure, time long and short, turnover, and
            the net exposure, buy & hold return and timing against the market).
    """

    account: str
    symbol: str
    decisions: int
    first_ms: int
    last_ms: int
    start_equity: float
    final_equity: float
    metrics: Metrics

    @property
    def net_exposure(self) -> float:
        """The mean signed notional over equity (+1: fully long throughout)."""
        return self.metrics.net_exposure

    @property
    def buy_and_hold_return(self) -> float:
        """The market's move over the same candles."""
        assert self.metrics.buy_and_hold_return is not None  # the curves always carry their closes
        return self.metrics.buy_and_hold_return

    @property
    def timing(self) -> float:
        """``total_return - net_exposure x buy_and_hold_return``."""
        assert self.metrics.timing is not None
        return self.metrics.timing

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"metrics": self.metrics.to_dict()}


def symbol_figures(curve: AccountCurve) -> AccountFigures:
    """One account's figures on one symbol."""
    equity = np.concatenate(([curve.start_equity], curve.equity))
    held = np.concatenate(([curve.start_notional], curve.notional[:-1])) / equity[:-1]
    metrics = compute_metrics(equity, held, curve.trades, float(curve.fees_paid[-1] - curve.start_fees),
                              grid(curve.interval).nominal_ms,
                              closes=np.concatenate(([curve.start_close], curve.close)),
                              traded_notional=curve.traded_notional,
                              funding_paid=float(curve.funding_paid[-1] - curve.start_funding))
    return AccountFigures(curve.account, curve.symbol, len(curve.equity), int(curve.open_time_ms[0]),
                          int(curve.open_time_ms[-1]), curve.start_equity, float(curve.equity[-1]), metrics)


def total_figures(account: str, curves: Sequence[AccountCurve], per_symbol: Sequence[AccountFigures]) -> AccountFigures:
    """An account's figures over all its symbols (see the module docstring)."""
    times = np.unique(np.concatenate([c.open_time_ms for c in curves]))
    equity = np.zeros(len(times) + 1)
    notional = np.zeros(len(times) + 1)
    for curve in curves:  # each symbol's equity and notional carried forward to every candle time
        at = np.searchsorted(curve.open_time_ms, times, side="right")  # decisions of this symbol up to each time
        equity += np.concatenate(([curve.start_equity], _carried(curve.start_equity, curve.equity, at)))
        notional += np.concatenate(([curve.start_notional], _carried(curve.start_notional, curve.notional, at)))
    held = notional[:-1] / equity[:-1]
    trades = [t for c in curves for t in c.trades]
    fees = sum(float(c.fees_paid[-1] - c.start_fees) for c in curves)
    funding = sum(float(c.funding_paid[-1] - c.start_funding) for c in curves)
    metrics = compute_metrics(equity, held, trades, fees, grid(curves[0].interval).nominal_ms,
                              traded_notional=sum(c.traded_notional for c in curves), funding_paid=funding)
    weights = np.array([f.start_equity for f in per_symbol]) / sum(f.start_equity for f in per_symbol)
    exposure = float(np.dot(weights, [f.net_exposure for f in per_symbol]))
    market = float(np.dot(weights, [f.buy_and_hold_return for f in per_symbol]))
    metrics = replace(metrics, net_exposure=exposure, buy_and_hold_return=market,
                      exposure_matched_return=exposure * market, timing=timing(metrics.total_return, exposure, market))
    return AccountFigures(account, TOTAL, len(times), int(times[0]), int(times[-1]), float(equity[0]),
                          float(equity[-1]), metrics)


def _carried(start: float, values: npt.NDArray[np.float64], at: npt.NDArray[np.intp]) -> npt.NDArray[np.float64]:
    """``values`` after the ``at``-th decision, ``start`` before the first."""
    return np.where(at > 0, values[np.maximum(at - 1, 0)], start)


def compare_accounts(curves: Sequence[AccountCurve]) -> list[AccountFigures]:
    """Per account (in the order of ``curves``): its figures on each symbol, then its total
    (when it trades more than one symbol)."""
    figures: list[AccountFigures] = []
    for account in dict.fromkeys(c.account for c in curves):
        own = [c for c in curves if c.account == account]
        per_symbol = [symbol_figures(c) for c in own]
        figures += per_symbol
        if len(own) > 1:
            figures.append(total_figures(account, own, per_symbol))
    return figures
