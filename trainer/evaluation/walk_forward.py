"""Walk-forward evaluation: the honest answer to "does the model work?".

Train on a window of candles, test on the slice right after it, move both forward,
repeat. Every test decision is taken by a model that never saw that candle or any later
one, and the test slices do not overlap (with the default step), so chaining them gives
one out-of-sample equity curve.

Fold ``k`` (0-based), with ``s = k x step``::

    train: candles [s, s + train)         -> train_fn -> model
    test:  decisions at [s + train, s + train + test), marked one candle further

The test env also holds the ``first_step`` candles before the test slice (the end of the
training window) as feature warm-up; nothing is decided on them. Each fold's test slice
is backtested for the model and for every baseline under the one evaluation spec
(:class:`trainer.evaluation.backtest.EvaluationSpec`: costs and the live risk guard by default).

Training is pluggable (:class:`TrainFn`): this module never trains anything itself. The
PPO trainer every command uses is :class:`trainer.training.fold_trainer.PPOTrainer`.

**Seeds.** One training run is not a result: seed-to-seed spread on these data exceeds most
effects. With ``seeds`` N > 1 every fold trains N models (replica ``r`` uses ``seed + 1000 r``,
plus the fold index), each is tested like the single model, and the aggregate reports the
mean and the range over the replicas (:meth:`WalkForwardResult.seed_summary`).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from config.errors import UserError
from config.settings import EnvSettings
from env.features import warmup_prefix
from strategies.base import Strategy
from trainer.evaluation.backtest import BacktestResult, EvaluationSpec

MODEL_LABEL = "ppo"
"""Name of the trained model's results in each fold (its path differs per fold)."""
SEED_STRIDE = 1000
"""Replica ``r`` of a several-seed run trains fold ``k`` with ``seed + SEED_STRIDE r + k``."""
SEED_FIGURES: tuple[str, ...] = ("chained_return", "mean_fold_return", "mean_fold_timing", "net_exposure",
                                 "fees_to_capital", "n_trades")
"""Aggregate figures whose mean and range over the seeds :meth:`WalkForwardResult.seed_summary` gives."""


def model_labels(seeds: int) -> list[str]:
    """The trained models' names in each fold: ``ppo``, or ``ppo#1 .. ppo#N`` for N seeds."""
    return [MODEL_LABEL] if seeds == 1 else [f"{MODEL_LABEL}#{r + 1}" for r in range(seeds)]


class WalkForwardError(UserError, ValueError):
    """Walk-forward parameters that do not fit the data."""


@dataclass(frozen=True)
class Fold:
    """Candle indices of one fold: train ``[train_start, train_end)``, test decisions
    ``[train_end, test_end)``."""

    index: int
    train_start: int
    train_end: int
    test_end: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def make_folds(
    n_candles: int, *, train: int, test: int, step: int | None = None, max_folds: int | None = None, warmup: int
) -> list[Fold]:
    """Rolling folds over ``n_candles`` candles.

    Args:
        train: candles per training window.
        test: decision candles per test slice.
        step: shift between folds (default ``test``: back-to-back test slices).
        max_folds: keep at most this many (the earliest).
        warmup: candles the env needs before its first decision (``env.first_step``);
            the training window must be at least that long plus two.

    Raises:
        WalkForwardError: the data is too short for one fold, or bad sizes.
    """
    step = step or test
    if train < warmup + 2:
        raise WalkForwardError(f"train_candles={train} is too short: the env needs {warmup} warm-up candles + 2")
    if test < 1 or step < 1:
        raise WalkForwardError(f"test_candles ({test}) and step_candles ({step}) must be >= 1")
    folds: list[Fold] = []
    start = 0
    # The last test decision needs one more candle to be marked at.
    while start + train + test + 1 <= n_candles and (max_folds is None or len(folds) < max_folds):
        folds.append(Fold(len(folds), start, start + train, start + train + test))
        start += step
    if not folds:
        raise WalkForwardError(
            f"{n_candles} candles cannot hold one fold of train_candles={train} + test_candles={test} + 1"
        )
    return folds


