"""Is there anything to learn? How much of the next return the policy's features predict,
out of sample, against what a round trip costs.

Before spending compute on RL, fit a simple supervised model (scikit-learn) from the
observation features at candle ``t`` (:mod:`env.features`, the 15 the policy sees; optionally
the last ``lookback`` rows of them, as in its observation window) to the return over the next
``k`` candles, ``close[t+k] / close[t] - 1``, and score it on candles it never saw. The folds
are the walk-forward's (:func:`trainer.evaluation.walk_forward.make_folds`, rolling, in time order)::

    fold j:  fit on candles [s, s + train)       test decisions [s + train, s + train + test)

Nothing after the training window enters a fit: features are causal (row ``t`` uses candles
``<= t``), and a training row is used only if its label is known inside the window
(``t + k < s + train``), so the last ``k`` rows before the test slice are purged. Features
are computed once on the whole series (causal, so a row equals what the daemon would build);
the first ``WARMUP_CANDLES + lookback - 1`` candles are feature warm-up and never a row.

Per horizon ``k`` the check reports, over the test rows:

- **IC**: Spearman rank correlation of prediction and realised return, per fold (mean, range);
- **hit rate**: share of trades whose side (the prediction's sign) matched the move;
- **edge**: mean return in bps of trading the prediction's sign for ``k`` candles, before costs;
- **timing**: edge minus net exposure x the market's mean move (timing = return - net
  exposure x buy & hold): a model that is always long on a rising market has edge, no timing;
- against **cost**: one round trip, ``2 x commission + 2 x slippage`` from ``[env]``.

A trade costs one round trip whatever ``k`` is. The verdict per interval: a horizon *ranks*
the returns if its IC is positive in every fold and significant over all test rows
(:data:`MIN_IC_Z`); there is **something to learn** if a horizon ranks and its timing beats
a round trip, it **does not pay** if one ranks but none pays, and otherwise there is
**nothing to learn**.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from scipy.stats import spearmanr
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from config.errors import UserError
from config.settings import EnvSettings
from env.candles import format_ms, resample_candles
from env.features import N_FEATURES, WARMUP_CANDLES, compute_features
from trainer.evaluation.walk_forward import Fold, make_folds

BPS = 10_000.0
DEFAULT_HORIZONS: tuple[int, ...] = (1, 5, 15)
DEFAULT_FOLDS = 5
MIN_TRAIN_ROWS = 100
"""Fewest rows a fold's fit may have (after the warm-up and the purge)."""
MIN_TEST_ROWS = 20
"""Fewest test rows per fold: fewer make a rank correlation meaningless."""
ONE_THREAD = 1
"""Threads per fit and prediction: they are small, and OpenMP threads spinning on the cores the
daemon and the trainer share made a gradient-boosting fit 30x slower, not faster."""
MIN_IC_Z = 2.0
"""A model ranks returns only if its IC is this many standard errors above zero (about a
2% chance for a model that ranks nothing) and positive in every fold."""

FloatArray = npt.NDArray[np.float64]


class SignalCheckError(UserError, ValueError):
    """Settings or data the signal check cannot work with (too few candles, bad horizon)."""


class Regressor(Protocol):
    """The part of a scikit-learn regressor the check uses."""

    def fit(self, x: FloatArray, y: FloatArray) -> Any: ...

    def predict(self, x: FloatArray) -> FloatArray: ...


def _ridge() -> Regressor:
    # Standardised features; the penalty is chosen by efficient leave-one-out inside the fit.
    model: Regressor = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 5, 15)))
    return model


def _gbm() -> Regressor:
    # Fixed size and no early stopping (its validation split would be a random one): deterministic.
    model: Regressor = HistGradientBoostingRegressor(max_iter=100, learning_rate=0.05, max_leaf_nodes=15,
                                                     early_stopping=False, random_state=0)
    return model


MODELS: dict[str, Callable[[], Regressor]] = {"ridge": _ridge, "gbm": _gbm}
"""``ridge``: linear (scikit-learn ``RidgeCV`` on standardised features); ``gbm``: gradient-boosted
trees (``HistGradientBoostingRegressor``), which can find non-linear and interaction effects."""


