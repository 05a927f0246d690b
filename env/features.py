"""The 15 per-candle features: one causal implementation in a batch and a streaming form.

Every feature is scale-free (relative to the candle's own close or to rolling statistics),
so a model trained on BTC at 20k transfers to BTC at 90k, and no feature ever looks at
a dataset-wide statistic (the classic look-ahead leak). Row ``t`` depends only on
candles ``0..t``.

========  ================  ================================================================
column    name              formula (``c`` close, ``o/h/l/v`` open/high/low/volume at ``t``)
========  ================  ================================================================
0         ``open_rel``      ``%(o / c - 1)``
1         ``high_rel``      ``%(h / c - 1)``
2         ``low_rel``       ``%(l / c - 1)``
3         ``close_ret``     ``%(c / c[t-1] - 1)`` (one-candle return)
4         ``volume_z``      ``(v - mean20(v)) / std20(v)``  (0 when std20 = 0)
5         ``rsi``           Wilder RSI(14) / 100, in [0, 1]  (0.5 before any move)
6         ``macd``          ``%((EMA12(c) - EMA26(c)) / c)``
7         ``macd_signal``   ``EMA9(macd)``
8         ``macd_hist``     ``macd - macd_signal``
9         ``bb_position``   ``(c - mean20(c)) / (2 std20(c))``: -1/+1 at the lower/upper band
10        ``bb_width``      ``%(4 std20(c) / mean20(c))``: band width relative to the mid band
11        ``atr``           ``%(ATR14 / c)``, Wilder smoothing of the true range
12        ``ema``           ``%(c / EMA20(c) - 1)``: distance from the 20-candle trend
13        ``volume_ratio``  ``v / mean20(v)``  (1 when mean20 = 0)
14        ``momentum``      ``%(c / c[t-10] - 1)``
========  ================  ================================================================

``%(x)`` is ``100 * x``: price-relative features are in percent so that their typical
size (0.01 to 1 on 1-minute candles) suits a network with unit-scale initial weights;
raw fractions (1e-4 to 1e-2) would be nearly invisible to it at the start of training.
``mean20``/``std20`` are over the last 20 candles including ``t`` (population std).
EMAs use ``alpha = 2 / (n + 1)``, Wilder smoothing ``alpha = 1 / n``; both are seeded
with the first value. Because EMAs remember their seed, the first ``WARMUP_CANDLES``
rows are not valid and are dropped by every consumer (the env, the backtester and the
daemon), never guessed; after 200 candles the seed's weight is below 4e-7.

**Batch == streaming, bit for bit.** The recursive indicators go through the same
:class:`_RecursiveState` in both forms, and the windowed ones through the same
vectorised :func:`_window_features` (the stream runs it on its last candles), with sums
taken sequentially in the same order, so the two forms agree exactly, not just to 1e-9.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

FEATURE_SPEC_VERSION = 1  # bump when any feature's formula, unit or order changes
FEATURE_NAMES: tuple[str, ...] = (
    "open_rel", "high_rel", "low_rel", "close_ret", "volume_z",
    "rsi", "macd", "macd_signal", "macd_hist", "bb_position",
    "bb_width", "atr", "ema", "volume_ratio", "momentum",
)
N_FEATURES = len(FEATURE_NAMES)

RSI_WINDOW = 14
MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9
BOLLINGER_WINDOW = 20
ATR_WINDOW = 14
EMA_WINDOW = 20
VOLUME_WINDOW = 20
MOMENTUM_WINDOW = 10
PERCENT = 100.0
WARMUP_CANDLES = 200
"""Rows ``0 .. WARMUP_CANDLES - 1`` are warm-up: not valid, dropped everywhere."""

# Which code computes each feature. The column of a feature is always looked up by its name
# in FEATURE_NAMES, so reordering FEATURE_NAMES moves values and names together.
_WINDOW_FEATURES: tuple[str, ...] = (
    "open_rel", "high_rel", "low_rel", "close_ret", "volume_z", "bb_position", "bb_width", "volume_ratio", "momentum",
)
"""Computed by :func:`_window_features`, in its output's column order."""
_RECURSIVE_FEATURES: tuple[str, ...] = ("rsi", "macd", "macd_signal", "macd_hist", "atr", "ema")
"""Returned by :meth:`_RecursiveState.update`, in that order."""
_WINDOW_COLUMNS = tuple(FEATURE_NAMES.index(name) for name in _WINDOW_FEATURES)
_RECURSIVE_COLUMNS = tuple(FEATURE_NAMES.index(name) for name in _RECURSIVE_FEATURES)
_W = {name: i for i, name in enumerate(_WINDOW_FEATURES)}
"""Column of each windowed feature in :func:`_window_features`'s output."""
# Candles the stream keeps for the windowed features: the longest window plus one
# (close_ret and momentum look one step further back than their window).
_TAIL = max(BOLLINGER_WINDOW, VOLUME_WINDOW, MOMENTUM_WINDOW + 1) + 1

