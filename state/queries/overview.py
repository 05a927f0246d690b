"""The overview page's data: per account and symbol, the account after its last decision.

Built on :func:`state.readers.symbol_status` (what ``shadow status`` shows), grouped by
account, with each last candle's age and a ledger-only health verdict for a ledger read
without its daemon (a running daemon's own verdict, from ``/health``, replaces it).
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict
from typing import Any

from state.queries.market import INTERVAL_MS
from state.queries.scope import EVERYTHING, Scope
from state.readers import age_text, latest_run, symbol_status


def overview(conn: sqlite3.Connection, now_ms: int, scope: Scope = EVERYTHING) -> dict[str, Any]:
    """Accounts with their totals and symbols (``shadow status`` fields plus
    ``last_candle_age_s``, seconds since the last decided candle closed), and the latest
    daemon session."""
    by_account: dict[str, list[dict[str, Any]]] = {}
    for status in symbol_status(conn, now_ms, scope.account):
        if scope.symbol not in (None, status.symbol):
            continue
        age = _age_s(conn, status.account, status.symbol, now_ms)
        by_account.setdefault(status.account, []).append(asdict(status) | {"last_candle_age_s": age})
    accounts = [{
        "account": account,
        "equity": sum(r["equity"] for r in rows),
        "total_pnl": sum(r["total_pnl"] for r in rows),
        "unrealized_pnl": sum(r["unrealized_pnl"] for r in rows),
        "funding_paid": sum(r["funding_paid"] for r in rows),
        "trades": sum(r["trades"] for r in rows),
        "symbols": rows,
    } for account, rows in by_account.items()]
    return {"run": latest_run(conn), "accounts": accounts}


def _age_s(conn: sqlite3.Connection, account: str, symbol: str, now_ms: int) -> float | None:
    """Seconds since the account's last decided candle on the symbol closed."""
    row = conn.execute("SELECT interval, open_time_ms FROM positions WHERE account = ? AND symbol = ?",
                       (account, symbol)).fetchone()
    if row is None or row[0] not in INTERVAL_MS:
        return None
    return float(now_ms - row[1] - INTERVAL_MS[row[0]]) / 1000


def ledger_health(document: dict[str, Any], *, max_age_intervals: float, margin_s: float) -> dict[str, Any]:
    """A verdict from the ledger alone (no daemon attached), by the ``/health`` rule for
    candles: is a session running, and did each symbol's newest candle close recently?"""
    problems = []
    run = document["run"]
    if run is None:
        problems.append("no daemon session recorded in this ledger")
    elif run["stopped_at"] is not None:
        problems.append(f"the last session stopped at {run['stopped_at']}: {run['stop_reason']}")
    newest: dict[str, tuple[float, int]] = {}  # symbol -> (age, interval) of the newest candle any account decided
    for account in document["accounts"]:
        for row in account["symbols"]:
            age, interval_ms = row["last_candle_age_s"], INTERVAL_MS.get(row["interval"])
            if age is None or interval_ms is None:
                continue
            if row["symbol"] not in newest or age < newest[row["symbol"]][0]:
                newest[row["symbol"]] = (age, interval_ms)
    for symbol, (age, interval_ms) in newest.items():
        limit_s = max_age_intervals * interval_ms / 1000 + margin_s
        if age > limit_s:
            problems.append(f"{symbol}: newest candle closed {age_text(age)} ago (limit {limit_s:g} s)")
    return {"status": "failing" if problems else "ok", "problems": problems, "source": "ledger"}

