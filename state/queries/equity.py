"""The equity page's data: an account's equity beside buy & hold and flat, and drawdown.

Points are per bar of a resolution (the last decided candle's values in each bar; the
drawdown is the deepest one in the bar, so a coarse view hides no dip of one symbol).
Several symbols add up: each symbol's latest equity is carried to every bar and summed,
and the total's drawdown is measured from its own running peak over the bars shown.

Buy & hold goes through the one fill model (:class:`env.portfolio.Portfolio`): each
symbol's initial balance bought at its first decided close and marked at each bar's
close, with the commission and slippage the ledger's own fills were charged.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field

from env.portfolio import Portfolio, PortfolioConfig
from env.types import Action
from state.queries.resolution import bucket_sql
from state.queries.scope import Scope

EquityBar = tuple[int, float, float, float]
"""``(bar start ms, equity, close, drawdown)``: the last decided candle's equity and close in
the bar, and the deepest drawdown in it."""


@dataclass(frozen=True, slots=True)
class Costs:
    """What a fill costs, read back from a ledger's fills (zero when it has none)."""

    commission: float = 0.0
    slippage_bps: float = 0.0


def recorded_costs(conn: sqlite3.Connection, symbol: str) -> Costs:
    """The commission rate (fee / notional) and slippage (bps from the candle close) of the
    symbol's first fill: the rates the daemon traded with."""
    row = conn.execute(
        "SELECT fee / (qty * price), abs(price / market_price - 1) * 10000 FROM fills "
        "WHERE symbol = ? AND qty > 0 ORDER BY fill_id LIMIT 1", (symbol,),
    ).fetchone()
    return Costs(round(row[0], 12), round(row[1], 9)) if row else Costs()


@dataclass(frozen=True, slots=True)
class Account:
    """What buy & hold and flat need of one symbol's account: its start and its costs."""

    symbol: str
    initial_balance: float
    first_close: float
    costs: Costs


@dataclass
class EquityCurve:
    """Aligned series, one value per bar (``times_ms`` are bar starts)."""

    times_ms: list[int] = field(default_factory=list)
    equity: list[float] = field(default_factory=list)
    buy_and_hold: list[float] = field(default_factory=list)
    flat: list[float] = field(default_factory=list)
    drawdown: list[float] = field(default_factory=list)
    symbols: list[str] = field(default_factory=list)


def accounts(conn: sqlite3.Connection, scope: Scope) -> list[Account]:
    """The scope's symbol accounts that have decided at least once."""
    where, params = scope.where("p")
    rows = conn.execute(
        "SELECT p.symbol, p.initial_balance, (SELECT e.close FROM equity e WHERE e.symbol = p.symbol "
        f"ORDER BY e.open_time_ms LIMIT 1) FROM positions p WHERE {where} ORDER BY p.symbol", params,
    ).fetchall()
    return [Account(symbol, initial, close, recorded_costs(conn, symbol))
            for symbol, initial, close in rows if close is not None]


def equity_bars(conn: sqlite3.Connection, symbol: str, level_ms: int, start_ms: int, end_ms: int) -> list[EquityBar]:
    """One symbol's :data:`EquityBar` per bar of ``level_ms`` over ``[start_ms, end_ms]``."""
    buckets = conn.execute(
        f"SELECT {bucket_sql('open_time_ms', level_ms)} AS b, max(open_time_ms), max(drawdown) FROM equity "
        "WHERE symbol = ? AND open_time_ms BETWEEN ? AND ? GROUP BY b ORDER BY b", (symbol, start_ms, end_ms),
    ).fetchall()
    ends = {t: (equity, close) for t, equity, close in conn.execute(
        "SELECT open_time_ms, equity, close FROM equity WHERE symbol = ? "
        "AND open_time_ms IN (SELECT value FROM json_each(?))", (symbol, json.dumps([row[1] for row in buckets])),
    )}
    return [(b, *ends[t], drawdown) for b, t, drawdown in buckets]


def combine(bars: dict[Account, list[EquityBar]]) -> EquityCurve:
    """The accounts' bars as one curve, with buy & hold and flat (see the module docstring)."""
    curve = EquityCurve(symbols=[a.symbol for a in bars])
    by_time = {a: {row[0]: row[1:] for row in rows} for a, rows in bars.items()}
    holds = {a: _buy_and_hold(a) for a in bars}
    last: dict[Account, tuple[float, float, float]] = {}
    peak = 0.0
    for t in sorted({row[0] for rows in bars.values() for row in rows}):
        for a, rows in by_time.items():
            if t in rows:
                last[a] = rows[t]
        equity = sum(v[0] for v in last.values())
        curve.times_ms.append(t)
        curve.equity.append(equity)
        curve.buy_and_hold.append(sum(holds[a].mark(v[1]) for a, v in last.items()))
        curve.flat.append(sum(a.initial_balance for a in last))
        if len(bars) == 1:
            curve.drawdown.append(next(iter(last.values()))[2])
        else:
            peak = max(peak, equity)
            curve.drawdown.append(1 - equity / peak if peak > 0 else 0.0)
    return curve


def equity_curve(conn: sqlite3.Connection, scope: Scope, level_ms: int, start_ms: int, end_ms: int) -> EquityCurve:
    """The scope's equity per bar of ``level_ms`` over decisions in ``[start_ms, end_ms]``,
    with buy & hold and flat on the same axis."""
    return combine({a: equity_bars(conn, a.symbol, level_ms, start_ms, end_ms) for a in accounts(conn, scope)})


def _buy_and_hold(account: Account) -> Portfolio:
    costs = account.costs
    hold = Portfolio(PortfolioConfig(account.initial_balance, costs.commission, 1.0, costs.slippage_bps))
    hold.apply(Action.BUY, account.first_close)
    return hold
