"""Migrations: a fresh file and a file of every earlier version end at the current
schema with their data intact; a failing step changes nothing."""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import pytest

import state.migrations as migrations
from env.risk import RiskEvent, RiskEventKind
from state.database import connect_reader, prepare_for_writing
from state.errors import SchemaVersionError
from state.ledger import Ledger
from state.migrations import LATEST_VERSION, MIGRATIONS, migrate, schema_version
from state.records import DecisionRecord
from tests.state.legacy_ledger import write_before_accounts, write_decision

TABLES = {"runs", "candles", "decisions", "fills", "trades", "positions", "equity", "models", "retrain_runs",
          "risk_events", "feed_problems", "model_promotions", "funding_rates", "funding", "live_trials"}
VIEWS = {"v_decisions", "v_trades", "v_equity_curve", "v_daily_pnl", "v_model_performance", "v_funding"}
LEDGER_TABLES = ("candles", "decisions", "fills", "trades", "positions", "equity", "risk_events", "funding")


async def _write_current(path: Path, records: list[DecisionRecord]) -> None:
    async with await Ledger.open(path) as ledger:
        for record in records:
            await ledger.record_decision(record)


def _relations(conn: sqlite3.Connection) -> dict[str, set[str]]:
    rows = conn.execute("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").fetchall()
    return {kind: {name for k, name in rows if k == kind} for kind in ("table", "view")}


def _sql(path: Path, query: str) -> list[tuple]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(query).fetchall()


def _rows(path: Path, table: str) -> list[tuple]:
    return sorted(_sql(path, f"SELECT * FROM {table}"), key=repr)


def test_a_fresh_file_gets_every_table_and_view(tmp_path):
    path = tmp_path / "fresh.sqlite"
    assert prepare_for_writing(path, 1.0) == (0, [m.version for m in MIGRATIONS])
    with sqlite3.connect(path) as conn:
        assert schema_version(conn) == LATEST_VERSION
        assert _relations(conn) == {"table": TABLES, "view": VIEWS}
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert prepare_for_writing(path, 1.0) == (LATEST_VERSION, [])  # idempotent


async def test_a_version_1_ledger_migrates_with_its_data_and_credits_trades(tmp_path, btc_records):
    records = [record for record, _ in btc_records[:1000]]
    old = tmp_path / "v1.sqlite"
    write_before_accounts(old, records, 1)
    n_trades = len(_rows(old, "trades"))
    assert n_trades > 20

    assert prepare_for_writing(old, 1.0) == (1, list(range(2, LATEST_VERSION + 1)))

    # The migrated file holds exactly what the current code writes for the same decisions.
    fresh = tmp_path / "current.sqlite"
    await _write_current(fresh, records)
    for relation in (*LEDGER_TABLES, *VIEWS):
        assert _rows(old, relation) == _rows(fresh, relation), relation
    assert {row[-4:] for row in _rows(old, "positions")} == {(-1, 0.0, 0, 0)}  # the guard's initial state
    schema = "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name"
    assert _sql(old, schema) == _sql(fresh, schema)  # the same schema, to the text
    with sqlite3.connect(old) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert conn.execute("SELECT count(*) FROM trades WHERE entry_decision_id IS NULL").fetchone()[0] == 0
        per_model = dict(conn.execute("SELECT model_version, trades FROM v_model_performance").fetchall())
    assert set(per_model) == {"ppo-0001", "ppo-0002"} and sum(per_model.values()) == n_trades


