"""Walk-forward folds never let a model see its test slice; the run writes its outputs."""

from __future__ import annotations

import json
import shutil
from itertools import pairwise
from pathlib import Path

import pandas as pd
import pytest

from config.settings import EnvSettings, RiskSettings, TrainSettings
from strategies.baselines import BuyAndHold, Flat
from strategies.model_metadata import check_compatible, load_metadata, metadata_path
from strategies.ppo import PPOStrategy
from tests.conftest import PREFIX
from trainer.evaluation.backtest import EvaluationSpec
from trainer.evaluation.outputs import write_walk_forward
from trainer.evaluation.walk_forward import Fold, WalkForwardError, make_folds, walk_forward
from trainer.training.fold_trainer import PPOTrainer


def test_folds_by_hand():
    assert make_folds(1000, train=300, test=200, warmup=PREFIX) == [
        Fold(0, 0, 300, 500), Fold(1, 200, 500, 700), Fold(2, 400, 700, 900),
    ]  # a fourth would need candle 1100 to mark its last decision
    assert make_folds(1000, train=300, test=200, step=100, max_folds=2, warmup=PREFIX) == [
        Fold(0, 0, 300, 500), Fold(1, 100, 400, 600),
    ]


@pytest.mark.parametrize("kwargs, message", [
    ({"n_candles": 500, "train": 300, "test": 200}, "500 candles cannot hold one fold"),
    ({"n_candles": 5000, "train": PREFIX + 1, "test": 200}, f"train_candles={PREFIX + 1} is too short"),
])
def test_fold_errors(kwargs, message):
    with pytest.raises(WalkForwardError, match=message):
        make_folds(**kwargs, warmup=PREFIX)


class RecordingTrainer:
    """Records what each fold trains on (and with which seed) and serves a prepared model (no training)."""

    def __init__(self, model: Path) -> None:
        self.model = model
        self.seen: list[pd.DataFrame] = []
        self.seeds: list[int] = []

    def __call__(self, train, *, seed, model_path, env_settings, extra):
        self.seen.append(train)
        self.seeds.append(seed)
        model_path.parent.mkdir(parents=True)
        shutil.copy(self.model, model_path)
        shutil.copy(metadata_path(self.model), metadata_path(model_path))
        return model_path


def test_no_fold_trains_on_its_test_slice(tmp_path, btc_candles, ppo_model):
    trainer = RecordingTrainer(ppo_model)
    candles = btc_candles.iloc[:3000].reset_index(drop=True)
    result = walk_forward(
        candles, train_fn=trainer, spec=EvaluationSpec(EnvSettings(), None), baselines=[BuyAndHold(), Flat()],
        load_model=PPOStrategy.load, train=1000, test=600, out_dir=tmp_path, seed=5,
    )
    assert len(result.folds) == len(trainer.seen) == 3
    for fold, train in zip(result.folds, trainer.seen, strict=True):
        test = fold.results["ppo"]
        first_test_time = candles["open_time_ms"].iloc[fold.fold.train_end]
        assert train["open_time_ms"].max() < first_test_time == test.times_ms[0]
        assert len(train) == 1000 and len(test.actions) == 600
        assert set(fold.results) == {"ppo", "buy_and_hold", "flat"}
        assert fold.results["buy_and_hold"].times_ms[0] == first_test_time
    # Back-to-back slices: each fold's last mark is the next fold's first decision.
    for before, after in pairwise(result.folds):
        assert before.results["ppo"].times_ms[-1] == after.results["ppo"].times_ms[0]

    aggregate = result.aggregate()
    returns = [f.results["buy_and_hold"].metrics.total_return for f in result.folds]
    assert aggregate["buy_and_hold"]["chained_return"] == pytest.approx(
        (1 + returns[0]) * (1 + returns[1]) * (1 + returns[2]) - 1)
    model_returns = [f.results["ppo"].metrics.total_return for f in result.folds]
    assert aggregate["flat"]["folds_model_beat_it"] == sum(r > 0 for r in model_returns)
    assert aggregate["ppo"]["folds_model_beat_it"] is None


def test_tiny_real_walk_forward_trains_saves_and_reports(tmp_path, btc_candles):
    candles = btc_candles.iloc[:2200].reset_index(drop=True)
    settings = EnvSettings()
    result = walk_forward(
        candles, train_fn=PPOTrainer(128, TrainSettings(episode_length=64, n_steps=64, n_envs=1), symbol="BTCUSDT"),
        spec=EvaluationSpec(settings, RiskSettings()), baselines=[BuyAndHold(), Flat()], load_model=PPOStrategy.load,
        train=800, test=300, max_folds=2, out_dir=tmp_path / "wf", seed=3,
    )
    assert len(result.folds) == 2
    for fold in result.folds:
        meta = load_metadata(fold.model_path)
        check_compatible(meta, fold.model_path, settings.lookback_window)
        assert meta.seed == 3 + fold.fold.index and meta.num_timesteps >= 128
        assert meta.data_range["end_ms"] < candles["open_time_ms"].iloc[fold.fold.train_end]
        assert meta.extra["walk_forward_fold"]["index"] == fold.fold.index
        assert (meta.symbol, meta.timeframe) == ("BTCUSDT", "1m")

    paths = write_walk_forward(tmp_path / "wf", result, source="btc.csv.gz",
                               settings={"train_candles": 800, "test_candles": 300})
    summary = json.loads(paths["summary"].read_text())
    assert summary["risk_guard"] == RiskSettings().model_dump() and summary["env"] == settings.model_dump()
    assert [f["fold"] for f in summary["folds"]] == [1, 2]
    assert set(summary["aggregate"]) == {"ppo", "buy_and_hold", "flat"}
    assert summary["folds"][0]["test"]["start"] == pd.Timestamp(
        int(candles["open_time_ms"].iloc[800]), unit="ms").isoformat()
    folds_csv = pd.read_csv(paths["folds"])
    assert len(folds_csv) == 2 * 3 and {"fold", "strategy", "total_return", "sharpe"} <= set(folds_csv.columns)
    assert paths["report"].stat().st_size > 50_000


