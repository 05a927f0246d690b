"""Read-side queries over a read-only connection (:func:`state.database.connect_reader`).

These back ``shadow trades / status / export / models`` and work while the daemon
writes: WAL gives each query a consistent snapshot of the last commit.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from env.candles import RepairPolicy
from env.portfolio import win_rate
from state.candle_store import SELECT_CANDLES, SELECT_FUNDING_RATES, candles_frame, select_candles_params
from state.errors import LedgerError
from state.model_rows import SELECT_RETRAINS, model_from_row, models_query, retrain_from_row
from state.records import FeedProblem, ModelEntry, RetrainRun

_SIDE_NAMES = {1: "long", -1: "short", 0: "flat"}


class UnknownTableError(LedgerError):
    """A table or view name that the ledger does not have."""


def iso_ms(ms: int | None) -> str | None:
    """Epoch milliseconds as ISO-8601 UTC text (``2024-03-01T12:00:00Z``)."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def age_text(seconds: float) -> str:
    """``42 s``, ``5 min``, ``3 h 12 min``, ``2 d 4 h``: how old something is, at a glance."""
    minutes, hours, days = int(seconds // 60), int(seconds // 3600), int(seconds // 86400)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if hours < 1:
        return f"{minutes} min"
    if days < 1:
        return f"{hours} h {minutes % 60} min"
    return f"{days} d {hours % 24} h"


def relation_names(conn: sqlite3.Connection) -> list[str]:
    """Every table and view a user can export, tables first."""
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' "
        "ORDER BY type, name"
    ).fetchall()
    return [name for (name,) in rows]


def read_relation(conn: sqlite3.Connection, name: str) -> pd.DataFrame:
    """All rows of one table or view (the name is checked against the schema, never
    pasted into SQL unchecked)."""
    names = relation_names(conn)
    if name not in names:
        raise UnknownTableError(f"no table or view {name!r} in the ledger; choose one of: {', '.join(names)}")
    return pd.read_sql_query(f'SELECT * FROM "{name}"', conn)


def trades_frame(
    conn: sqlite3.Connection,
    *,
    symbol: str | None = None,
    since_ms: int | None = None,
    model: str | None = None,
    last: int | None = None,
) -> pd.DataFrame:
    """Closed trades from ``v_trades``, oldest first, filtered by symbol, exit time
    (``>= since_ms``) and opening model version; ``last`` keeps the newest N."""
    where, params = ["1 = 1"], []
    for condition, value in (("symbol = ?", symbol), ("exit_time_ms >= ?", since_ms), ("model_version = ?", model)):
        if value is not None:
            where.append(condition)
            params.append(value)
    sql = f"SELECT * FROM v_trades WHERE {' AND '.join(where)} ORDER BY exit_time_ms DESC, trade_id DESC"
    if last is not None:
        sql += " LIMIT ?"
        params.append(last)
    return pd.read_sql_query(sql, conn, params=params).iloc[::-1].reset_index(drop=True)


@dataclass(frozen=True, slots=True)
class SymbolStatus:
    """One symbol's account as of its last decision (``shadow status``; JSON for HTTP)."""

    symbol: str
    interval: str
    position: str
    qty: float
    entry_price: float | None
    entry_time: str | None
    last_price: float
    unrealized_pnl: float
    equity: float
    total_pnl: float
    realized_pnl: float
    fees_paid: float
    funding_paid: float
    """Perpetual funding paid, net of funding received (0 on spot)."""
    trades: int
    win_rate: float
    max_drawdown: float
    last_candle: str | None
    strategy: str | None
    model_version: str | None
    last_decision_at: str | None
    seconds_since_decision: float


_STATUS_SQL = """
SELECT p.symbol, p.interval, p.side, p.qty, p.entry_price, p.entry_time_ms, p.last_price, p.unrealized_pnl,
       p.equity, p.initial_balance, p.realized_pnl, p.fees_paid, p.funding_paid, p.n_trades, p.n_wins,
       p.max_drawdown, p.open_time_ms, d.strategy, d.model_version, d.decided_ms
FROM positions p JOIN decisions d ON d.decision_id = p.decision_id
ORDER BY p.symbol
"""


def symbol_status(conn: sqlite3.Connection, now_ms: int) -> list[SymbolStatus]:
    """Per symbol: position, entry, unrealised PnL, equity, last candle, model and the
    time since the last decision (relative to ``now_ms``)."""
    statuses = []
    for row in conn.execute(_STATUS_SQL):
        (symbol, interval, side, qty, entry_price, entry_ms, last_price, unrealized, equity, initial, realized,
         fees, funding, n_trades, n_wins, max_dd, open_ms, strategy, model_version, decided_ms) = row
        is_open = side != 0
        statuses.append(SymbolStatus(
            symbol=symbol, interval=interval, position=_SIDE_NAMES[side], qty=qty,
            entry_price=entry_price if is_open else None, entry_time=iso_ms(entry_ms) if is_open else None,
            last_price=last_price, unrealized_pnl=unrealized, equity=equity, total_pnl=equity - initial,
            realized_pnl=realized, fees_paid=fees, funding_paid=funding, trades=n_trades,
            win_rate=win_rate(n_wins, n_trades),
            max_drawdown=max_dd, last_candle=iso_ms(open_ms), strategy=strategy, model_version=model_version,
            last_decision_at=iso_ms(decided_ms), seconds_since_decision=max(0.0, (now_ms - decided_ms) / 1000),
        ))
    return statuses


