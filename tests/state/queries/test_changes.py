"""What was committed since a cursor: decisions per symbol, promotions and rollbacks,
retrain verdicts (also of runs that were running at the cursor), risk events, sessions."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import pandas as pd

from env.risk import RiskEvent
from state.database import connect_reader
from state.ledger import Ledger
from state.queries.changes import changes_since, cursor_now
from state.records import ModelEntry
from state.replay import replay_decisions


async def test_changes_since_a_cursor_are_exactly_the_new_commits(tmp_path: Path, btc_candles: pd.DataFrame) -> None:
    path = tmp_path / "l.sqlite"
    records = [r for r, _ in replay_decisions(btc_candles.iloc[:400], seed=3)]
    async with await Ledger.open(path) as ledger:
        registry = ledger.registry
        run_id = await ledger.journal.start_run(started_ms=1, config_hash="x", code_version="t", symbols=["BTCUSDT"])
        for record in records[:300]:
            await ledger.record_decision(record)
        for version, created in (("v1", 10), ("v2", 20)):
            await registry.add_model(ModelEntry(version, f"{version}.zip", "a" * 64, created, symbol="BTCUSDT",
                                                interval="1m"))
        await registry.set_model_status("v1", "promoted", at_ms=30)
        running = await registry.start_retrain(started_ms=40)
        with closing(connect_reader(path)) as conn:
            cursor = cursor_now(conn)
            assert cursor.running_retrains == (running,) and cursor.open_run_ids == (run_id,)
            assert not changes_since(conn, cursor).any  # nothing new yet

            await registry.set_model_status("v2", "promoted", at_ms=50)
            await registry.set_model_status("v1", "promoted", at_ms=60)  # back to the older one: a rollback
            await registry.finish_retrain(running, status="rejected", finished_ms=70, reason="worse than v1")
            failed = await registry.start_retrain(started_ms=80)
            await registry.finish_retrain(failed, status="failed", finished_ms=90, reason="killed")
            last = records[300]
            risky = replace(last, risk_events=(RiskEvent(last.candle.open_time_ms, "max_drawdown", "down 26%"),))
            await ledger.record_decision(risky)
            for record in records[301:]:
                await ledger.record_decision(record)
            await ledger.journal.stop_run(run_id, stopped_ms=100, reason="stop requested")

            changes = changes_since(conn, cursor)
            assert changes.decided == {"BTCUSDT": records[-1].candle.open_time_ms}
            assert [(e.kind, e.subject, e.symbol) for e in changes.events] == [
                ("promotion", "v2", "BTCUSDT"), ("rollback", "v1", "BTCUSDT"),
                ("retrain_rejected", f"retrain {running}", None), ("retrain_failed", f"retrain {failed}", None),
                ("run_stopped", f"session {run_id}", None),
                ("risk", "max_drawdown", "BTCUSDT"),
            ]
            assert changes.events[1].detail == "v1 now serves BTCUSDT (replacing v2)"
            assert changes.cursor.running_retrains == () and changes.cursor.open_run_ids == ()
            assert not changes_since(conn, changes.cursor).any  # each change is told once


def test_a_new_session_is_told_once(tmp_path: Path) -> None:
    from state.database import prepare_for_writing

    path = tmp_path / "l.sqlite"
    prepare_for_writing(path, 1.0)
    with closing(connect_reader(path)) as reader, closing(sqlite3.connect(path)) as writer:
        cursor = cursor_now(reader)
        with writer:
            writer.execute("INSERT INTO runs (started_ms, config_hash, code_version, symbols) "
                           "VALUES (5, 'x', 't', '[]')")
        changes = changes_since(reader, cursor)
        assert [(e.kind, e.time_ms) for e in changes.events] == [("run_started", 5)]
        assert changes_since(reader, changes.cursor).events == []


async def test_a_live_trial_is_told_when_it_begins_and_its_verdict_when_it_ends(tmp_path: Path) -> None:
    """A run whose candidate goes on a live trial is not finished: the rejection (or
    promotion) the trial ends in is told too, once, however many looks fall in between."""
    path = tmp_path / "l.sqlite"
    async with await Ledger.open(path) as ledger:
        await ledger.registry.add_model(ModelEntry("v2", "v2.zip", "b" * 64, 10, symbol="BTCUSDT", interval="1m"))
        retrain_id = await ledger.registry.start_retrain(started_ms=20)
        with closing(connect_reader(path)) as conn:
            cursor = cursor_now(conn)
            trial = await ledger.trials.open_trial(
                retrain_id=retrain_id, at_ms=30, reason="candidate v2 passed the holdout", metrics={},
                candidate_version="v2", challenger_account="trial:v2", incumbent_account="main",
                symbols=["BTCUSDT"], candles=60, metric="sharpe", margin=0.0)
            began = changes_since(conn, cursor)
            assert [(e.kind, e.subject) for e in began.events] == [("retrain_trial", f"retrain {retrain_id}")]
            assert began.cursor.trial_retrains == (retrain_id,) and began.cursor.running_retrains == ()
            await ledger.trials.start(trial.trial_id, at_ms=40)
            trading = changes_since(conn, began.cursor)
            assert trading.events == [] and trading.cursor.trial_retrains == (retrain_id,)
            assert cursor_now(conn).trial_retrains == (retrain_id,)  # a watch started now waits for it too

            await ledger.trials.finish(trial, promote=False, reason="did not beat account main live", metrics={},
                                       at_ms=100)
            ended = changes_since(conn, trading.cursor)
            assert [(e.kind, e.detail) for e in ended.events] == [
                ("retrain_rejected", "candidate v2 passed the holdout; live: did not beat account main live")]
            assert ended.cursor.trial_retrains == ()
            assert changes_since(conn, ended.cursor).events == []
