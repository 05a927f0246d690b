"""The models and retraining time line of the sample ledger: every event once, newest first,
rollbacks told from promotions, pages cut by a cursor."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from state.queries.scope import Scope
from state.queries.timeline import parse_cursor, timeline
from state.sample_ledger import SampleSpan


def test_the_time_line_holds_every_event_newest_first(conn: sqlite3.Connection,
                                                     sample_ledger: tuple[Path, SampleSpan]) -> None:
    events = timeline(conn)
    assert [e.time_ms for e in events] == sorted((e.time_ms for e in events), reverse=True)
    kinds = [(e.kind, e.version, e.status) for e in events]
    assert kinds.count(("rollback", "ppo-0001", None)) == 1
    assert [(k, v) for k, v, _ in kinds if k == "promotion"] == [("promotion", "ppo-0003"), ("promotion", "ppo-0001")]
    assert sorted(s for k, _, s in kinds if k == "retrain") == ["failed", "promoted", "rejected", "rejected"]
    assert sorted(v for k, v, _ in kinds if k == "model") == ["ppo-0001", "ppo-0002", "ppo-0003", "ppo-0004"]
    assert [k for k, _, _ in kinds].count("start") == 2 and [k for k, _, _ in kinds].count("stop") == 1
    risk = next(e for e in events if e.kind == "risk")
    assert (risk.symbol, risk.status, risk.account) == ("BTCUSDT", "daily_loss", "main") and "5.1%" in risk.detail
    rollback = next(e for e in events if e.kind == "rollback")
    assert rollback.detail == "ppo-0003" and rollback.time_ms == sample_ledger[1].at(2 / 3) - 60_000
    promoted = next(e for e in events if e.kind == "retrain" and e.status == "promoted")
    assert promoted.figures["scores"]["BTCUSDT"] == {"candidate": 0.88, "incumbent": 0.42, "flat": 0.0}


def test_a_live_trial_is_told_with_its_live_verdict_and_figures(conn: sqlite3.Connection) -> None:
    """The holdout passed (the retrain run's figures), the live candles did not (the trial's)."""
    events = timeline(conn)
    (trial,) = [e for e in events if e.kind == "trial"]
    assert (trial.version, trial.status, trial.symbol, trial.account) == ("ppo-0004", "retired", None, "trial:ppo-0004")
    assert trial.detail.startswith("did not beat account main on sharpe over the live trial")
    assert trial.figures["candles"] == 240
    assert trial.figures["scores"] == {"candidate": -0.35, "incumbent": 0.18, "flat": 0.0}
    (run,) = [e for e in events if e.kind == "retrain" and e.version == "ppo-0004"]
    assert run.status == "rejected" and "; live: did not beat" in run.detail
    assert run.figures["scores"]["BTCUSDT"]["candidate"] == 0.71 and run.time_ms < trial.time_ms
    (model,) = [e for e in events if e.kind == "model" and e.version == "ppo-0004"]
    assert model.status == "rejected"


def test_pages_from_the_cursor_repeat_and_lose_nothing(conn: sqlite3.Connection) -> None:
    everything = timeline(conn, limit=500)
    seen, before = [], None
    while True:
        page = timeline(conn, before=before, limit=4)
        seen += page
        if len(page) < 4:
            break
        before = parse_cursor(page[-1].cursor)
    assert seen == everything and len(everything) == 16
    with pytest.raises(ValueError):
        parse_cursor("yesterday")


def test_a_symbol_keeps_its_own_events_and_the_shared_ones(conn: sqlite3.Connection) -> None:
    eth = timeline(conn, Scope(symbol="ETHUSDT"))
    assert {e.kind for e in eth} == {"retrain", "trial", "start", "stop"}
    assert all(e.symbol is None for e in eth)
