"""One retraining end to end: a real child process trains on a ledger's real candles, the
gate judges it on the unseen holdout, and the parent publishes and records it. Failures
of the child (cheap fake trainers) end as ``failed`` runs with their reason, and nothing
half-done is left behind."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from config.settings import FeedSettings, LedgerSettings, RetrainSettings, Settings, TrainSettings
from env.types import Action, Candle
from state.ledger import Ledger
from strategies.model_metadata import load_metadata
from tests.conftest import PREFIX
from tests.retrain_models import constant_model
from tests.trainer.retrain.retrain_fakes import MODEL_VARIABLE
from trainer.models.store import file_sha256, publish_model
from trainer.retrain import runner as retrain_runner
from trainer.retrain.runner import run_retrain

FAKES = "tests.trainer.retrain.retrain_fakes"
TINY_TRAIN = TrainSettings(n_envs=1, n_steps=128, batch_size=64, episode_length=128, n_epochs=2)


@pytest.fixture
def db(tmp_path: Path, btc_ledger: Path) -> Path:
    """A private copy of a ledger holding 1,700 real BTCUSDT 1m candles (and decisions)."""
    path = tmp_path / "shadow.sqlite"
    shutil.copy(btc_ledger, path)
    return path


def settings_for(db: Path, **retrain: object) -> Settings:
    values = dict(timesteps=256, registry_dir=db.parent / "registry", time_limit_s=120.0) | retrain
    return Settings(ledger=LedgerSettings(db_path=db), feed=FeedSettings(symbols=["BTCUSDT"]), train=TINY_TRAIN,
                    retrain=RetrainSettings(**values))


def rows(db: Path) -> tuple[list[tuple], list[tuple]]:
    with sqlite3.connect(db) as conn:
        models = conn.execute("SELECT version, status, parent_version FROM models ORDER BY version").fetchall()
        runs = conn.execute("SELECT retrain_id, status, reason, candidate_version, finished_ms IS NOT NULL, metrics "
                            "FROM retrain_runs ORDER BY retrain_id").fetchall()
    return models, runs


async def test_a_real_retrain_publishes_the_candidate_with_its_holdout_verdict(db: Path) -> None:
    settings = settings_for(db)
    async with await Ledger.open(db) as ledger:
        outcome = await run_retrain(ledger, settings, ["BTCUSDT"])
    assert outcome.status in ("promoted", "rejected")
    scores = outcome.metrics["scores"]
    assert scores["incumbent"] == scores["flat"] == 0.0  # cold start: the fallback is flat
    assert outcome.promoted == (scores["candidate"] > 0.0)
    models, runs = rows(db)
    assert models == [("v0001", outcome.status, None)]
    assert runs[0][:5] == (1, outcome.status, outcome.reason, "v0001", 1)
    assert outcome.reason.startswith("candidate v0001 ") and "holdout sharpe: candidate" in outcome.reason

    entry = outcome.candidate
    path = Path(entry.path)
    assert path.parent == settings.retrain.registry_dir.resolve() and file_sha256(path) == entry.sha256
    meta = load_metadata(path)
    assert meta.num_timesteps == 256 and entry.hyperparameters == meta.hyperparameters  # two rollouts of 128
    ranges = json.loads(runs[0][5])["ranges"]["BTCUSDT"]
    with sqlite3.connect(db) as conn:
        last_ms, n_candles = conn.execute("SELECT max(open_time_ms), count(*) FROM candles").fetchone()
    # the holdout is the most recent candles, and training stopped before it
    assert ranges["holdout"]["end_ms"] == last_ms
    assert ranges["holdout"]["n_candles"] == round((n_candles - PREFIX) * 0.2)
    assert ranges["train"]["end_ms"] == entry.data_end_ms < ranges["holdout"]["start_ms"]
    assert set(entry.metrics) == {"holdout_sharpe", "incumbent_sharpe", "flat_sharpe", "holdout_return",
                                  "holdout_timing", "holdout_net_exposure", "holdout_max_drawdown", "holdout_trades",
                                  "holdout_fees_to_capital", "holdout_funding_to_capital", "holdout_turnover",
                                  "no_model"}
    candidate = outcome.metrics["holdout"]["BTCUSDT"]["candidate"]
    assert (entry.metrics["holdout_timing"], entry.metrics["holdout_turnover"]) == (candidate["timing"],
                                                                                   candidate["turnover"])
    assert not any((settings.retrain.registry_dir / ".work").iterdir())  # the job folder is gone


async def test_warm_start_continues_the_promoted_model_on_data_up_to_end_ms(db: Path, ppo_model: Path) -> None:
    settings = settings_for(db, warm_start=True)
    with sqlite3.connect(db) as conn:
        end_ms = conn.execute(
            "SELECT open_time_ms FROM candles ORDER BY open_time_ms LIMIT 1 OFFSET 1499").fetchone()[0]
    async with await Ledger.open(db) as ledger:
        incumbent = await publish_model(ledger, settings.retrain.registry_dir, ppo_model, symbol="BTCUSDT",
                                        interval="1m", status="promoted")
        outcome = await run_retrain(ledger, settings, ["BTCUSDT"], end_ms=end_ms)
    assert outcome.status != "failed", outcome.reason
    meta = load_metadata(Path(outcome.candidate.path))
    assert meta.num_timesteps > load_metadata(ppo_model).num_timesteps  # continued, not restarted
    assert meta.extra["warm_start"] == incumbent.path
    assert outcome.candidate.parent_version == "v0001"
    assert outcome.metrics["warm_start"] == "v0001" and outcome.metrics["incumbents"] == {"BTCUSDT": "v0001"}
    assert outcome.metrics["ranges"]["BTCUSDT"]["holdout"]["end_ms"] == end_ms
    models, _ = rows(db)
    if outcome.promoted:
        assert models == [("v0001", "retired", None), ("v0002", "promoted", "v0001")]
    else:
        assert models == [("v0001", "promoted", None), ("v0002", "rejected", "v0001")]


@pytest.mark.parametrize(
    ("fake", "retrain", "reason"),
    [
        ("raises", {}, "RuntimeError: the trainer failed on purpose"),
        ("sigkill", {}, "the training process was killed by SIGKILL"),
        ("sleeps", {"time_limit_s": 1.0}, "exceeded the time limit of 1 s (retrain.time_limit_s) and was killed"),
        ("allocates", {"memory_limit_mb": 2048},
         "exceeded the memory limit of 2048 MB (retrain.memory_limit_mb): MemoryError"),
        ("garbage_zip", {}, "not a loadable SB3 PPO model"),
    ],
)
async def test_a_failing_trainer_is_a_failed_run_with_its_reason_and_nothing_published(
        db: Path, ppo_model: Path, monkeypatch: pytest.MonkeyPatch, fake: str, retrain: dict, reason: str) -> None:
    monkeypatch.setenv(MODEL_VARIABLE, str(ppo_model))
    settings = settings_for(db, **retrain)
    async with await Ledger.open(db) as ledger:
        outcome = await run_retrain(ledger, settings, ["BTCUSDT"], trainer_target=f"{FAKES}:{fake}")
    assert outcome.status == "failed" and reason in outcome.reason
    models, runs = rows(db)
    assert models == []
    assert runs[0][1:5] == ("failed", outcome.reason, None, 1)
    assert not any((settings.retrain.registry_dir / ".work").iterdir())


@pytest.mark.parametrize(
    ("symbols", "retrain", "reason"),
    [
        (["BTCUSDT"], {"min_train_candles": 5000}, f"1700 candles is too few to retrain: need {PREFIX} warm-up + 5000"),
        (["ETHUSDT"], {}, "no ETHUSDT 1m candles; it holds BTCUSDT 1m (1700 candles)"),
    ],
)
async def test_unusable_data_is_a_failed_run_naming_the_problem(db: Path, symbols: list[str], retrain: dict,
                                                               reason: str) -> None:
    async with await Ledger.open(db) as ledger:
        outcome = await run_retrain(ledger, settings_for(db, **retrain), symbols, trainer_target=f"{FAKES}:raises")
    assert outcome.status == "failed" and reason in outcome.reason


async def test_a_candidate_changed_after_scoring_is_never_promoted(db: Path, ppo_model: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The parent compares the published copy's sha256 with the bytes the child scored."""
    monkeypatch.setenv(MODEL_VARIABLE, str(ppo_model))
    real_publish = retrain_runner.publish_model

    async def tampering_publish(ledger: Ledger, registry_dir: Path, model_zip: Path, **kwargs: object):
        with model_zip.open("ab") as fh:
            fh.write(b"tampered")
        return await real_publish(ledger, registry_dir, model_zip, **kwargs)

    monkeypatch.setattr(retrain_runner, "publish_model", tampering_publish)
    async with await Ledger.open(db) as ledger:
        outcome = await run_retrain(ledger, settings_for(db), ["BTCUSDT"], trainer_target=f"{FAKES}:copies_model")
    assert outcome.status == "failed" and "the published file differs from the one scored" in outcome.reason
    assert rows(db)[0] == [("v0001", "rejected", None)]


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text in cmdline.read_bytes().decode(errors="replace"):
                pids.append(int(cmdline.parent.name))
        except OSError:
            continue
    return pids