class TrainFn(Protocol):
    """Trains a model on ``train`` candles only and returns its zip (metadata beside it).

    A trainer that wants a validation set carves it from the end of ``train``; it never
    gets the test slice.
    """

    def __call__(self, train: pd.DataFrame, *, seed: int, model_path: Path, env_settings: EnvSettings,
                 extra: dict[str, Any]) -> Path: ...


@dataclass
class FoldResult:
    """One fold: where it sits, the model(s) it trained (by label, :func:`model_labels`), and
    every strategy's test run."""

    fold: Fold
    models: dict[str, Path]
    results: dict[str, BacktestResult]

    @property
    def model_path(self) -> Path:
        """The (first) trained model."""
        return next(iter(self.models.values()))


@dataclass
class WalkForwardResult:
    """All folds plus the aggregate; ``strategy`` names the (first) trained model's results,
    ``models`` every trained model's label, ``spec`` how every test slice was scored."""

    strategy: str
    folds: list[FoldResult]
    candles: pd.DataFrame
    spec: EvaluationSpec
    models: list[str] = field(default_factory=lambda: [MODEL_LABEL])

    def aggregate(self) -> dict[str, dict[str, Any]]:
        """Per strategy, across folds: chained (compounded) return, mean and median fold
        return, mean Sharpe, worst drawdown, trades, fees, funding, the skill figures (mean fold
        timing, mean time long and short, mean net exposure, fees, funding and turnover summed
        over the folds, each fold starting with the same capital), and on how many folds the
        model (the mean over its seeds) beat it."""
        names = list(self.folds[0].results) if self.folds else []
        model_returns = [statistics.fmean(f.results[m].metrics.total_return for m in self.models) for f in self.folds]
        out: dict[str, dict[str, Any]] = {}
        for name in names:
            metrics = [f.results[name].metrics for f in self.folds]
            returns = [m.total_return for m in metrics]
            sharpes = [m.sharpe for m in metrics if m.sharpe is not None]
            timings = [m.timing for m in metrics if m.timing is not None]
            out[name] = {
                "chained_return": float(np.prod([1.0 + r for r in returns]) - 1.0),
                "mean_fold_return": statistics.fmean(returns),
                "median_fold_return": statistics.median(returns),
                "mean_sharpe": statistics.fmean(sharpes) if sharpes else None,
                "worst_max_drawdown": max(m.max_drawdown for m in metrics),
                "n_trades": sum(m.n_trades for m in metrics),
                "fees_paid": sum(m.fees_paid for m in metrics),
                "funding_paid": sum(m.funding_paid for m in metrics),
                "mean_fold_timing": statistics.fmean(timings) if timings else None,
                "time_long": statistics.fmean(m.time_long for m in metrics),
                "time_short": statistics.fmean(m.time_short for m in metrics),
                "net_exposure": statistics.fmean(m.net_exposure for m in metrics),
                "fees_to_capital": sum(m.fees_to_capital for m in metrics),
                "funding_to_capital": sum(m.funding_to_capital for m in metrics),
                "turnover": sum(m.turnover for m in metrics),
                "blew_up_folds": sum(f.results[name].terminated for f in self.folds),
                "folds_model_beat_it": None if name in self.models
                else sum(mr > r for mr, r in zip(model_returns, returns, strict=True)),
            }
        return out

    def seed_summary(self) -> dict[str, Any] | None:
        """With several seeds: the number of seeds and, for each of :data:`SEED_FIGURES`, the
        mean and the range (min, max) over the seeds' aggregates; ``None`` with one seed."""
        if len(self.models) < 2:
            return None
        aggregate = self.aggregate()
        summary: dict[str, Any] = {"seeds": len(self.models), "models": list(self.models)}
        for figure in SEED_FIGURES:
            values = [aggregate[m][figure] for m in self.models if aggregate[m][figure] is not None]
            summary[figure] = {"mean": statistics.fmean(values), "min": min(values), "max": max(values)} \
                if values else None
        return summary


