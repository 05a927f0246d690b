"""The promotion gate: the holdout is the most recent slice and unseen in training; the
verdict needs the candidate to beat both the incumbent and flat by more than the margin."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from config.settings import EnvSettings, RetrainSettings, RiskSettings
from strategies.specs import build_strategy
from tests.conftest import PREFIX
from trainer.evaluation.backtest import EvaluationSpec, make_env, run_backtest
from trainer.evaluation.metrics import Metrics, compute_metrics
from trainer.retrain.gate import RetrainDataError, gate, holdout_split, metric_value, score_holdout


@pytest.fixture(scope="module")
def candles(btc_candles: pd.DataFrame) -> pd.DataFrame:
    return btc_candles.iloc[:1500].reset_index(drop=True)


def test_holdout_is_the_most_recent_slice_and_train_ends_before_it(candles: pd.DataFrame) -> None:
    split = holdout_split(candles, prefix=PREFIX, retrain=RetrainSettings(holdout_fraction=0.25), source="x")
    times = candles["open_time_ms"]
    n_holdout = round((1500 - PREFIX) * 0.25)
    assert split.holdout.traded["open_time_ms"].tolist() == times.iloc[-n_holdout:].tolist()
    assert split.train.traded["open_time_ms"].tolist() == times.iloc[PREFIX:-n_holdout].tolist()
    # the holdout's history is the end of the training window: seen as features, never traded twice
    assert split.holdout.frame.iloc[:PREFIX].equals(split.train.frame.iloc[-PREFIX:].reset_index(drop=True))
    assert split.ranges()["train"]["end_ms"] < split.ranges()["holdout"]["start_ms"]


def test_holdout_candles_and_max_train_candles_size_the_slices(candles: pd.DataFrame) -> None:
    retrain = RetrainSettings(holdout_candles=100, min_train_candles=300, max_train_candles=400)
    split = holdout_split(candles, prefix=PREFIX, retrain=retrain, source="x")
    assert (len(split.holdout.traded), len(split.train.traded)) == (100, 400)
    assert split.train.traded["open_time_ms"].iloc[-1] == candles["open_time_ms"].iloc[-101]  # adjacent


def test_too_few_candles_name_every_part_of_the_need(candles: pd.DataFrame) -> None:
    retrain = RetrainSettings(holdout_candles=100, min_train_candles=500)
    with pytest.raises(RetrainDataError, match=rf"ledger BTC: 700 candles is too few to retrain: need {PREFIX} warm-up "
                                               r"\+ 500 training \(retrain.min_train_candles\) \+ 100 holdout "
                                               rf"candles = {PREFIX + 600}"):
        holdout_split(candles.iloc[:700], prefix=PREFIX, retrain=retrain, source="ledger BTC")


def test_scores_are_the_backtest_of_each_strategy_on_the_holdout(candles: pd.DataFrame) -> None:
    split = holdout_split(candles, prefix=PREFIX, retrain=RetrainSettings(), source="x")
    risk = RiskSettings(max_drawdown=0.01)
    strategies = [build_strategy("sma:fast=5,slow=20"), build_strategy("flat")]
    scored = score_holdout(strategies, split.holdout, EvaluationSpec(EnvSettings(), risk))
    alone = run_backtest(strategies[0], make_env(split.holdout.frame, EnvSettings()), PREFIX, risk)
    assert scored[0] == alone.metrics
    assert scored[0].n_steps == len(split.holdout.traded) - 1
    assert (scored[1].total_return, scored[1].sharpe) == (0.0, 0.0)


def _metrics(sharpe: float | None) -> Metrics:
    return replace(compute_metrics([100.0] * 11, [0] * 10, [], 0.0, 60_000), sharpe=sharpe)


def test_metric_value_is_the_mean_over_markets_and_undefined_if_any_is() -> None:
    assert metric_value([_metrics(1.0), _metrics(3.0)], "sharpe") == 2.0
    assert metric_value([_metrics(1.0), _metrics(None)], "sharpe") is None


@pytest.mark.parametrize(
    ("candidate", "incumbent", "flat", "margin", "promote", "reason"),
    [
        (2.0, 1.0, 0.0, 0.0, True, "beats both"),
        (1.0, 1.0, 0.0, 0.0, False, "does not beat incumbent v0001"),  # a tie keeps the incumbent
        (1.5, 1.0, 0.0, 0.5, False, "does not beat incumbent v0001"),  # not by more than the margin
        (1.6, 1.0, 0.0, 0.5, True, "beats both"),
        (-0.5, -1.0, 0.0, 0.0, False, "does not beat flat"),  # beating a losing incumbent is not enough
        (-2.0, -1.0, 0.0, 0.0, False, "does not beat incumbent v0001 and flat"),
        (None, 1.0, 0.0, 0.0, False, "sharpe is undefined on the holdout for candidate"),
        (2.0, None, 0.0, 0.0, False, "undefined on the holdout for incumbent v0001"),
    ],
)
def test_gate_promotes_only_a_candidate_beating_incumbent_and_flat_by_the_margin(
        candidate: float | None, incumbent: float | None, flat: float, margin: float, promote: bool,
        reason: str) -> None:
    decision = gate(candidate, incumbent, flat, metric="sharpe", margin=margin, incumbent_label="v0001")
    assert decision.promote is promote
    assert reason in decision.reason
    assert (decision.candidate, decision.incumbent, decision.flat) == (candidate, incumbent, flat)
