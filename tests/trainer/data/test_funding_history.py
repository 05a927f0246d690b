"""Funding history for training: fetched through ccxt's ``fetch_funding_rate_history``,
paged, cached beside the candle cache and resumed, turned into the candles' ``funding_rate``
column; a perpetual without funding is one clear error. No network: the in-memory fake and
the replay server (real ccxt client) on 127.0.0.1."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import ccxt
import numpy as np
import pandas as pd
import pytest

from env.funding import funding_rate_column
from tests.conftest import funding_settlements, with_funding
from tests.trainer.trainer_fakes import MARKET, MINUTE, FakeBybit, replay_bybit
from trainer.data.bybit_public import bybit_exchange
from trainer.data.funding_history import (
    FUNDING_PAGE,
    FundingDataError,
    FundingPager,
    funding_cache_file,
    load_funding_history,
    read_funding_cache,
)
from trainer.data.funding_history import (
    with_funding as attach_funding,
)
from trainer.data.history import HistoryError, Market, RetryPolicy, load_history


def candles(fake: FakeBybit, tmp_path: Path, n: int) -> pd.DataFrame:
    return load_history(MARKET, n, exchange=fake, cache_dir=tmp_path, progress=False)


def test_a_perpetuals_candles_get_the_settled_rates_and_the_cache_keeps_them(tmp_path: Path) -> None:
    fake = FakeBybit(3000)
    frame = attach_funding(candles(fake, tmp_path, 2500), MARKET, exchange=fake, cache_dir=tmp_path)
    times = frame["open_time_ms"].to_numpy()
    expected = funding_rate_column(times, MINUTE, fake.settlements())
    assert frame["funding_rate"].tolist() == expected.tolist() and np.count_nonzero(expected) >= 4
    cached = read_funding_cache(funding_cache_file(MARKET, tmp_path))
    assert funding_cache_file(MARKET, tmp_path).name == "bybit_linear_BTCUSDT_funding.csv"
    assert cached == [(t, r) for t, r in fake.settlements() if times[0] - MINUTE < t <= times[-1]]


def test_a_second_run_asks_only_for_what_settled_since(tmp_path: Path) -> None:
    fake = FakeBybit(3000)
    attach_funding(candles(fake, tmp_path, 2500), MARKET, exchange=fake, cache_dir=tmp_path)
    last = read_funding_cache(funding_cache_file(MARKET, tmp_path))[-1][0]
    fake.funding_calls.clear()
    fake.add_candles(600)
    frame = attach_funding(candles(fake, tmp_path, 2500), MARKET, exchange=fake, cache_dir=tmp_path)
    assert fake.funding_calls and all(since > last for since, _, _ in fake.funding_calls)
    expected = funding_rate_column(frame["open_time_ms"].to_numpy(), MINUTE, fake.settlements())
    assert frame["funding_rate"].tolist() == expected.tolist()


def test_a_shorter_interval_than_the_instrument_says_is_paged_in_halves_without_losing_rows(tmp_path: Path) -> None:
    fake = FakeBybit(10)
    fake.funding_every_ms = 60 * MINUTE  # settles hourly, though the instrument says 8 h
    fake.now = fake.rows[0][0] + 500 * 60 * MINUTE
    since, until = fake.rows[0][0], fake.now
    got = load_funding_history(MARKET, since, until, exchange=fake, cache_dir=tmp_path)
    assert got == [(t, r) for t, r in fake.settlements() if since <= t <= until] and len(got) > 2 * FUNDING_PAGE
    assert all(limit == FUNDING_PAGE for *_, limit in fake.funding_calls)


def test_the_pager_moves_on_after_a_page_that_is_not_full() -> None:
    pager = FundingPager(0, 10_000, 10)
    assert pager.window() == (0, 1999)
    pager.take([(t, 0.0) for t in range(0, 2000, 10)])  # 200 rows: maybe truncated, ask half
    assert pager.window() == (0, 999)
    pager.take([(t, 0.0) for t in range(0, 1000, 10)] + [(5000, 1.0)])  # 100 in the window, one outside ignored
    assert pager.window() == (1000, 1999) and len(pager.settlements) == 100


def test_no_funding_history_for_a_perpetual_is_one_clear_error(tmp_path: Path) -> None:
    fake = FakeBybit(1000)
    fake.fetch_funding_rate_history = lambda *a, **k: []  # type: ignore[method-assign]
    with pytest.raises(FundingDataError, match=r"BTC/USDT:USDT: the exchange has no funding history from .* "
                                               r"\(funding every 480 min\); a perpetual's candles cannot be traded"):
        attach_funding(candles(fake, tmp_path, 900), MARKET, exchange=fake, cache_dir=tmp_path)
    assert not funding_cache_file(MARKET, tmp_path).exists()


def test_a_rate_beyond_the_bound_is_refused(tmp_path: Path) -> None:
    fake = FakeBybit(1000)
    fake.funding_rate = lambda time_ms: 0.5  # type: ignore[method-assign]  # a percentage where a fraction belongs
    with pytest.raises(FundingDataError, match=r"funding rate 0.5 at .* is beyond the sane bound of \+-0.05"):
        attach_funding(candles(fake, tmp_path, 900), MARKET, exchange=fake, cache_dir=tmp_path)


def test_exchange_errors_are_retried_then_reported(tmp_path: Path) -> None:
    fake = FakeBybit(1000)
    errors = iter([ccxt.NetworkError("reset")] * 3)
    real = fake.fetch_funding_rate_history

    def flaky(*args: object, **kwargs: object) -> list:
        if (error := next(errors, None)) is not None:
            raise error
        return real(*args, **kwargs)

    fake.fetch_funding_rate_history = flaky  # type: ignore[method-assign]
    sleeps: list[float] = []
    frame = candles(fake, tmp_path, 900)
    with pytest.raises(HistoryError, match="gave up after 2 attempts"):
        attach_funding(frame, MARKET, exchange=fake, cache_dir=tmp_path, retry=RetryPolicy(attempts=2),
                       sleep=sleeps.append)
    assert attach_funding(frame, MARKET, exchange=fake, cache_dir=tmp_path, sleep=sleeps.append)["funding_rate"].any()


def test_spot_candles_stay_as_they_are(tmp_path: Path) -> None:
    fake = FakeBybit(600)
    frame = candles(fake, tmp_path, 500)
    assert attach_funding(frame, Market("BTC/USDT", "1m"), exchange=fake, cache_dir=tmp_path) is frame
    assert fake.funding_calls == []


async def test_the_real_ccxt_client_gets_the_replayed_funding(tmp_path: Path, btc_candles: pd.DataFrame) -> None:
    """ccxt's bybit against the replay server: /v5/market/funding/history, category linear,
    explicit start and end windows; the column equals the replayed file's."""
    frame = with_funding(btc_candles.iloc[:2010])
    history = 2000
    async with replay_bybit(frame, history=history) as server:
        exchange = bybit_exchange(server.rest_url, "linear")
        market = Market("BTC/USDT:USDT", "1m")

        def fetch() -> pd.DataFrame:
            got = load_history(market, 1500, exchange=exchange, cache_dir=tmp_path, progress=False)
            return attach_funding(got, market, exchange=exchange, cache_dir=tmp_path)

        got = await asyncio.to_thread(fetch)
    expected = frame.iloc[history - 1500:history].reset_index(drop=True)
    assert got["funding_rate"].tolist() == expected["funding_rate"].tolist()
    assert got["funding_rate"].astype(bool).sum() == 3  # 16:00 on 03-01, 00:00 and 08:00 on 03-02
    queries = [dict(parse_qsl(urlsplit(p).query)) for _, p in server.http_requests
               if urlsplit(p).path == "/v5/market/funding/history"]
    assert queries and all(q["category"] == "linear" and q["symbol"] == "BTCUSDT" and "startTime" in q
                           and "endTime" in q for q in queries)


async def test_shadow_fetch_caches_a_perpetuals_funding_beside_its_candles(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, btc_candles: pd.DataFrame) -> None:
    from typer.testing import CliRunner

    from bot.cli import app

    monkeypatch.chdir(tmp_path)
    frame = with_funding(btc_candles.iloc[:1510])
    async with replay_bybit(frame, history=1500) as server:
        result = await asyncio.to_thread(CliRunner().invoke, app, ["fetch", "--symbol", "BTC/USDT:USDT",
                                                                    "--num-candles", "1200"],
                                         env={"SHADOW_EXCHANGE__REST_URL": server.rest_url})
    assert result.exit_code == 0, result.output
    assert "3 funding settlements over them" in result.output  # 08:00, 16:00 and 00:00
    cached = read_funding_cache(tmp_path / "data/cache/bybit_linear_BTCUSDT_funding.csv")
    assert cached == [(t, r) for t, r in funding_settlements(frame.iloc[:1500])
                      if frame["open_time_ms"].iloc[300] - MINUTE < t <= frame["open_time_ms"].iloc[1499]]
