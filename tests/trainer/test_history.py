"""Fetching Bybit history: forward pagination, retry with back-off, the cache. No network:
a fake exchange serves candles the way ccxt's bybit.fetch_ohlcv does."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import ccxt
import pandas as pd
import pytest

from trainer_fakes import MARKET, MINUTE, FakeBybit, LocalBybit
from trainer.history import (
    PAGE_CANDLES,
    HistoryError,
    Market,
    RetryPolicy,
    bybit_exchange,
    call_with_retry,
    load_history,
    read_cache,
)


def fetch(fake: FakeBybit, cache: Path, n: int, sleeps: list[float] | None = None, **kw: Any) -> pd.DataFrame:
    sleep = (sleeps.append if sleeps is not None else _no_sleep)
    return load_history(MARKET, n, exchange=fake, cache_dir=cache, progress=False, sleep=sleep, **kw)


def _no_sleep(seconds: float) -> None:
    raise AssertionError(f"unexpected sleep({seconds})")


def test_paginates_forward_to_num_candles_and_drops_the_forming_candle(tmp_path: Path) -> None:
    fake = FakeBybit(3001)
    frame = fetch(fake, tmp_path, 2500)
    closed = fake.rows[:-1]
    assert len(frame) == 2500
    assert frame["open_time_ms"].tolist() == [r[0] for r in closed[-2500:]]
    assert frame["close"].iloc[-1] == closed[-1][4]
    assert all(limit == PAGE_CANDLES and until - since <= (PAGE_CANDLES - 1) * MINUTE
               for since, until, limit in fake.calls)
    starts = [since for since, _, _ in fake.calls]
    assert starts == sorted(starts) and len(starts) == 3  # 2502 wanted candles in pages of 1000
    cached = read_cache(MARKET.cache_file(tmp_path))
    assert cached["timestamp"].max() == closed[-1][0]  # the forming candle is never cached


def test_second_run_fetches_only_the_missing_tail(tmp_path: Path) -> None:
    fake = FakeBybit(1500)
    first = fetch(fake, tmp_path, 1200)
    fake.calls.clear()
    assert fetch(fake, tmp_path, 1200).equals(first)  # nothing new closed: no request at all
    assert fake.calls == []

    fake.add_candles(30)
    second = fetch(fake, tmp_path, 1200)
    assert len(fake.calls) == 1
    since, until, _ = fake.calls[0]
    assert since == first["open_time_ms"].iloc[-1] + MINUTE and until == fake.now - MINUTE
    assert second["open_time_ms"].iloc[-1] == fake.rows[-2][0] and len(second) == 1200


def test_asking_for_more_history_fetches_only_the_older_head(tmp_path: Path) -> None:
    fake = FakeBybit(3000)
    fetch(fake, tmp_path, 500)
    fake.calls.clear()
    frame = fetch(fake, tmp_path, 2000)
    assert len(frame) == 2000 and frame["open_time_ms"].is_monotonic_increasing
    first_cached_before = fake.rows[-1 - 500][0]
    assert all(until < first_cached_before for _, until, _ in fake.calls)


def test_short_history_returns_what_exists(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeBybit(300)
    frame = fetch(fake, tmp_path, 5000)
    assert len(frame) == 299
    assert "only 299 closed candle(s) available, 5000 asked" in caplog.text


def test_retries_rate_limit_and_network_errors_with_exponential_backoff(tmp_path: Path) -> None:
    fake = FakeBybit(600, failures=[ccxt.RateLimitExceeded("10006 too many visits"), ccxt.RequestTimeout("timed out"),
                                    ccxt.NetworkError("reset")])
    sleeps: list[float] = []
    frame = fetch(fake, tmp_path, 500, sleeps)
    assert sleeps == [5.0, 2.0, 4.0]  # rate-limit base 5 s; network base 1 s doubled per attempt
    assert len(frame) == 500


def test_backoff_is_capped() -> None:
    sleeps: list[float] = []
    errors = iter([ccxt.NetworkError("x")] * 5)

    def flaky() -> int:
        if (error := next(errors, None)) is not None:
            raise error
        return 42

    policy = RetryPolicy(attempts=6, base_delay_s=1.0, max_delay_s=5.0)
    assert call_with_retry(flaky, what="w", policy=policy, sleep=sleeps.append) == 42
    assert sleeps == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_gives_up_after_the_last_attempt_but_keeps_the_pages_already_fetched(tmp_path: Path) -> None:
    fake = FakeBybit(2600, failures=[None] + [ccxt.ExchangeNotAvailable("maintenance")] * 3)
    sleeps: list[float] = []
    with pytest.raises(HistoryError, match=r"gave up after 3 attempts \(ExchangeNotAvailable: maintenance\)"):
        fetch(fake, tmp_path, 2500, sleeps, retry=RetryPolicy(attempts=3))
    assert sleeps == [1.0, 2.0]
    cached = read_cache(MARKET.cache_file(tmp_path))
    assert len(cached) == PAGE_CANDLES  # the first page survived the failure
    fake.calls.clear()
    assert len(fetch(fake, tmp_path, 2500)) == 2500
    assert all(since > cached["timestamp"].iloc[-1] for since, _, _ in fake.calls)


def test_unknown_symbol_is_a_clear_error_without_retry(tmp_path: Path) -> None:
    fake = FakeBybit(10, failures=[ccxt.BadSymbol("bybit does not have market symbol BTC/USDT:USDT")])
    with pytest.raises(HistoryError, match="does not list this symbol"):
        fetch(fake, tmp_path, 5)


def test_unreadable_cache_is_reported_and_left_untouched(tmp_path: Path) -> None:
    path = MARKET.cache_file(tmp_path)
    path.write_text("date,price\n2024-01-01,1\n")
    with pytest.raises(HistoryError, match=f"{path}: not a candle cache"):
        fetch(FakeBybit(10), tmp_path, 5)
    assert path.read_text() == "date,price\n2024-01-01,1\n"


def test_market_names_category_and_cache_file() -> None:
    spot, perp = Market("BTC/USDT", "5m"), Market("BTC/USDT:USDT", "1h")
    assert (spot.category, spot.market_id, spot.interval_ms) == ("spot", "BTCUSDT", 300_000)
    assert (perp.category, perp.market_id, perp.interval_ms) == ("linear", "BTCUSDT", 3_600_000)
    assert spot.cache_file(Path("c")) == Path("c/bybit_spot_BTCUSDT_5m.csv")
    assert perp.cache_file(Path("c")) == Path("c/bybit_linear_BTCUSDT_1h.csv")


def test_bybit_exchange_points_every_rest_host_at_the_configured_url() -> None:
    exchange = bybit_exchange("http://127.0.0.1:8123/", "spot")
    assert set(exchange.urls["api"].values()) == {"http://127.0.0.1:8123"}
    assert exchange.options["fetchMarkets"]["types"] == ["spot"]
    assert not exchange.apiKey


@pytest.mark.parametrize(("symbol", "category"), [("BTC/USDT", "spot"), ("BTC/USDT:USDT", "linear")])
def test_real_ccxt_client_fetches_from_the_configured_rest_url(tmp_path: Path, symbol: str, category: str) -> None:
    """The real ccxt Bybit client against a local v5 server: category from the symbol,
    forward start/end windows, Bybit's 10006 mapped to a rate-limit retry."""
    with LocalBybit(2500, rate_limited=1) as server:
        market = Market(symbol, "1m")
        sleeps: list[float] = []
        started_ms = time.time() * 1000
        frame = load_history(market, 2000, exchange=bybit_exchange(server.url, category), cache_dir=tmp_path,
                             progress=False, sleep=sleeps.append)
    assert sleeps == [5.0]
    last = int(frame["open_time_ms"].iloc[-1])
    assert last in _closed_last(server, started_ms)
    assert frame["open_time_ms"].tolist() == [r[0] for r in server.rows if r[0] <= last][-2000:]
    assert {q["category"] for q in server.kline_queries} == {category}
    assert all(q["symbol"] == "BTCUSDT" and q["interval"] == "1" and int(q["limit"]) == PAGE_CANDLES
               for q in server.kline_queries)
    assert server.paths[0] == "/v5/market/instruments-info"


