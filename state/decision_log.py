"""What each decision recorded, read back whole: the other side of ``shadow verify``.

A decision wrote its observation hash, its action, who took it (strategy label and model
version, under a daemon session), the funding its mark settled, its fills with the trade a
closing fill finished, the equity after its fills and the risk events it raised (see
:mod:`state.decision_sql`).
:func:`read_decision_log` returns one :class:`LoggedDecision` per decision of a symbol, in
candle order, holding those values as the shared models built them (:class:`env.portfolio.Fill`,
:class:`env.portfolio.ClosedTrade`, :class:`env.funding.FundingPayment`,
:class:`env.risk.RiskEvent`), so a replay compares
with ``==``, bit for bit.

The queries read a few rows per decision in bulk; run them inside one read transaction
(:func:`snapshot`) so that a daemon writing meanwhile cannot tear the picture.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from env.funding import FundingPayment
from env.portfolio import ClosedTrade, Fill
from env.risk import RiskEvent


@dataclass(frozen=True, slots=True)
class LoggedDecision:
    """One ``decisions`` row with everything written in its transaction.

    Args:
        open_time_ms: the decided candle.
        interval: the symbol's candle interval (``"1m"``).
        action: the action carried out (after the risk guard).
        obs_hash: sha256 of the observation (``state.records.observation_hash``).
        strategy / model_version: who decided (``decisions.strategy``, ``decisions.model_version``).
        run_id: the daemon session, if any.
        equity: the account's equity right after the fills.
        fills: the fills in order, a closing fill carrying the trade it closed.
        risk_events: the events the risk guard raised at this candle.
        funding: what the open position paid or received at this candle's close, if anything.
    """

    open_time_ms: int
    interval: str
    action: int
    obs_hash: str
    strategy: str | None
    model_version: str | None
    run_id: int | None
    equity: float
    fills: tuple[Fill, ...]
    risk_events: tuple[RiskEvent, ...]
    funding: FundingPayment | None = None


@dataclass(frozen=True, slots=True)
class DecidedSymbol:
    """A symbol with decisions in the ledger: how many and over which candles."""

    symbol: str
    interval: str
    decisions: int
    first_ms: int
    last_ms: int


@contextmanager
def snapshot(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One read transaction: every query inside sees the same committed state."""
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        conn.execute("ROLLBACK")


def decided_symbols(conn: sqlite3.Connection) -> list[DecidedSymbol]:
    """Every symbol that has decisions, by name."""
    rows = conn.execute(
        "SELECT symbol, min(interval), count(*), min(open_time_ms), max(open_time_ms) FROM decisions "
        "GROUP BY symbol ORDER BY symbol"
    ).fetchall()
    return [DecidedSymbol(*row) for row in rows]


def run_settings(conn: sqlite3.Connection) -> dict[int, str | None]:
    """Each daemon session's recorded settings (JSON text; ``None`` for sessions recorded
    before schema version 4)."""
    return dict(conn.execute("SELECT run_id, settings FROM runs").fetchall())


_OPEN_END = 2**62
_DECISIONS = (
    "SELECT d.decision_id, d.open_time_ms, d.interval, d.action, d.obs_hash, d.strategy, d.model_version, d.run_id, "
    "e.equity FROM decisions d JOIN equity e ON e.decision_id = d.decision_id "
    "WHERE d.symbol = ? AND d.open_time_ms >= ? AND d.open_time_ms <= ? ORDER BY d.open_time_ms"
)
_FILLS = (
    "SELECT f.decision_id, f.time_ms, f.side, f.qty, f.price, f.market_price, f.fee, f.slippage_cost, f.opens, "
    "t.side, t.qty, t.entry_time_ms, t.exit_time_ms, t.entry_price, t.exit_price, t.gross_pnl, t.fees, t.net_pnl, "
    "t.funding "
    "FROM fills f JOIN decisions d ON d.decision_id = f.decision_id "
    "LEFT JOIN trades t ON t.exit_decision_id = f.decision_id AND f.opens = 0 "
    "WHERE d.symbol = ? AND d.open_time_ms >= ? AND d.open_time_ms <= ? ORDER BY f.decision_id, f.seq"
)
_FUNDING = (
    "SELECT f.decision_id, f.time_ms, f.rate, f.price, f.side, f.qty, f.amount FROM funding f "
    "JOIN decisions d ON d.decision_id = f.decision_id "
    "WHERE d.symbol = ? AND d.open_time_ms >= ? AND d.open_time_ms <= ?"
)
_RISK_EVENTS = (
    "SELECT time_ms, kind, detail FROM risk_events WHERE symbol = ? AND time_ms >= ? AND time_ms <= ? "
    "ORDER BY event_id"
)


def read_decision_log(conn: sqlite3.Connection, symbol: str, *, start_ms: int | None = None,
                      end_ms: int | None = None) -> list[LoggedDecision]:
    """The decisions of ``symbol`` with candles in ``[start_ms, end_ms]`` (``None``: open
    ended), oldest first."""
    bounds = (symbol, -_OPEN_END if start_ms is None else start_ms, _OPEN_END if end_ms is None else end_ms)
    fills: defaultdict[int, list[Fill]] = defaultdict(list)
    for row in conn.execute(_FILLS, bounds):
        fills[row[0]].append(_fill(row[1:]))
    events: defaultdict[int, list[RiskEvent]] = defaultdict(list)
    for time_ms, kind, detail in conn.execute(_RISK_EVENTS, bounds):
        events[time_ms].append(RiskEvent(time_ms, kind, detail))
    funding = {row[0]: FundingPayment(*row[1:]) for row in conn.execute(_FUNDING, bounds)}
    return [
        LoggedDecision(open_time_ms, interval, action, obs_hash, strategy, model_version, run_id, equity,
                       tuple(fills.get(decision_id, ())), tuple(events.get(open_time_ms, ())),
                       funding.get(decision_id))
        for decision_id, open_time_ms, interval, action, obs_hash, strategy, model_version, run_id, equity
        in conn.execute(_DECISIONS, bounds)
    ]


def _fill(row: tuple[Any, ...]) -> Fill:
    time_ms, side, qty, price, market_price, fee, slippage_cost, opens, *trade = row
    closed = None if trade[0] is None else ClosedTrade(*trade)
    return Fill(time_ms, side, qty, price, market_price, fee, slippage_cost, bool(opens), closed)