@dataclass(frozen=True)
class SignalSpec:
    """What to measure.

    Args:
        horizons: ``k`` values: candles ahead whose return is predicted.
        folds: walk-forward folds; their test slices cover the second half of the candles.
        lookback: feature rows per sample (1: the current candle's; the ``[env]``
            ``lookback_window`` gives the policy's whole observation window).
        model: a key of :data:`MODELS`.
    """

    horizons: tuple[int, ...] = DEFAULT_HORIZONS
    folds: int = DEFAULT_FOLDS
    lookback: int = 1
    model: str = "ridge"

    def __post_init__(self) -> None:
        if not self.horizons or min(self.horizons) < 1:
            raise SignalCheckError(f"signal check: horizons {list(self.horizons)}: each is a number of candles >= 1")
        if self.folds < 1:
            raise SignalCheckError(f"signal check: folds={self.folds}: must be at least 1")
        if self.lookback < 1:
            raise SignalCheckError(f"signal check: lookback={self.lookback}: must be at least 1 feature row")
        if self.model not in MODELS:
            raise SignalCheckError(f"signal check: unknown model {self.model!r}; use one of {', '.join(MODELS)}")

    @property
    def warmup(self) -> int:
        return sample_warmup(self.lookback)


def sample_warmup(lookback: int) -> int:
    """Candles before the first sample: the features' warm-up and the rest of the window
    (the env's first decision candle has the same index)."""
    return WARMUP_CANDLES + lookback - 1


def round_trip_cost_bps(env: EnvSettings) -> float:
    """What opening and closing one position costs, in bps of its notional."""
    return 2.0 * env.commission * BPS + 2.0 * env.slippage_bps


class SignalData:
    """Features and forward returns of one candle series, indexed by candle.

    Args:
        candles: validated candles, oldest first.
        lookback: feature rows per sample.
    """

    def __init__(self, candles: pd.DataFrame, lookback: int) -> None:
        self.times_ms: npt.NDArray[np.int64] = candles["open_time_ms"].to_numpy()
        self.close: FloatArray = candles["close"].to_numpy(dtype=np.float64)
        self.lookback = lookback
        self.warmup = sample_warmup(lookback)
        features = compute_features(candles)
        # windows[i] holds feature rows i .. i + lookback - 1, oldest first, as the observation does
        self._windows = sliding_window_view(features, (lookback, N_FEATURES))[:, 0]

    def x(self, rows: npt.NDArray[np.int64]) -> FloatArray:
        """Samples of candles ``rows``: their last ``lookback`` feature rows, flattened."""
        return self._windows[rows - self.lookback + 1].reshape(len(rows), -1)

    def forward_return(self, rows: npt.NDArray[np.int64], horizon: int) -> FloatArray:
        """``close[t + horizon] / close[t] - 1`` for every ``t`` in ``rows``."""
        return self.close[rows + horizon] / self.close[rows] - 1.0


def fit_rows(fold: Fold, horizon: int, warmup: int) -> npt.NDArray[np.int64]:
    """The candles a fold fits on: inside its training window, past the warm-up, and with
    their ``horizon``-ahead return known before the window ends (the purge)."""
    return np.arange(max(fold.train_start, warmup), fold.train_end - horizon, dtype=np.int64)


def scored_rows(fold: Fold) -> npt.NDArray[np.int64]:
    """The candles a fold is scored on: its test decisions."""
    return np.arange(fold.train_end, fold.test_end, dtype=np.int64)


def fit_fold(data: SignalData, fold: Fold, horizon: int, model: str) -> Regressor:
    """A fresh model fitted on the fold's training rows only (returns in bps)."""
    rows = fit_rows(fold, horizon, data.warmup)
    estimator = MODELS[model]()
    with threadpool_limits(limits=ONE_THREAD):
        estimator.fit(data.x(rows), BPS * data.forward_return(rows, horizon))
    return estimator


