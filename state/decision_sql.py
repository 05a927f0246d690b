"""The statements that write one candle's decisions (every account's), with their parameters.

Kept apart from the async writer so the benchmark's plain-``sqlite3`` baseline runs the
very same SQL. Order inside the transaction: candle, decisions (the idempotency gate),
then the funding payments settled at their marks, fills, the trades they closed,
positions, equity rows and risk events. Each is one multi-row statement for all the
accounts at the candle, so an account more costs its rows, not more round trips to the
database: the writer's connection runs in a thread of its own (aiosqlite), and a
statement's hand-off to it costs more than the row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from functools import cache
from typing import Any

from env.portfolio import PortfolioState
from env.risk import RiskState
from state.records import DecisionRecord

STATE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(PortfolioState))
RISK_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(RiskState))
RISK_COLUMNS: tuple[str, ...] = tuple(f"risk_{name}" for name in RISK_FIELDS)

Statement = tuple[str, list[Any]]
"""SQL with positional ``?`` parameters, and the parameters (built with ``getattr``, not
``dataclasses.astuple``: that deep-copies every value, and it was the costliest step of a
candle's write)."""

_DECISION_COLUMNS = ("account", "symbol", "interval", "open_time_ms", "action", "obs_hash", "strategy", "model_version",
                     "latency_ms", "decided_ms", "run_id")

SELECT_DECISION = "SELECT action, obs_hash FROM decisions WHERE account = ? AND symbol = ? AND open_time_ms = ?"
SELECT_POSITION_KEY = (
    "SELECT account, interval, open_time_ms FROM positions WHERE symbol = ? "
    "ORDER BY account = ? DESC, interval <> ? DESC LIMIT 1"
)

_FILL_COLUMNS = ("decision_id", "seq", "account", "symbol", "time_ms", "side", "opens", "qty", "price", "market_price",
                 "fee", "slippage_cost")
_TRADE_COLUMNS = ("account", "symbol", "side", "qty", "entry_time_ms", "exit_time_ms", "entry_price", "exit_price",
                  "gross_pnl", "fees", "net_pnl", "funding", "exit_decision_id")
POSITION_COLUMNS: tuple[str, ...] = ("account", "symbol", "interval", "open_time_ms", "decision_id", "initial_balance",
                                     *STATE_FIELDS, "equity", "unrealized_pnl", *RISK_COLUMNS)
_EQUITY_COLUMNS = ("account", "symbol", "open_time_ms", "decision_id", "close", "side", "cash", "unrealized_pnl",
                   "equity", "realized_pnl", "fees_paid", "drawdown", "funding_paid")
_FUNDING_COLUMNS = ("decision_id", "account", "symbol", "time_ms", "rate", "price", "side", "qty", "amount")
_RISK_EVENT_COLUMNS = ("account", "symbol", "time_ms", "kind", "detail", "run_id")


@cache
def _values(columns: tuple[str, ...], rows: int) -> str:
    """``v(a, b) AS (VALUES (?, ?), (?, ?))``: ``rows`` rows of parameters, named."""
    row = f"({', '.join('?' * len(columns))})"
    return f"v({', '.join(columns)}) AS (VALUES {', '.join([row] * rows)})"


@cache
def _insert_decisions(rows: int) -> str:
    # Inserts nothing for an account that already decided the candle, that has a later
    # decision on the symbol, or when any account trades the symbol at another interval;
    # the writer then finds out which (the rows returned name the accounts written).
    columns = ", ".join(_DECISION_COLUMNS)
    return (f"WITH {_values(_DECISION_COLUMNS, rows)} INSERT INTO decisions ({columns}) SELECT {columns} FROM v "
            "WHERE NOT EXISTS (SELECT 1 FROM positions p WHERE p.symbol = v.symbol "
            "AND (p.interval <> v.interval OR (p.account = v.account AND p.open_time_ms > v.open_time_ms))) "
            "ON CONFLICT (symbol, open_time_ms, account) DO NOTHING RETURNING account, decision_id")


@cache
def _insert(table: str, columns: tuple[str, ...], rows: int) -> str:
    return f"WITH {_values(columns, rows)} INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM v"


@cache
def _insert_trades(rows: int) -> str:
    # Each trade is credited to the decision whose opening fill started it.
    return (f"WITH {_values(_TRADE_COLUMNS, rows)} INSERT INTO trades ({', '.join(_TRADE_COLUMNS)}, entry_decision_id) "
            "SELECT *, (SELECT o.decision_id FROM fills o WHERE o.account = v.account AND o.symbol = v.symbol "
            "AND o.opens = 1 AND o.time_ms = v.entry_time_ms ORDER BY o.fill_id DESC LIMIT 1) FROM v")


@cache
def _upsert_positions(rows: int) -> str:
    return (f"{_insert('positions', POSITION_COLUMNS, rows)} WHERE true ON CONFLICT (account, symbol) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in POSITION_COLUMNS[2:]))


def _flat(rows: list[tuple[Any, ...]]) -> list[Any]:
    return [value for row in rows for value in row]


def insert_decisions(records: Sequence[DecisionRecord]) -> Statement:
    """The decisions of one candle; the statement returns ``(account, decision_id)`` of each
    row it wrote."""
    rows = [(r.account, r.candle.symbol, r.candle.interval, r.candle.open_time_ms, int(r.action), r.obs_hash,
             r.strategy, r.model_version, r.latency_ms, r.decided_ms, r.run_id) for r in records]
    return _insert_decisions(len(rows)), _flat(rows)


def after_decisions(written: Sequence[tuple[DecisionRecord, int]]) -> list[Statement]:
    """The statements that follow newly inserted decisions ``(record, decision_id)`` of one
    candle: the funding payments of their marks, their fills, the trades the closing fills
    finished, positions, equity rows and the risk events they raised (each kind in one
    statement, the empty ones left out)."""
    funding: list[tuple[Any, ...]] = []
    fills: list[tuple[Any, ...]] = []
    trades: list[tuple[Any, ...]] = []
    positions: list[tuple[Any, ...]] = []
    equity: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []
    for record, decision_id in written:
        c, state, account = record.candle, record.state, record.account
        if record.funding is not None:
            funding.append((decision_id, account, c.symbol, *record.funding))
        for seq, fill in enumerate(record.fills):
            fills.append((decision_id, seq, account, c.symbol, fill.time_ms, fill.side, int(fill.opens), fill.qty,
                          fill.price, fill.market_price, fill.fee, fill.slippage_cost))
            if fill.trade is not None:
                trades.append((account, c.symbol, *fill.trade, decision_id))
        positions.append((account, c.symbol, c.interval, c.open_time_ms, decision_id, record.initial_balance,
                          *(getattr(state, f) for f in STATE_FIELDS), record.equity, record.unrealized_pnl,
                          *(getattr(record.risk, f) for f in RISK_FIELDS)))
        equity.append((account, c.symbol, c.open_time_ms, decision_id, c.close, state.side, state.cash,
                       record.unrealized_pnl, record.equity, state.realized_pnl, state.fees_paid, record.drawdown,
                       state.funding_paid))
        events += [(account, c.symbol, *event, record.run_id) for event in record.risk_events]
    statements = [
        (_insert("funding", _FUNDING_COLUMNS, len(funding)), funding),
        (_insert("fills", _FILL_COLUMNS, len(fills)), fills), (_insert_trades(len(trades)), trades),
        (_upsert_positions(len(positions)), positions), (_insert("equity", _EQUITY_COLUMNS, len(equity)), equity),
        (_insert("risk_events", _RISK_EVENT_COLUMNS, len(events)), events),
    ]
    return [(sql, _flat(rows)) for sql, rows in statements if rows]
