"""Promotion earned live, in the daemon against the local Bybit replay (real sockets, real
BTCUSDT candles): a candidate that passed the holdout trades as a challenger account beside
the incumbent, from the incumbent's equity, for ``live_trial_candles`` candles; its verdict
promotes it (the incumbent swaps between two candles) or rejects it; SIGKILL restarts in the
middle resume the trial where it stood; `shadow verify` agrees on every account."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.commands.common import console
from bot.daemon import Daemon
from bot.retrain_scheduler import RetrainScheduler
from config.accounts import DEFAULT_ACCOUNT
from config.settings import RetrainSettings, Settings
from env.types import Action
from state.database import connect_reader
from state.ledger import Ledger
from tests.bot.daemon_replay import HISTORY, account_rows, replay_daemon, run_killing_shadow
from tests.retrain_models import constant_model
from tests.trainer.retrain.retrain_fakes import MODEL_VARIABLE
from trainer.models.store import publish_model
from trainer.verification.ledger import verify_ledger

START = 14_250  # 2023-03-10 21:30 UTC: the trial's 60 candles rise 1%: always-long beats flat
N = HISTORY + 180
TRIAL = 60
CHALLENGER = "trial:v0002"


@pytest.fixture(scope="module")
def frame(btc_candles: pd.DataFrame) -> pd.DataFrame:
    return btc_candles.iloc[START:START + N].reset_index(drop=True)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, ppo_model: Path) -> dict[Action, Path]:
    folder = tmp_path_factory.mktemp("constant_models")
    return {a: constant_model(ppo_model, a, folder / f"{a.name.lower()}.zip") for a in (Action.BUY, Action.CLOSE)}


def trial_settings(registry: Path, **retrain: object) -> RetrainSettings:
    return RetrainSettings(**({"enabled": True, "live_trial_candles": TRIAL, "cold_start": False,
                               "registry_dir": registry, "poll_seconds": 0.2, "metric": "total_return"} | retrain))


async def pending_trial(db: Path, registry: Path, models: dict[Action, Path]) -> None:
    """What a retrain that passed the holdout leaves: v0001 (always CLOSE: flat) serving, the
    candidate v0002 (always BUY) published, its run ended as ``trial`` and the trial pending."""
    async with await Ledger.open(db) as ledger:
        await publish_model(ledger, registry, models[Action.CLOSE], symbol="BTCUSDT", interval="1m",
                            status="promoted")
        await publish_model(ledger, registry, models[Action.BUY], symbol="BTCUSDT", interval="1m")
        retrain_id = await ledger.registry.start_retrain(started_ms=1)
        await ledger.trials.open_trial(
            retrain_id=retrain_id, at_ms=2, reason="candidate v0002 beats both; holdout total_return: ...",
            metrics={"symbols": ["BTCUSDT"]}, candidate_version="v0002", challenger_account=CHALLENGER,
            incumbent_account=DEFAULT_ACCOUNT, symbols=["BTCUSDT"], candles=TRIAL, metric="total_return", margin=0.0)


def sql(db: Path, query: str, *params: object) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(query, params).fetchall()


def verify(db: Path) -> list:
    with closing(connect_reader(db)) as conn:
        return verify_ledger(conn, db, Settings())


def test_a_trial_killed_and_restarted_ends_as_the_uninterrupted_one_and_promotes_live(
        tmp_path: Path, frame: pd.DataFrame, models: dict[Action, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    uninterrupted, killed = tmp_path / "a" / "shadow.sqlite", tmp_path / "b" / "shadow.sqlite"
    for db in (uninterrupted, killed):
        db.parent.mkdir()
        asyncio.run(pending_trial(db, db.parent / "registry", models))
    asyncio.run(replay_daemon(frame, uninterrupted, "registry",
                              retrain=trial_settings(uninterrupted.parent / "registry")))
    config = (f'[daemon]\nstrategy = "registry"\n[retrain]\nenabled = true\nlive_trial_candles = {TRIAL}\n'
              f'cold_start = false\nmetric = "total_return"\nregistry_dir = "{killed.parent / "registry"}"\n')
    assert run_killing_shadow(killed.parent, frame, killed, config, decisions=N - HISTORY + TRIAL, speed=5.0) == 5

    rows = account_rows(killed)
    assert rows == account_rows(uninterrupted)  # every account, every row, bit for bit
    challenger = [r for r in rows["decisions"] if r[0] == CHALLENGER]
    main = [r for r in rows["decisions"] if r[0] == DEFAULT_ACCOUNT]
    assert [r[1] for r in challenger] == [r[1] for r in main[:TRIAL]]  # from the first live candle, none skipped
    assert {r[5] for r in challenger} == {"v0002"}
    assert sql(killed, "SELECT count(DISTINCT run_id) > 1 FROM decisions WHERE account = ?", CHALLENGER) == [(1,)]
    # promoted live: the incumbent swapped to the candidate at the candle after the verdict
    assert [r[5] for r in main] == ["v0001"] * TRIAL + ["v0002"] * (len(main) - TRIAL)
    (balance,) = sql(killed, "SELECT initial_balance FROM positions WHERE account = ?", CHALLENGER)[0]
    assert balance == 100.0  # the incumbent's equity (flat all along) at the join close
    (status, reason), = sql(killed, "SELECT status, reason FROM retrain_runs")
    assert status == "promoted" and "; live: beats both; live trial total_return: candidate 0.0" in reason
    assert sql(killed, "SELECT status FROM live_trials") == [("promoted",)]
    assert dict(sql(killed, "SELECT version, status FROM models")) == {"v0001": "retired", "v0002": "promoted"}
    assert all(v.divergence is None for v in verify(killed)) and len(verify(killed)) == 2

    monkeypatch.setattr(console, "width", 250)
    shown = CliRunner().invoke(app, ["retrain", "--db", str(killed)]).output
    assert "promoted: total_return 0.0" in shown and "vs 0 vs 0" in shown


async def test_a_retrain_that_passes_the_holdout_trades_live_before_any_promotion(
        tmp_path: Path, btc_candles: pd.DataFrame, models: dict[Action, Path], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """The daemon's own retrain: the holdout verdict opens the trial, the challenger joins at
    the next candle with the incumbent's equity, retrain triggers wait for the verdict, and
    the verdict (whichever it is) is recorded with its figures; every account verifies."""
    frame = btc_candles.iloc[16_750:16_750 + 300 + 3000].reset_index(drop=True)
    db = tmp_path / "shadow.sqlite"
    registry = tmp_path / "registry"
    async with await Ledger.open(db) as ledger:
        await publish_model(ledger, registry, models[Action.CLOSE], symbol="BTCUSDT", interval="1m",
                            status="promoted")
    monkeypatch.setattr(RetrainScheduler, "trainer_target", "tests.trainer.retrain.retrain_fakes:copies_model")
    monkeypatch.setenv(MODEL_VARIABLE, str(models[Action.BUY]))
    judged: list[int] = []

    def story(daemon: Daemon) -> bool:
        if daemon.retrainer is not None and daemon.retrainer.trials.verdicts and not judged:
            judged.append(len(daemon.report.latencies_ms))
        return bool(judged) and len(daemon.report.latencies_ms) >= judged[0] + 20

    with caplog.at_level("INFO"):
        await replay_daemon(frame, db, "registry", history=300, until=story, speed=50.0, timeout_s=150.0,
                            retrain=trial_settings(registry, every_candles=30, holdout_candles=60,
                                                   min_train_candles=50, time_limit_s=120.0))
    assert judged, "the replay ended before the trial's verdict"
    (retrain_id, status, reason), *_ = sql(db, "SELECT retrain_id, status, reason FROM retrain_runs ORDER BY 1")
    trial_status, metrics_text = sql(db, "SELECT status, metrics FROM live_trials WHERE retrain_id = ?", retrain_id)[0]
    assert (status, trial_status) in (("promoted", "promoted"), ("rejected", "retired"))
    assert "holdout total_return: candidate" in reason and "; live: " in reason and "live trial total_return" in reason
    assert "skipped: a live trial is running" in caplog.text
    challenger = sql(db, "SELECT open_time_ms FROM decisions WHERE account = ? ORDER BY 1", CHALLENGER)
    main = [t for (t,) in sql(db, "SELECT open_time_ms FROM decisions WHERE account = ? ORDER BY 1", DEFAULT_ACCOUNT)]
    first = main.index(challenger[0][0])
    assert [t for (t,) in challenger] == main[first:first + TRIAL]  # contiguous, exactly the trial's candles
    (verdict_ms,), = sql(db, "SELECT finished_ms FROM retrain_runs WHERE retrain_id = ?", retrain_id)
    (joined_ms,), = sql(db, "SELECT min(decided_ms) FROM decisions WHERE account = ?", CHALLENGER)
    assert joined_ms >= verdict_ms  # it joined after the holdout verdict, never before
    assert '"scores"' in metrics_text and '"incumbent"' in metrics_text
    assert all(v.divergence is None for v in verify(db))
