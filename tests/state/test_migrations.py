"""Migrations: a fresh file and a file of every earlier version end at the current
schema with their data intact; a failing step changes nothing."""

from __future__ import annotations

import re
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

import state.migrations as migrations
from state.candle_store import INSERT_CANDLE, candle_params
from state.database import connect_reader, prepare_for_writing
from state.decision_sql import (
    INSERT_DECISION,
    INSERT_FUNDING,
    INSERT_TRADE,
    POSITION_COLUMNS,
    RISK_COLUMNS,
    UPSERT_POSITION,
    after_decision,
    decision_params,
)
from state.errors import SchemaVersionError
from state.ledger import Ledger
from state.migrations import LATEST_VERSION, MIGRATIONS, migrate, schema_version
from state.records import DecisionRecord

TABLES = {"runs", "candles", "decisions", "fills", "trades", "positions", "equity", "models", "retrain_runs",
          "risk_events", "feed_problems", "model_promotions", "funding_rates", "funding"}
VIEWS = {"v_decisions", "v_trades", "v_equity_curve", "v_daily_pnl", "v_model_performance", "v_funding"}
FUNDING_COLUMNS = {"funding_paid", "position_funding", "funding"}
"""Columns version 8 added to positions, equity and trades."""


def _write_as(conn: sqlite3.Connection, version: int, sql: str, params: dict) -> None:
    """One of ``after_decision``'s statements as a Shadow of ``version`` (1 to 7) wrote it:
    without the columns later versions added (funding from 8, the risk guard from 3)."""
    if sql == INSERT_FUNDING:
        raise AssertionError("no funding before version 8")
    if sql == UPSERT_POSITION:
        columns = [c for c in POSITION_COLUMNS if c not in FUNDING_COLUMNS and (version >= 3 or c not in RISK_COLUMNS)]
        sql = (f"INSERT OR REPLACE INTO positions ({', '.join(columns)}) "
               f"VALUES ({', '.join(':' + c for c in columns)})")
    for column in FUNDING_COLUMNS:
        sql = re.sub(rf", :?{column}\b(?=[,)])", "", sql)
    conn.execute(sql, params)


def _write_records(conn: sqlite3.Connection, version: int, records: list[DecisionRecord]) -> None:
    """``records`` as a Shadow of ``version`` (1 to 7) wrote them, one transaction each."""
    for record in records:
        conn.execute("BEGIN")
        conn.execute(INSERT_CANDLE, candle_params(record.candle))
        (decision_id,) = conn.execute(INSERT_DECISION, decision_params(record)).fetchone()
        for sql, params in after_decision(record, decision_id):
            _write_as(conn, version, sql, params)
        conn.execute("COMMIT")


def _write_v1(path: Path, records: list[DecisionRecord]) -> None:
    """What a version-1 Shadow wrote: the same rows, but trades linked to their closing fill."""
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn, path, target=1) == [1]
    conn.execute("PRAGMA foreign_keys = ON")
    for record in records:
        conn.execute("BEGIN")
        conn.execute(INSERT_CANDLE, candle_params(record.candle))
        (decision_id,) = conn.execute(INSERT_DECISION, decision_params(record)).fetchone()
        for sql, params in after_decision(record, decision_id):
            if sql == INSERT_TRADE:
                conn.execute(
                    "INSERT INTO trades (fill_id, symbol, side, qty, entry_time_ms, exit_time_ms, entry_price, "
                    "exit_price, gross_pnl, fees, net_pnl) VALUES (last_insert_rowid(), :symbol, :side, :qty, "
                    ":entry_time_ms, :exit_time_ms, :entry_price, :exit_price, :gross_pnl, :fees, :net_pnl)", params)
            else:
                _write_as(conn, 1, sql, params)
        conn.execute("COMMIT")
    conn.close()


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
    _write_v1(old, records)
    v1_rows = {table: _rows(old, table) for table in ("candles", "decisions", "fills", "positions", "equity")}
    n_trades = len(_rows(old, "trades"))
    assert n_trades > 20

    assert prepare_for_writing(old, 1.0) == (1, list(range(2, LATEST_VERSION + 1)))

    # The migrated file holds exactly what the current code writes for the same decisions.
    fresh = tmp_path / "v2.sqlite"
    async with await Ledger.open(fresh) as ledger:
        for record in records:
            await ledger.record_decision(record)
    for table, rows in v1_rows.items():  # version 1's columns are unchanged (later versions add columns)
        width = len(rows[0])
        assert [r[:width] for r in _rows(old, table)] == rows == [r[:width] for r in _rows(fresh, table)], table
    assert _rows(old, "positions") == _rows(fresh, "positions")
    assert {row[-6:-2] for row in _rows(old, "positions")} == {(-1, 0.0, 0, 0)}  # the guard's initial state
    assert {row[-2:] for row in _rows(old, "positions")} == {(0.0, 0.0)}  # no funding before version 8
    for relation in ("trades", *VIEWS):
        assert _rows(old, relation) == _rows(fresh, relation), relation
    schema = "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name"
    assert _sql(old, schema) == _sql(fresh, schema)  # the same schema, to the text
    with sqlite3.connect(old) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert conn.execute("SELECT count(*) FROM trades WHERE entry_decision_id IS NULL").fetchone()[0] == 0
        per_model = dict(conn.execute("SELECT model_version, trades FROM v_model_performance").fetchall())
    assert set(per_model) == {"ppo-0001", "ppo-0002"} and sum(per_model.values()) == n_trades


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
    _write_records(conn, 4, traded + idle)
    conn.close()
    query = "SELECT model_version, trades, win_rate, net_pnl FROM v_model_performance ORDER BY model_version"
    before = _sql(path, query)
    assert before[0] == ("idle", 0, None, 0.0) and before[1][1] > 0

    assert prepare_for_writing(path, 1.0) == (4, list(range(5, LATEST_VERSION + 1)))
    after = _sql(path, query)
    assert after == [("idle", 0, 0.0, 0.0), before[1]]


async def test_version_8_adds_funding_with_zeros_and_can_be_applied_again(tmp_path, btc_records):
    """A version-7 ledger gets funding columns at 0 (it paid none) and the funding tables; the
    step only adds what is missing, so a file already holding them migrates again unharmed."""
    path = tmp_path / "v7.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrate(conn, path, target=7) == [1, 2, 3, 4, 5, 6, 7]
    _write_records(conn, 7, [record for record, _ in btc_records[:300]])
    conn.close()
    assert prepare_for_writing(path, 1.0) == (7, [8])
    assert _sql(path, "SELECT DISTINCT funding FROM trades") == [(0.0,)]
    assert _sql(path, "SELECT funding_paid, position_funding FROM positions") == [(0.0, 0.0)]
    before = {relation: _rows(path, relation) for relation in ("trades", "positions", "equity", *VIEWS)}
    _sql(path, "PRAGMA user_version = 7")
    assert prepare_for_writing(path, 1.0) == (7, [8])
    assert {relation: _rows(path, relation) for relation in before} == before
