"""The writer: exact money, idempotent replays, restart, and the clear errors."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from env.candles import CandleDataError, RepairPolicy
from env.portfolio import Portfolio, PortfolioConfig
from env.types import Action, Candle
from state.database import connect_reader
from state.errors import (
    LedgerConsistencyError,
    LedgerFullError,
    LedgerLockedError,
    NotALedgerError,
    SchemaVersionError,
)
from state.ledger import Ledger
from state.migrations import LATEST_VERSION
from state.records import DecisionRecord, ModelEntry
from state.replay import replay_decisions


async def _record_all(ledger: Ledger, records: list[tuple[DecisionRecord, float]]) -> None:
    for record, _ in records:
        assert await ledger.record_decision(record)


def _dump(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return list(conn.iterdump())


async def test_ledger_equity_and_trades_equal_the_portfolio_bit_for_bit(tmp_path, btc_records):
    path = tmp_path / "l.sqlite"
    async with await Ledger.open(path) as ledger:
        await _record_all(ledger, btc_records)
    trades = [f.trade for record, _ in btc_records for f in record.fills if f.trade is not None]
    assert len(trades) > 20, "the replay should close plenty of trades"
    with sqlite3.connect(path) as conn:
        stored_equity = [e for (e,) in conn.execute("SELECT equity FROM equity ORDER BY open_time_ms")]
        stored_trades = conn.execute(
            "SELECT side, qty, entry_time_ms, exit_time_ms, entry_price, exit_price, gross_pnl, fees, net_pnl, funding "
            "FROM trades ORDER BY trade_id").fetchall()
        n_fills = conn.execute("SELECT count(*) FROM fills").fetchone()[0]
    assert stored_equity == [equity for _, equity in btc_records]  # ==, not approx: REAL is the same double
    assert stored_trades == [tuple(t) for t in trades]
    assert n_fills == sum(len(record.fills) for record, _ in btc_records)


async def test_replaying_decided_candles_changes_nothing(tmp_path, btc_records, caplog):
    path = tmp_path / "l.sqlite"
    async with await Ledger.open(path) as ledger:
        await _record_all(ledger, btc_records)
        before = _dump(path)
        for record, _ in btc_records[-200:]:  # a restart that re-processes the last 200 candles
            assert await ledger.record_decision(record) is False
        # A replay that decided differently is ignored too, but said out loud.
        changed = replace(btc_records[-1][0], action=int(Action.CLOSE), obs_hash="0" * 64)
        with caplog.at_level(logging.WARNING, logger="state.ledger"):
            assert await ledger.record_decision(changed) is False
        assert "already decided" in caplog.text
    assert _dump(path) == before


async def test_restart_restores_every_portfolio_exactly(tmp_path, btc_candles):
    first, second = btc_candles.iloc[:700], btc_candles.iloc[700:1400]
    reference = Portfolio(PortfolioConfig(initial_balance=500.0, commission=0.0004, slippage_bps=1.0))
    expected = [p.equity for _, p in replay_decisions(first, seed=3, portfolio=reference)]
    state_at_restart = reference.snapshot()
    expected += [p.equity for _, p in replay_decisions(second, seed=4, portfolio=reference)]

    path = tmp_path / "l.sqlite"
    live = Portfolio(reference.config)
    async with await Ledger.open(path) as ledger:
        for record, _ in replay_decisions(first, seed=3, portfolio=live):
            await ledger.record_decision(record)
    # The process is gone; a new one restores the account from the ledger alone.
    async with await Ledger.open(path) as ledger:
        point = (await ledger.resume_points())["BTCUSDT"]
        assert point.open_time_ms == int(first["open_time_ms"].iloc[-1])
        assert point.state == state_at_restart
        restored = Portfolio(reference.config)
        restored.restore(point.state)
        for record, _ in replay_decisions(second, seed=4, portfolio=restored):
            assert await ledger.record_decision(record)
    with sqlite3.connect(path) as conn:
        assert [e for (e,) in conn.execute("SELECT equity FROM equity ORDER BY open_time_ms")] == expected
    assert restored.snapshot() == reference.snapshot()


async def test_a_decision_older_than_the_last_one_is_refused(tmp_path, btc_records):
    path = tmp_path / "l.sqlite"
    async with await Ledger.open(path) as ledger:
        await _record_all(ledger, btc_records[:10])
        skipped = btc_records[10][0]
        await ledger.record_decision(btc_records[11][0])
        before = _dump(path)
        with pytest.raises(LedgerConsistencyError, match="last BTCUSDT decision is at"):
            await ledger.record_decision(skipped)
        other_interval = replace(btc_records[12][0], candle=replace(btc_records[12][0].candle, interval="5"))
        with pytest.raises(LedgerConsistencyError, match="interval 1"):
            await ledger.record_decision(other_interval)
        assert _dump(path) == before


async def test_a_locked_ledger_fails_after_the_timeout_with_a_clear_error(tmp_path, btc_records):
    path = tmp_path / "l.sqlite"
    async with await Ledger.open(path, lock_timeout_s=0.2) as ledger:
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        with pytest.raises(LedgerLockedError, match=rf"ledger {path}: still locked by another writer after 0.2 s"):
            await ledger.record_decision(btc_records[0][0])
        blocker.execute("ROLLBACK")
        blocker.close()
        assert await ledger.record_decision(btc_records[0][0])


async def test_a_full_disk_rolls_the_whole_decision_back(tmp_path, btc_records):
    path = tmp_path / "l.sqlite"
    async with await Ledger.open(path) as ledger:
        await _record_all(ledger, btc_records[:50])
        # Simulate the disk filling up: the file may not grow beyond its current pages.
        pages = (await ledger._writer._db.execute_fetchall("PRAGMA page_count"))[0][0]
        await ledger._writer._db.execute(f"PRAGMA max_page_count = {pages}")
        written = 50
        with pytest.raises(LedgerFullError, match=rf"ledger {path}: disk full .* nothing was half-written"):
            for record, _ in btc_records[50:]:
                await ledger.record_decision(record)
                written += 1
        failed = btc_records[written][0]
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            counts = conn.execute("SELECT (SELECT count(*) FROM decisions), (SELECT count(*) FROM equity), "
                                  "(SELECT max(decision_id) = (SELECT decision_id FROM positions) FROM decisions)"
                                  ).fetchone()
            assert counts == (written, written, 1)
            assert conn.execute("SELECT count(*) FROM fills WHERE time_ms = ?",
                                (failed.candle.open_time_ms,)).fetchone()[0] == 0
        await ledger._writer._db.execute("PRAGMA max_page_count = 1073741823")
        assert await ledger.record_decision(failed)  # space again: the same decision goes in whole


@pytest.mark.parametrize("content", [b"this is a CSV, not a database\n" * 100, b"\x00\xff" * 4096])
async def test_a_file_that_is_not_sqlite_is_refused_and_left_alone(tmp_path, content):
    path = tmp_path / "notes.sqlite"
    path.write_bytes(content)
    with pytest.raises(NotALedgerError, match=rf"ledger {path}: not a usable SQLite database"):
        await Ledger.open(path)
    with pytest.raises(NotALedgerError, match=str(path)):
        connect_reader(path)
    assert path.read_bytes() == content


async def test_someone_elses_sqlite_file_is_refused(tmp_path):
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER)")
    with pytest.raises(NotALedgerError, match="not a Shadow ledger"):
        await Ledger.open(path)


async def test_a_schema_newer_than_the_code_is_refused(tmp_path):
    path = tmp_path / "future.sqlite"
    async with await Ledger.open(path):  # created at the current version
        pass
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {LATEST_VERSION + 1}")
    with pytest.raises(SchemaVersionError, match=f"schema version {LATEST_VERSION + 1} is newer"):
        await Ledger.open(path)
    with pytest.raises(SchemaVersionError, match="upgrade Shadow"):
        connect_reader(path)


async def test_readers_see_only_whole_decisions_while_the_writer_commits(tmp_path, btc_records):
    path = tmp_path / "l.sqlite"
    snapshots: list[tuple[int, int, int, int]] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def read_until_done() -> None:
        try:
            conn = connect_reader(path)
            while not done.is_set():
                with conn:  # one read transaction = one snapshot
                    conn.execute("BEGIN")
                    snapshots.append(conn.execute(
                        "SELECT (SELECT count(*) FROM decisions), (SELECT count(*) FROM equity), "
                        "(SELECT count(*) FROM fills), (SELECT coalesce(sum(n_trades), 0) FROM positions)"
                    ).fetchone())
            conn.close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    async with await Ledger.open(path) as ledger:
        await ledger.record_decision(btc_records[0][0])
        reader = threading.Thread(target=read_until_done)
        reader.start()
        for record, _ in btc_records[1:]:
            await ledger.record_decision(record)
            await asyncio.sleep(0)
        done.set()
        await asyncio.to_thread(reader.join)
    assert not errors
    fills_after = [0]
    for record, _ in btc_records:
        fills_after.append(fills_after[-1] + len(record.fills))
    trades_after = [0]
    for record, _ in btc_records:
        trades_after.append(trades_after[-1] + sum(f.trade is not None for f in record.fills))
    assert len(snapshots) > 20
    for decisions, equity_rows, fills, n_trades in snapshots:
        assert equity_rows == decisions
        assert fills == fills_after[decisions]
        assert n_trades == trades_after[decisions]
    assert [s[0] for s in snapshots] == sorted(s[0] for s in snapshots)


async def test_stored_candles_load_in_the_env_layout(tmp_path, btc_candles):
    from env.candles import normalize_candles

    frame = btc_candles.iloc[:400]
    candles = [Candle("BTCUSDT", "1", int(r.open_time_ms), r.open, r.high, r.low, r.close, r.volume)
               for r in frame.itertuples()]
    async with await Ledger.open(tmp_path / "l.sqlite") as ledger:
        assert await ledger.store_candles(candles) == 400
        assert await ledger.store_candles(candles[100:]) == 0  # a backfill overlap stores nothing twice
        loaded = await ledger.load_candles("BTCUSDT", "1")
        pd.testing.assert_frame_equal(loaded, frame.reset_index(drop=True))
        window = await ledger.load_candles("BTCUSDT", "1", start_ms=candles[10].open_time_ms,
                                           end_ms=candles[19].open_time_ms)
        assert window["open_time_ms"].tolist() == [c.open_time_ms for c in candles[10:20]]
        empty = await ledger.load_candles("ETHUSDT", "1")
        assert empty.empty and list(empty.columns) == list(frame.columns)
        assert dict(empty.dtypes) == dict(frame.dtypes)

        gappy = [c for i, c in enumerate(candles) if i != 50]
        async with await Ledger.open(tmp_path / "gap.sqlite") as gap_ledger:
            await gap_ledger.store_candles(gappy)
            with pytest.raises(CandleDataError, match="gap: 1 candle"):
                await gap_ledger.load_candles("BTCUSDT", "1")
            repaired = await gap_ledger.load_candles("BTCUSDT", "1", repair=RepairPolicy.REPAIR)
        assert len(repaired) == 400 and repaired.loc[50, "volume"] == 0.0
        assert normalize_candles(loaded, source="x").equals(loaded)


async def test_view_action_names_match_the_action_enum(tmp_path, btc_records):
    path = tmp_path / "l.sqlite"
    async with await Ledger.open(path) as ledger:
        await _record_all(ledger, btc_records[:400])
    with sqlite3.connect(path) as conn:
        pairs = set(conn.execute("SELECT d.action, v.action FROM decisions d JOIN v_decisions v USING (decision_id)"))
    assert {code for code, _ in pairs} == {int(a) for a in Action}
    assert all(Action(code).name == name for code, name in pairs)


async def test_registry_and_journal_rows(tmp_path):
    async with await Ledger.open(tmp_path / "l.sqlite") as ledger:
        run_id = await ledger.journal.start_run(started_ms=1, config_hash="abc", code_version="0.1.0",
                                                symbols=["BTCUSDT"])
        await ledger.journal.stop_run(run_id, stopped_ms=9, reason="SIGTERM")
        with pytest.raises(LookupError):
            await ledger.journal.stop_run(run_id + 1, stopped_ms=9, reason="x")

        first = ModelEntry(version="v1", path="models/v1.zip", sha256="a" * 64, created_ms=10, symbol="BTCUSDT",
                           interval="1", hyperparameters={"learning_rate": 3e-4}, metrics={"sharpe": 1.25})
        await ledger.registry.add_model(first)
        await ledger.registry.add_model(replace(first, version="v2", parent_version="v1", created_ms=20))
        with pytest.raises(ValueError, match="'v1' cannot be registered"):
            await ledger.registry.add_model(first)
        with pytest.raises(ValueError, match="not one of"):
            await ledger.registry.add_model(replace(first, version="v3", status="live"))
        await ledger.registry.set_model_status("v1", "promoted", at_ms=11)
        await ledger.registry.set_model_status("v2", "promoted", at_ms=21)  # retires v1 in the same transaction
        with pytest.raises(LookupError):
            await ledger.registry.set_model_status("v9", "rejected", at_ms=1)
        models = {m.version: m for m in await ledger.registry.list_models()}
        assert (models["v1"].status, models["v2"].status, models["v2"].promoted_ms) == ("retired", "promoted", 21)
        assert models["v1"].hyperparameters == {"learning_rate": 3e-4} and models["v1"].metrics == {"sharpe": 1.25}
        assert [m.version for m in await ledger.registry.list_models("promoted")] == ["v2"]

        retrain = await ledger.registry.start_retrain(started_ms=30)
        await ledger.registry.finish_retrain(retrain, status="rejected", finished_ms=40, reason="lost to incumbent",
                                             candidate_version="v2", metrics={"holdout_sharpe": -0.5})
        (run,) = await ledger.registry.list_retrains()
        assert (run.status, run.reason, run.metrics) == ("rejected", "lost to incumbent", {"holdout_sharpe": -0.5})
        with pytest.raises(ValueError, match="retrain status 'running'"):
            await ledger.registry.finish_retrain(retrain, status="running", finished_ms=41)


async def test_risk_events_are_written_with_their_decision(tmp_path, btc_records):
    from env.risk import RiskEvent, RiskState

    path = tmp_path / "l.sqlite"
    record, _ = btc_records[0]
    event = RiskEvent(record.candle.open_time_ms, "max_drawdown", "drawdown 26% >= limit 25%")
    guarded = replace(record, risk=RiskState(19_500, 100.0, True, False), risk_events=(event,))
    async with await Ledger.open(path) as ledger:
        assert await ledger.record_decision(guarded)
        assert not await ledger.record_decision(guarded)  # a replay writes the event once
        (point,) = (await ledger.resume_points()).values()
    assert point.risk == RiskState(19_500, 100.0, True, False)
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT symbol, time_ms, kind, detail FROM risk_events").fetchall()
    assert rows == [(record.candle.symbol, event.time_ms, "max_drawdown", event.detail)]


@pytest.mark.parametrize("trade_probability", [0.0, 0.2])
async def test_status_reads_win_rate_and_pnl_as_the_portfolio_has_them(tmp_path: Path, btc_candles: pd.DataFrame,
                                                                      trade_probability: float) -> None:
    """``shadow status`` shows the account's own read-outs: 0.0 win rate before any trade."""
    from state.readers import symbol_status

    decided = list(replay_decisions(btc_candles.iloc[:400], trade_probability=trade_probability))
    portfolio = decided[-1][1]
    async with await Ledger.open(tmp_path / "l.sqlite") as ledger:
        await _record_all(ledger, [(record, p.equity) for record, p in decided])
    with connect_reader(tmp_path / "l.sqlite") as conn:
        (status,) = symbol_status(conn, now_ms=0)
    assert (status.trades, status.win_rate) == (portfolio.n_trades, portfolio.win_rate)
    assert (status.equity, status.total_pnl) == (portfolio.equity, portfolio.total_pnl)
    assert (portfolio.n_trades > 0) == (trade_probability > 0)
    if not portfolio.n_trades:
        assert status.win_rate == 0.0