FloatArray = npt.NDArray[np.float64]


def warmup_prefix(lookback_window: int) -> int:
    """Candles a series needs before its first decision: :data:`WARMUP_CANDLES` of feature
    warm-up, then ``lookback_window - 1`` more valid rows to fill the first observation.

    The one history rule of the env, the backtester, the trainer's splits and the daemon:
    the first decision is taken at candle index ``warmup_prefix(lookback_window)`` (219
    with the default lookback of 20), and every decision's features run over all the
    candles of its series before it, from the series' first candle.

    Args:
        lookback_window: candles of features per observation (``[env] lookback_window``).

    Returns:
        The number of candles before the first decision.
    """
    return WARMUP_CANDLES + lookback_window - 1


def feature_spec() -> dict[str, object]:
    """What a model must agree with to be served: stored in every model's metadata."""
    return {
        "version": FEATURE_SPEC_VERSION,
        "names": list(FEATURE_NAMES),
        "warmup_candles": WARMUP_CANDLES,
        "price_unit": "percent",
        "windows": {
            "rsi": RSI_WINDOW, "macd": [MACD_FAST, MACD_SLOW, MACD_SIGNAL],
            "bollinger": BOLLINGER_WINDOW, "atr": ATR_WINDOW, "ema": EMA_WINDOW,
            "volume": VOLUME_WINDOW, "momentum": MOMENTUM_WINDOW,
        },
    }


def compute_features(candles: pd.DataFrame) -> FloatArray:
    """Batch form: features for every row of a validated candle frame.

    Args:
        candles: columns ``open high low close volume`` (see :mod:`env.candles`).

    Returns:
        ``(len(candles), 15)`` float64 array in :data:`FEATURE_NAMES` order. Rows
        before :data:`WARMUP_CANDLES` are warm-up and must not be used.
    """
    o, h, low, c, v = (candles[col].to_numpy(dtype=np.float64) for col in ("open", "high", "low", "close", "volume"))
    out = np.zeros((len(c), N_FEATURES))
    out[:, _WINDOW_COLUMNS] = _window_features(o, h, low, c, v)
    state = _RecursiveState()
    update = state.update
    out[:, _RECURSIVE_COLUMNS] = [update(hi, lo, cl)
                                  for hi, lo, cl in zip(h.tolist(), low.tolist(), c.tolist(), strict=True)]
    return out


class StreamingFeatures:
    """Streaming form for the live daemon: one closed candle at a time.

    ``update`` returns the same row :func:`compute_features` gives for that candle
    when run over the whole history fed so far, or ``None`` during warm-up.
    """

    def __init__(self) -> None:
        self._state = _RecursiveState()
        self._tail: deque[tuple[float, float, float, float, float]] = deque(maxlen=_TAIL)
        self.count = 0

    @property
    def ready(self) -> bool:
        """True once warm-up is over and :meth:`update` returns rows."""
        return self.count > WARMUP_CANDLES

    def warm(self, candles: pd.DataFrame) -> None:
        """Feed a history of candles fast (no rows are built), e.g. all candles stored in
        the ledger at daemon start. Afterwards :meth:`update` continues exactly as if every
        candle had gone through it."""
        update = self._state.update
        rows = candles[["open", "high", "low", "close", "volume"]].itertuples(index=False, name=None)
        for row in rows:
            update(row[1], row[2], row[3])
            self._tail.append(row)
            self.count += 1

    def update(self, open_: float, high: float, low: float, close: float, volume: float) -> FloatArray | None:
        recursive = self._state.update(high, low, close)
        self._tail.append((open_, high, low, close, volume))
        self.count += 1
        if not self.ready:
            return None
        row = np.empty(N_FEATURES)
        row[list(_RECURSIVE_COLUMNS)] = recursive
        row[list(_WINDOW_COLUMNS)] = _window_features(*np.array(self._tail).T)[-1]
        return row