def test_shadow_fetch_fills_the_cache_from_the_configured_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from bot.cli import app

    monkeypatch.chdir(tmp_path)
    started_ms = time.time() * 1000
    with LocalBybit(1500) as server:
        monkeypatch.setenv("SHADOW_EXCHANGE__REST_URL", server.url)
        result = CliRunner().invoke(app, ["fetch", "--symbol", "BTC/USDT:USDT", "--num-candles", "1200"])
        assert result.exit_code == 0, result.output
        assert "1200 candles" in result.output and "data/cache/bybit_linear_BTCUSDT_1m.csv" in result.output
        requests = len(server.kline_queries)
        assert CliRunner().invoke(app, ["fetch", "--symbol", "BTC/USDT:USDT", "--num-candles", "1200"]).exit_code == 0
        assert len(server.kline_queries) - requests <= 1  # only the minute that closed meanwhile, if any
    cached = read_cache(tmp_path / "data/cache/bybit_linear_BTCUSDT_1m.csv")
    assert cached["timestamp"].is_unique and cached["timestamp"].iloc[-1] in _closed_last(server, started_ms)


def _closed_last(server: LocalBybit, started_ms: float) -> set[int]:
    """Possible open times of the newest closed candle: the server's newest candle is
    forming when it starts, and closes if a minute turns during the test."""
    forming = server.rows[-1][0]
    if time.time() * 1000 < forming + MINUTE:
        return {server.rows[-2][0]}
    return {forming} if started_ms >= forming + MINUTE else {server.rows[-2][0], forming}