def signal_folds(n_candles: int, spec: SignalSpec, *, label: str) -> list[Fold]:
    """Walk-forward folds for ``n_candles`` candles: each training window holds the warm-up
    plus half of the candles that can be rows; ``spec.folds`` back-to-back test slices
    share the other half.

    Raises:
        SignalCheckError: too few candles for that many folds at the longest horizon.
    """
    horizon = max(spec.horizons)
    rows = n_candles - spec.warmup - horizon  # candles with features and every label
    first_train, test = rows // 2, (rows - rows // 2) // spec.folds
    if first_train - horizon < MIN_TRAIN_ROWS or test < MIN_TEST_ROWS:
        need = spec.warmup + horizon + max(2 * (MIN_TRAIN_ROWS + horizon), 2 * spec.folds * MIN_TEST_ROWS)
        raise SignalCheckError(
            f"{label}: {n_candles} candles are too few for {spec.folds} fold(s) at horizons up to {horizon}: need "
            f"at least {need} ({spec.warmup} of feature warm-up, then room for {MIN_TRAIN_ROWS} training and "
            f"{MIN_TEST_ROWS} test rows per fold); use longer data, a shorter interval or fewer folds"
        )
    # make_folds keeps one candle after the last test decision; the labels need `horizon`.
    return make_folds(n_candles - horizon + 1, train=spec.warmup + first_train, test=test,
                      max_folds=spec.folds, warmup=spec.warmup)


class _Scores:
    """Figures of predictions against realised returns (in bps), shared by a fold and a pool
    of folds."""

    predictions: FloatArray
    returns_bps: FloatArray

    @property
    def n_test(self) -> int:
        return len(self.returns_bps)

    @property
    def hit_rate(self) -> float | None:
        return hit_rate(self.predictions, self.returns_bps)

    @property
    def exposure(self) -> float:
        """Mean side traded: +1 always long, -1 always short, 0 balanced."""
        return float(np.mean(np.sign(self.predictions)))

    @property
    def edge_bps(self) -> float:
        """Mean return per trade of trading the prediction's sign, before costs."""
        traded = self.predictions != 0
        if not traded.any():
            return 0.0
        return float(np.mean(np.sign(self.predictions[traded]) * self.returns_bps[traded]))

    @property
    def long_bps(self) -> float:
        """Mean return per trade of being long every time (the market's drift)."""
        return float(np.mean(self.returns_bps))

    @property
    def timing_bps(self) -> float:
        """Edge that the net exposure to the market's drift does not explain."""
        return self.edge_bps - self.exposure * self.long_bps

    def figures(self) -> dict[str, Any]:
        return {"n_test": self.n_test, "hit_rate": self.hit_rate, "edge_bps": self.edge_bps,
                "timing_bps": self.timing_bps, "long_bps": self.long_bps, "exposure": self.exposure}


@dataclass(frozen=True)
class FoldScore(_Scores):
    """One fold's out-of-sample predictions and realised returns (bps) at one horizon."""

    fold: Fold
    n_train: int
    predictions: FloatArray
    returns_bps: FloatArray

    @property
    def ic(self) -> float:
        return rank_ic(self.predictions, self.returns_bps)


def score_fold(data: SignalData, fold: Fold, horizon: int, model: str) -> FoldScore:
    """Fit on the fold's past, predict its test rows, and keep both for scoring."""
    estimator = fit_fold(data, fold, horizon, model)
    rows = scored_rows(fold)
    with threadpool_limits(limits=ONE_THREAD):
        predictions = np.asarray(estimator.predict(data.x(rows)), dtype=np.float64)
    return FoldScore(fold, len(fit_rows(fold, horizon, data.warmup)), predictions,
                     BPS * data.forward_return(rows, horizon))


def rank_ic(predictions: FloatArray, returns: FloatArray) -> float:
    """Spearman correlation of predictions and realised returns; 0 when the model predicts
    one value for every row (it ranks nothing)."""
    if np.ptp(predictions) == 0 or np.ptp(returns) == 0:
        return 0.0
    return float(spearmanr(predictions, returns).statistic)


