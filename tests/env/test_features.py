"""Features: causal (prefix rule) and streaming == batch, on real and generated candles."""

from __future__ import annotations

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
    named = dict(zip(FEATURE_NAMES, row))
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
    rows = [stream.update(*r) for r in candles.iloc[900:][["open", "high", "low", "close", "volume"]].itertuples(index=False)]
    np.testing.assert_array_equal(np.array(rows), batch[900:])
