"""Features: causal (prefix rule) and streaming == batch, on real and generated candles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from env.features import FEATURE_NAMES, N_FEATURES, WARMUP_CANDLES, StreamingFeatures, compute_features

RTOL = 1e-9  # the contract; the implementation is in fact bit-exact


def stream_all(candles: pd.DataFrame) -> np.ndarray:
    stream = StreamingFeatures()
    rows = [stream.update(*row) for row in candles[["open", "high", "low", "close", "volume"]].itertuples(index=False)]
    assert all(r is None for r in rows[:WARMUP_CANDLES])
    return np.array(rows[WARMUP_CANDLES:])


def test_shape_and_finiteness_on_real_data(btc_candles: pd.DataFrame) -> None:
    features = compute_features(btc_candles)
    assert features.shape == (len(btc_candles), N_FEATURES) == (30_240, 15)
    assert np.isfinite(features).all()
    valid = features[WARMUP_CANDLES:]
    rsi = valid[:, FEATURE_NAMES.index("rsi")]
    assert rsi.min() >= 0 and rsi.max() <= 1
    # Every feature varies on real data (a constant column would be a silent bug).
    assert (valid.std(axis=0) > 0).all()


@pytest.mark.parametrize("fixture", ["btc_candles", "eth_candles"])
def test_streaming_equals_batch_on_real_data(fixture: str, request: pytest.FixtureRequest) -> None:
    candles = request.getfixturevalue(fixture).iloc[:6000]
    batch = compute_features(candles)[WARMUP_CANDLES:]
    streamed = stream_all(candles)
    np.testing.assert_allclose(streamed, batch, rtol=RTOL, atol=0)


def test_causality_prefix_rule_on_real_data(btc_candles: pd.DataFrame) -> None:
    """Features of data[:t+1] equal row t of the features of data, for many t."""
    candles = btc_candles.iloc[:5000]
    full = compute_features(candles)
    rng = np.random.default_rng(0)
    for t in sorted(rng.choice(np.arange(WARMUP_CANDLES, len(candles)), size=60, replace=False)):
        prefix = compute_features(candles.iloc[: t + 1])
        np.testing.assert_array_equal(prefix[-1], full[t], err_msg=f"row {t} changed when later candles were removed")


def test_future_candles_do_not_move_past_rows(btc_candles: pd.DataFrame) -> None:
    """Perturbing candle t+1.. leaves rows <= t unchanged (a direct look-ahead check)."""
    candles = btc_candles.iloc[:1000].copy()
    before = compute_features(candles)
    candles.loc[700:, ["open", "high", "low", "close"]] *= 1.5
    after = compute_features(candles)
    np.testing.assert_array_equal(before[:700], after[:700])
    assert not np.array_equal(before[700:], after[700:])


@st.composite
def random_candles(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(WARMUP_CANDLES + 1, WARMUP_CANDLES + 120))
    seed = draw(st.integers(0, 2**32 - 1))
    scale = draw(st.sampled_from([1e-4, 1.0, 30_000.0, 1e6]))
    rng = np.random.default_rng(seed)
    close = scale * np.exp(np.cumsum(rng.normal(0, draw(st.sampled_from([0.0, 1e-4, 0.01, 0.1])), n)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    spread = np.abs(rng.normal(0, 0.002, n)) * close
    volume = rng.choice([0.0, 1.0, 1e-6, 1e3], n) * draw(st.sampled_from([0.0, 1.0]))
    return pd.DataFrame({
        "open": open_, "high": np.maximum(open_, close) + spread, "low": np.minimum(open_, close) - spread / 2,
        "close": close, "volume": volume,
    })


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_candles())
def test_streaming_equals_batch_on_generated_candles(candles: pd.DataFrame) -> None:
    batch = compute_features(candles)[WARMUP_CANDLES:]
    streamed = stream_all(candles)
    assert np.isfinite(batch).all()
    np.testing.assert_allclose(streamed, batch, rtol=RTOL, atol=0)


def test_hand_checked_values_on_a_rising_series() -> None:
    """A steady 1% rise per candle: one-candle return 1%, momentum (1.01^10 - 1), RSI 1 (no losses)."""
    closes = 100 * 1.01 ** np.arange(WARMUP_CANDLES + 5)
    candles = pd.DataFrame({"open": closes, "high": closes, "low": closes, "close": closes, "volume": 1.0})
    row = compute_features(candles)[-1]
    named = dict(zip(FEATURE_NAMES, row, strict=True))
    assert named["close_ret"] == pytest.approx(1.0)
    assert named["momentum"] == pytest.approx(100 * (1.01**10 - 1))
    assert named["rsi"] == 1.0
    assert named["volume_ratio"] == 1.0 and named["volume_z"] == 0.0
    assert named["macd"] > 0 and named["ema"] > 0 and named["bb_position"] > 0


def test_warm_then_stream_equals_batch(btc_candles: pd.DataFrame) -> None:
    """A daemon restart warms the stream from stored candles, then continues bit-exactly."""
    candles = btc_candles.iloc[:1500]
    batch = compute_features(candles)
    stream = StreamingFeatures()
    stream.warm(candles.iloc[:900])
    assert stream.ready and stream.count == 900
    ohlcv = candles.iloc[900:][["open", "high", "low", "close", "volume"]]
    rows = [stream.update(*r) for r in ohlcv.itertuples(index=False)]
    np.testing.assert_array_equal(np.array(rows), batch[900:])


def test_every_name_is_computed_once_and_each_column_holds_its_named_feature(btc_candles: pd.DataFrame) -> None:
    """Columns are looked up by name: each column equals its feature's formula, recomputed
    here from the candles (a hard-coded index that drifted from FEATURE_NAMES would fail)."""
    from env import features

    assert sorted(features._WINDOW_COLUMNS + features._RECURSIVE_COLUMNS) == list(range(N_FEATURES))
    candles = btc_candles.iloc[:600].reset_index(drop=True)
    table = compute_features(candles)[WARMUP_CANDLES:]
    o, h, low, c, v = (candles[k].to_numpy()[WARMUP_CANDLES:] for k in ("open", "high", "low", "close", "volume"))
    closes = candles["close"].to_numpy()
    volumes = candles["volume"].to_numpy()
    window20 = np.lib.stride_tricks.sliding_window_view(closes, 20)[WARMUP_CANDLES - 19:]
    volume20 = np.lib.stride_tricks.sliding_window_view(volumes, 20)[WARMUP_CANDLES - 19:]
    expected = {
        "open_rel": 100 * (o / c - 1), "high_rel": 100 * (h / c - 1), "low_rel": 100 * (low / c - 1),
        "close_ret": 100 * (c / closes[WARMUP_CANDLES - 1:-1] - 1),
        "momentum": 100 * (c / closes[WARMUP_CANDLES - 10:-10] - 1),
        "volume_ratio": v / volume20.mean(axis=1),
        "volume_z": (v - volume20.mean(axis=1)) / volume20.std(axis=1),
        "bb_position": (c - window20.mean(axis=1)) / (2 * window20.std(axis=1)),
        "bb_width": 100 * 4 * window20.std(axis=1) / window20.mean(axis=1),
    }
    for name, values in expected.items():
        np.testing.assert_allclose(table[:, FEATURE_NAMES.index(name)], values, rtol=1e-9, atol=1e-12, err_msg=name)
    ema20 = candles["close"].ewm(span=20, adjust=False).mean().to_numpy()[WARMUP_CANDLES:]
    np.testing.assert_allclose(table[:, FEATURE_NAMES.index("ema")], 100 * (c / ema20 - 1), rtol=1e-9, atol=1e-12)
    macd, signal, hist = (table[:, FEATURE_NAMES.index(n)] for n in ("macd", "macd_signal", "macd_hist"))
    np.testing.assert_array_equal(hist, macd - signal)
    rsi = table[:, FEATURE_NAMES.index("rsi")]
    assert rsi.min() >= 0 and rsi.max() <= 1 and (table[:, FEATURE_NAMES.index("atr")] > 0).all()


def test_a_reordered_feature_list_keeps_every_value_under_its_name(btc_candles: pd.DataFrame,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The features module loaded with FEATURE_NAMES reversed: batch and stream put every
    feature's values in the column its name now has."""
    import importlib.util
    import re
    import sys

    from env import features

    source = Path(features.__file__).read_text(encoding="utf-8")
    declaration = re.search(r"FEATURE_NAMES: tuple\[str, \.\.\.\] = \(.*?\n\)", source, re.DOTALL)
    assert declaration is not None
    reordered_names = tuple(reversed(FEATURE_NAMES))
    spec = importlib.util.spec_from_loader("features_reordered", loader=None)
    reordered = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "features_reordered", reordered)  # dataclasses look their module up
    code = source.replace(declaration.group(0), f"FEATURE_NAMES: tuple[str, ...] = {reordered_names!r}")
    exec(compile(code, "features_reordered", "exec"), reordered.__dict__)
    assert reordered_names == reordered.FEATURE_NAMES

    candles = btc_candles.iloc[:400].reset_index(drop=True)
    original, moved = compute_features(candles), reordered.compute_features(candles)
    stream = reordered.StreamingFeatures()
    ohlcv = candles[["open", "high", "low", "close", "volume"]].itertuples(index=False)
    streamed = [stream.update(*row) for row in ohlcv]
    for name in FEATURE_NAMES:
        here, there = FEATURE_NAMES.index(name), reordered_names.index(name)
        np.testing.assert_array_equal(moved[:, there], original[:, here], err_msg=name)
        np.testing.assert_array_equal(np.array(streamed[WARMUP_CANDLES:])[:, there], original[WARMUP_CANDLES:, here])
