"""The signal check finds a signal where there is one, none in noise, and never looks ahead."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from config.settings import EnvSettings
from env.candles import candles_to_seed_csv, normalize_candles
from env.features import WARMUP_CANDLES
from tests.conftest import make_candles
from tests.trainer.trainer_fakes import replay_bybit
from trainer.evaluation.signal_check import (
    SignalCheckError,
    SignalData,
    SignalSpec,
    Verdict,
    check_signal,
    fit_fold,
    fit_rows,
    plan_signal,
    round_trip_cost_bps,
    scored_rows,
    signal_document,
    signal_folds,
)

MINUTE_MS = 60_000
N_CANDLES = 6_000


def candles_from_returns(log_returns: np.ndarray) -> pd.DataFrame:
    return normalize_candles(make_candles(100.0 * np.exp(np.cumsum(log_returns))))


def momentum_returns(phi: float, sigma_bps: float, seed: int, n: int = N_CANDLES) -> np.ndarray:
    """An AR(1) market: the next return is ``phi`` x this candle's return (the ``close_ret``
    feature) plus noise."""
    noise = np.random.default_rng(seed).normal(0.0, sigma_bps / 1e4, n)
    returns = np.zeros(n)
    for t in range(1, n):
        returns[t] = phi * returns[t - 1] + noise[t]
    return returns


def run_check(candles: pd.DataFrame, spec: SignalSpec | None = None, env: EnvSettings | None = None):
    spec = spec or SignalSpec()
    plan = plan_signal(candles, {"1m": MINUTE_MS}, spec, label="synthetic")
    return check_signal(plan, env or EnvSettings())[0]


@pytest.mark.parametrize("model", ["ridge", "gbm"])
def test_a_predictable_market_shows_a_strong_ic_and_an_edge_that_pays(model):
    result = run_check(candles_from_returns(momentum_returns(0.5, 30.0, seed=1)), SignalSpec(model=model))
    one_ahead = result.horizons[0]
    assert one_ahead.horizon == 1
    assert min(one_ahead.ics) > 0.3 and one_ahead.ic_z > 10  # the AR(1) correlation is 0.5
    assert one_ahead.hit_rate > 0.6
    # E[sign(r_t) x r_t+1] = 0.5 x E|r_t| = 0.5 x 34.6 x sqrt(2/pi) = 13.8 bps, beyond the 8 bps round trip
    assert 10.0 < one_ahead.edge_bps < 17.0 and one_ahead.timing_bps > round_trip_cost_bps(EnvSettings())
    assert abs(one_ahead.exposure) < 0.1  # long and short alike: all of the edge is timing
    # Over k candles the expected move is r_t x (phi + ... + phi^k): longer horizons earn more per trade.
    assert result.best.horizon > 1 and result.best.timing_bps > one_ahead.timing_bps
    assert result.verdict is Verdict.LEARNABLE
    assert "there is something to learn at 1m" in result.verdict_line()


def test_a_signal_smaller_than_the_cost_is_found_but_does_not_pay():
    result = run_check(candles_from_returns(momentum_returns(0.3, 10.0, seed=2)))
    assert result.horizons[0].ranks and 0 < result.horizons[0].timing_bps < 8.0
    assert result.verdict is Verdict.NO_PAY
    assert "nothing here pays for trading at 1m" in result.verdict_line()
    # The same signal without costs pays.
    assert run_check(candles_from_returns(momentum_returns(0.3, 10.0, seed=2)),
                     env=EnvSettings(commission=0.0)).verdict is Verdict.LEARNABLE


@pytest.mark.parametrize("seed", [3, 4])
def test_a_random_walk_has_nothing_to_learn(seed):
    result = run_check(candles_from_returns(np.random.default_rng(seed).normal(0.0, 20e-4, N_CANDLES)))
    one_ahead = result.horizons[0]
    assert abs(one_ahead.ic_mean) < 0.05 and abs(one_ahead.timing_bps) < 1.0
    assert 0.45 < one_ahead.hit_rate < 0.55
    for horizon in result.horizons:
        assert abs(horizon.ic_z) < 2.0 and not horizon.ranks
    assert result.verdict is Verdict.NOTHING
    assert "nothing to learn at 1m" in result.verdict_line()


def test_shuffling_the_returns_destroys_the_signal():
    returns = momentum_returns(0.5, 30.0, seed=1)
    shuffled = np.random.default_rng(5).permutation(returns)  # same moves, no link from one to the next
    result = run_check(candles_from_returns(shuffled))
    assert abs(result.horizons[0].ic_mean) < 0.05 and result.verdict is Verdict.NOTHING


@pytest.mark.parametrize("model", ["ridge", "gbm"])
def test_nothing_after_the_training_window_enters_a_fit(btc_candles, model):
    candles = btc_candles.iloc[:4_000].reset_index(drop=True)
    horizon = 5
    fold = signal_folds(len(candles), SignalSpec(horizons=(horizon,), folds=3), label="btc")[1]
    rows = fit_rows(fold, horizon, WARMUP_CANDLES)
    assert rows[0] == fold.train_start > WARMUP_CANDLES
    assert rows[-1] + horizon == fold.train_end - 1  # the last label ends inside the window
    assert scored_rows(fold)[0] == fold.train_end
    probe = SignalData(candles, 1).x(scored_rows(fold))

    def fitted_on(frame: pd.DataFrame) -> np.ndarray:
        return fit_fold(SignalData(frame, 1), fold, horizon, model).predict(probe)

    another_future = candles.copy()
    another_future.loc[fold.train_end:, ["open", "high", "low", "close"]] *= 1.3  # a jump, then other moves
    another_future.loc[fold.train_end:, "volume"] *= 5.0
    np.testing.assert_array_equal(fitted_on(another_future), fitted_on(candles))
    # The test can tell: the last candle of the training window does reach the fit.
    another_past = candles.copy()
    another_past.loc[fold.train_end - 1, ["high", "close"]] *= 1.01
    assert not np.array_equal(fitted_on(another_past), fitted_on(candles))


def test_folds_test_the_second_half_back_to_back():
    spec = SignalSpec(horizons=(1, 15), folds=4)
    folds = signal_folds(10_000, spec, label="x")
    assert len(folds) == 4
    assert folds[0].train_end == WARMUP_CANDLES + (10_000 - WARMUP_CANDLES - 15) // 2
    assert all(a.test_end == b.train_end for a, b in itertools.pairwise(folds))
    assert folds[-1].test_end + 15 <= 10_000  # the last test row's 15-candle return exists


def test_lookback_gives_the_policys_window():
    candles = candles_from_returns(momentum_returns(0.5, 30.0, seed=1, n=600))
    data = SignalData(candles, lookback=3)
    assert data.warmup == WARMUP_CANDLES + 2
    x = data.x(np.array([300, 301]))
    features = SignalData(candles, lookback=1)
    np.testing.assert_array_equal(x[0], features.x(np.array([298, 299, 300])).ravel())
    assert x.shape == (2, 45)


def test_too_few_candles_is_one_clear_error(btc_candles):
    with pytest.raises(SignalCheckError, match=r"BTC 1h: 504 candles are too few for 5 fold\(s\) at horizons up to "
                                                r"60: need at least"):
        plan_signal(btc_candles, {"1m": MINUTE_MS, "1h": 60 * MINUTE_MS}, SignalSpec(horizons=(1, 60)), label="BTC")


@pytest.mark.parametrize("kwargs, message", [
    ({"horizons": (0,)}, "each is a number of candles >= 1"),
    ({"folds": 0}, "folds=0: must be at least 1"),
    ({"lookback": 0}, "lookback=0: must be at least 1"),
    ({"model": "svm"}, "unknown model 'svm'; use one of ridge, gbm"),
])
def test_bad_spec(kwargs, message):
    with pytest.raises(SignalCheckError, match=message):
        SignalSpec(**kwargs)


def test_round_trip_cost_counts_both_fills():
    assert round_trip_cost_bps(EnvSettings()) == pytest.approx(8.0)
    assert round_trip_cost_bps(EnvSettings(commission=0.00055, slippage_bps=2.0)) == pytest.approx(15.0)


def test_document_holds_every_fold_and_the_verdict():
    spec = SignalSpec(horizons=(1, 3), folds=2)
    result = run_check(candles_from_returns(momentum_returns(0.5, 30.0, seed=1, n=2_000)), spec)
    document = signal_document([result], spec, EnvSettings(), {"synthetic": "generated"})
    assert document["costs"]["round_trip_bps"] == pytest.approx(8.0)
    entry = document["results"][0]
    assert entry["verdict"] == "something to learn" and entry["best_horizon"] == 3
    assert [h["horizon"] for h in entry["horizons"]] == [1, 3]
    folds = entry["horizons"][0]["folds"]
    assert len(folds) == 2 and folds[0]["test"]["start"] > folds[0]["train"]["end"]
    assert sum(f["n_test"] for f in folds) == entry["horizons"][0]["n_test"]


async def test_symbols_come_from_bybit_through_the_candle_cache(tmp_path: Path, monkeypatch, btc_candles):
    """``--symbols`` without ``--data`` reads the candle cache, fetching what it lacks as
    ``shadow train`` does; the result equals the check of the same candles from a file."""
    from typer.testing import CliRunner

    from bot.cli import app

    monkeypatch.chdir(tmp_path)
    history, wanted = 3_010, 3_000
    flags = ["evaluate", "--signal", "--interval", "1m,5m", "--horizons", "1,2", "--folds", "2"]
    async with replay_bybit(btc_candles.iloc[:history + 10], history=history) as server:
        result = await asyncio.to_thread(
            CliRunner().invoke, app, [*flags, "--symbols", "BTCUSDT", "--out", "cached"],
            env={"SHADOW_EXCHANGE__REST_URL": server.rest_url, "SHADOW_TRAIN__NUM_CANDLES": str(wanted)})
    assert result.exit_code == 0, result.output
    assert (tmp_path / "data/cache/bybit_linear_BTCUSDT_1m.csv").is_file()
    candles_to_seed_csv(btc_candles.iloc[history - wanted:history], tmp_path / "same.csv")
    result = CliRunner().invoke(app, [*flags, "--data", "same.csv", "--symbol", "BTCUSDT", "--out", "file"])
    assert result.exit_code == 0, result.output
    cached, from_file = (json.loads((tmp_path / d / "signal.json").read_text()) for d in ("cached", "file"))
    assert cached["sources"] == {"BTCUSDT": "bybit linear BTC/USDT:USDT 1m"}
    assert cached["results"] == from_file["results"] and cached["results"][0]["n_candles"] == wanted
