"""shadow tune on real candles: a small search finishes, prunes, writes its summary; trials
never see the test slice; the same seed gives the same trials with 1 or 2 workers and on
Ray; the best trial's config trains; failures are recorded and the search goes on."""

from __future__ import annotations

import json
import re
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
from typer.testing import CliRunner

from bot.cli import app
from config.errors import UserError
from config.settings import ConfigError, Settings, load_settings
from env.features import warmup_prefix
from strategies.model_metadata import load_metadata
from tests.conftest import BTC_SAMPLE
from tests.trainer.workdir import working_dir
from trainer.data.split import chronological_split
from trainer.jobs.backends import LocalBackend
from trainer.jobs.board import Board
from trainer.tuning.folds import TuneError, prepare_tuning_data
from trainer.tuning.search import tune
from trainer.tuning.space import apply

SAMPLE = BTC_SAMPLE
CONFIG = """
[train]
num_candles = 3000
n_envs = 1
n_epochs = 1
episode_length = 64
torch_threads = 1

[tune]
n_trials = 6
timesteps = 128
folds = 2
seed = 3
parallel_trials = 2
startup_trials = 2
prune_startup_trials = 1

[tune.space]
n_steps = [32, 64]
batch_size = [16, 32]
net_arch = [[16], [32, 32]]
lookback_window = [10, 20]
"""


def write_config(folder: Path) -> Path:
    path = folder / "tune.toml"
    path.write_text(CONFIG + "\n[compute]\nworkers = 2\n", encoding="utf-8")
    return path


def search_settings(folder: Path, **tune: Any) -> Settings:
    return load_settings(write_config(folder), train={"data": SAMPLE, "progress": False,
                                                       "test_data_path": folder / "test_data.csv"},
                         tune={"out_dir": folder / "out"} | tune)


def trial_results(trials_csv: Path) -> list[tuple[Any, ...]]:
    frame = pd.read_csv(trials_csv).drop(columns=["duration_s"])
    return [tuple(row) for row in frame.astype(object).fillna("").itertuples(index=False)]