async def test_a_version_8_ledger_becomes_the_main_account_and_makes_room_for_others(tmp_path, btc_candles):
    """Version 9: the account is part of every row and of the decision key. A version-8 ledger
    (the schema before accounts) with real rows of every kind (two models, trades, risk
    events, funding paid on a perpetual, funding rates, a session's feed problems) migrates
    into the account 'main', row for row what today's code writes and nothing lost;
    afterwards a second account decides the same candles."""
    from config.accounts import DEFAULT_ACCOUNT
    from env.portfolio import Portfolio, PortfolioConfig
    from state.replay import replay_decisions
    from tests.conftest import funding_settlements, with_funding

    config = PortfolioConfig(initial_balance=1000.0, commission=0.00055, slippage_bps=2.0)
    candles = with_funding(btc_candles.iloc[:1500].reset_index(drop=True))
    records = [r for r, _ in replay_decisions(candles, seed=4, trade_probability=0.2,
                                               model_versions=("v0001", "v0002"), portfolio=Portfolio(config))]
    events = [record.risk_events for record in records]
    assert not any(events)  # state.replay runs no guard: add the events a guard would have written
    records[300] = replace(records[300], risk_events=(RiskEvent(records[300].candle.open_time_ms,
                                                                RiskEventKind.DAILY_LOSS, "limit"),))
    old = tmp_path / "v8.sqlite"
    write_before_accounts(old, records, 8)
    with closing(sqlite3.connect(old)) as conn, conn:
        conn.execute("INSERT INTO runs (started_ms, config_hash, code_version, symbols) VALUES (1, 'h', '0.1', '[]')")
        conn.execute("INSERT INTO feed_problems VALUES (1, 'FOOUSDT', 'dropped', 'Invalid symbol', 3, 3, 5, NULL)")
        conn.executemany("INSERT INTO funding_rates VALUES ('BTCUSDT', ?, ?, 'history')", funding_settlements(candles))
    before = {table: len(_rows(old, table)) for table in LEDGER_TABLES}
    assert before["trades"] > 50 and before["risk_events"] == 1 and before["funding"] >= 1
    market = {table: _rows(old, table) for table in ("runs", "feed_problems", "funding_rates")}

    assert prepare_for_writing(old, 1.0) == (8, list(range(9, LATEST_VERSION + 1)))

    fresh = tmp_path / "current.sqlite"
    await _write_current(fresh, records)
    for relation in (*LEDGER_TABLES, *VIEWS):
        assert _rows(old, relation) == _rows(fresh, relation), relation
    for table in LEDGER_TABLES[1:]:
        assert _sql(old, f"SELECT DISTINCT account FROM {table}") == [(DEFAULT_ACCOUNT,)], table
    assert {table: len(_rows(old, table)) for table in LEDGER_TABLES} == before
    assert {table: _rows(old, table) for table in market} == market
    assert _sql(old, "SELECT sum(amount) FROM funding") == _sql(old, "SELECT sum(funding) FROM v_daily_pnl") != [(0.0,)]

    other = [r for r, _ in replay_decisions(candles, seed=9, trade_probability=0.2, account="fast")]
    async with await Ledger.open(old) as ledger:
        assert all([await ledger.record_decision(r) for r in other])
    by_account = dict(_sql(old, "SELECT account, count(*) FROM decisions GROUP BY account"))
    assert by_account == {DEFAULT_ACCOUNT: 1500, "fast": 1500}
    assert {a for (a,) in _sql(old, "SELECT DISTINCT account FROM funding")} == {DEFAULT_ACCOUNT, "fast"}
    assert {a for (a,) in _sql(old, "SELECT DISTINCT account FROM v_model_performance")} == {DEFAULT_ACCOUNT, "fast"}
    daily = _sql(old, "SELECT account, sum(trades) FROM v_daily_pnl GROUP BY account ORDER BY account")
    assert daily == _sql(old, "SELECT account, count(*) FROM trades GROUP BY account ORDER BY account")
    with sqlite3.connect(old) as conn:
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        # every trade is credited to an opening decision of its own account
        assert conn.execute("SELECT count(*) FROM trades t JOIN decisions d ON d.decision_id = t.entry_decision_id "
                            "WHERE d.account <> t.account").fetchone()[0] == 0


@pytest.mark.parametrize("version", [m.version - 1 for m in MIGRATIONS])
def test_every_earlier_version_reaches_the_current_schema(tmp_path, version):
    path = tmp_path / f"v{version}.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, path, target=version)
    assert schema_version(conn) == version
    conn.close()
    label = f"schema version {version}," if version else "no Shadow schema yet,"
    with pytest.raises(SchemaVersionError, match=rf"{label} .*shadow migrate --db"):
        connect_reader(path)
    assert prepare_for_writing(path, 1.0) == (version, list(range(version + 1, LATEST_VERSION + 1)))
    with closing(connect_reader(path)) as reader:
        assert _relations(reader) == {"table": TABLES, "view": VIEWS}


