"""The promotion gate: a chronological train/holdout split, holdout scores, and the verdict.

A retrain judges its candidate on the most recent candles, which it never trained on::

    candles:  [ prefix | train traded            | holdout traded ]
    train:    [ prefix | train traded ]
    holdout:           [ prefix (= last train candles, history only) | holdout traded ]

The candidate, the incumbent (the model serving now, or the daemon's fallback baseline
before the first model) and ``flat`` are backtested on the holdout under the one
evaluation spec (:class:`trainer.evaluation.backtest.EvaluationSpec`, the live risk guard by
default), the same score walk-forward and ``shadow tune`` give, so the scores are what the
daemon would have made. The candidate is promoted only when its score beats both others
by more than the margin.

A candidate that never trades on the holdout (no fill on any symbol) is **no model**: a
policy that learned to stay flat is not promoted, whatever the scores say, and the run
records that reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from config.errors import UserError
from config.settings import RetrainSettings
from strategies.base import Strategy
from trainer.data.split import MIN_SLICE_STEPS, Slice
from trainer.evaluation.backtest import EvaluationSpec
from trainer.evaluation.metrics import Metrics


class RetrainDataError(UserError):
    """Too few accumulated candles for a training window and a holdout."""


@dataclass(frozen=True, slots=True)
class HoldoutSplit:
    """The training slice and the most recent, unseen holdout slice."""

    train: Slice
    holdout: Slice

    def ranges(self) -> dict[str, dict[str, int]]:
        return {"train": self.train.data_range(), "holdout": self.holdout.data_range()}


def holdout_split(candles: pd.DataFrame, *, prefix: int, retrain: RetrainSettings, source: str) -> HoldoutSplit:
    """Split validated candles (oldest first) as in the module docstring.

    Args:
        candles: gap-free candles in :mod:`env.candles` layout.
        prefix: history rows each slice needs before its first traded candle
            (:func:`env.features.warmup_prefix`).
        retrain: holdout size (``holdout_candles`` or ``holdout_fraction`` of the tradable
            candles) and training window bounds (``min_train_candles``, ``max_train_candles``).
        source: the data's name for the error message.

    Raises:
        RetrainDataError: the training window or the holdout would be too short.
    """
    tradable = len(candles) - prefix
    n_holdout = retrain.holdout_candles or round(max(tradable, 0) * retrain.holdout_fraction)
    n_holdout = max(n_holdout, MIN_SLICE_STEPS + 1)
    n_train = tradable - n_holdout
    if n_train < retrain.min_train_candles:
        raise RetrainDataError(
            f"{source}: {len(candles)} candles is too few to retrain: need {prefix} warm-up + "
            f"{retrain.min_train_candles} training (retrain.min_train_candles) + {n_holdout} holdout candles "
            f"= {prefix + retrain.min_train_candles + n_holdout}"
        )
    if retrain.max_train_candles is not None:
        n_train = min(n_train, retrain.max_train_candles)
    holdout_start = len(candles) - n_holdout
    train_start = holdout_start - n_train - prefix
    return HoldoutSplit(
        train=Slice("train", candles.iloc[train_start:holdout_start].reset_index(drop=True), prefix),
        holdout=Slice("holdout", candles.iloc[holdout_start - prefix:].reset_index(drop=True), prefix),
    )


def score_holdout(strategies: Sequence[Strategy], holdout: Slice, spec: EvaluationSpec) -> list[Metrics]:
    """Backtest each strategy on the holdout's traded candles (same env, same first decision,
    same spec)."""
    return [r.metrics for r in spec.compare(strategies, holdout.frame, start_index=holdout.prefix)]


def metric_value(metrics: Sequence[Metrics], metric: str) -> float | None:
    """``metric`` averaged over markets (one per symbol; a shared model has several);
    ``None`` when any market's value is undefined."""
    values: list[float | None] = [getattr(m, metric) for m in metrics]
    defined = [v for v in values if v is not None]
    if not values or len(defined) < len(values):
        return None
    return sum(defined) / len(defined)


def never_trades(candidate: Sequence[Metrics]) -> bool:
    """True when the candidate made no fill on any market's holdout (zero turnover)."""
    return all(m.turnover == 0 for m in candidate)


@dataclass(frozen=True, slots=True)
class GateDecision:
    """The verdict and the three scores it compared; ``no_model``: the candidate never traded."""

    promote: bool
    reason: str
    candidate: float | None
    incumbent: float | None
    flat: float | None
    no_model: bool = False


def gate(candidate: float | None, incumbent: float | None, flat: float | None, *, metric: str, margin: float,
         incumbent_label: str, traded: bool = True, on: str = "holdout") -> GateDecision:
    """Promote only if the candidate traded on the holdout (``traded``; otherwise it is no
    model) and its score beats the incumbent's and flat's by more than ``margin``. An
    undefined score (``None``: no risk to divide by, or an overflow) is not comparable, so a
    run with one is never promoted.

    Args:
        on: what the scores were measured on, for the reason: ``holdout``, or ``live trial``
            (a live trial's candles, :mod:`trainer.retrain.live_verdict`).
    """
    if not traded:
        return GateDecision(False, f"is no model: it never trades on the {on} (no fill), so there is nothing "
                            "to promote", candidate, incumbent, flat, no_model=True)
    if candidate is None or incumbent is None or flat is None:
        scores = {"candidate": candidate, f"incumbent {incumbent_label}": incumbent, "flat": flat}
        undefined = [name for name, value in scores.items() if value is None]
        return GateDecision(False, f"{metric} is undefined on the {on} for {', '.join(undefined)}",
                            candidate, incumbent, flat)
    rivals = {f"incumbent {incumbent_label}": incumbent, "flat": flat}
    beaten = {name: value for name, value in rivals.items() if candidate > value + margin}
    summary = (f"{on} {metric}: candidate {candidate:.4g}, incumbent {incumbent_label} {incumbent:.4g}, "
               f"flat {flat:.4g} (margin {margin:g})")
    if len(beaten) == 2:
        return GateDecision(True, f"beats both; {summary}", candidate, incumbent, flat)
    missed = [name for name in rivals if name not in beaten]
    return GateDecision(False, f"does not beat {' and '.join(missed)}; {summary}", candidate, incumbent, flat)
