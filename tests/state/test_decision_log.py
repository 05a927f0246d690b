"""The decision log reads back exactly what each decision wrote: the same fills, trades,
equity and risk events, per account, symbol and range, in one consistent snapshot."""

from __future__ import annotations

from contextlib import closing
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from config.accounts import DEFAULT_ACCOUNT
from env.risk import RiskEvent
from state.database import connect_reader
from state.decision_log import DecidedSymbol, decided_symbols, read_decision_log, run_settings, snapshot
from state.ledger import Ledger
from state.records import DecisionRecord
from state.replay import replay_decisions


@pytest.fixture
async def written(tmp_path: Path, btc_records: list[tuple[DecisionRecord, float]], btc_candles: pd.DataFrame,
                  eth_candles: pd.DataFrame) -> tuple[Path, list[DecisionRecord]]:
    """600 BTCUSDT decisions (two with risk events) and 50 ETHUSDT ones, in one session; and
    another account's 300 BTCUSDT decisions on the same candles, with risk events of its own."""
    btc = [record for record, _ in btc_records[:600]]
    t = btc[100].candle.open_time_ms
    btc[100] = replace(btc[100], risk_events=(RiskEvent(t, "daily_loss", "equity 98 is 2% below"),
                                              RiskEvent(t, "max_drawdown", "drawdown 3%")))
    btc[400] = replace(btc[400], risk_events=(RiskEvent(btc[400].candle.open_time_ms, "daily_reset", "new day"),))
    path = tmp_path / "shadow.sqlite"
    async with await Ledger.open(path) as ledger:
        run_id = await ledger.journal.start_run(started_ms=1, config_hash="abc", code_version="x", symbols=["BTCUSDT"],
                                                settings='{"env": {}}')
        for record in btc:
            await ledger.record_decision(replace(record, run_id=run_id))
        for record, _ in replay_decisions(eth_candles.iloc[:50], symbol="ETHUSDT", seed=2):
            await ledger.record_decision(record)
        other = [r for r, _ in replay_decisions(btc_candles.iloc[:300], seed=8, trade_probability=0.3, account="fast")]
        other[100] = replace(other[100], risk_events=(RiskEvent(t, "max_drawdown", "the other account's stop"),))
        for record in other:
            await ledger.record_decision(record)
    return path, btc


def test_each_logged_decision_holds_what_its_transaction_wrote(written: tuple[Path, list[DecisionRecord]]) -> None:
    path, records = written
    with closing(connect_reader(path)) as conn, snapshot(conn):
        log = read_decision_log(conn, DEFAULT_ACCOUNT, "BTCUSDT")
        other = read_decision_log(conn, "fast", "BTCUSDT")
    assert [(d.open_time_ms, d.interval, d.action, d.obs_hash, d.strategy, d.model_version, d.run_id, d.equity,
             d.fills, d.risk_events) for d in log] == [
        (r.candle.open_time_ms, "1m", r.action, r.obs_hash, r.strategy, r.model_version, 1, r.equity, r.fills,
         r.risk_events) for r in records]
    assert sum(f.trade is not None for d in log for f in d.fills) > 10  # closing fills carry their trade
    assert any(len(d.fills) == 2 for d in log)  # a reversal: the close, then the open
    assert len(other) == 300 and [d.risk_events for d in other if d.risk_events] == [
        (RiskEvent(records[100].candle.open_time_ms, "max_drawdown", "the other account's stop"),)]
    assert [d.fills for d in other] != [d.fills for d in log[:300]]


def test_a_range_a_symbol_and_the_sessions(written: tuple[Path, list[DecisionRecord]]) -> None:
    path, records = written
    times = [r.candle.open_time_ms for r in records]
    with closing(connect_reader(path)) as conn, snapshot(conn):
        window = read_decision_log(conn, DEFAULT_ACCOUNT, "BTCUSDT", start_ms=times[100], end_ms=times[199])
        symbols = decided_symbols(conn)
        eth = read_decision_log(conn, DEFAULT_ACCOUNT, "ETHUSDT")
        sessions = run_settings(conn)
    assert [d.open_time_ms for d in window] == times[100:200]
    assert symbols[0] == DecidedSymbol("fast", "BTCUSDT", "1m", 300, times[0], times[299])
    assert symbols[1] == DecidedSymbol(DEFAULT_ACCOUNT, "BTCUSDT", "1m", 600, times[0], times[-1])
    assert [(s.account, s.symbol) for s in symbols] == [("fast", "BTCUSDT"), (DEFAULT_ACCOUNT, "BTCUSDT"),
                                                        (DEFAULT_ACCOUNT, "ETHUSDT")] and len(eth) == 50
    assert {d.run_id for d in eth} == {None} and sessions == {1: '{"env": {}}'}
