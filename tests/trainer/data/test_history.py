"""Fetching Bybit history: forward pagination, retry with back-off, the cache, the exchange's
clock. No network: a fake exchange serves candles the way ccxt's bybit.fetch_ohlcv does, and
the product's replay server (127.0.0.1) serves the real ccxt client."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import ccxt
import pandas as pd
import pytest

from bot.replay.server import ReplayServer
from tests.trainer.trainer_fakes import MARKET, MINUTE, FakeBybit, replay_bybit
from trainer.data.bybit_public import PrivateEndpointRefused, bybit_exchange
from trainer.data.history import (
    PAGE_CANDLES,
    HistoryError,
    Market,
    RetryPolicy,
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
    assert since == first["open_time_ms"].iloc[-1] + MINUTE and until == fake.rows[-2][0]  # the newest closed
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


def test_a_policy_allowing_no_attempt_is_named_not_a_name_error() -> None:
    calls: list[int] = []
    with pytest.raises(HistoryError, match=r"w: no attempt allowed \(RetryPolicy.attempts = 0\)"):
        call_with_retry(lambda: calls.append(1), what="w", policy=RetryPolicy(attempts=0))
    assert calls == []


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
    assert (spot.category, spot.market_id, spot.grid.nominal_ms) == ("spot", "BTCUSDT", 300_000)
    assert (perp.category, perp.market_id, perp.grid.nominal_ms) == ("linear", "BTCUSDT", 3_600_000)
    assert spot.cache_file(Path("c")) == Path("c/bybit_spot_BTCUSDT_5m.csv")
    assert perp.cache_file(Path("c")) == Path("c/bybit_linear_BTCUSDT_1h.csv")


def test_bybit_exchange_points_every_rest_host_at_the_configured_url() -> None:
    exchange = bybit_exchange("http://127.0.0.1:8123/", "spot")
    assert set(exchange.urls["api"].values()) == {"http://127.0.0.1:8123"}
    assert exchange.options["fetchMarkets"]["types"] == ["spot"]
    assert not exchange.apiKey


def test_the_trainers_client_cannot_reach_a_private_endpoint() -> None:
    exchange = bybit_exchange("http://127.0.0.1:9", "linear")  # nothing listens: a sent request would fail otherwise
    with pytest.raises(PrivateEndpointRefused, match="never trades"):
        exchange.privateGetV5AccountWalletBalance({"accountType": "UNIFIED"})
    with pytest.raises(PrivateEndpointRefused):
        exchange.request("v5/order/create", "public", "POST", {"symbol": "BTCUSDT"})


def test_closed_is_decided_by_the_exchange_clock_not_a_fast_local_one(tmp_path: Path) -> None:
    fake = FakeBybit(600)  # the exchange is 30 s into candle 599
    fake.milliseconds = lambda: fake.now + 45_000  # type: ignore[method-assign] # local clock 45 s fast
    frame = fetch(fake, tmp_path, 500)
    assert frame["open_time_ms"].iloc[-1] == fake.rows[-2][0]  # candle 599 is still forming: not returned
    assert read_cache(MARKET.cache_file(tmp_path))["timestamp"].iloc[-1] == fake.rows[-2][0]  # nor cached


def test_without_the_exchange_clock_the_local_clock_is_used_with_a_margin(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeBybit(600)
    fake.time_failures = [ccxt.ExchangeNotAvailable("404 Not Found")] * 2
    sleeps: list[float] = []
    frame = fetch(fake, tmp_path, 500, sleeps)
    assert sleeps == [1.0]  # one retry, then the fallback; the candles themselves came at once
    # local now - 60 s lies in candle 598, so 597 is the newest that surely closed
    assert frame["open_time_ms"].iloc[-1] == fake.rows[-3][0]
    assert "server time: gave up after 2 attempts (ExchangeNotAvailable: 404 Not Found)" in caplog.text
    assert "cannot read the exchange's clock" in caplog.text


async def _load_from(server: ReplayServer, market: Market, n: int, cache: Path, sleeps: list[float]) -> pd.DataFrame:
    """``load_history`` with the real ccxt client, in a thread while the server answers here."""
    exchange = bybit_exchange(server.rest_url, market.category)
    return await asyncio.to_thread(load_history, market, n, exchange=exchange, cache_dir=cache, progress=False,
                                   sleep=sleeps.append)


def _queries(server: ReplayServer, path: str) -> list[dict[str, str]]:
    return [dict(parse_qsl(urlsplit(p).query)) for _, p in server.http_requests if urlsplit(p).path == path]


@pytest.mark.parametrize(("symbol", "category"), [("BTC/USDT", "spot"), ("BTC/USDT:USDT", "linear")])
async def test_real_ccxt_client_gets_exactly_the_replayed_closed_candles(
    tmp_path: Path, btc_candles: pd.DataFrame, symbol: str, category: str
) -> None:
    """The real ccxt Bybit client against the replay server: category from the symbol,
    forward start/end windows, the server's clock, Bybit's rate limits (10006, 10018) retried."""
    history = 2500  # closed candles on the server; candle 2500 is forming
    async with replay_bybit(btc_candles.iloc[:history + 10], history=history, faults=["ratelimit:2"]) as server:
        sleeps: list[float] = []
        frame = await _load_from(server, Market(symbol, "1m"), 2000, tmp_path, sleeps)
    assert sleeps == [5.0, 10.0]
    expected = btc_candles.iloc[history - 2000:history].reset_index(drop=True)
    pd.testing.assert_frame_equal(frame, expected)
    klines = _queries(server, "/v5/market/kline")
    assert {q["category"] for q in klines} == {category}
    assert all(q["symbol"] == "BTCUSDT" and q["interval"] == "1" and int(q["limit"]) == PAGE_CANDLES for q in klines)
    paths = [urlsplit(p).path for _, p in server.http_requests]
    assert paths[0] == "/v5/market/time" and set(paths) == {
        "/v5/market/time", "/v5/market/instruments-info", "/v5/market/kline"}


async def test_shadow_fetch_gets_the_replay_files_closed_candles_up_to_the_virtual_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, btc_candles: pd.DataFrame
) -> None:
    """The replay's clock is in March 2023; the local one is not. Only candles closed by the
    server's clock are cached, and moving that clock is what makes the next one appear."""
    from typer.testing import CliRunner

    from bot.cli import app

    monkeypatch.chdir(tmp_path)
    history = 1500
    cache = tmp_path / "data/cache/bybit_linear_BTCUSDT_1m.csv"
    args = ["fetch", "--symbol", "BTC/USDT:USDT", "--num-candles", "1200"]
    async with replay_bybit(btc_candles.iloc[:history + 10], history=history) as server:

        async def shadow_fetch() -> str:
            result = await asyncio.to_thread(CliRunner().invoke, app, args,
                                             env={"SHADOW_EXCHANGE__REST_URL": server.rest_url})
            assert result.exit_code == 0, result.output
            return result.output

        output = await shadow_fetch()
        assert "1200 candles 2023-03-01 05:00 .. 2023-03-02 00:59 in data/cache/bybit_linear_BTCUSDT_1m.csv" in output
        cached = read_cache(cache)
        assert cached["timestamp"].iloc[-1] == btc_candles["open_time_ms"].iloc[history - 1]
        assert_cached_as_replayed(cached, btc_candles)

        klines = len(_queries(server, "/v5/market/kline"))
        server.market.form(history, 0.5)  # half-way through the forming candle: still not closed
        await shadow_fetch()
        assert read_cache(cache).equals(cached) and len(_queries(server, "/v5/market/kline")) == klines

        server.market.close(history)  # it closed: exactly that one candle is fetched, with its final values
        output = await shadow_fetch()
        assert len(_queries(server, "/v5/market/kline")) == klines + 1
        assert "2023-03-02 01:00 in" in output
        grown = read_cache(cache)
        assert len(grown) == len(cached) + 1
        assert grown["timestamp"].iloc[-1] == btc_candles["open_time_ms"].iloc[history]
        assert_cached_as_replayed(grown, btc_candles)


