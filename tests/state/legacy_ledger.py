"""Ledgers as Shadow wrote them before accounts (schema versions 1 to 8), built from today's
decision records with the SQL those versions ran, frozen here, so the migration tests start
from real rows of every older version."""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, astuple
from pathlib import Path

from state.candle_store import INSERT_CANDLE, candle_params
from state.decision_sql import RISK_COLUMNS, STATE_FIELDS
from state.migrations import migrate
from state.records import DecisionRecord

_DECISION = (
    "INSERT INTO decisions (symbol, interval, open_time_ms, action, obs_hash, strategy, model_version, latency_ms, "
    "decided_ms, run_id) VALUES (:symbol, :interval, :open_time_ms, :action, :obs_hash, :strategy, :model_version, "
    ":latency_ms, :decided_ms, :run_id) RETURNING decision_id"
)
_FILL = (
    "INSERT INTO fills (decision_id, seq, symbol, time_ms, side, opens, qty, price, market_price, fee, slippage_cost) "
    "VALUES (:decision_id, :seq, :symbol, :time_ms, :side, :opens, :qty, :price, :market_price, :fee, :slippage_cost)"
)
_TRADE = (  # versions 2-8: credited to the decision whose opening fill started it
    "INSERT INTO trades (symbol, side, qty, entry_time_ms, exit_time_ms, entry_price, exit_price, gross_pnl, fees, "
    "net_pnl, exit_decision_id, entry_decision_id{funding}) VALUES (:symbol, :side, :qty, :entry_time_ms, "
    ":exit_time_ms, :entry_price, :exit_price, :gross_pnl, :fees, :net_pnl, :exit_decision_id, (SELECT o.decision_id "
    "FROM fills o WHERE o.symbol = :symbol AND o.opens = 1 AND o.time_ms = :entry_time_ms ORDER BY o.fill_id DESC "
    "LIMIT 1){funding_value})"
)
_TRADE_V1 = (  # version 1: linked to its closing fill
    "INSERT INTO trades (fill_id, symbol, side, qty, entry_time_ms, exit_time_ms, entry_price, exit_price, gross_pnl, "
    "fees, net_pnl) VALUES (last_insert_rowid(), :symbol, :side, :qty, :entry_time_ms, :exit_time_ms, :entry_price, "
    ":exit_price, :gross_pnl, :fees, :net_pnl)"
)
_EQUITY = (
    "INSERT INTO equity (symbol, open_time_ms, decision_id, close, side, cash, unrealized_pnl, equity, realized_pnl, "
    "fees_paid, drawdown{funding}) VALUES (:symbol, :open_time_ms, :decision_id, :close, :side, :cash, "
    ":unrealized_pnl, :equity, :realized_pnl, :fees_paid, :drawdown{funding_value})"
)
_FUNDING = (  # version 8
    "INSERT INTO funding (decision_id, symbol, time_ms, rate, price, side, qty, amount) "
    "VALUES (:decision_id, :symbol, :time_ms, :rate, :price, :side, :qty, :amount)"
)
FUNDING_FIELDS = ("funding_paid", "position_funding")
"""The portfolio's fields version 8 added (positions), and equity's ``funding_paid``."""


def _with_funding(sql: str, column: str, version: int) -> str:
    """``sql`` with ``column`` where a version-8 Shadow wrote it, without it before."""
    return sql.format(funding=f", {column}" if version >= 8 else "",
                      funding_value=f", :{column}" if version >= 8 else "")
_RISK_EVENT = ("INSERT INTO risk_events (symbol, time_ms, kind, detail, run_id) "
               "VALUES (:symbol, :time_ms, :kind, :detail, :run_id)")


def _position(version: int) -> str:
    state = [f for f in STATE_FIELDS if version >= 8 or f not in FUNDING_FIELDS]
    columns = ["symbol", "interval", "open_time_ms", "decision_id", "initial_balance", *state, "equity",
               "unrealized_pnl", *(RISK_COLUMNS if version >= 3 else ())]
    return f"INSERT OR REPLACE INTO positions ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})"


