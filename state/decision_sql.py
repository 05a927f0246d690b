"""The statements that write one decision, with their parameters.

Kept apart from the async writer so the benchmark's plain-``sqlite3`` baseline runs the
very same SQL. Order inside the transaction: candle, decision (the idempotency gate), the
funding payment settled at its mark, then fills with their trades, the position and the
equity row.
"""

from __future__ import annotations

from dataclasses import asdict, astuple, fields
from typing import Any

from env.portfolio import PortfolioState
from env.risk import RiskState
from state.records import DecisionRecord

STATE_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(PortfolioState))
RISK_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(RiskState))
RISK_COLUMNS: tuple[str, ...] = tuple(f"risk_{name}" for name in RISK_FIELDS)

_DECISION_COLUMNS = ("symbol", "interval", "open_time_ms", "action", "obs_hash", "strategy", "model_version",
                     "latency_ms", "decided_ms", "run_id")

# Inserts nothing (and returns no row) when the candle was already decided, or when the
# symbol already has a later decision or another interval; the writer then finds out which.
INSERT_DECISION = (
    f"INSERT INTO decisions ({', '.join(_DECISION_COLUMNS)}) "
    f"SELECT {', '.join(':' + c for c in _DECISION_COLUMNS)} "
    "WHERE NOT EXISTS (SELECT 1 FROM positions p WHERE p.symbol = :symbol "
    "AND (p.open_time_ms > :open_time_ms OR p.interval <> :interval)) "
    "ON CONFLICT (symbol, open_time_ms) DO NOTHING RETURNING decision_id"
)

SELECT_DECISION = "SELECT action, obs_hash FROM decisions WHERE symbol = ? AND open_time_ms = ?"
SELECT_POSITION_KEY = "SELECT interval, open_time_ms FROM positions WHERE symbol = ?"

_FILL_COLUMNS = ("decision_id", "seq", "symbol", "time_ms", "side", "opens", "qty", "price", "market_price", "fee",
                 "slippage_cost")
INSERT_FILL = f"INSERT INTO fills ({', '.join(_FILL_COLUMNS)}) VALUES ({', '.join(':' + c for c in _FILL_COLUMNS)})"

_TRADE_COLUMNS = ("symbol", "side", "qty", "entry_time_ms", "exit_time_ms", "entry_price", "exit_price", "gross_pnl",
                  "fees", "net_pnl", "funding", "exit_decision_id")
# The trade is credited to the decision whose opening fill started it.
INSERT_TRADE = (
    f"INSERT INTO trades ({', '.join(_TRADE_COLUMNS)}, entry_decision_id) "
    f"VALUES ({', '.join(':' + c for c in _TRADE_COLUMNS)}, "
    "(SELECT o.decision_id FROM fills o WHERE o.symbol = :symbol AND o.opens = 1 "
    "AND o.time_ms = :entry_time_ms ORDER BY o.fill_id DESC LIMIT 1))"
)

POSITION_COLUMNS: tuple[str, ...] = ("symbol", "interval", "open_time_ms", "decision_id", "initial_balance",
                                     *STATE_FIELDS, "equity", "unrealized_pnl", *RISK_COLUMNS)
UPSERT_POSITION = (
    f"INSERT INTO positions ({', '.join(POSITION_COLUMNS)}) VALUES ({', '.join(':' + c for c in POSITION_COLUMNS)}) "
    "ON CONFLICT (symbol) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in POSITION_COLUMNS[1:])
)

_EQUITY_COLUMNS = ("symbol", "open_time_ms", "decision_id", "close", "side", "cash", "unrealized_pnl", "equity",
                   "realized_pnl", "fees_paid", "drawdown", "funding_paid")
INSERT_EQUITY = (
    f"INSERT INTO equity ({', '.join(_EQUITY_COLUMNS)}) VALUES ({', '.join(':' + c for c in _EQUITY_COLUMNS)})"
)


_FUNDING_COLUMNS = ("decision_id", "symbol", "time_ms", "rate", "price", "side", "qty", "amount")
INSERT_FUNDING = (
    f"INSERT INTO funding ({', '.join(_FUNDING_COLUMNS)}) VALUES ({', '.join(':' + c for c in _FUNDING_COLUMNS)})"
)

INSERT_RISK_EVENT = (
    "INSERT INTO risk_events (symbol, time_ms, kind, detail, run_id) "
    "VALUES (:symbol, :time_ms, :kind, :detail, :run_id)"
)


def decision_params(record: DecisionRecord) -> dict[str, Any]:
    c = record.candle
    return {
        "symbol": c.symbol, "interval": c.interval, "open_time_ms": c.open_time_ms, "action": int(record.action),
        "obs_hash": record.obs_hash, "strategy": record.strategy, "model_version": record.model_version,
        "latency_ms": record.latency_ms, "decided_ms": record.decided_ms, "run_id": record.run_id,
    }


def after_decision(record: DecisionRecord, decision_id: int) -> list[tuple[str, dict[str, Any]]]:
    """The statements that follow a newly inserted decision: the funding payment of its
    mark, fills (each closing fill followed by its trade, before a reversal's opening fill),
    position, equity, and the risk events the decision raised."""
    c, state = record.candle, record.state
    statements: list[tuple[str, dict[str, Any]]] = []
    if record.funding is not None:
        statements.append((INSERT_FUNDING, record.funding._asdict() | {"decision_id": decision_id, "symbol": c.symbol}))
    for seq, fill in enumerate(record.fills):
        statements.append((INSERT_FILL, {
            "decision_id": decision_id, "seq": seq, "symbol": c.symbol, "time_ms": fill.time_ms, "side": fill.side,
            "opens": int(fill.opens), "qty": fill.qty, "price": fill.price, "market_price": fill.market_price,
            "fee": fill.fee, "slippage_cost": fill.slippage_cost,
        }))
        if fill.trade is not None:
            statements.append((INSERT_TRADE, fill.trade._asdict() | {"symbol": c.symbol,
                                                                     "exit_decision_id": decision_id}))
    statements.append((UPSERT_POSITION, asdict(state) | {
        "symbol": c.symbol, "interval": c.interval, "open_time_ms": c.open_time_ms, "decision_id": decision_id,
        "initial_balance": record.initial_balance, "equity": record.equity, "unrealized_pnl": record.unrealized_pnl,
    } | {column: value for column, value in zip(RISK_COLUMNS, astuple(record.risk), strict=True)}))
    statements.append((INSERT_EQUITY, {
        "symbol": c.symbol, "open_time_ms": c.open_time_ms, "decision_id": decision_id, "close": c.close,
        "side": state.side, "cash": state.cash, "unrealized_pnl": record.unrealized_pnl, "equity": record.equity,
        "realized_pnl": state.realized_pnl, "fees_paid": state.fees_paid, "drawdown": record.drawdown,
        "funding_paid": state.funding_paid,
    }))
    statements += [(INSERT_RISK_EVENT, event._asdict() | {"symbol": c.symbol, "run_id": record.run_id})
                   for event in record.risk_events]
    return statements