def test_several_seeds_train_each_fold_once_per_seed_and_report_their_spread(tmp_path, btc_candles, ppo_model,
                                                                            decisive_ppo_model):
    """Replica r trains fold k with seed + 1000 r + k; each replica is scored like the single
    model, and the seed summary is the mean and range of their aggregates."""
    models = {}

    def load(path: Path) -> PPOStrategy:  # replicas differ: seed 1000+ serves the decisive model
        seed = int(path.parent.name.removeprefix("seed_"))
        models[path] = PPOStrategy.load(decisive_ppo_model if seed >= 1000 else ppo_model)
        return models[path]

    trainer = RecordingTrainer(ppo_model)
    candles = btc_candles.iloc[:2500].reset_index(drop=True)
    result = walk_forward(
        candles, train_fn=trainer, spec=EvaluationSpec(EnvSettings(), None), baselines=[BuyAndHold(), Flat()],
        load_model=load, train=1000, test=600, out_dir=tmp_path, seed=5, seeds=2,
    )
    assert trainer.seeds == [5, 1005, 6, 1006]
    assert result.models == ["ppo#1", "ppo#2"] and result.strategy == "ppo#1"
    fold = result.folds[1]
    assert set(fold.models) == {"ppo#1", "ppo#2"}
    assert fold.models["ppo#2"] == tmp_path / "fold_02" / "seed_1006" / "model.zip"
    assert set(fold.results) == {"ppo#1", "ppo#2", "buy_and_hold", "flat"}
    aggregate, spread = result.aggregate(), result.seed_summary()
    chained = [aggregate[m]["chained_return"] for m in result.models]
    assert aggregate["ppo#1"]["chained_return"] != aggregate["ppo#2"]["chained_return"]
    assert spread["seeds"] == 2 and spread["chained_return"] == {
        "mean": pytest.approx(sum(chained) / 2), "min": min(chained), "max": max(chained)}
    assert spread["n_trades"]["max"] == max(aggregate[m]["n_trades"] for m in result.models)
    mean_model = [sum(f.results[m].metrics.total_return for m in result.models) / 2 for f in result.folds]
    assert aggregate["flat"]["folds_model_beat_it"] == sum(r > 0 for r in mean_model)


def test_the_aggregate_carries_the_skill_figures(tmp_path, btc_candles, ppo_model):
    candles = btc_candles.iloc[:3000].reset_index(drop=True)
    result = walk_forward(
        candles, train_fn=RecordingTrainer(ppo_model), spec=EvaluationSpec(EnvSettings(), None),
        baselines=[BuyAndHold(), Flat()], load_model=PPOStrategy.load, train=1000, test=600, out_dir=tmp_path,
    )
    hold = result.aggregate()["buy_and_hold"]
    metrics = [f.results["buy_and_hold"].metrics for f in result.folds]
    assert (hold["net_exposure"], hold["time_long"], hold["time_short"]) == (1.0, 1.0, 0.0)
    assert hold["fees_to_capital"] == pytest.approx(sum(m.fees_to_capital for m in metrics))
    assert hold["turnover"] == pytest.approx(sum(m.turnover for m in metrics))
    assert hold["mean_fold_timing"] == pytest.approx(sum(m.timing for m in metrics) / 3)
    assert hold["blew_up_folds"] == 0 and result.seed_summary() is None


def test_walk_forward_reports_funding_beside_fees_on_a_perpetual(tmp_path, btc_candles, ppo_model):
    """Every fold's slice keeps the candles' funding column: the holder pays on each slice it
    holds through a funding time, and the aggregate adds it up beside the fees."""
    from tests.conftest import with_funding

    candles = with_funding(btc_candles.iloc[:3000].reset_index(drop=True))
    result = walk_forward(
        candles, train_fn=RecordingTrainer(ppo_model), spec=EvaluationSpec(EnvSettings(), None),
        baselines=[BuyAndHold(), Flat()], load_model=PPOStrategy.load, train=1000, test=600, out_dir=tmp_path,
    )
    held = [f.results["buy_and_hold"] for f in result.folds]
    assert all(r.perpetual for r in held) and sum(len(r.funding) for r in held) >= 2
    aggregate = result.aggregate()
    assert aggregate["buy_and_hold"]["funding_paid"] == sum(r.metrics.funding_paid for r in held) != 0.0
    assert aggregate["flat"]["funding_paid"] == 0.0
