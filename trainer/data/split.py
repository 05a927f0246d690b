"""Chronological train / validation / test split with no leakage.

``CryptoTradingEnv`` never trades the first ``prefix = warmup_prefix(lookback)`` rows of
its frame (:func:`env.features.warmup_prefix`): they fill the indicators and the first
observation window. So each slice is *its traded candles plus the ``prefix`` candles
before them*:

::

    candles:    [ prefix | train traded | validation traded | test traded ]
    train:      [ prefix | train traded ]
    validation:          [ prefix      | validation traded ]      (prefix = last train candles)
    test:                              [ prefix            | test traded ]

A candle is *traded* by a slice when the env acts or marks the account at it. The
traded ranges are disjoint and in time order, so a model trained on ``train`` never
saw a validation or test price move, and an env built on the test frame (as the seed's
backtest builds it from ``data/test_data.csv``) trades exactly the test period. The
prefixes overlap earlier slices only as *history* (features are causal), which is what
the live daemon has too.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from env.candles import CandleDataError

MIN_SLICE_STEPS = 10
"""Fewest env steps a slice may have (its traded candles minus one)."""


@dataclass(frozen=True, slots=True)
class Slice:
    """One part of the split.

    Args:
        name: ``train``, ``validation`` or ``test``.
        frame: the ``prefix`` warm-up/history candles followed by the traded ones.
        prefix: leading rows of ``frame`` that are history only.
    """

    name: str
    frame: pd.DataFrame
    prefix: int

    @property
    def traded(self) -> pd.DataFrame:
        return self.frame.iloc[self.prefix:]

    def data_range(self) -> dict[str, int]:
        """``{"start_ms", "end_ms", "n_candles"}`` of the traded candles (model metadata)."""
        times = self.traded["open_time_ms"]
        return {"start_ms": int(times.iloc[0]), "end_ms": int(times.iloc[-1]), "n_candles": len(times)}


@dataclass(frozen=True, slots=True)
class ChronoSplit:
    train: Slice
    validation: Slice
    test: Slice

    def ranges(self) -> dict[str, dict[str, int]]:
        return {s.name: s.data_range() for s in (self.train, self.validation, self.test)}


def chronological_split(
    candles: pd.DataFrame,
    *,
    prefix: int,
    validation_fraction: float,
    test_fraction: float,
    source: str = "candles",
) -> ChronoSplit:
    """Split validated candles (oldest first) into three slices, as in the module docstring.

    Args:
        candles: a frame from :func:`env.candles.normalize_candles`.
        prefix: history rows each slice needs before its first traded candle.
        validation_fraction / test_fraction: shares of the tradable candles
            (``len(candles) - prefix``); train gets the rest.
        source: the data's name for the error message.

    Raises:
        CandleDataError: too few candles for every slice to have ``MIN_SLICE_STEPS`` steps.
    """
    sizes = _slice_sizes(len(candles) - prefix, validation_fraction, test_fraction)
    if sizes is None:
        need = min_candles(prefix, validation_fraction, test_fraction)
        raise CandleDataError(
            source,
            f"{len(candles)} candles is too short: need at least {need} ({prefix} warm-up/lookback candles, "
            f"then at least {MIN_SLICE_STEPS + 1} traded candles in each of train/validation/test at "
            f"fractions {1 - validation_fraction - test_fraction:.2f}/{validation_fraction:.2f}/{test_fraction:.2f})",
        )
    n_train, n_validation, _ = sizes
    val_start = prefix + n_train
    test_start = val_start + n_validation
    return ChronoSplit(
        train=Slice("train", candles.iloc[:val_start].reset_index(drop=True), prefix),
        validation=Slice("validation", candles.iloc[val_start - prefix:test_start].reset_index(drop=True), prefix),
        test=Slice("test", candles.iloc[test_start - prefix:].reset_index(drop=True), prefix),
    )


def min_candles(prefix: int, validation_fraction: float, test_fraction: float) -> int:
    """The fewest candles :func:`chronological_split` accepts with these settings."""
    tradable = 3 * (MIN_SLICE_STEPS + 1)
    while _slice_sizes(tradable, validation_fraction, test_fraction) is None:
        tradable += 1
    return prefix + tradable


def _slice_sizes(tradable: int, validation_fraction: float, test_fraction: float) -> tuple[int, int, int] | None:
    n_validation = round(tradable * validation_fraction)
    n_test = round(tradable * test_fraction)
    sizes = (tradable - n_validation - n_test, n_validation, n_test)
    return sizes if min(sizes) >= MIN_SLICE_STEPS + 1 else None
