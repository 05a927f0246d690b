"""``shadow models promote`` (rollback), ``shadow retrain`` (the log) and ``shadow retrain
--now`` (one real retrain in the foreground) on ledgers of real candles."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.commands.common import console
from config import UserError
from state.errors import LedgerNotFoundError
from state.ledger import Ledger
from strategies.model_metadata import ModelMismatchError
from tests.conftest import REPO
from trainer.models.store import ModelIntegrityError, publish_model

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "width", 220)


@pytest.fixture
def db(tmp_path: Path, btc_ledger: Path) -> Path:
    path = tmp_path / "shadow.sqlite"
    shutil.copy(btc_ledger, path)
    return path


@pytest.fixture
def registry(db: Path, ppo_model: Path) -> Path:
    """v0001 retired, v0002 promoted (its parent), v0003 rejected: the state after two retrains."""
    folder = db.parent / "registry"

    async def fill() -> None:
        async with await Ledger.open(db) as ledger:
            await publish_model(ledger, folder, ppo_model, symbol="BTCUSDT", interval="1m", status="promoted")
            await publish_model(ledger, folder, ppo_model, symbol="BTCUSDT", interval="1m", status="promoted",
                                parent_version="v0001")
            await publish_model(ledger, folder, ppo_model, symbol="BTCUSDT", interval="1m", status="rejected",
                                parent_version="v0002")

    asyncio.run(fill())
    return folder


def statuses(db: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT version, status FROM models ORDER BY version").fetchall()


def test_promote_rolls_back_to_a_retired_version(db: Path, registry: Path) -> None:
    result = runner.invoke(app, ["models", "promote", "v0001", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert ("v0001 promoted for BTCUSDT 1m; v0002 retired; a running daemon serving the registry switches"
            in result.output)
    assert statuses(db) == [("v0001", "promoted"), ("v0002", "retired"), ("v0003", "rejected")]
    again = runner.invoke(app, ["models", "promote", "v0001", "--db", str(db)])
    assert "v0001 is already the promoted model for BTCUSDT 1m" in again.output
    rejected = runner.invoke(app, ["models", "promote", "v0003", "--db", str(db)])
    assert "v0003 promoted for BTCUSDT 1m (the retrain gate had rejected it); v0001 retired" in rejected.output
    listing = runner.invoke(app, ["models", "--db", str(db), "--status", "promoted"])
    assert listing.exit_code == 0 and "v0003" in listing.output and "v0001" not in listing.output


@pytest.mark.parametrize(
    ("damage", "error", "message"),
    [
        ("tamper", ModelIntegrityError, "refusing to load a file that changed after it was published"),
        ("delete", ModelIntegrityError, "v0001.zip is missing"),
        ("unknown", UserError, "no model 'v0009'; it holds v0003 (rejected), v0002 (promoted), v0001 (retired)"),
        ("lookback", ModelMismatchError, "trained with lookback_window=20, configured 30"),
        ("no ledger", LedgerNotFoundError, "nope.sqlite: no such file"),
    ],
)
def test_promote_refuses_what_cannot_be_served_and_changes_nothing(
        db: Path, registry: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str,
        error: type[Exception], message: str) -> None:
    version, target = "v0001", db
    if damage == "tamper":
        (registry / "v0001.zip").write_bytes((registry / "v0001.zip").read_bytes() + b"x")
    elif damage == "delete":
        (registry / "v0001.zip").unlink()
    elif damage == "unknown":
        version = "v0009"
    elif damage == "lookback":
        monkeypatch.setenv("SHADOW_ENV__LOOKBACK_WINDOW", "30")
    else:
        target = tmp_path / "nope.sqlite"
    before = statuses(db)
    result = runner.invoke(app, ["models", "promote", version, "--db", str(target)])
    assert isinstance(result.exception, error) and message in str(result.exception)
    assert statuses(db) == before


def test_a_tampered_model_is_one_line_on_the_command_line(db: Path, registry: Path) -> None:
    (registry / "v0001.zip").write_bytes(b"not the published bytes")
    done = subprocess.run([sys.executable, "-m", "bot", "models", "promote", "v0001", "--db", str(db)], cwd=REPO,
                          capture_output=True, text=True, timeout=60, env=os.environ | {"COLUMNS": "400"})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: model v0001: ") and "Traceback" not in done.stderr


def test_retrain_now_runs_one_retrain_and_the_log_shows_it(db: Path, tmp_path: Path) -> None:
    config = tmp_path / "shadow.toml"
    config.write_text(f'[retrain]\ntimesteps = 256\nregistry_dir = "{tmp_path / "registry"}"\n'
                      "[train]\nn_envs = 1\nn_steps = 128\nbatch_size = 64\nepisode_length = 128\nn_epochs = 2\n")
    assert "no retraining runs recorded" in runner.invoke(app, ["retrain", "--db", str(db)]).output
    result = runner.invoke(app, ["retrain", "--now", "--db", str(db), "--config", str(config)])
    assert result.exit_code == 0, result.output
    status = statuses(db)[0][1]
    assert status in ("promoted", "rejected")
    assert f"retrain 1 (BTCUSDT): {status}: candidate v0001 " in result.output
    failed = runner.invoke(app, ["retrain", "--now", "--db", str(db), "--config", str(config),
                                 "--symbols", "ETHUSDT"])
    assert failed.exit_code == 1 and "retrain 2 (ETHUSDT): failed: " in failed.output
    log = runner.invoke(app, ["retrain", "--db", str(db)])
    assert log.exit_code == 0
    assert "no ETHUSDT 1m candles; it holds BTCUSDT 1m" in log.output and status in log.output


def test_retrain_now_needs_an_existing_ledger(tmp_path: Path) -> None:
    result = runner.invoke(app, ["retrain", "--now", "--db", str(tmp_path / "none.sqlite")])
    assert isinstance(result.exception, LedgerNotFoundError)
    assert "retraining uses the candles the daemon stored" in str(result.exception)
    assert not (tmp_path / "none.sqlite").exists()


@pytest.fixture
def retrain_log(db: Path, registry: Path) -> list[tuple[str, str, str]]:
    """Three finished runs as the runner records them (the gate's own reasons, two symbols
    each); returns (id, status, model) per run, newest first."""
    from trainer.retrain.gate import gate

    rejected = gate(-12.3456, -3.21, 0.0, metric="sharpe", margin=0.0, incumbent_label="v0002")
    promoted = gate(1.2345, 0.5, 0.0, metric="sharpe", margin=0.0, incumbent_label="v0001")
    runs = [("promoted", f"candidate v0002 {promoted.reason}", "v0002"),
            ("rejected", f"candidate v0003 {rejected.reason}", "v0003"),
            ("failed", ("the training process was killed by SIGKILL; its log ends with: training BTCUSDT on "
                        "BTCUSDT {'start_ms': 1678646940000, 'end_ms': 1678669740000, 'n_candles': 381}"), None)]

    async def fill() -> None:
        async with await Ledger.open(db) as ledger:
            for i, (status, reason, version) in enumerate(runs):
                run_id = await ledger.registry.start_retrain(started_ms=1_678_600_000_000 + i * 3_600_000)
                await ledger.registry.finish_retrain(run_id, status=status, finished_ms=1_678_600_300_000
                                                     + i * 3_600_000, reason=reason, candidate_version=version,
                                                     metrics={"symbols": ["BTCUSDT", "ETHUSDT"], "seconds": 291.5})

    asyncio.run(fill())
    return [(str(3 - i), status, version or "-") for i, (status, _, version) in enumerate(reversed(runs))]


@pytest.mark.parametrize("width", [80, 120, 250])
def test_the_retrain_log_shows_status_and_model_at_any_width(db: Path, retrain_log: list[tuple[str, str, str]],
                                                             monkeypatch: pytest.MonkeyPatch, width: int) -> None:
    monkeypatch.setattr(console, "width", width)
    result = runner.invoke(app, ["retrain", "--db", str(db)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert all(len(line.rstrip()) <= width for line in lines) and "…" not in result.output
    for run_id, status, model in retrain_log:  # one row per run, every short cell whole
        (row,) = [line for line in lines if line.split()[:1] == [run_id]]
        assert row.split()[:6] == [run_id, "2023-03-12", row.split()[2], "291.5", status, "BTCUSDT,ETHUSDT"]
        assert row.split()[6] == model
    text = " ".join(result.output.split())
    if width == 80:  # no room for a readable reason column: it says where the reasons are
        assert "reasons: shadow retrain --verbose" in text and "holdout sharpe" not in text
    else:  # the reason wraps in the room left, whole
        assert "does not beat incumbent v0002 and flat; holdout sharpe: candidate -12.35," in text
        assert "'n_candles': 381}" in text


def test_verbose_gives_every_reason_in_full(db: Path, retrain_log: list[tuple[str, str, str]],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "width", 80)
    result = runner.invoke(app, ["retrain", "--db", str(db), "--verbose"])
    text = " ".join(result.output.split())
    assert "#2 rejected: candidate v0003 does not beat incumbent v0002 and flat; holdout sharpe: candidate " \
           "-12.35, incumbent v0002 -3.21, flat 0 (margin 0)" in text
    assert "#3 failed: the training process was killed by SIGKILL" in text
