"""The candle feed against the local replay server on 127.0.0.1, under every fault.

Each run replays 140 real BTCUSDT candles (after 20 of history) and must deliver exactly
those candles, in order, once each, whatever the server does, and the client must log
what went wrong.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pytest

from bot.bybit.markets import Interval
from bot.bybit.rest import Backfill, BybitRest
from bot.bybit.subscriptions import MAX_ARGS_CHARS, args_chars
from bot.replay.market import ReplaySeries
from env.types import Candle

HISTORY = 20
N = 160  # candles in the file: 20 of history + 140 replayed


@pytest.fixture
def btc(btc_frame: pd.DataFrame) -> pd.DataFrame:
    return btc_frame.iloc[:N]


async def test_fault_free_run_delivers_every_candle_from_the_stream(
    btc: pd.DataFrame, replay_through_feed, as_candles: Callable[..., list[Candle]]
) -> None:
    run = await replay_through_feed([ReplaySeries.from_frame("BTCUSDT", btc)], history=HISTORY)
    assert run.plain("BTCUSDT") == as_candles("BTCUSDT", btc.iloc[HISTORY:])
    assert {item.source for item in run.candles["BTCUSDT"]} == {"stream"}
    assert run.feed.reconnects == 0 and run.feed.malformed == 0 and run.feed.gaps == 0
    # Public market data only: subscribe and ping ops, GETs of market endpoints and the stream.
    assert {op["op"] for op in run.server.ws_ops} == {"subscribe", "ping"}
    assert {(method, path.split("?")[0]) for method, path in run.server.http_requests} <= {
        ("GET", "/v5/public/linear"), ("GET", "/v5/market/instruments-info"), ("GET", "/v5/market/time"),
        ("GET", "/v5/market/kline")}


@pytest.mark.parametrize(
    ("faults", "logged", "counter"),
    [
        (["drop@30"], "websocket connection lost", "reconnects"),
        (["stall@30"], "silent for 0.4s (watchdog)", "watchdog_closes"),
        (["duplicate@30"], "dropped duplicate candle 2023-03-01 00:50 from stream", "duplicates"),
        (["reorder@30"], "candle 2023-03-01 00:50 arrived out of order", "out_of_order"),
        (["malformed@30"], "skipped malformed message", "malformed"),
        (["skip@30:3"], "gap before 2023-03-01 00:53 (expected 2023-03-01 00:50); backfilling over REST", "gaps"),
        (["skip@30", "ratelimit:3"], "rate-limited", None),
        (["skip@30", "ratelimit:8"], "backfill of BTCUSDT failed", "backfill_failures"),  # 6 attempts per call
    ],
    ids=["drop", "stall", "duplicate", "reorder", "malformed", "skip", "rest-rate-limit", "rest-down-a-while"],
)
async def test_every_fault_still_delivers_exactly_the_file(
    btc: pd.DataFrame,
    replay_through_feed,
    as_candles: Callable[..., list[Candle]],
    client_log: Callable[[], str],
    faults: list[str],
    logged: str,
    counter: str | None,
) -> None:
    run = await replay_through_feed([ReplaySeries.from_frame("BTCUSDT", btc)], history=HISTORY, faults=faults)

    assert run.plain("BTCUSDT") == as_candles("BTCUSDT", btc.iloc[HISTORY:])  # nothing missed, nothing doubled
    assert logged in client_log()
    if counter is not None:
        assert getattr(run.feed, counter) >= 1


async def test_candles_the_stream_skipped_come_from_rest(btc: pd.DataFrame, replay_through_feed) -> None:
    run = await replay_through_feed([ReplaySeries.from_frame("BTCUSDT", btc)], history=HISTORY, faults=["skip@30:3"])
    by_open = {item.candle.open_time_ms: item.source for item in run.candles["BTCUSDT"]}
    skipped = btc.open_time_ms.iloc[HISTORY + 30:HISTORY + 33]
    assert [by_open[int(t)] for t in skipped] == ["rest", "rest", "rest"]
    assert run.feed.backfilled_candles >= 3


async def test_rate_limited_rest_is_retried_on_both_bybit_answers(
    btc: pd.DataFrame, replay_through_feed, client_log: Callable[[], str]
) -> None:
    run = await replay_through_feed([ReplaySeries.from_frame("BTCUSDT", btc)], history=HISTORY,
                                    faults=["skip@30", "ratelimit:2"])
    assert run.rest.rate_limited == 2 and run.rest.retries == 2
    assert '"retCode": 10006' in client_log() and '"retCode": 10018' in client_log()


async def test_a_resumed_feed_backfills_what_closed_while_it_was_away(
    btc: pd.DataFrame, replay_through_feed, as_candles: Callable[..., list[Candle]]
) -> None:
    """The server already has 100 closed candles the client never saw: REST brings them first."""
    series = ReplaySeries.from_frame("BTCUSDT", btc)
    run = await replay_through_feed([series], history=100)
    assert run.plain("BTCUSDT") == as_candles("BTCUSDT", btc.iloc[100:])


async def test_many_symbols_on_spot_subscribe_in_chunks_and_all_recover_from_a_drop(
    btc: pd.DataFrame, eth_frame: pd.DataFrame, replay_through_feed, as_candles: Callable[..., list[Candle]]
) -> None:
    """12 symbols: more than Bybit's 10 args per spot subscribe (the server enforces the cap)."""
    series = [ReplaySeries.from_frame("BTCUSDT", btc), ReplaySeries.from_frame("ETHUSDT", eth_frame.iloc[:N])]
    series += [ReplaySeries.from_frame(f"C{k}USDT", btc) for k in range(10)]
    run = await replay_through_feed(series, history=HISTORY, faults=["drop@20"], category="spot", speed=100)

    subscribes = [op for op in run.server.ws_ops if op["op"] == "subscribe"]
    assert [len(op["args"]) for op in subscribes] == [10, 2, 10, 2]  # two connections, two requests each
    shifted_eth = eth_frame.iloc[:N].assign(open_time_ms=btc.open_time_ms.to_numpy())  # aligned on BTC's clock
    assert run.plain("ETHUSDT") == as_candles("ETHUSDT", shifted_eth.iloc[HISTORY:])
    for k in range(10):
        assert run.plain(f"C{k}USDT") == as_candles(f"C{k}USDT", btc.iloc[HISTORY:])


