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
    assert sorted(s for k, _, s in kinds if k == "retrain") == ["failed", "promoted", "rejected"]
    assert sorted(v for k, v, _ in kinds if k == "model") == ["ppo-0001", "ppo-0002", "ppo-0003"]
    assert [k for k, _, _ in kinds].count("start") == 2 and [k for k, _, _ in kinds].count("stop") == 1
    risk = next(e for e in events if e.kind == "risk")
    assert (risk.symbol, risk.status) == ("BTCUSDT", "daily_loss") and "5.1%" in risk.detail
    rollback = next(e for e in events if e.kind == "rollback")
    assert rollback.detail == "ppo-0003" and rollback.time_ms == sample_ledger[1].at(2 / 3) - 60_000
    promoted = next(e for e in events if e.kind == "retrain" and e.status == "promoted")
    assert promoted.figures["scores"]["BTCUSDT"] == {"candidate": 0.88, "incumbent": 0.42, "flat": 0.0}


def test_pages_from_the_cursor_repeat_and_lose_nothing(conn: sqlite3.Connection) -> None:
    everything = timeline(conn, limit=500)
    seen, before = [], None
    while True:
        page = timeline(conn, before=before, limit=4)
        seen += page
        if len(page) < 4:
            break
        before = parse_cursor(page[-1].cursor)
    assert seen == everything and len(everything) == 13
    with pytest.raises(ValueError):
        parse_cursor("yesterday")


def test_a_symbol_keeps_its_own_events_and_the_shared_ones(conn: sqlite3.Connection) -> None:
    eth = timeline(conn, Scope(symbol="ETHUSDT"))
    assert {e.kind for e in eth} == {"retrain", "start", "stop"}
    assert all(e.symbol is None for e in eth)
