"""``shadow demo`` end to end: local replay server, first model, daemon, ledger, summary."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
from rich.console import Console

from bot.demo import run_demo
from config.settings import Settings
from state.database import connect_reader
from strategies.model_metadata import load_metadata
from tests.conftest import REPO
from trainer.verification.ledger import verify_ledger


def test_demo_trains_publishes_and_paper_trades_every_replayed_candle(tmp_path: Path) -> None:
    console = Console(record=True, width=140)
    summary = run_demo(tmp_path, candles=300, speed=1000, timesteps=2048, baseline="flat", console=console)
    assert summary.decisions == 300
    assert summary.strategy == "ppo v0001"  # the registry's promoted model, not the cold-start fallback
    with sqlite3.connect(summary.db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        (models,) = conn.execute("SELECT count(*) FROM models WHERE status = 'promoted'").fetchone()
        equity = conn.execute("SELECT equity FROM equity ORDER BY open_time_ms DESC LIMIT 1").fetchone()[0]
        last_time = conn.execute("SELECT max(open_time_ms) FROM candles").fetchone()[0]
    assert models == 1 and equity == summary.equity and last_time == summary.last_ms
    text = console.export_text()
    assert "buy & hold" in text and "shadow trades --db" in text and str(summary.db_path) in text
    assert all(column in text for column in ("timing", "long / short", "net exposure", "turnover"))
    meta = load_metadata(summary.run_dir / "training" / "first_model.zip")  # trained with the default profile
    assert (meta.action_mode, meta.env["reward"]["mode"], meta.hyperparameters["batch_size"]) == ("target", "net", 256)
    m = summary.metrics
    assert (m.n_trades, m.final_equity) == (summary.trades, summary.equity)
    assert m.fees_to_capital == pytest.approx(summary.fees / 100.0)
    assert m.buy_and_hold_return == pytest.approx(summary.buy_and_hold.buy_and_hold_return)
    assert m.timing == pytest.approx(m.total_return - m.net_exposure * m.buy_and_hold_return)
    assert summary.buy_and_hold.net_exposure == 1.0
    assert f"shadow verify --db {summary.db_path}" in text
    with closing(connect_reader(summary.db_path)) as conn:  # what that command proves: live == backtest, bit for bit
        (verdict,) = verify_ledger(conn, summary.db_path, Settings())
    assert verdict.divergence is None and verdict.decisions == 300 and verdict.deciders == (("ppo v0001", 300),)


def test_demo_cli_with_a_baseline_and_a_clear_error_for_bad_options(tmp_path: Path) -> None:
    ok = subprocess.run([sys.executable, "-m", "bot", "demo", "--dir", str(tmp_path), "--candles", "120",
                         "--speed", "1000", "--timesteps", "0", "--baseline", "sma:fast=5,slow=20"],
                        cwd=REPO, capture_output=True, text=True, timeout=120, env=os.environ | {"COLUMNS": "200"})
    assert ok.returncode == 0, ok.stderr
    assert "shadow (sma:fast=5,slow=20" in ok.stdout
    bad = subprocess.run([sys.executable, "-m", "bot", "demo", "--dir", str(tmp_path), "--candles", "1"],
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--candles 1: must be between 2 and" in bad.stderr
    assert "Traceback" not in bad.stderr
    unknown = subprocess.run([sys.executable, "-m", "bot", "demo", "--dir", str(tmp_path / "x"), "--profile", "fast"],
                             cwd=REPO, capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "--profile fast: not a profile; use one of default, seed" in unknown.stderr
    assert not (tmp_path / "x").exists()


def test_demo_with_the_seed_profile_trains_the_seeds_setup(tmp_path: Path) -> None:
    summary = run_demo(tmp_path, candles=120, speed=1000, timesteps=2048, baseline="flat", profile="seed",
                       console=Console(record=True, width=140))
    meta = load_metadata(summary.run_dir / "training" / "first_model.zip")
    assert (meta.action_mode, meta.env["reward"]["mode"], meta.extra["profile"]) == ("trade", "seed", "seed")
    assert summary.decisions == 120