@pytest.fixture(scope="module")
def search(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small search through ``shadow tune`` with the local backend, 2 workers."""
    folder = tmp_path_factory.mktemp("search")
    with working_dir(folder):
        result = CliRunner().invoke(app, ["tune", "--config", str(write_config(folder)), "--data", str(SAMPLE),
                                          "--out", "out", "--no-progress"])
    assert result.exit_code == 0, (result.output, result.exception)
    return folder


def test_small_search_finishes_prunes_and_writes_its_summary(search: Path) -> None:
    out = search / "out"
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 6 and set(trials["state"]) <= {"complete", "pruned"}
    assert (trials["state"] == "pruned").sum() >= 1 and (trials["state"] == "complete").sum() >= 2
    pruned = trials[trials["state"] == "pruned"]
    # Optuna keeps a pruned trial's last report as its value.
    assert (pruned["folds_run"] < 2).all() and (pruned["value"] == pruned["last_reported"]).all()
    complete = trials[trials["state"] == "complete"]
    assert (complete["folds_run"] == 2).all()
    assert complete["value"].to_numpy() == pytest.approx(complete[["fold_1", "fold_2"]].mean(axis=1).to_numpy())

    summary = json.loads((out / "summary.json").read_text())
    assert summary["trials"] == {"complete": len(complete), "pruned": len(pruned), "failed": 0}
    best = complete.loc[complete["value"].idxmax()]
    assert summary["best"]["number"] == best["number"] and summary["best"]["value"] == pytest.approx(best["value"])
    assert [m["fold"] for m in summary["best"]["fold_metrics"]] == [1, 2]
    assert set(summary["importance"]) <= {"learning_rate", "n_steps", "batch_size", "gamma", "ent_coef", "net_arch",
                                          "lookback_window", "reward_unrealized", "reward_losing_hold",
                                          "reward_inactivity", "reward_fee_multiplier"}
    data = summary["data"]
    assert all(f["validation_end_ms"] < data["held_out_test"]["start_ms"] for f in data["folds"])
    assert data["tuning"]["end_ms"] < data["held_out_test"]["start_ms"]
    assert (out / "summary.png").stat().st_size > 20_000 and (out / "study.sqlite").is_file()
    study = optuna.load_study(study_name="shadow", storage=f"sqlite:///{out / 'study.sqlite'}")
    assert len(study.trials) == 6 and study.best_trial.number == best["number"]


def test_no_trial_sees_the_test_slice_of_any_lookback(btc_candles: pd.DataFrame, tmp_path: Path) -> None:
    candles = btc_candles.iloc[-3000:].reset_index(drop=True)
    settings = search_settings(tmp_path)
    data = prepare_tuning_data(candles, settings, "btc")
    last_seen = data.candles["open_time_ms"].iloc[-1]
    for lookback in (10, 20):
        split = chronological_split(candles, prefix=warmup_prefix(lookback), validation_fraction=0.15,
                                    test_fraction=0.15)
        assert last_seen < split.test.traded["open_time_ms"].iloc[0]
    assert data.folds[-1].test_end == len(data.candles) - 1  # the last validation decision is marked inside


def test_same_trials_with_one_worker(search: Path, tmp_path: Path) -> None:
    """Trials are asked and told in order with a fixed parallel_trials, so the worker count
    does not change them."""
    backend = LocalBackend(1)
    try:
        tune(search_settings(tmp_path), backend, board=Board("t"))
    finally:
        backend.close()
    assert trial_results(tmp_path / "out" / "trials.csv") == trial_results(search / "out" / "trials.csv")


def test_ray_backend_gives_the_same_trials(search: Path, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray", reason="the optional 'ray' extra is not installed (pip install -e '.[ray]')")
    from trainer.jobs.backends import RayBackend

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        backend = RayBackend(None, None, torch_threads=1)
        assert backend.workers == 2
        result = tune(search_settings(tmp_path), backend, board=Board("t"))
        backend.close()
    finally:
        ray.shutdown()
    assert len(result.outcomes) == 6
    assert trial_results(tmp_path / "out" / "trials.csv") == trial_results(search / "out" / "trials.csv")


def test_best_config_round_trips_into_shadow_train(search: Path, tmp_path: Path) -> None:
    best_toml = search / "out" / "best.toml"
    assert best_toml.read_text().startswith("# best trial ")
    summary = json.loads((search / "out" / "summary.json").read_text())
    expected = apply(search_settings(tmp_path), summary["best"]["params"])
    loaded = load_settings(best_toml)
    assert loaded.train.model_dump(exclude={"data", "test_data_path"}) == expected.train.model_dump(
        exclude={"data", "test_data_path"})
    assert loaded.env == expected.env

    with working_dir(tmp_path):
        result = CliRunner().invoke(app, ["train", "--config", str(best_toml), "--data", str(SAMPLE),
                                          "--total-timesteps", "64", "--no-progress"])
    assert result.exit_code == 0, (result.output, result.exception)
    meta = load_metadata(tmp_path / "models" / "ppo_crypto_model" / "ppo_crypto_model_final.zip")
    assert meta.lookback_window == expected.env.lookback_window
    assert meta.env["reward"] == expected.env.reward.model_dump()
    assert meta.hyperparameters["learning_rate"] == pytest.approx(expected.train.learning_rate)
    assert meta.hyperparameters["net_arch"] == list(expected.train.net_arch)


class FailingInline:
    """An in-process backend whose job for trial ``bad`` dies as a crashed worker would."""

    name, workers = "inline", 1

    def __init__(self, bad: int) -> None:
        self.bad = bad

    def share(self, value: Any) -> Any:
        return value

    def submit(self, fn: Any, *args: Any) -> Future:
        future: Future = Future()
        if args[0].number == self.bad:
            future.set_exception(RuntimeError("worker process 123 exited with code -9 without a result"))
        else:
            future.set_result(fn(*args))
        return future

    def close(self) -> None:
        pass


def test_a_failed_trial_is_recorded_and_the_search_goes_on(tmp_path: Path) -> None:
    board = Board("t")
    result = tune(search_settings(tmp_path, n_trials=3, prune_startup_trials=5), FailingInline(bad=1), board=board)
    assert [o.state for o in result.outcomes.values()] == ["complete", "failed", "complete"]
    assert board.rows["trial 1"].status == "failed" and "exited with code -9" in board.rows["trial 1"].detail
    trials = pd.read_csv(tmp_path / "out" / "trials.csv")
    assert list(trials["state"]) == ["complete", "failed", "complete"]
    assert "exited with code -9" in trials.loc[1, "error"]


def test_too_little_data_for_the_folds_is_a_clear_error(tmp_path: Path, btc_candles: pd.DataFrame) -> None:
    settings = search_settings(tmp_path, folds=6, fold_validation_candles=400)
    with pytest.raises(TuneError, match=r"btc: .* leave -?\d+ for the first fold's training window"):
        prepare_tuning_data(btc_candles.iloc[-3000:].reset_index(drop=True), settings, "btc")


@pytest.mark.parametrize(("flags", "message"), [
    (["--objective", "profit"], r"invalid value for tune\.objective: 'profit'"),
    (["--trials", "0"], r"invalid value for tune\.n_trials: 0"),
    (["--folds", "6", "--fold-validation-candles", "400"], r"leave -?\d+ for the first fold's training window"),
    (["--backend", "cluster"], r"invalid value for compute\.backend: 'cluster'"),
])
def test_bad_flags_fail_with_one_line(in_tmp: Path, flags: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["tune", "--config", str(write_config(in_tmp)), "--data", str(SAMPLE),
                                      "--no-progress", *flags])
    assert isinstance(result.exception, UserError), result.output
    assert re.search(message, str(result.exception)), str(result.exception)
    assert not (in_tmp / "tune" / "trials.csv").exists()


def test_a_bad_search_space_names_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[tune.space]\nlearning_rate = [0.0, 0.001]\ngamma = [0.9, 1.5]\n")
    with pytest.raises(ConfigError) as error:
        load_settings(bad)
    assert "tune.space.learning_rate" in str(error.value) and "a log range needs low > 0" in str(error.value)
    assert "tune.space.gamma" in str(error.value) and "1.5" in str(error.value)


def test_a_trial_with_seeds_scores_the_mean_over_them_and_records_their_range(tmp_path: Path) -> None:
    settings = search_settings(tmp_path, n_trials=1, seeds=2, startup_trials=1)
    backend = LocalBackend(1)
    try:
        result = tune(settings, backend, board=Board("t"))
    finally:
        backend.close()
    (outcome,) = result.outcomes.values()
    assert outcome.state == "complete" and len(outcome.seed_scores) == 2
    by_fold: dict[int, list[float]] = {}
    for metrics in outcome.fold_metrics:
        by_fold.setdefault(metrics["fold"], []).append(metrics["total_return"])
    assert {m["model"] for m in outcome.fold_metrics} == {"ppo#1", "ppo#2"}
    assert outcome.fold_scores == pytest.approx([sum(v) / 2 for v in by_fold.values()])
    row = pd.read_csv(settings.tune.out_dir / "trials.csv").iloc[0]
    assert (row["seeds"], row["seed_min"], row["seed_max"]) == (2, min(outcome.seed_scores), max(outcome.seed_scores))
    assert row["mean_timing"] == pytest.approx(sum(m["timing"] for m in outcome.fold_metrics) / 4)
    assert {"mean_net_exposure", "mean_fees_to_capital", "mean_funding_to_capital", "mean_turnover",
            "mean_n_trades"} <= set(row.index)
