"""What tuning trials may see: the candles before the held-out test slice, laid out in folds.

The search (:mod:`trainer.tuning.search`) prepares a :class:`TuningData` once, its trials
(:mod:`trainer.tuning.trial`) train and score the folds of its :class:`FoldPlan`, and the
summary (:mod:`trainer.tuning.report`) records its boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from config.errors import UserError
from config.settings import Settings
from env.features import warmup_prefix
from trainer.data.split import chronological_split
from trainer.evaluation.walk_forward import Fold, make_folds
from trainer.tuning.space import lookback_range


class TuneError(UserError):
    """A search that cannot run on this data (too few candles for the folds)."""


@dataclass(frozen=True)
class FoldPlan:
    """Walk-forward folds inside the tuning candles (see :func:`trainer.evaluation.walk_forward.make_folds`):
    fold ``k`` trains on ``[k x validation, k x validation + train)`` and is scored on the next
    ``validation`` candles."""

    train: int
    validation: int
    folds: int


@dataclass(frozen=True)
class TuningData:
    """The candles trials may see, how they are folded, and what is held out."""

    candles: pd.DataFrame
    plan: FoldPlan
    folds: list[Fold]
    source: str
    holdout: dict[str, int]

    def describe(self) -> dict[str, Any]:
        """Boundaries for the summary: tuning range, each fold, the held-out test slice."""
        times = self.candles["open_time_ms"].to_numpy()
        return {
            "source": self.source,
            "tuning": {"start_ms": int(times[0]), "end_ms": int(times[-1]), "n_candles": len(times)},
            "folds": [{"fold": f.index + 1, "train_start_ms": int(times[f.train_start]),
                       "validation_start_ms": int(times[f.train_end]), "validation_end_ms": int(times[f.test_end - 1])}
                      for f in self.folds],
            "plan": {"train_candles": self.plan.train, "validation_candles": self.plan.validation,
                     "folds": self.plan.folds},
            "held_out_test": self.holdout,
        }


def prepare_tuning_data(candles: pd.DataFrame, settings: Settings, source: str) -> TuningData:
    """Cut off the test slice and lay out the folds (see the module docstring).

    Raises:
        TuneError / CandleDataError: too few candles for the split or for the folds.
    """
    args, tune = settings.train, settings.tune
    low, high = lookback_range(settings)
    prefix_min, prefix_max = warmup_prefix(low), warmup_prefix(high)
    split = chronological_split(candles, prefix=prefix_min, validation_fraction=args.validation_fraction,
                                test_fraction=args.test_fraction, source=source)
    region = candles.iloc[: len(candles) - len(split.test.traded)].reset_index(drop=True)
    tradable = len(region) - prefix_max
    validation = tune.fold_validation_candles or max(2, round(tradable * args.validation_fraction / tune.folds))
    train = tune.fold_train_candles or len(region) - tune.folds * validation - 1
    if train < prefix_max + 2:
        raise TuneError(
            f"{source}: {len(region)} candles before the held-out test slice leave {train} for the first fold's "
            f"training window; it needs more than the {prefix_max} warm-up candles of lookback {high} "
            f"(fewer folds, smaller fold_validation_candles or more data)"
        )
    folds = make_folds(len(region), train=train, test=validation, max_folds=tune.folds, warmup=prefix_max)
    if len(folds) < tune.folds:
        raise TuneError(f"{source}: only {len(folds)} of {tune.folds} folds of {train} + {validation} candles fit "
                        f"in the {len(region)} candles before the held-out test slice")
    return TuningData(region, FoldPlan(train, validation, tune.folds), folds, source, split.test.data_range())