def _window_features(o: FloatArray, h: FloatArray, low: FloatArray, c: FloatArray, v: FloatArray) -> FloatArray:
    """The features that depend on a fixed window of recent candles, vectorised.

    Rows without a full window are zero (they are inside the warm-up)."""
    n = len(c)
    out = np.zeros((n, len(_WINDOW_FEATURES)))
    out[:, _W["open_rel"]] = PERCENT * (o / c - 1.0)
    out[:, _W["high_rel"]] = PERCENT * (h / c - 1.0)
    out[:, _W["low_rel"]] = PERCENT * (low / c - 1.0)
    out[1:, _W["close_ret"]] = PERCENT * (c[1:] / c[:-1] - 1.0)
    vol_mean, vol_std = _rolling_mean_std(v, VOLUME_WINDOW)
    close_mean, close_std = _rolling_mean_std(c, BOLLINGER_WINDOW)
    full = slice(VOLUME_WINDOW - 1, None)
    out[full, _W["volume_z"]] = _safe_divide(v[full] - vol_mean, vol_std, 0.0)
    out[full, _W["volume_ratio"]] = _safe_divide(v[full], vol_mean, 1.0)
    full = slice(BOLLINGER_WINDOW - 1, None)
    out[full, _W["bb_position"]] = _safe_divide(c[full] - close_mean, 2.0 * close_std, 0.0)
    out[full, _W["bb_width"]] = PERCENT * (4.0 * close_std / close_mean)
    out[MOMENTUM_WINDOW:, _W["momentum"]] = PERCENT * (c[MOMENTUM_WINDOW:] / c[:-MOMENTUM_WINDOW] - 1.0)
    return out


def _rolling_mean_std(x: FloatArray, window: int) -> tuple[FloatArray, FloatArray]:
    """Mean and population std of each full window, summed sequentially (two-pass),
    so a window gives the same bits whichever array it sits in."""
    if len(x) < window:
        return np.empty(0), np.empty(0)
    windows = sliding_window_view(x, window)
    total = windows[:, 0].copy()
    for k in range(1, window):
        total += windows[:, k]
    mean = total / window
    dev = windows[:, 0] - mean
    squares = dev * dev
    for k in range(1, window):
        dev = windows[:, k] - mean
        squares += dev * dev
    return mean, np.sqrt(squares / window)


def _safe_divide(num: FloatArray, den: FloatArray, fallback: float) -> FloatArray:
    out = np.full(num.shape, fallback)
    np.divide(num, den, out=out, where=den > 0)
    return out


@dataclass(slots=True)
class _RecursiveState:
    """EMA/Wilder recurrences; the single code path for both feature forms."""

    count: int = 0
    prev_close: float = 0.0
    ema_fast: float = 0.0
    ema_slow: float = 0.0
    macd_signal: float = 0.0
    ema_trend: float = 0.0
    avg_gain: float = 0.0
    avg_loss: float = 0.0
    atr: float = 0.0

    def update(self, high: float, low: float, close: float) -> tuple[float, float, float, float, float, float]:
        """Advance one candle; returns (rsi, macd, macd_signal, macd_hist, atr, ema)."""
        true_range = high - low
        if self.count == 0:
            self.ema_fast = self.ema_slow = self.ema_trend = close
            self.atr = true_range
        else:
            self.ema_fast += _EMA_FAST_ALPHA * (close - self.ema_fast)
            self.ema_slow += _EMA_SLOW_ALPHA * (close - self.ema_slow)
            self.ema_trend += _EMA_TREND_ALPHA * (close - self.ema_trend)
            true_range = max(true_range, abs(high - self.prev_close), abs(low - self.prev_close))
            self.atr += (true_range - self.atr) / ATR_WINDOW
            change = close - self.prev_close
            gain, loss = (change, 0.0) if change > 0 else (0.0, -change)
            if self.count == 1:
                self.avg_gain, self.avg_loss = gain, loss
            else:
                self.avg_gain += (gain - self.avg_gain) / RSI_WINDOW
                self.avg_loss += (loss - self.avg_loss) / RSI_WINDOW
        macd = PERCENT * ((self.ema_fast - self.ema_slow) / close)
        if self.count == 0:
            self.macd_signal = macd
        else:
            self.macd_signal += _MACD_SIGNAL_ALPHA * (macd - self.macd_signal)
        moves = self.avg_gain + self.avg_loss
        rsi = self.avg_gain / moves if moves > 0 else 0.5
        self.prev_close = close
        self.count += 1
        atr = PERCENT * (self.atr / close)
        ema = PERCENT * (close / self.ema_trend - 1.0)
        return rsi, macd, self.macd_signal, macd - self.macd_signal, atr, ema


_EMA_FAST_ALPHA = 2.0 / (MACD_FAST + 1)
_EMA_SLOW_ALPHA = 2.0 / (MACD_SLOW + 1)
_EMA_TREND_ALPHA = 2.0 / (EMA_WINDOW + 1)
_MACD_SIGNAL_ALPHA = 2.0 / (MACD_SIGNAL + 1)

