"""The tune report on its own: a study built trial by trial (no training), and the four
files written from it."""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path

import optuna
import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution

from config.settings import Settings, TuneSettings, load_settings
from tests.conftest import PREFIX
from trainer.evaluation.walk_forward import make_folds
from trainer.tuning.folds import FoldPlan, TuningData
from trainer.tuning.report import param_importance, trials_frame, write_best_config, write_tune_outputs

DISTRIBUTIONS = {"learning_rate": FloatDistribution(1e-5, 1e-3, log=True),
                 "net_arch": CategoricalDistribution(["64x64", "256x256"])}


def study_of(values: list[tuple[str, float | None, dict]]) -> optuna.Study:
    """Trials in order, each ``(state, value, params)``, with the user attributes a search records."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="t", direction="maximize")
    states = {"complete": optuna.trial.TrialState.COMPLETE, "pruned": optuna.trial.TrialState.PRUNED,
              "failed": optuna.trial.TrialState.FAIL}
    for i, (state, value, params) in enumerate(values):
        folds = [0.01 * (i + 1), -0.02] if state == "complete" else [0.01 * (i + 1)]
        study.add_trial(optuna.trial.create_trial(
            state=states[state], value=value if state == "complete" else None, params=params,
            distributions=DISTRIBUTIONS, intermediate_values={k: v for k, v in enumerate(folds)},
            user_attrs={"fold_scores": folds, "duration_s": 1.5 + i,
                        "error": "Traceback ...\nValueError: boom" if state == "failed" else "",
                        "fold_metrics": [{"fold": 1, "total_return": folds[0]}]},
        ))
    return study


TRIALS = [
    ("complete", 0.01, {"learning_rate": 1e-4, "net_arch": "64x64"}),
    ("pruned", None, {"learning_rate": 5e-4, "net_arch": "256x256"}),
    ("complete", 0.05, {"learning_rate": 2e-5, "net_arch": "256x256"}),
    ("failed", None, {"learning_rate": 3e-4, "net_arch": "64x64"}),
    ("complete", -0.02, {"learning_rate": 9e-4, "net_arch": "64x64"}),
]


def test_trials_frame_has_one_row_per_trial_with_state_scores_params_and_error() -> None:
    frame = trials_frame(study_of(TRIALS))
    assert frame["state"].tolist() == ["complete", "pruned", "complete", "failed", "complete"]
    assert frame["value"].tolist()[::2] == [0.01, 0.05, -0.02] and math.isnan(frame["value"][1])
    assert frame["last_reported"].tolist()[:2] == [-0.02, 0.02]  # the last fold each reached
    assert frame["folds_run"].tolist() == [2, 1, 2, 1, 2]
    assert frame.loc[2, ["fold_1", "fold_2", "param_learning_rate", "param_net_arch"]].tolist() == [
        0.03, -0.02, 2e-5, "256x256"]
    assert frame["error"].tolist()[3] == "ValueError: boom" and frame["error"].tolist()[0] == ""


def test_importance_needs_two_completed_trials_with_different_scores() -> None:
    assert param_importance(study_of(TRIALS[:2])) == {}
    assert param_importance(study_of([TRIALS[0], ("complete", 0.01, TRIALS[2][2])])) == {}
    importance = param_importance(study_of(TRIALS))
    assert set(importance) == {"learning_rate", "net_arch"} and all(v >= 0 for v in importance.values())


@pytest.mark.parametrize("profile", ["default", "seed"])
def test_best_config_holds_the_profile_and_only_what_differs_from_its_defaults(tmp_path: Path, profile: str) -> None:
    settings = load_settings(None, profile=profile, train={"learning_rate": 2e-5, "net_arch": (256, 256),
                                                            "resume": "x.zip"},
                             env={"lookback_window": 30, "reward": {"fee_multiplier": 3.0}})
    path = write_best_config(settings, tmp_path / "best.toml", header="best trial 2")
    text = path.read_text()
    assert text.startswith("# best trial 2\n# use with: shadow train --config best.toml\n")
    assert tomllib.loads(text) == {"profile": profile, "train": {"learning_rate": 2e-5, "net_arch": [256, 256]},
                                   "env": {"lookback_window": 30, "reward": {"fee_multiplier": 3.0}}}
    # resume, a run's own checkpoint, is left out; loading it gives the trial's settings exactly
    assert load_settings(path).model_dump(include={"train", "env"}) == settings.model_copy(
        update={"train": settings.train.model_copy(update={"resume": None})}).model_dump(include={"train", "env"})


def test_the_four_files_describe_the_search(tmp_path: Path, btc_candles: pd.DataFrame) -> None:
    candles = btc_candles.iloc[:1500].reset_index(drop=True)
    plan = FoldPlan(train=600, validation=300, folds=2)
    data = TuningData(candles, plan, make_folds(len(candles), train=600, test=300, max_folds=2, warmup=PREFIX),
                      "btc.csv.gz", {"start_ms": 1, "end_ms": 2, "n_candles": 3})
    settings = Settings(tune=TuneSettings(out_dir=tmp_path))
    paths = write_tune_outputs(study_of(TRIALS), settings, data)
    assert set(paths) == {"trials", "summary", "report", "best_config"}
    summary = json.loads(paths["summary"].read_text())
    assert summary["trials"] == {"complete": 3, "pruned": 1, "failed": 1}
    assert summary["best"]["number"] == 2 and summary["best"]["value"] == 0.05
    assert summary["best"]["params"] == {"learning_rate": 2e-5, "net_arch": "256x256"}
    assert summary["best"]["fold_metrics"] == [{"fold": 1, "total_return": 0.03}]
    assert [f["fold"] for f in summary["data"]["folds"]] == [1, 2]
    assert summary["data"]["held_out_test"]["n_candles"] == 3
    assert pd.read_csv(paths["trials"])["number"].tolist() == [0, 1, 2, 3, 4]
    assert paths["report"].stat().st_size > 20_000
    best = tomllib.loads(paths["best_config"].read_text())
    assert best["train"] == {"learning_rate": 2e-5, "net_arch": [256, 256]}


def test_without_a_completed_trial_there_is_no_best_and_no_best_config(tmp_path: Path,
                                                                       btc_candles: pd.DataFrame) -> None:
    candles = btc_candles.iloc[:1500].reset_index(drop=True)
    data = TuningData(candles, FoldPlan(600, 300, 1), make_folds(1500, train=600, test=300, max_folds=1, warmup=PREFIX),
                      "x", {})
    paths = write_tune_outputs(study_of([TRIALS[1], TRIALS[3]]), Settings(tune=TuneSettings(out_dir=tmp_path)), data)
    assert "best_config" not in paths
    summary = json.loads(paths["summary"].read_text())
    assert summary["best"] is None and summary["importance"] == {}
    assert summary["trials"] == {"complete": 0, "pruned": 1, "failed": 1}


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_scores_become_null(value: float, tmp_path: Path, btc_candles: pd.DataFrame) -> None:
    candles = btc_candles.iloc[:1500].reset_index(drop=True)
    data = TuningData(candles, FoldPlan(600, 300, 1), make_folds(1500, train=600, test=300, max_folds=1, warmup=PREFIX),
                      "x", {})
    study = study_of([("complete", 0.02, TRIALS[0][2])])
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, value=0.01,
                                              params=TRIALS[2][2], distributions=DISTRIBUTIONS,
                                              user_attrs={"fold_metrics": [{"sharpe": value}]}))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, value=0.03,
                                              params=TRIALS[4][2], distributions=DISTRIBUTIONS,
                                              user_attrs={"fold_metrics": [{"sharpe": value}]}))
    paths = write_tune_outputs(study, Settings(tune=TuneSettings(out_dir=tmp_path)), data)
    text = paths["summary"].read_text()  # json.loads would accept NaN: check the text as well
    assert json.loads(text)["best"]["fold_metrics"] == [{"sharpe": None}]
    assert "NaN" not in text and "Infinity" not in text