async def test_a_candle_the_exchange_does_not_have_is_skipped_loudly_not_waited_for(
    btc: pd.DataFrame, replay_through_feed, as_candles: Callable[..., list[Candle]], client_log: Callable[[], str]
) -> None:
    """The stream skips candle 30 and REST does not have it either: the symbol goes on."""
    missing_ms = int(btc.open_time_ms.iloc[HISTORY + 30])

    class RestWithAHole(BybitRest):
        async def fetch_closed(self, symbol: str, iv: Interval, since_ms: int, until_ms: int | None = None) -> Backfill:
            backfill = await super().fetch_closed(symbol, iv, since_ms, until_ms)
            return Backfill([c for c in backfill.candles if c.open_time_ms != missing_ms], backfill.covered_until_ms)

    run = await replay_through_feed([ReplaySeries.from_frame("BTCUSDT", btc)], history=HISTORY, faults=["skip@30"],
                                    rest_class=RestWithAHole)

    expected = [c for c in as_candles("BTCUSDT", btc.iloc[HISTORY:]) if c.open_time_ms != missing_ms]
    assert run.plain("BTCUSDT") == expected
    assert run.feed.skipped_absent == 1
    assert "the exchange has no candle from 2023-03-01 00:50 to 2023-03-01 00:50 (1 missing)" in client_log()


async def test_a_thousand_symbols_spread_over_connections_within_bybits_args_limit(
    btc: pd.DataFrame, replay_through_feed, as_candles: Callable[..., list[Candle]]
) -> None:
    """1,000 linear symbols: 200 topics per request would pass Bybit's 21,000 characters of
    args per connection at the fifth request (the server refuses it, as Bybit does); split
    over two connections, every symbol gets every candle and nothing is refused."""
    symbols = [f"COIN{k:04d}USDT" for k in range(1000)]  # as long as 1000PEPEUSDT
    frame = btc.iloc[:HISTORY + 3]
    run = await replay_through_feed([ReplaySeries.from_frame(s, frame) for s in symbols], history=HISTORY,
                                    speed=1.0, timeout_s=90,
                                    # a loaded CI machine can leave 1,000 streams quiet for more than the fast
                                    # fixture's 0.4 s watchdog; reconnects are not what this test is about
                                    exchange_overrides={"rest_requests_per_s": 120, "watchdog_s": 5.0})

    expected = [c.open_time_ms for c in as_candles("X", frame.iloc[HISTORY:])]
    assert all([c.open_time_ms for c in run.plain(s)] == expected for s in symbols)
    assert run.feed.connections == 2 and run.feed.subscribe_refusals == 0
    subscribed = [t for op in run.server.ws_ops if op["op"] == "subscribe" for t in op["args"]]
    assert sorted(subscribed) == sorted(f"kline.1.{s}" for s in symbols)  # each topic asked once
    assert args_chars(subscribed) > MAX_ARGS_CHARS  # more than one connection may carry