@pytest.mark.parametrize("how", ["abort", "cancel"])
async def test_stopping_a_run_kills_the_child_and_records_the_run(db: Path, how: str) -> None:
    settings = settings_for(db)
    work = str(settings.retrain.registry_dir.resolve())
    abort = asyncio.Event()
    async with await Ledger.open(db) as ledger:
        task = asyncio.create_task(run_retrain(ledger, settings, ["BTCUSDT"], trainer_target=f"{FAKES}:sleeps",
                                               abort=abort))
        for _ in range(100):
            await asyncio.sleep(0.05)
            if _processes_mentioning(work):
                break
        assert _processes_mentioning(work), "the child never started"
        if how == "abort":
            abort.set()
            assert (await task).status == "failed"
        else:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert _processes_mentioning(work) == []
        await ledger.journal.start_run(started_ms=1, config_hash="x", code_version="x", symbols=[])  # still writable
    expected = {"abort": "stopped: the daemon shut down while it ran; the training process was killed",
                "cancel": "cancelled: the process running it stopped"}[how]
    assert rows(db)[1][0][1:3] == ("failed", expected)


@pytest.fixture(scope="module")
def constant_models(tmp_path_factory: pytest.TempPathFactory, ppo_model: Path) -> dict[Action, Path]:
    folder = tmp_path_factory.mktemp("constant")
    return {a: constant_model(ppo_model, a, folder / f"{a.name}.zip") for a in (Action.BUY, Action.CLOSE)}