def write_before_accounts(path: Path, records: list[DecisionRecord], version: int) -> None:
    """A ledger at schema ``version`` (1-8) holding ``records``, each in its own transaction."""
    assert 1 <= version <= 8
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, path, target=version)
    conn.execute("PRAGMA foreign_keys = ON")
    for record in records:
        conn.execute("BEGIN")
        write_decision(conn, record, version)
        conn.execute("COMMIT")
    conn.close()


def write_decision(conn: sqlite3.Connection, record: DecisionRecord, version: int) -> None:
    """One decision as a version-``version`` Shadow wrote it (inside the caller's transaction)."""
    c, state = record.candle, record.state
    conn.execute(INSERT_CANDLE, candle_params(c))
    (decision_id,) = conn.execute(_DECISION, {
        "symbol": c.symbol, "interval": c.interval, "open_time_ms": c.open_time_ms, "action": record.action,
        "obs_hash": record.obs_hash, "strategy": record.strategy, "model_version": record.model_version,
        "latency_ms": record.latency_ms, "decided_ms": record.decided_ms, "run_id": record.run_id}).fetchone()
    if record.funding is not None:
        assert version >= 8, "no funding before version 8"
        conn.execute(_FUNDING, record.funding._asdict() | {"decision_id": decision_id, "symbol": c.symbol})
    for seq, fill in enumerate(record.fills):
        conn.execute(_FILL, fill._asdict() | {"decision_id": decision_id, "seq": seq, "symbol": c.symbol,
                                               "opens": int(fill.opens)})
        if fill.trade is not None:
            conn.execute(_TRADE_V1 if version == 1 else _with_funding(_TRADE, "funding", version),
                         fill.trade._asdict() | {"symbol": c.symbol, "exit_decision_id": decision_id})
    conn.execute(_position(version), asdict(state) | {
        "symbol": c.symbol, "interval": c.interval, "open_time_ms": c.open_time_ms, "decision_id": decision_id,
        "initial_balance": record.initial_balance, "equity": record.equity, "unrealized_pnl": record.unrealized_pnl,
    } | dict(zip(RISK_COLUMNS, astuple(record.risk), strict=True)))
    conn.execute(_with_funding(_EQUITY, "funding_paid", version), {
        "symbol": c.symbol, "open_time_ms": c.open_time_ms, "decision_id": decision_id, "close": c.close,
        "side": state.side, "cash": state.cash, "unrealized_pnl": record.unrealized_pnl, "equity": record.equity,
        "realized_pnl": state.realized_pnl, "fees_paid": state.fees_paid, "drawdown": record.drawdown,
        "funding_paid": state.funding_paid})
    if version >= 2:
        for event in record.risk_events:
            conn.execute(_RISK_EVENT, event._asdict() | {"symbol": c.symbol, "run_id": record.run_id})


def copy_as_version(source: Path, target: Path, version: int) -> Path:
    """``source`` (a current ledger) rewritten as a ledger of schema ``version`` held it: every
    row of every table that version had, with the columns it had (later versions only add
    tables and columns), so a test can turn a daemon's ledger into an older one."""
    conn = sqlite3.connect(target, isolation_level=None)
    migrate(conn, target, target=version)
    conn.execute("ATTACH DATABASE ? AS source", (str(source),))
    conn.execute("BEGIN")
    for (table,) in conn.execute("SELECT name FROM main.sqlite_master WHERE type = 'table'").fetchall():
        columns = ", ".join(row[1] for row in conn.execute(f"PRAGMA main.table_info({table})"))
        conn.execute(f"INSERT INTO main.{table} ({columns}) SELECT {columns} FROM source.{table}")
    conn.execute("COMMIT")
    conn.execute("DETACH DATABASE source")
    conn.close()
    return target