def hit_rate(predictions: FloatArray, returns: FloatArray) -> float | None:
    """Share of trades (non-zero prediction, non-zero move) on the right side; None without any."""
    traded = (predictions != 0) & (returns != 0)
    if not traded.any():
        return None
    return float(np.mean(np.sign(predictions[traded]) == np.sign(returns[traded])))


class HorizonResult(_Scores):
    """All folds at one horizon: IC per fold, the other figures pooled (every test row
    weighs the same)."""

    def __init__(self, horizon: int, folds: list[FoldScore]) -> None:
        self.horizon = horizon
        self.folds = folds
        self.predictions = np.concatenate([f.predictions for f in folds])
        self.returns_bps = np.concatenate([f.returns_bps for f in folds])
        self.ics = [f.ic for f in folds]

    @property
    def ic_mean(self) -> float:
        return float(np.mean(self.ics))

    @cached_property
    def ic_z(self) -> float:
        """How many standard errors the IC of all test rows together is from zero. ``k``-candle
        returns of consecutive rows overlap, so only every ``k``-th row counts as independent."""
        return rank_ic(self.predictions, self.returns_bps) * float(np.sqrt(self.n_test / self.horizon))

    @property
    def ranks(self) -> bool:
        """The model ranks the next returns: its IC is positive in every fold, and over all
        test rows it is at least :data:`MIN_IC_Z` standard errors above zero."""
        return min(self.ics) > 0 and self.ic_z >= MIN_IC_Z

    def summary(self) -> dict[str, Any]:
        return {"horizon": self.horizon, "ic_mean": self.ic_mean, "ic_min": min(self.ics), "ic_max": max(self.ics),
                "ic_z": self.ic_z, "ranks": self.ranks, **self.figures()}


class Verdict(StrEnum):
    """What the check found at one interval."""

    LEARNABLE = "something to learn"  # a horizon ranks returns and its timing beats a round trip
    NO_PAY = "does not pay"  # a horizon ranks returns (HorizonResult.ranks), but its timing is below the cost
    NOTHING = "nothing to learn"  # no horizon ranks returns


@dataclass(frozen=True)
class IntervalResult:
    """The check on one symbol at one candle interval."""

    label: str
    interval: str
    times_ms: npt.NDArray[np.int64]
    cost_bps: float
    horizons: list[HorizonResult]

    def pays(self, horizon: HorizonResult) -> bool:
        return horizon.ranks and horizon.timing_bps > self.cost_bps

    @property
    def best(self) -> HorizonResult:
        """The horizon the verdict speaks of: one that pays if any does, else one that ranks
        returns, else the one with the most timing per trade."""
        return max(self.horizons, key=lambda h: (self.pays(h), h.ranks, h.timing_bps))

    @property
    def verdict(self) -> Verdict:
        best = self.best
        if self.pays(best):
            return Verdict.LEARNABLE
        return Verdict.NO_PAY if best.ranks else Verdict.NOTHING

    def verdict_line(self) -> str:
        """The plain answer, e.g. "BTCUSDT 1m: predicts +0.3 bps per trade (timing +0.1 bps) 1 candle(s)
        ahead; a round trip costs 8.0 bps: nothing to learn at 1m (...)"."""
        best = self.best
        head = (f"{self.label} {self.interval}: predicts {_bps(best.edge_bps)} bps per trade (timing "
                f"{_bps(best.timing_bps)} bps) {best.horizon} candle(s) ahead; a round trip costs "
                f"{self.cost_bps:.1f} bps")
        positive = sum(ic > 0 for ic in best.ics)
        ic = f"IC {best.ic_mean:+.3f}, positive in {positive} of {len(best.ics)} folds, z {best.ic_z:+.1f}"
        verdict = self.verdict
        if verdict is Verdict.LEARNABLE:
            return f"{head}: there is something to learn at {self.interval} ({ic})"
        if verdict is Verdict.NO_PAY:
            return f"{head}: the features rank the next returns ({ic}), but nothing here pays for trading at " \
                   f"{self.interval}"
        return f"{head}: nothing to learn at {self.interval} ({ic})"

    def summary(self) -> dict[str, Any]:
        best = self.best
        return {
            "symbol": self.label, "interval": self.interval, "n_candles": len(self.times_ms),
            "first": format_ms(int(self.times_ms[0])), "last": format_ms(int(self.times_ms[-1])),
            "cost_bps": self.cost_bps, "verdict": self.verdict.value, "verdict_line": self.verdict_line(),
            "best_horizon": best.horizon,
            "horizons": [h.summary() | {"folds": [self._fold_summary(f) for f in h.folds]} for h in self.horizons],
        }

    def _fold_summary(self, score: FoldScore) -> dict[str, Any]:
        fold = score.fold
        return {"fold": fold.index + 1, "train": self._span(fold.train_start, fold.train_end),
                "test": self._span(fold.train_end, fold.test_end), "n_train": score.n_train, "ic": score.ic,
                **score.figures()}

    def _span(self, start: int, end: int) -> dict[str, str]:
        return {"start": format_ms(int(self.times_ms[start])), "end": format_ms(int(self.times_ms[end - 1]))}


