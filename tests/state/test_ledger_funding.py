"""Funding in the ledger: payments written in the decision's transaction, the account's and
each trade's funding exact to the bit, the views, and the stored rates read back as the
candles' ``funding_rate`` column."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pandas as pd
import pytest

from env.portfolio import PortfolioState
from state.database import connect_reader
from state.ledger import Ledger
from state.readers import read_candles, status_document
from state.records import DecisionRecord
from state.replay import replay_decisions
from tests.conftest import with_funding


@pytest.fixture(scope="module")
def funded(btc_candles: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple[DecisionRecord, PortfolioState]]]:
    frame = with_funding(btc_candles.iloc[:2000])
    records = [(record, portfolio.snapshot()) for record, portfolio in
               replay_decisions(frame, seed=3, trade_probability=0.02)]
    return frame, records


@pytest.fixture(scope="module")
def ledger_path(tmp_path_factory: pytest.TempPathFactory, funded) -> Path:
    import asyncio

    frame, records = funded
    path = tmp_path_factory.mktemp("funding") / "l.sqlite"

    async def fill() -> None:
        async with await Ledger.open(path) as ledger:
            for record, _ in records:
                assert await ledger.record_decision(record)
            times = frame["open_time_ms"][frame["funding_rate"] != 0]
            settlements = list(zip(times.tolist(), frame["funding_rate"][times.index].tolist(), strict=True))
            assert await ledger.store_funding_rates("BTCUSDT", settlements, "history") == len(settlements)
            assert await ledger.store_funding_rates("BTCUSDT", [(settlements[0][0], 0.01)], "ticker") == 0

    asyncio.run(fill())
    return path


def test_payments_trades_and_the_account_are_stored_bit_for_bit(ledger_path: Path, funded) -> None:
    _, records = funded
    payments = [(r.candle.open_time_ms, r.funding) for r, _ in records if r.funding is not None]
    assert len(payments) >= 2 and {p.amount > 0 for _, p in payments} == {True, False}  # paid and received
    trades = [f.trade for r, _ in records for f in r.fills if f.trade is not None]
    with closing(sqlite3.connect(ledger_path)) as conn:
        stored = conn.execute("SELECT d.open_time_ms, f.time_ms, f.rate, f.price, f.side, f.qty, f.amount "
                              "FROM funding f JOIN decisions d USING (decision_id) ORDER BY f.time_ms").fetchall()
        trade_funding = [f for (f,) in conn.execute("SELECT funding FROM trades ORDER BY trade_id")]
        account = conn.execute("SELECT funding_paid, position_funding FROM positions").fetchone()
        equity_funding = [f for (f,) in conn.execute("SELECT funding_paid FROM equity ORDER BY open_time_ms")]
    assert stored == [(t, *p) for t, p in payments]
    assert trade_funding == [t.funding for t in trades] and any(trade_funding)
    last = records[-1][1]
    assert account == (last.funding_paid, last.position_funding)
    assert equity_funding == [state.funding_paid for _, state in records]


async def test_a_restart_restores_the_funding_of_the_account(ledger_path: Path, funded) -> None:
    _, records = funded
    async with await Ledger.open(ledger_path) as ledger:
        point = (await ledger.resume_points())["BTCUSDT"]
    assert point.state == records[-1][1]


def test_the_views_show_funding(ledger_path: Path, funded) -> None:
    _, records = funded
    paid = [r.funding.amount for r, _ in records if r.funding is not None]
    with closing(sqlite3.connect(ledger_path)) as conn:
        by_day = conn.execute("SELECT sum(funding) FROM v_daily_pnl").fetchone()[0]
        directions = dict(conn.execute("SELECT direction, count(*) FROM v_funding GROUP BY direction").fetchall())
        trades = conn.execute("SELECT gross_pnl - fees - funding - net_pnl FROM v_trades").fetchall()
        per_model = conn.execute("SELECT sum(funding) FROM v_model_performance").fetchone()[0]
        in_trades = conn.execute("SELECT sum(funding) FROM trades").fetchone()[0]
    assert by_day == pytest.approx(sum(paid))
    assert directions == {"paid": sum(a >= 0 for a in paid), "received": sum(a < 0 for a in paid)}
    assert max(abs(x) for (x,) in trades) < 1e-9
    assert per_model == pytest.approx(in_trades)


def test_status_shows_the_funding_paid(ledger_path: Path, funded) -> None:
    _, records = funded
    with closing(connect_reader(ledger_path)) as conn:
        (symbol,) = status_document(conn, now_ms=0)["symbols"]
    assert symbol["funding_paid"] == records[-1][1].funding_paid
    assert symbol["total_pnl"] == pytest.approx(symbol["realized_pnl"] + symbol["unrealized_pnl"]
                                                - symbol["fees_paid"] - symbol["funding_paid"])


def test_the_stored_rates_come_back_as_the_funding_column(ledger_path: Path, funded) -> None:
    frame, _ = funded
    with closing(connect_reader(ledger_path)) as conn:
        stored = read_candles(conn, "BTCUSDT", "1m")
    assert stored["funding_rate"].tolist() == frame["funding_rate"].tolist()  # the first stored rate won


def test_a_spot_ledger_has_no_funding_column(btc_ledger: Path) -> None:
    with closing(connect_reader(btc_ledger)) as conn:
        assert "funding_rate" not in read_candles(conn, "BTCUSDT", "1m")
