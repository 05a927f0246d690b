"""``shadow trades / status / export / models / migrate`` on a ledger of real-candle decisions."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.commands.common import console
from config import UserError
from env.candles import load_candles
from state.errors import LedgerNotFoundError, NotALedgerError, SchemaVersionError
from state.ledger import Ledger
from state.migrations import LATEST_VERSION, migrate
from state.readers import UnknownTableError
from state.records import ModelEntry
from state.replay import replay_decisions

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample" / "btcusdt_1m_2023-03.csv.gz"
runner = CliRunner()


def _records(n: int, seed: int = 2):
    candles = load_candles(SAMPLE).iloc[:n]
    return [record for record, _ in replay_decisions(candles, seed=seed, model_versions=("ppo-0001", "ppo-0002"))]


async def _fill(path: Path, records) -> None:
    async with await Ledger.open(path) as ledger:
        run_id = await ledger.journal.start_run(started_ms=1, config_hash="c0ffee", code_version="0.1.0",
                                                symbols=["BTCUSDT"])
        for record in records:
            await ledger.record_decision(record)
        await ledger.registry.add_model(ModelEntry(
            version="ppo-0002", path="models/ppo-0002.zip", sha256="b" * 64, created_ms=1_677_700_000_000,
            symbol="BTCUSDT", interval="1", metrics={"holdout_sharpe": 0.731}, data_start_ms=1_677_628_800_000,
            data_end_ms=1_677_690_000_000))
        await ledger.registry.set_model_status("ppo-0002", "promoted", at_ms=1_677_700_100_000)
        await ledger.journal.stop_run(run_id, stopped_ms=2, reason="SIGTERM")


@pytest.fixture(scope="module")
def ledger_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ledger") / "shadow.sqlite"
    asyncio.run(_fill(path, _records(1200)))
    return path


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    monkeypatch.setattr(console, "width", 220)


def _run(*args: str):
    return runner.invoke(app, list(args))


def _sql(path: Path, query: str, params=()) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute(query, params).fetchall()


def test_trades_shows_the_newest_n_with_a_summary(ledger_path):
    result = _run("trades", "--db", str(ledger_path), "--last", "5")
    assert result.exit_code == 0, result.output
    newest = _sql(ledger_path, "SELECT trade_id, net_pnl FROM trades ORDER BY exit_time_ms DESC LIMIT 5")
    for trade_id, _ in newest:
        assert f"\n {trade_id} " in result.output
    wins = sum(pnl > 0 for _, pnl in newest)
    assert f"5 trades, {wins} won" in result.output
    assert f"net PnL {sum(p for _, p in newest):+,.4f}" in result.output


def test_trades_filters_by_model_symbol_and_since(ledger_path):
    by_model = _run("trades", "--db", str(ledger_path), "--model", "ppo-0002", "-n", "1000")
    expected = _sql(ledger_path, "SELECT count(*) FROM v_trades WHERE model_version = 'ppo-0002'")[0][0]
    assert expected > 0 and f"{expected} trades," in by_model.output
    assert "ppo-0001" not in by_model.output

    assert "no closed trades match" in _run("trades", "--db", str(ledger_path), "--symbol", "ETHUSDT").output

    since = _run("trades", "--db", str(ledger_path), "--since", "2023-03-01 12:00", "-n", "1000")
    expected = _sql(ledger_path, "SELECT count(*) FROM trades WHERE exit_time_ms >= 1677672000000")[0][0]
    assert f"{expected} trades," in since.output

    bad = _run("trades", "--db", str(ledger_path), "--since", "last tuesday-ish")
    assert bad.exit_code == 2 and "is not a date" in bad.output


def test_status_json_carries_the_exact_account(ledger_path):
    result = _run("status", "--db", str(ledger_path), "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    (status,) = document["symbols"]
    equity, unrealized, side, open_ms = _sql(ledger_path,
                                             "SELECT equity, unrealized_pnl, side, open_time_ms FROM positions")[0]
    assert (status["equity"], status["unrealized_pnl"]) == (equity, unrealized)  # JSON floats round-trip exactly
    assert status["position"] == {1: "long", -1: "short", 0: "flat"}[side]
    assert status["last_candle"] == pd.Timestamp(open_ms, unit="ms").strftime("%Y-%m-%dT%H:%M:%SZ")
    assert status["model_version"] == "ppo-0002" and status["seconds_since_decision"] > 0
    assert document["run"]["stop_reason"] == "SIGTERM"

    table = _run("status", "--db", str(ledger_path))
    assert "BTCUSDT" in table.output and "since last decision" in table.output and "stopped" in table.output


@pytest.mark.parametrize("name", ["trades", "v_trades", "v_daily_pnl", "v_model_performance", "equity"])
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_writes_any_table_or_view_exactly(ledger_path, tmp_path, name, fmt):
    out = tmp_path / f"{name}.{fmt}"
    result = _run("export", "--db", str(ledger_path), "--table", name, "--format", fmt, "--out", str(out))
    assert result.exit_code == 0, result.output
    with sqlite3.connect(ledger_path) as conn:
        expected = pd.read_sql_query(f"SELECT * FROM {name}", conn)
    got = pd.read_parquet(out) if fmt == "parquet" else pd.read_csv(out)
    assert len(got) == len(expected) > 0
    pd.testing.assert_frame_equal(got, expected, check_exact=True, check_dtype=False)
    assert list(tmp_path.iterdir()) == [out]  # no partial file left beside it


def test_export_errors_name_the_problem_and_write_nothing(ledger_path, tmp_path):
    out = tmp_path / "x.csv"
    result = _run("export", "--db", str(ledger_path), "--table", "trade_log", "--out", str(out))
    assert isinstance(result.exception, UnknownTableError)
    assert "no table or view 'trade_log'" in str(result.exception) and "v_trades" in str(result.exception)
    bad_format = _run("export", "--db", str(ledger_path), "--table", "trades", "--format", "xlsx")
    assert bad_format.exit_code == 2 and "is not csv or parquet" in bad_format.output
    nowhere = _run("export", "--db", str(ledger_path), "--table", "trades", "--out", str(tmp_path / "no" / "x.csv"))
    assert isinstance(nowhere.exception, UserError) and "cannot write" in str(nowhere.exception)
    assert list(tmp_path.iterdir()) == []


def test_models_lists_the_registry(ledger_path):
    result = _run("models", "--db", str(ledger_path))
    assert result.exit_code == 0, result.output
    assert "ppo-0002" in result.output and "promoted" in result.output and "holdout_sharpe=0.731" in result.output
    assert "no models registered" in _run("models", "--db", str(ledger_path), "--status", "rejected").output
    assert _run("models", "--db", str(ledger_path), "--status", "live").exit_code == 2


def test_db_defaults_to_the_ledger_setting(ledger_path, monkeypatch):
    monkeypatch.setenv("SHADOW_LEDGER__DB_PATH", str(ledger_path))
    assert "BTCUSDT" in _run("status").output


def test_bad_ledger_files_give_clear_errors(tmp_path):
    missing = _run("trades", "--db", str(tmp_path / "nope.sqlite"))
    assert isinstance(missing.exception, LedgerNotFoundError) and "nope.sqlite: no such file" in str(missing.exception)
    assert not (tmp_path / "nope.sqlite").exists()  # a reader never creates a ledger

    text = tmp_path / "notes.txt"
    text.write_text("not a database at all\n" * 50)
    garbage = _run("status", "--db", str(text))
    assert isinstance(garbage.exception, NotALedgerError) and str(text) in str(garbage.exception)

    # Through the real entry point: one line on stderr, exit status 2, no traceback.
    proc = subprocess.run([sys.executable, "-m", "bot", "status", "--db", str(text)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"error: ledger {text}: not a usable SQLite database" in " ".join(proc.stderr.split())


def test_migrate_upgrades_an_old_ledger(tmp_path):
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, path, target=1)
    conn.close()
    assert isinstance(_run("trades", "--db", str(path)).exception, SchemaVersionError)
    result = _run("migrate", "--db", str(path))
    assert result.exit_code == 0 and f"schema version 1 -> {LATEST_VERSION}" in result.output
    assert "no closed trades match" in _run("trades", "--db", str(path)).output
    assert f"already at schema version {LATEST_VERSION}" in _run("migrate", "--db", str(path)).output


def test_commands_work_while_the_daemon_writes(tmp_path):
    path = tmp_path / "live.sqlite"
    records = _records(1500, seed=9)
    asyncio.run(_fill(path, records[:100]))
    done = threading.Event()

    async def daemon() -> None:
        async with await Ledger.open(path) as ledger:
            for record in records[100:]:
                await ledger.record_decision(record)
        done.set()

    writer = threading.Thread(target=asyncio.run, args=(daemon(),))
    writer.start()
    seen = []
    while not done.is_set():
        for args in (("status", "--json"), ("trades", "-n", "3"), ("export", "--table", "v_equity_curve",
                                                                      "--out", str(tmp_path / "eq.csv"))):
            result = _run(*args, "--db", str(path))
            assert result.exit_code == 0, (args, result.output, result.exception)
        seen.append(len(pd.read_csv(tmp_path / "eq.csv")))
    writer.join()
    assert len(seen) >= 2 and seen == sorted(seen) and seen[0] < len(records)


def test_status_and_trades_show_every_account_and_take_account(tmp_path):
    path = tmp_path / "accounts.sqlite"
    candles = load_candles(SAMPLE).iloc[:600]

    async def fill() -> None:
        async with await Ledger.open(path) as ledger:
            streams = [list(replay_decisions(candles, seed=s, trade_probability=0.2, account=a))
                       for a, s in (("main", 1), ("fast", 2))]
            for pair in zip(*streams, strict=True):
                await ledger.record_decisions(pair[0][0].candle, [record for record, _ in pair])

    asyncio.run(fill())
    document = json.loads(_run("status", "--db", str(path), "--json").output)
    assert document["accounts"] == ["fast", "main"]
    equity = dict(_sql(path, "SELECT account, equity FROM positions"))
    assert {(s["account"], s["symbol"]): s["equity"] for s in document["symbols"]} == {
        ("fast", "BTCUSDT"): equity["fast"], ("main", "BTCUSDT"): equity["main"]}
    table = _run("status", "--db", str(path)).output
    assert "account fast" in table and "account main" in table
    only = json.loads(_run("status", "--db", str(path), "--json", "--account", "fast").output)
    assert only["accounts"] == ["fast"] and [s["account"] for s in only["symbols"]] == ["fast"]

    trades = _run("trades", "--db", str(path), "--account", "fast", "-n", "1000").output
    (n_fast,) = _sql(path, "SELECT count(*) FROM trades WHERE account = 'fast'")[0]
    assert f"{n_fast} trades," in trades and " main " not in trades
    assert isinstance(_run("trades", "--db", str(path), "--account", "nosuch").exception, UserError)
