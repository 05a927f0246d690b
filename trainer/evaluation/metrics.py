"""Performance metrics of one backtest run, all defined here and nowhere else.

Inputs are what the backtester records: the equity curve ``E_0 .. E_n`` (``E_0`` the
starting equity at the first decision candle, ``E_k`` the equity marked at the close
``k`` candles later), the position held over each of the ``n`` steps, the closed round
trips and the fees. Per-candle returns are ``r_k = E_k / E_{k-1} - 1``.

================== ==========================================================================
metric             definition
================== ==========================================================================
total_return       ``E_n / E_0 - 1``
annualized_return  ``(E_n / E_0) ** (P / n) - 1``, ``P`` = candles per year (365 days of 24 h:
                   crypto trades around the clock; 525,600 for 1m candles). -1 if ``E_n <= 0``.
                   Annualising a few weeks compounds wildly: read it as a rate, not a forecast.
sharpe             ``mean(r) / std(r) x sqrt(P)``, sample std (ddof 1), risk-free rate 0
sortino            ``mean(r) / sqrt(mean(min(r, 0)^2)) x sqrt(P)`` (downside deviation, target 0)
max_drawdown       ``max_k (1 - E_k / max_{j<=k} E_j)``, a fraction (0.1 = 10%)
calmar             ``annualized_return / max_drawdown``
n_trades           closed round trips (open -> close); a position still open at the end is not one
win_rate           round trips with net PnL (after both fees) > 0, over ``n_trades``
                   (:func:`env.portfolio.win_rate`)
profit_factor      sum of winning net PnL / |sum of losing net PnL|
avg_holding        mean ``exit - entry`` time of round trips, in candles and in hours
exposure           fraction of the ``n`` steps with a position open
fees_paid          commission paid on every fill, quote currency
funding_paid       perpetual funding paid, net of funding received (0 without funding), quote
                   currency; like the fees, already inside equity and every return above
================== ==========================================================================

**Skill figures**: did the strategy time the market, or ride it? On rising test data a
policy that is simply long more often than short "makes money" without any skill; these
figures separate the two.

======================== ====================================================================
time_long, time_short    fraction of the ``n`` steps holding a long / a short position
net_exposure             ``position_size x mean(side)`` over the steps: +1 long all the time,
                         -1 short all the time, 0 flat (or as long as short)
fees_to_capital          ``fees_paid / E_0`` (shown as % of capital)
funding_to_capital       ``funding_paid / E_0`` (shown as % of capital; 0 without funding)
turnover                 traded notional (``qty x price`` of every fill) over ``E_0``: 2.0 is
                         one round trip of the whole capital
buy_and_hold_return      ``close_n / close_0 - 1`` of the same candles (gross, no fees)
exposure_matched_return  ``net_exposure x buy_and_hold_return``: buy & hold scaled to the same
                         net exposure (what riding the market with that exposure earned)
timing                   ``total_return - exposure_matched_return``: what the strategy made
                         beyond its average exposure; > 0 only with timing skill (or luck)
======================== ====================================================================

**Edge cases never produce NaN** (so the JSON is valid): a ratio whose denominator is 0
is 0.0 when its numerator is 0 too (flat: no risk, no return) and ``None`` when the ratio
is unbounded or undefined (``None`` is ``null`` in JSON and "n/a" in tables). So: no
trades -> ``win_rate`` 0.0 (0/0, as everywhere in Shadow: :func:`env.portfolio.win_rate`),
``profit_factor`` and ``avg_holding_*`` ``None``; all losses -> ``win_rate`` 0.0 and
``profit_factor`` 0.0; no losing trade -> ``profit_factor`` ``None``;
zero volatility -> ``sharpe`` 0.0 (``None`` if the mean return is not 0; a spread below
1e-12 of the mean counts as zero: float noise, not risk); fewer than two
returns -> ``sharpe``/``sortino`` ``None``; an annualised return too large for a float
-> ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from env.portfolio import ClosedTrade, win_rate

YEAR_MS = 365 * 24 * 3600 * 1000
HOUR_MS = 3600 * 1000


def periods_per_year(interval_ms: int) -> float:
    """Candles in a 365-day year of around-the-clock trading (525,600 for 1m)."""
    if interval_ms <= 0:
        raise ValueError(f"interval_ms must be > 0, got {interval_ms}")
    return YEAR_MS / interval_ms


@dataclass(frozen=True)
class Metrics:
    """One run's numbers (see the module docstring for each definition)."""

    total_return: float
    annualized_return: float | None
    sharpe: float | None
    sortino: float | None
    max_drawdown: float
    calmar: float | None
    n_trades: int
    win_rate: float
    profit_factor: float | None
    avg_holding_candles: float | None
    avg_holding_hours: float | None
    exposure: float
    fees_paid: float
    funding_paid: float
    final_equity: float
    total_pnl: float
    n_steps: int
    time_long: float
    time_short: float
    net_exposure: float
    fees_to_capital: float
    funding_to_capital: float
    turnover: float
    buy_and_hold_return: float | None
    exposure_matched_return: float | None
    timing: float | None

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def compute_metrics(
    equity: npt.ArrayLike,
    positions: npt.ArrayLike,
    trades: Sequence[ClosedTrade],
    fees_paid: float,
    interval_ms: int,
    *,
    closes: npt.ArrayLike | None = None,
    traded_notional: float = 0.0,
    position_size: float = 1.0,
    funding_paid: float = 0.0,
) -> Metrics:
    """Metrics of one run.

    Args:
        equity: ``E_0 .. E_n`` (``n + 1`` values, ``E_0 > 0``).
        positions: side held over each step (``n`` values of -1/0/+1).
        trades: closed round trips.
        fees_paid: total commission.
        interval_ms: candle spacing, for annualising and holding time.
        closes: ``close_0 .. close_n`` of the same candles; without them the buy & hold
            figures and timing are ``None``.
        traded_notional: ``qty x price`` summed over every fill.
        position_size: the account's ``max_position_size`` (a position's notional over equity).
        funding_paid: total funding paid, net of funding received.
    """
    e = np.asarray(equity, dtype=np.float64)
    pos = np.asarray(positions)
    if e.ndim != 1 or len(e) < 1 or not e[0] > 0:
        raise ValueError("equity must be a 1-D curve starting above 0")
    if len(pos) != len(e) - 1:
        raise ValueError(f"positions has {len(pos)} values; expected one per step ({len(e) - 1})")
    n = len(e) - 1
    per_year = periods_per_year(interval_ms)
    growth = e[-1] / e[0]
    returns = e[1:] / e[:-1] - 1.0 if n else np.empty(0)
    annualized = _annualize(growth, n, per_year)
    max_dd = float(np.max(1.0 - e / np.maximum.accumulate(e))) if n else 0.0
    net = np.array([t.net_pnl for t in trades], dtype=np.float64)
    held = np.array([t.exit_time_ms - t.entry_time_ms for t in trades], dtype=np.float64)
    wins, losses = net[net > 0].sum(), -net[net < 0].sum()
    net_exposure = position_size * float(np.mean(pos)) if n else 0.0
    hold = None if closes is None else buy_and_hold_return(closes)
    matched = None if hold is None else net_exposure * hold
    return Metrics(
        total_return=float(growth - 1.0),
        annualized_return=annualized,
        sharpe=_scaled_ratio(returns, _std(returns), per_year),
        sortino=_scaled_ratio(returns, _downside_deviation(returns), per_year),
        max_drawdown=max(max_dd, 0.0),
        calmar=None if annualized is None else _ratio(annualized, max_dd),
        n_trades=len(trades),
        win_rate=win_rate(int(np.count_nonzero(net > 0)), len(net)),
        profit_factor=_ratio(float(wins), float(losses)) if len(net) else None,
        avg_holding_candles=float(held.mean() / interval_ms) if len(held) else None,
        avg_holding_hours=float(held.mean() / HOUR_MS) if len(held) else None,
        exposure=float(np.mean(pos != 0)) if n else 0.0,
        fees_paid=float(fees_paid),
        funding_paid=float(funding_paid),
        final_equity=float(e[-1]),
        total_pnl=float(e[-1] - e[0]),
        n_steps=n,
        time_long=float(np.mean(pos > 0)) if n else 0.0,
        time_short=float(np.mean(pos < 0)) if n else 0.0,
        net_exposure=net_exposure,
        fees_to_capital=float(fees_paid / e[0]),
        funding_to_capital=float(funding_paid / e[0]),
        turnover=float(traded_notional / e[0]),
        buy_and_hold_return=hold,
        exposure_matched_return=matched,
        timing=None if hold is None else timing(float(growth - 1.0), net_exposure, hold),
    )


