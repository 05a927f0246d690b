"""One evaluation spec: the same model on the same candles gets the same score from every
scorer (``shadow backtest``, walk-forward, a tuning trial, multi-symbol validation, the
retraining gate), and the spec's risk guard applies to the baselines too."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

from bot.cli import main
from config.settings import EnvSettings, EvaluationSettings, RetrainSettings, RiskSettings, Settings, TuneSettings
from env.candles import candles_to_seed_csv
from strategies.baselines import BuyAndHold
from strategies.model_metadata import metadata_path
from strategies.ppo import PPOStrategy
from tests.conftest import PREFIX as WARMUP
from trainer.evaluation.backtest import EvaluationSpec, make_env, run_backtest
from trainer.evaluation.walk_forward import walk_forward
from trainer.retrain.gate import holdout_split, score_holdout
from trainer.training import fold_trainer
from trainer.training.multi_symbol import validation_return
from trainer.tuning.folds import FoldPlan
from trainer.tuning.trial import PrunerConfig, TrialJob, run_trial

TRAIN, TEST = 1000, 1500
START = 9000  # 2023-03-07 06:00 UTC: BTC falls 2.6% from a peak within the scored slice
RISK = RiskSettings(max_drawdown=0.02, daily_loss_limit=0.01)


@pytest.fixture(scope="module")
def candles(btc_candles: pd.DataFrame) -> pd.DataFrame:
    """A training window, then the scored slice: its warm-up, TEST decisions and one candle to mark."""
    return btc_candles.iloc[START - TRAIN: START + TEST + 1].reset_index(drop=True)


@pytest.fixture(scope="module")
def scored(candles: pd.DataFrame) -> pd.DataFrame:
    """Exactly what every scorer sees: the warm-up before the slice and the slice itself."""
    return candles.iloc[TRAIN - WARMUP:].reset_index(drop=True)


class FixedModel:
    """A "trainer" that hands back a prepared model: scoring is all that is compared."""

    def __init__(self, model: Path, *args: object, **kwargs: object) -> None:
        self.model = model

    def __call__(self, train: pd.DataFrame, *, seed: int, model_path: Path, env_settings: EnvSettings,
                 extra: dict) -> Path:
        model_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.model, model_path)
        shutil.copy(metadata_path(self.model), metadata_path(model_path))
        return model_path


def test_every_scorer_gives_the_same_number(candles: pd.DataFrame, scored: pd.DataFrame, decisive_ppo_model: Path,
                                            tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(risk=RISK, tune=TuneSettings(objective="return"))
    spec = EvaluationSpec.from_settings(settings)
    assert spec == EvaluationSpec(settings.env, RISK)  # the documented default: the live risk guard
    model = PPOStrategy.load(decisive_ppo_model, lookback_window=20)
    scores: dict[str, float] = {}

    (direct,) = spec.compare([model], scored)
    assert direct.risk_events, "the guard must act on this slice, or the test proves nothing"
    assert len(direct.actions) == TEST or direct.terminated
    unguarded = run_backtest(model, make_env(scored, settings.env)).metrics.total_return
    assert unguarded != direct.metrics.total_return

    data = tmp_path / "slice.csv"
    candles_to_seed_csv(scored, data)
    config = tmp_path / "shadow.toml"
    config.write_text(f"[risk]\nmax_drawdown = {RISK.max_drawdown}\ndaily_loss_limit = {RISK.daily_loss_limit}\n")
    monkeypatch.setattr(sys, "argv", ["shadow", "backtest", "-s", f"ppo:{decisive_ppo_model}", "--candles", str(data),
                                      "--config", str(config), "--out", str(tmp_path / "bt")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert not exit_info.value.code, capsys.readouterr().err
    metrics = json.loads((tmp_path / "bt" / "metrics.json").read_text())
    assert metrics["risk_guard"] == RISK.model_dump()
    scores["shadow backtest"] = metrics["results"][f"ppo:{decisive_ppo_model}"]["total_return"]

    walked = walk_forward(
        candles, train_fn=FixedModel(decisive_ppo_model), spec=spec, baselines=[],
        load_model=lambda path: PPOStrategy.load(path, lookback_window=20), train=TRAIN, test=TEST, max_folds=1,
        out_dir=tmp_path / "wf")
    scores["walk-forward"] = walked.folds[0].results["ppo"].metrics.total_return

    monkeypatch.setattr(fold_trainer, "PPOTrainer", lambda *a, **k: FixedModel(decisive_ppo_model))
    trial = run_trial(TrialJob(0, {}, settings, FoldPlan(TRAIN, TEST, 1), "BTCUSDT", PrunerConfig(100, 0)), candles)
    assert trial.state == "complete", trial.error
    scores["tune"] = trial.fold_scores[0]

    scores["multi-symbol validation"] = validation_return(decisive_ppo_model, scored, settings)

    split = holdout_split(candles, prefix=WARMUP, retrain=RetrainSettings(holdout_candles=TEST + 1), source="x")
    assert split.holdout.frame.equals(scored)
    scores["retraining gate"] = score_holdout([model], split.holdout, spec)[0].total_return

    assert scores == dict.fromkeys(scores, direct.metrics.total_return)


def test_the_spec_guards_the_baselines_too_and_can_be_switched_off(scored: pd.DataFrame) -> None:
    guarded = EvaluationSpec.from_settings(Settings(risk=RISK))
    unguarded = EvaluationSpec.from_settings(Settings(risk=RISK, evaluation=EvaluationSettings(risk_guard=False)))
    assert unguarded.risk is None
    (hold,) = guarded.compare([BuyAndHold()], scored)
    (free,) = unguarded.compare([BuyAndHold()], scored)
    assert hold.risk_events and 3 in hold.actions.tolist()  # the guard closed buy & hold's position
    assert free.risk_events == [] and 3 not in free.actions.tolist()
    assert hold.metrics.total_return != free.metrics.total_return