@dataclass(frozen=True)
class SignalPlan:
    """One series resampled to every interval, with its folds: everything checked before
    any model is fitted."""

    label: str
    spec: SignalSpec
    series: dict[str, pd.DataFrame]
    folds: dict[str, list[Fold]]


def plan_signal(candles: pd.DataFrame, intervals: Mapping[str, int], spec: SignalSpec, *, label: str) -> SignalPlan:
    """Resample ``candles`` to every interval and lay out the folds.

    Args:
        candles: validated candles, oldest first, at the finest interval wanted or finer.
        intervals: name -> length in ms, e.g. ``{"1m": 60_000, "1h": 3_600_000}``.
        spec: horizons, folds, lookback and model.
        label: the series' name in messages and results (a symbol or a file name).

    Raises:
        CandleDataError: an interval that is not a whole multiple of the candles' spacing.
        SignalCheckError: an interval that leaves too few candles.
    """
    series = {name: resample_candles(candles, ms, source=label) for name, ms in intervals.items()}
    folds = {name: signal_folds(len(frame), spec, label=f"{label} {name}") for name, frame in series.items()}
    return SignalPlan(label, spec, series, folds)


def check_signal(plan: SignalPlan, env: EnvSettings, *,
                 progress: Callable[[str], None] = lambda message: None) -> list[IntervalResult]:
    """Fit and score every fold of every horizon at every interval of the plan.

    Args:
        plan: from :func:`plan_signal`.
        env: the ``[env]`` settings the round-trip cost comes from.
        progress: called with a line of text as each interval starts.
    """
    spec = plan.spec
    cost = round_trip_cost_bps(env)
    results = []
    for name, frame in plan.series.items():
        folds = plan.folds[name]
        progress(f"{plan.label} {name}: {len(frame):,} candles, {len(folds)} folds, {spec.model} model")
        data = SignalData(frame, spec.lookback)
        horizons = [HorizonResult(k, [score_fold(data, fold, k, spec.model) for fold in folds]) for k in spec.horizons]
        results.append(IntervalResult(plan.label, name, data.times_ms, cost, horizons))
    return results


def signal_document(results: Sequence[IntervalResult], spec: SignalSpec, env: EnvSettings,
                    sources: Mapping[str, str]) -> dict[str, Any]:
    """Everything ``signal.json`` holds: inputs, settings, costs and per interval every figure."""
    return {
        "sources": dict(sources),
        "settings": {"horizons": list(spec.horizons), "folds": spec.folds, "lookback": spec.lookback,
                     "model": spec.model, "features": N_FEATURES * spec.lookback},
        "costs": {"commission": env.commission, "slippage_bps": env.slippage_bps,
                  "round_trip_bps": round_trip_cost_bps(env)},
        "results": [r.summary() for r in results],
    }


def _bps(value: float) -> str:
    return f"{round(value, 2) + 0.0:+.2f}"  # + 0.0: no "-0.00"