def buy_and_hold_return(closes: npt.ArrayLike) -> float:
    """``close_n / close_0 - 1``: the market's move over the candles (gross of fees)."""
    c = np.asarray(closes, dtype=np.float64)
    return float(c[-1] / c[0] - 1.0)


def timing(total_return: float, exposure: float, market_return: float) -> float:
    """What a strategy made beyond holding the market with its average net exposure:
    ``total_return - exposure x market_return``; > 0 only with timing skill (or luck)."""
    return total_return - exposure * market_return


def _ratio(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator``; 0.0 for 0/0, ``None`` for x/0 (unbounded)."""
    if denominator != 0:
        return numerator / denominator
    return 0.0 if numerator == 0 else None


def _std(returns: npt.NDArray[np.float64]) -> float | None:
    return float(np.std(returns, ddof=1)) if len(returns) >= 2 else None


def _downside_deviation(returns: npt.NDArray[np.float64]) -> float | None:
    return float(np.sqrt(np.mean(np.minimum(returns, 0.0) ** 2))) if len(returns) >= 2 else None


def _scaled_ratio(returns: npt.NDArray[np.float64], risk: float | None, per_year: float) -> float | None:
    if risk is None:
        return None
    mean = float(returns.mean())
    if risk <= 1e-12 * abs(mean):  # float noise around a constant return is no risk
        risk = 0.0
    ratio = _ratio(mean, risk)
    return None if ratio is None else ratio * math.sqrt(per_year)


def _annualize(growth: float, n: int, per_year: float) -> float | None:
    if n == 0:
        return 0.0
    if growth <= 0:
        return -1.0
    exponent = math.log(growth) * per_year / n
    return math.expm1(exponent) if exponent < 700 else None


def describe_skill(metrics: Mapping[str, Any]) -> str:
    """One line of a run's return beside its skill figures (a :meth:`Metrics.to_dict`):
    ``return +1.20% (timing -0.41%, buy & hold +3.10%), long 40% / short 9% (net +0.31), 12 trades, fees 0.90% of
    capital, turnover 5.1x``; a run that paid or received funding shows it beside the fees
    (``fees 0.90% and funding +0.12% of capital``)."""
    timing, hold = metrics.get("timing"), metrics.get("buy_and_hold_return")
    market = "" if timing is None or hold is None else f" (timing {100 * timing:+.2f}%, buy & hold {100 * hold:+.2f}%)"
    funding = metrics.get("funding_to_capital") or 0.0
    costs = f"fees {100 * metrics['fees_to_capital']:.2f}%" + (f" and funding {100 * funding:+.2f}%" if funding else "")
    return (f"return {100 * metrics['total_return']:+.2f}%{market}, long {100 * metrics['time_long']:.0f}% / short "
            f"{100 * metrics['time_short']:.0f}% (net {metrics['net_exposure']:+.2f}), {metrics['n_trades']} trades, "
            f"{costs} of capital, turnover {metrics['turnover']:.1f}x")
