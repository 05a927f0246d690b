"""``shadow backup``: an online, consistent copy of the ledger, even while the daemon writes."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pandas as pd
import pytest

from state.backup import backup_ledger, backup_name, prune_backups
from state.database import connect_reader
from tests.bot.service_harness import HISTORY, running_service
from tests.conftest import REPO


def _shadow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env=os.environ | {"COLUMNS": "1000"})


def _decisions(path: Path) -> list[tuple]:
    """Each decision with everything written in its transaction: fills, trades it closed, equity."""
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(
            "SELECT d.open_time_ms, d.action, d.obs_hash, "
            "(SELECT group_concat(f.seq || ':' || f.price || ':' || f.qty) FROM fills f "
            "WHERE f.decision_id = d.decision_id), "
            "(SELECT count(*) FROM trades t WHERE t.exit_decision_id = d.decision_id), e.equity "
            "FROM decisions d LEFT JOIN equity e USING (decision_id) ORDER BY d.open_time_ms").fetchall()


async def test_backup_taken_by_another_process_during_a_replay_holds_whole_decisions(
        tmp_path: Path, btc_candles: pd.DataFrame) -> None:
    db, copy = tmp_path / "ledger.sqlite", tmp_path / "backups" / "during.sqlite"
    frame = btc_candles.iloc[: HISTORY + 400].reset_index(drop=True)
    async with running_service(frame, db, speed=120.0, strategy="random:seed=3,trade_prob=0.3") as service:
        while service.daemon.report is None or service.daemon.report.symbols["BTCUSDT"].decisions < 20:
            await asyncio.sleep(0.01)
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "backup", "--db", str(db), "--out", str(copy), cwd=REPO,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await process.communicate()
        decided_after_backup = service.daemon.report.symbols["BTCUSDT"].decisions
        await service.finished()
    assert process.returncode == 0, err.decode()
    assert f"backup {copy}:" in out.decode() and "integrity ok" in out.decode()
    final, backed_up = _decisions(db), _decisions(copy)
    assert 20 <= len(backed_up) <= decided_after_backup < len(final) == 400  # taken mid-replay
    assert backed_up == final[: len(backed_up)]  # a prefix, each decision with all it wrote
    assert any(fills for _, _, _, fills, _, _ in backed_up)
    with closing(connect_reader(copy)) as conn:  # opens as a ledger at the current schema
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)  # one file, no -wal to carry
        position = conn.execute("SELECT open_time_ms, n_trades FROM positions").fetchall()
        trades = conn.execute("SELECT count(*) FROM trades").fetchone()[0]
        assert conn.execute("SELECT count(*) FROM runs WHERE stopped_ms IS NULL").fetchone()[0] == 1
    assert position == [(backed_up[-1][0], trades)]  # the account row is the last decision's
    assert not list(copy.parent.glob(".*partial*"))


def test_a_backup_equals_its_ledger(tmp_path: Path, btc_ledger: Path) -> None:
    result = backup_ledger(btc_ledger, tmp_path, now_ms=1_709_294_400_000)
    assert result.path == tmp_path / "shadow-20240301T120000Z.sqlite"
    assert (result.decisions, result.size_bytes) == (1700, result.path.stat().st_size)
    with closing(sqlite3.connect(btc_ledger)) as a, closing(sqlite3.connect(result.path)) as b:
        assert list(a.iterdump()) == list(b.iterdump())


def test_keep_deletes_only_older_backups(tmp_path: Path, btc_ledger: Path) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    old = [backups / backup_name(ms) for ms in (1_600_000_000_000, 1_650_000_000_000, 1_700_000_000_000)]
    for path in old:
        path.write_bytes(b"old")
    (backups / "notes.txt").write_text("mine")
    result = _shadow("backup", "--db", str(btc_ledger), "--out", str(backups), "--keep", "2")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in backups.iterdir()) == sorted(
        [old[2].name, next(p.name for p in backups.iterdir() if p.name.startswith("shadow-20") and p not in old),
         "notes.txt"])
    assert f"deleted old backup {old[0]}" in result.stdout and f"deleted old backup {old[1]}" in result.stdout
    assert prune_backups(backups, 5) == []


@pytest.mark.parametrize("case", ["missing", "not sqlite", "out exists"])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, btc_ledger: Path, case: str) -> None:
    db, out = btc_ledger, tmp_path / "b.sqlite"
    if case == "missing":
        db = tmp_path / "nope.sqlite"
    elif case == "not sqlite":
        db = tmp_path / "text.sqlite"
        db.write_text("just text, not a database " * 100)
    else:
        out.write_text("precious")
    result = _shadow("backup", "--db", str(db), "--out", str(out))
    expected = {"missing": f"ledger {db}: no such file", "not sqlite": "not a usable SQLite database",
                "out exists": f"backup {out}: already exists"}[case]
    assert result.returncode == 2 and expected in result.stderr and "Traceback" not in result.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    if case == "out exists":
        assert out.read_text() == "precious"
    else:
        assert not out.exists()