def test_a_failing_step_leaves_the_previous_version_untouched(tmp_path, monkeypatch):
    sql_dir = tmp_path / "sql"
    shutil.copytree(Path(migrations.__file__).parent / "sql", sql_dir)
    (sql_dir / "9999_broken.sql").write_text(
        "CREATE TABLE half_done (x INTEGER);\nALTER TABLE decisions ADD COLUMN note TEXT;\nSELECT * FROM missing;\n"
    )
    broken = migrations.Migration(LATEST_VERSION + 1, "broken on purpose", "9999_broken.sql")
    monkeypatch.setattr(migrations, "_SQL_DIR", sql_dir)
    monkeypatch.setattr(migrations, "MIGRATIONS", (*MIGRATIONS, broken))
    path = tmp_path / "l.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError, match="no such table: missing"):
        migrate(conn, path, target=LATEST_VERSION + 1)
    assert schema_version(conn) == LATEST_VERSION
    assert "half_done" not in _relations(conn)["table"]
    assert "note" not in {row[1] for row in conn.execute("PRAGMA table_info(decisions)")}
    conn.close()


async def test_a_version_3_ledger_keeps_its_sessions_and_new_sessions_record_their_settings(tmp_path):
    """Version 4: ``runs.settings``. Sessions of an older ledger keep NULL (they recorded none)."""
    path = tmp_path / "v3.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, path, target=3)
    conn.execute("INSERT INTO runs (started_ms, config_hash, code_version, symbols) VALUES (1, 'abc', '0.1', '[]')")
    conn.close()
    assert prepare_for_writing(path, 1.0) == (3, list(range(4, LATEST_VERSION + 1)))

    settings = '{"env": {"commission": 0.00055}}'
    async with await Ledger.open(path) as ledger:
        await ledger.journal.start_run(started_ms=2, config_hash="def", code_version="0.2", symbols=[],
                                       settings=settings)
    assert _sql(path, "SELECT run_id, config_hash, settings FROM runs") == [(1, "abc", None), (2, "def", settings)]
    with closing(sqlite3.connect(path)) as conn, pytest.raises(sqlite3.IntegrityError, match="CHECK constraint"):
        conn.execute("UPDATE runs SET settings = 'not json' WHERE run_id = 1")


def test_version_5_gives_a_model_without_trades_a_win_rate_of_zero(tmp_path, btc_candles, btc_records):
    """A version-4 ledger holding one model that traded and one that never did: migrating
    changes only the second's win rate, NULL -> 0.0 (as everywhere else in Shadow)."""
    from state.replay import replay_decisions

    path = tmp_path / "v4.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn, path, target=4) == [1, 2, 3, 4]
    traded = [record for record, _ in btc_records[:300]]
    idle = [record for record, _ in replay_decisions(btc_candles.iloc[300:400], trade_probability=0.0,
                                                      model_versions=("idle",))]
    for record in traded + idle:
        conn.execute("BEGIN")
        write_decision(conn, record, 4)
        conn.execute("COMMIT")
    conn.close()
    query = "SELECT model_version, trades, win_rate, net_pnl FROM v_model_performance ORDER BY model_version"
    before = _sql(path, query)
    assert before[0] == ("idle", 0, None, 0.0) and before[1][1] > 0

    assert prepare_for_writing(path, 1.0) == (4, list(range(5, LATEST_VERSION + 1)))
    after = _sql(path, query)
    assert after == [("idle", 0, 0.0, 0.0), before[1]]


def test_version_8_adds_funding_with_zeros_and_can_be_applied_again(tmp_path, btc_records):
    """A version-7 ledger gets funding columns at 0 (it paid none) and the funding tables; the
    step only adds what is missing, so a file already holding them migrates again unharmed."""
    path = tmp_path / "v7.sqlite"
    write_before_accounts(path, [record for record, _ in btc_records[:300]], 7)
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn, path, target=8) == [8]
    conn.close()
    assert _sql(path, "SELECT DISTINCT funding FROM trades") == [(0.0,)]
    assert _sql(path, "SELECT funding_paid, position_funding FROM positions") == [(0.0, 0.0)]
    before = {relation: _rows(path, relation) for relation in ("trades", "positions", "equity", *VIEWS)}
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA user_version = 7")
    assert migrate(conn, path, target=8) == [8]
    conn.close()
    assert {relation: _rows(path, relation) for relation in before} == before