def assert_cached_as_replayed(cached: pd.DataFrame, candles: pd.DataFrame) -> None:
    """The cache holds exactly the file's rows for its timestamps, no gaps."""
    expected = candles.set_index("open_time_ms").loc[cached["timestamp"], ["open", "high", "low", "close", "volume"]]
    assert cached["timestamp"].diff().dropna().eq(MINUTE).all()
    assert cached[["open", "high", "low", "close", "volume"]].to_numpy().tolist() == expected.to_numpy().tolist()


def test_a_cache_dir_that_cannot_be_created_fails_before_fetching(tmp_path: Path) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache directory should be")
    fake = FakeBybit(600)
    with pytest.raises(HistoryError, match=f"{blocker}: cannot create the candle cache directory"):
        fetch(fake, blocker, 500)
    assert fake.calls == []


def test_shadow_fetch_user_errors_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    from bot.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "blocker").write_text("")
    monkeypatch.setenv("SHADOW_TRAIN__CACHE_DIR", "blocker")
    monkeypatch.setenv("SHADOW_EXCHANGE__REST_URL", "http://127.0.0.1:9")  # never reached
    monkeypatch.setattr(sys, "argv", ["shadow", "fetch", "--num-candles", "500"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    assert "error: blocker: cannot create the candle cache directory" in " ".join(err.split())


def test_a_cache_that_cannot_be_written_is_a_clear_error_and_stays_as_it_was(tmp_path: Path) -> None:
    fake = FakeBybit(600)
    fetch(fake, tmp_path, 500)
    path = MARKET.cache_file(tmp_path)
    before = path.read_text()
    path.with_name(path.name + ".tmp").mkdir()  # the temp file cannot be written
    fake.add_candles(5)
    with pytest.raises(HistoryError, match=f"{path}: cannot write the candle cache .*the file is unchanged"):
        fetch(fake, tmp_path, 500)
    assert path.read_text() == before


@pytest.mark.parametrize(("timeframe", "freq", "first"), [("1w", "7D", "2019-01-07"), ("1M", "MS", "2001-01-01")])
async def test_weeks_and_months_are_fetched_on_bybits_grid(
    tmp_path: Path, btc_candles: pd.DataFrame, timeframe: str, freq: str, first: str
) -> None:
    """Bybit's weeks open on Mondays and its months on the 1st: the newest closed candle and
    every page window follow that grid (ccxt's own ``since`` would round to Thursdays)."""
    opens = pd.date_range(first, periods=240, freq=freq).as_unit("ms").asi8
    real = btc_candles.iloc[::60].iloc[:240].reset_index(drop=True)
    frame = real.assign(open_time_ms=opens, timestamp=pd.to_datetime(opens, unit="ms"))
    async with replay_bybit(frame, history=230) as server:
        server.market.form(230, 0.9)  # well into the forming candle
        fetched = await _load_from(server, Market("BTC/USDT:USDT", timeframe), 200, tmp_path, [])
    pd.testing.assert_frame_equal(fetched, frame.iloc[30:230].reset_index(drop=True))
    assert all(int(q["start"]) in opens for q in _queries(server, "/v5/market/kline"))


async def test_http_403_stops_the_fetch_at_once_with_bybits_reason(tmp_path: Path, btc_candles: pd.DataFrame) -> None:
    """ccxt calls every 403 a rate limit; it is an IP ban or a blocked region, and Bybit asks
    for 10 minutes of quiet: no retry, no fallback to the local clock, one line that says so."""
    async with replay_bybit(btc_candles.iloc[:310], history=300, faults=["forbidden:5"]) as server:
        sleeps: list[float] = []
        with pytest.raises(HistoryError) as caught:
            await _load_from(server, Market("BTC/USDT:USDT", "1m"), 100, tmp_path, sleeps)
    assert str(caught.value) == (
        "server time: Bybit answered HTTP 403 Forbidden (access too frequent): an IP ban (more than 600 requests in "
        "5 s) or a blocked region; Bybit asks clients to stop every request for at least 10 minutes; fetch again later")
    assert sleeps == [] and len(server.http_requests) == 1