def walk_forward(
    candles: pd.DataFrame,
    *,
    train_fn: TrainFn,
    spec: EvaluationSpec,
    baselines: Sequence[Strategy],
    load_model: Callable[[Path], Strategy],
    train: int,
    test: int,
    step: int | None = None,
    max_folds: int | None = None,
    seed: int = 0,
    seeds: int = 1,
    out_dir: Path,
    progress: Callable[[str], None] = lambda message: None,
    on_fold: Callable[[FoldResult], None] = lambda fold: None,
) -> WalkForwardResult:
    """Run the folds (see the module docstring).

    Args:
        candles: validated candles, oldest first.
        train_fn: trains one model per fold (on ``spec.env``).
        spec: how every test slice is scored, the model and the baselines alike.
        baselines: strategies tested on every slice beside the model.
        load_model: turns a trained zip into a strategy (``strategies.ppo.load_ppo_strategy``).
        train, test, step, max_folds: fold sizes (see :func:`make_folds`).
        seed: fold ``k`` trains with ``seed + k``.
        seeds: models trained per fold (see the module docstring).
        out_dir: fold ``k``'s model goes to ``out_dir/fold_{k+1:02d}/model.zip`` (with several
            seeds, ``out_dir/fold_{k+1:02d}/seed_{s}/model.zip``).
        progress: called with a line of text as each fold starts and ends.
        on_fold: called with each fold's result as soon as it is tested; an exception it
            raises stops the run (a tuning trial uses it to report and to be pruned).
    """
    if seeds < 1:
        raise WalkForwardError(f"seeds={seeds}: must be at least 1")
    warmup = warmup_prefix(spec.env.lookback_window)
    folds = make_folds(len(candles), train=train, test=test, step=step, max_folds=max_folds, warmup=warmup)
    labels = model_labels(seeds)
    results = []
    times = candles["open_time_ms"].to_numpy()
    for fold in folds:
        label = f"fold {fold.index + 1}/{len(folds)}"
        progress(f"{label}: training on {_span(times, fold.train_start, fold.train_end)}"
                 + (f", {seeds} seeds" if seeds > 1 else ""))
        train_frame = candles.iloc[fold.train_start : fold.train_end].reset_index(drop=True)
        folder = out_dir / f"fold_{fold.index + 1:02d}"
        models: dict[str, Path] = {}
        for replica, name in enumerate(labels):
            fold_seed = seed + SEED_STRIDE * replica + fold.index
            models[name] = train_fn(
                train_frame, seed=fold_seed,
                model_path=(folder if seeds == 1 else folder / f"seed_{fold_seed}") / "model.zip",
                env_settings=spec.env, extra={"walk_forward_fold": fold.to_dict()},
            )
        # Warm-up from the end of the training window, decisions on the test slice,
        # one candle more to mark the last decision at.
        test_frame = candles.iloc[fold.train_end - warmup : fold.test_end + 1].reset_index(drop=True)
        runs = spec.compare([*(load_model(path) for path in models.values()), *baselines], test_frame,
                            start_index=warmup)
        by_name = dict(zip(labels, runs[:seeds], strict=True)) | {r.strategy: r for r in runs[seeds:]}
        results.append(FoldResult(fold, models, by_name))
        returns = ", ".join(f"{name} {100 * r.metrics.total_return:+.2f}%" for name, r in by_name.items())
        progress(f"{label}: tested on {_span(times, fold.train_end, fold.test_end)}: {returns}")
        on_fold(results[-1])
    return WalkForwardResult(labels[0], results, candles, spec, labels)


def _span(times: np.ndarray, start: int, end: int) -> str:
    fmt = "%Y-%m-%d %H:%M"
    return (f"{pd.Timestamp(int(times[start]), unit='ms').strftime(fmt)} .. "
            f"{pd.Timestamp(int(times[end - 1]), unit='ms').strftime(fmt)} ({end - start} candles)")