async def test_a_shared_model_is_judged_on_every_symbol_and_replaces_their_own_models(
        tmp_path: Path, btc_candles: pd.DataFrame, constant_models: dict[Action, Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two markets whose last 60 candles rise (the real BTC candles of 2023-03-12 15:10 UTC,
    stored under both names): an always-BUY shared candidate beats BTCUSDT's own
    always-CLOSE model and ETHUSDT's fallback, is promoted as a shared model (no symbol),
    and retires BTCUSDT's own model, which would otherwise keep precedence."""
    rising = btc_candles.iloc[16_750:17_100]
    db = tmp_path / "shadow.sqlite"
    settings = settings_for(db, shared_model=True, holdout_candles=60, min_train_candles=50)
    monkeypatch.setenv(MODEL_VARIABLE, str(constant_models[Action.BUY]))
    async with await Ledger.open(db) as ledger:
        for symbol in ("BTCUSDT", "ETHUSDT"):
            await ledger.store_candles(Candle(symbol, "1m", int(r.open_time_ms), r.open, r.high, r.low, r.close,
                                              r.volume) for r in rising.itertuples())
        await publish_model(ledger, settings.retrain.registry_dir, constant_models[Action.CLOSE], symbol="BTCUSDT",
                            interval="1m", status="promoted")
        outcome = await run_retrain(ledger, settings, ["BTCUSDT", "ETHUSDT"],
                                    trainer_target=f"{FAKES}:copies_model")
    assert outcome.status == "promoted", outcome.reason
    assert "incumbent fallback flat/v0001" in outcome.reason
    assert outcome.metrics["incumbents"] == {"BTCUSDT": "v0001", "ETHUSDT": "flat"}
    assert set(outcome.metrics["holdout"]) == {"BTCUSDT", "ETHUSDT"}
    candidate = outcome.metrics["holdout"]["BTCUSDT"]["candidate"]
    assert candidate["total_return"] > 0 and candidate == outcome.metrics["holdout"]["ETHUSDT"]["candidate"]
    assert (outcome.candidate.symbol, outcome.candidate.interval) == (None, "1m")
    assert rows(db)[0] == [("v0001", "retired", None), ("v0002", "promoted", None)]


class FixedClock:
    def __init__(self, now_ms: int) -> None:
        self.now = now_ms

    def now_ms(self) -> int:
        return self.now


async def test_runs_left_running_by_a_dead_process_are_closed_as_failed(db: Path) -> None:
    clock = FixedClock(1_700_000_000_000)
    limit_ms = (1800 + retrain_runner.ABANDON_GRACE_S) * 1000
    async with await Ledger.open(db) as ledger:
        old = await ledger.registry.start_retrain(started_ms=int(clock.now - limit_ms - 1))  # past any time limit
        recent = await ledger.registry.start_retrain(started_ms=int(clock.now - limit_ms + 1))  # may still be alive
        assert await retrain_runner.close_abandoned_runs(ledger, time_limit_s=1800, clock=clock) == [old]
    runs = rows(db)[1]
    assert [(r[0], r[1]) for r in runs] == [(old, "failed"), (recent, "running")]
    assert runs[0][2].startswith("abandoned: ")
    with sqlite3.connect(db) as conn:  # closed on the injected clock, not the wall clock
        assert conn.execute("SELECT finished_ms FROM retrain_runs WHERE finished_ms IS NOT NULL").fetchall() == [
            (clock.now,)]


async def test_a_candidate_that_never_trades_on_the_holdout_is_no_model(
        tmp_path: Path, btc_candles: pd.DataFrame, constant_models: dict[Action, Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An always-flat candidate (always CLOSE) against an incumbent that loses (always BUY on a
    falling holdout) would win on total return; it never traded, so it is recorded as no model."""
    falling = btc_candles.iloc[12_250:12_650]  # 2023-03-09 12:10 UTC: the last hour falls 2%
    assert falling["close"].iloc[-61] > 1.01 * falling["close"].iloc[-1]
    db = tmp_path / "shadow.sqlite"
    settings = settings_for(db, holdout_candles=60, min_train_candles=50, metric="total_return")
    monkeypatch.setenv(MODEL_VARIABLE, str(constant_models[Action.CLOSE]))
    async with await Ledger.open(db) as ledger:
        await ledger.store_candles(Candle("BTCUSDT", "1m", int(r.open_time_ms), r.open, r.high, r.low, r.close,
                                          r.volume) for r in falling.itertuples())
        await publish_model(ledger, settings.retrain.registry_dir, constant_models[Action.BUY], symbol="BTCUSDT",
                            interval="1m", status="promoted")
        outcome = await run_retrain(ledger, settings, ["BTCUSDT"], trainer_target=f"{FAKES}:copies_model")
    assert outcome.status == "rejected"
    assert outcome.reason == "candidate v0002 is no model: it never trades on the holdout (no fill), so there is " \
                             "nothing to promote"
    assert outcome.metrics["no_model"] is True
    holdout = outcome.metrics["holdout"]["BTCUSDT"]
    assert holdout["candidate"]["turnover"] == 0 and holdout["candidate"]["total_return"] > holdout["incumbent"][
        "total_return"]
    with sqlite3.connect(db) as conn:
        (metrics,) = conn.execute("SELECT metrics FROM models WHERE version = 'v0002'").fetchone()
    assert json.loads(metrics)["no_model"] is True and rows(db)[0][1] == ("v0002", "rejected", "v0001")
