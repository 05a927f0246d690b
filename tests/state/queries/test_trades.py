"""The trade table: filters select what the same SQL selects, pages cover every row once,
sorting only by known columns."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from state.database import connect_reader
from state.queries.scope import Scope
from state.queries.trades import COLUMNS, Sort, TradeFilter, iter_trades, trade_models, trades_page
from state.replay import replay_decisions, write_records


def _ids(rows: list[tuple]) -> list[int]:
    return [row[COLUMNS.index("trade_id")] for row in rows]


def test_filters_select_what_the_same_sql_selects(conn: sqlite3.Connection) -> None:
    (start, end) = conn.execute("SELECT min(exit_time_ms), max(exit_time_ms) FROM trades WHERE symbol = 'BTCUSDT'"
                                ).fetchone()
    lo, hi = start + (end - start) // 4, end - (end - start) // 4
    trade_filter = TradeFilter(Scope("default", "BTCUSDT"), model="ppo-0003", side="long", from_ms=lo, to_ms=hi)
    page = trades_page(conn, trade_filter, limit=500)
    expected = conn.execute(
        "SELECT trade_id FROM v_trades WHERE symbol = 'BTCUSDT' AND side = 'long' AND model_version = 'ppo-0003' "
        "AND exit_time_ms >= ? AND exit_time_ms < ? ORDER BY exit_time_ms DESC, trade_id DESC", (lo, hi)).fetchall()
    assert len(expected) >= 3
    assert _ids(page.rows) == [t for (t,) in expected] and page.total == len(expected)
    net = conn.execute(f"SELECT sum(net_pnl) FROM v_trades WHERE trade_id IN ({','.join('?' * len(expected))})",
                       [t for (t,) in expected]).fetchone()[0]
    assert page.net_pnl == pytest.approx(net)
    assert trades_page(conn, TradeFilter(Scope(account="nobody"))).total == 0


def test_pages_cover_every_trade_once_in_the_chosen_order(conn: sqlite3.Connection) -> None:
    sort = Sort("net_pnl", descending=False)
    expected = [t for (t,) in conn.execute("SELECT trade_id FROM trades ORDER BY net_pnl, trade_id")]
    seen: list[int] = []
    offset = 0
    while True:
        page = trades_page(conn, TradeFilter(), sort, offset=offset, limit=7)
        seen += _ids(page.rows)
        offset += 7
        if offset >= page.total:
            break
    assert seen == expected
    assert _ids(next(iter_trades(conn, TradeFilter(), sort, chunk=50))) == expected[:50]
    assert sum(len(c) for c in iter_trades(conn, TradeFilter(), sort, chunk=50)) == len(expected)


def test_a_baseline_is_filtered_by_its_strategy_name(tmp_path: Path, btc_candles: pd.DataFrame,
                                                     conn: sqlite3.Connection) -> None:
    assert trade_models(conn) == ["ppo-0001", "ppo-0003"]
    path = tmp_path / "baseline.sqlite"
    write_records(path, (replace(r, strategy="sma:fast=10,slow=50", model_version=None)
                         for r, _ in replay_decisions(btc_candles.iloc[:800], seed=5)))
    with closing(connect_reader(path)) as baseline:
        assert trade_models(baseline) == ["sma:fast=10,slow=50"]
        page = trades_page(baseline, TradeFilter(model="sma:fast=10,slow=50"), limit=500)
        assert page.total == baseline.execute("SELECT count(*) FROM trades").fetchone()[0] > 5


def test_only_known_columns_sort_and_pages_are_bounded(conn: sqlite3.Connection) -> None:
    with pytest.raises(ValueError, match="cannot sort trades by 'symbol; DROP TABLE trades'"):
        Sort("symbol; DROP TABLE trades")
    with pytest.raises(ValueError, match="page size"):
        trades_page(conn, TradeFilter(), limit=10_000)
    row = trades_page(conn, TradeFilter(), limit=1).rows[0]
    assert row[COLUMNS.index("account")] == "default" and len(row) == len(COLUMNS)