def latest_run(conn: sqlite3.Connection) -> dict[str, Any] | None:
    """The newest daemon session (``stopped_at`` is ``None`` while it runs, or if it crashed)."""
    row = conn.execute(
        "SELECT run_id, started_ms, stopped_ms, stop_reason, code_version, symbols FROM runs "
        "ORDER BY run_id DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    run_id, started, stopped, reason, version, symbols = row
    return {"run_id": run_id, "started_at": iso_ms(started), "stopped_at": iso_ms(stopped), "stop_reason": reason,
            "code_version": version, "symbols": json.loads(symbols)}


def feed_problems(conn: sqlite3.Connection, run_id: int) -> list[dict[str, Any]]:
    """The symbols session ``run_id`` could not stream (Bybit refused them), by symbol."""
    rows = conn.execute(
        "SELECT symbol, state, reason, refusals, attempts, since_ms, retry_at_ms FROM feed_problems "
        "WHERE run_id = ? ORDER BY symbol", (run_id,)).fetchall()
    return [{"symbol": symbol, "state": state, "reason": reason, "refusals": refusals, "attempts": attempts,
             "since": iso_ms(since_ms), "retry_at": iso_ms(retry_at_ms),
             "detail": FeedProblem(state, reason, refusals, attempts, since_ms, retry_at_ms).describe()}
            for symbol, state, reason, refusals, attempts, since_ms, retry_at_ms in rows]


def status_document(conn: sqlite3.Connection, now_ms: int) -> dict[str, Any]:
    """What ``shadow status --json`` prints and the HTTP status endpoint serves:
    ``generated_at``, the latest ``run``, the symbols its feed could not stream
    (``feed_problems``) and one entry per symbol (:class:`SymbolStatus`)."""
    run = latest_run(conn)
    return {"generated_at": iso_ms(now_ms), "run": run,
            "feed_problems": feed_problems(conn, run["run_id"]) if run else [],
            "symbols": [asdict(s) for s in symbol_status(conn, now_ms)]}


def list_models(conn: sqlite3.Connection, status: str | None = None) -> list[ModelEntry]:
    """The ``models`` registry, newest first."""
    sql, params = models_query(status)
    return [model_from_row(row) for row in conn.execute(sql, params)]


def list_retrains(conn: sqlite3.Connection, limit: int = 20) -> list[RetrainRun]:
    """The latest retraining runs, newest first."""
    return [retrain_from_row(row) for row in conn.execute(f"{SELECT_RETRAINS} ORDER BY retrain_id DESC LIMIT ?",
                                                          (limit,))]


def read_candles(
    conn: sqlite3.Connection,
    symbol: str,
    interval: str,
    *,
    start_ms: int | None = None,
    end_ms: int | None = None,
    repair: RepairPolicy = RepairPolicy.STRICT,
) -> pd.DataFrame:
    """Stored candles in :mod:`env.candles` layout (for a trainer in another process), with
    the ``funding_rate`` column when the ledger holds funding rates of the symbol (a perpetual)."""
    rows = conn.execute(SELECT_CANDLES, select_candles_params(symbol, interval, start_ms, end_ms)).fetchall()
    return candles_frame(rows, f"ledger {symbol} {interval}", repair, interval,
                         funding_settlements(conn, symbol) or None)


def funding_settlements(conn: sqlite3.Connection, symbol: str) -> list[tuple[int, float]]:
    """The funding settlements ``(time_ms, rate)`` stored for ``symbol``, oldest first (none on spot)."""
    return [(int(t), float(r)) for t, r in conn.execute(SELECT_FUNDING_RATES, (symbol,))]


@dataclass(frozen=True, slots=True)
class CandleSeries:
    """One market's stored candles: what ``read_candles`` can return for it."""

    symbol: str
    interval: str
    count: int
    first_ms: int
    last_ms: int


def candle_series(conn: sqlite3.Connection) -> list[CandleSeries]:
    """Every ``(symbol, interval)`` the ledger holds candles of, with their count and span
    (so a caller can offer a choice, or say what there is when a request finds nothing)."""
    rows = conn.execute(
        "SELECT symbol, interval, count(*), min(open_time_ms), max(open_time_ms) FROM candles "
        "GROUP BY symbol, interval ORDER BY symbol, interval"
    ).fetchall()
    return [CandleSeries(*row) for row in rows]


@dataclass(frozen=True, slots=True)
class RetrainSummary:
    """The retraining log in numbers (for metrics): runs per status, and the last finished one."""

    runs_by_status: dict[str, int]
    last_duration_s: float | None
    last_finished_ms: int | None


def retrain_summary(conn: sqlite3.Connection) -> RetrainSummary:
    """Count ``retrain_runs`` per status (``running``, ``ok``, ``failed``, ``rejected``,
    ``promoted``) and time the most recently finished run."""
    counts = {status: n for status, n in conn.execute("SELECT status, count(*) FROM retrain_runs GROUP BY status")}
    last = conn.execute(
        "SELECT finished_ms - started_ms, finished_ms FROM retrain_runs WHERE finished_ms IS NOT NULL "
        "ORDER BY finished_ms DESC, retrain_id DESC LIMIT 1"
    ).fetchone()
    return RetrainSummary(counts, last[0] / 1000 if last else None, last[1] if last else None)
