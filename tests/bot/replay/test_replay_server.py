"""The replay server speaks Bybit v5 as clients expect, and rejects bad options clearly."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import numpy as np
import pandas as pd
import pytest
from websockets.asyncio.client import ClientConnection, connect

from bot.replay.faults import Fault, FaultKind, FaultSpecError, parse_fault
from bot.replay.market import ReplayDataError, ReplayMarket, ReplaySeries
from bot.replay.server import ReplayServer

HISTORY = 20


@pytest.fixture
async def server(btc_frame: pd.DataFrame, eth_frame: pd.DataFrame) -> AsyncIterator[ReplayServer]:
    market = ReplayMarket([ReplaySeries.from_frame("BTCUSDT", btc_frame.iloc[:30]),
                           ReplaySeries.from_frame("ETHUSDT", eth_frame.iloc[:30])], history=HISTORY)
    async with ReplayServer(market, speed=50, updates_per_candle=2) as srv:
        yield srv


async def request(ws: ClientConnection, op: dict[str, Any]) -> dict[str, Any]:
    await ws.send(json.dumps(op))
    while True:
        reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if "op" in reply:
            return reply


async def get(server: ReplayServer, path: str, **params: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(server.rest_url + path, params=params) as response:
        return response.status, await response.json(content_type=None)


async def test_subscribe_ack_and_pong_look_like_bybit(server: ReplayServer) -> None:
    async with connect(server.ws_url("linear")) as ws:
        ack = await request(ws, {"req_id": "s1", "op": "subscribe", "args": ["kline.1.BTCUSDT"]})
        pong = await request(ws, {"req_id": "p1", "op": "ping"})
    assert ack["success"] is True and ack["op"] == "subscribe" and ack["req_id"] == "s1" and ack["conn_id"]
    assert pong == {"success": True, "ret_msg": "pong", "conn_id": ack["conn_id"], "req_id": "p1", "op": "ping"}


async def test_refusals_carry_bybit_reasons(server: ReplayServer) -> None:
    async with connect(server.ws_url("spot")) as ws:
        eleven = await request(ws, {"op": "subscribe", "args": ["kline.1.BTCUSDT"] * 11})
        other_interval = await request(ws, {"op": "subscribe", "args": ["kline.5.BTCUSDT"]})
        await ws.send("not json")
        garbage = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert not server.started.is_set()  # no successful subscription, no replay
        unknown = await request(ws, {"op": "subscribe", "args": ["kline.1.BTCUSDT", "kline.1.DOGEUSDT"]})
        again = await request(ws, {"op": "subscribe", "args": ["kline.1.BTCUSDT"]})
    assert (eleven["success"], eleven["ret_msg"]) == (False, "args size >10")
    assert (unknown["success"], unknown["ret_msg"]) == (False, "Invalid symbol :[kline.1.DOGEUSDT]")
    assert other_interval["success"] is False
    assert garbage["success"] is False
    # Each topic is judged alone, as Bybit does: BTCUSDT was subscribed by the partly refused request.
    assert server.started.is_set()
    assert (again["success"], again["ret_msg"]) == (False, "error:already subscribed,topic:kline.1.BTCUSDT")


async def test_each_candle_forms_then_closes_with_the_file_values(server: ReplayServer,
                                                                  btc_frame: pd.DataFrame) -> None:
    async with connect(server.ws_url("linear")) as ws:
        await request(ws, {"op": "subscribe", "args": ["kline.1.BTCUSDT"]})
        pushes = []
        while len([p for p in pushes if p["data"][0]["confirm"]]) < 10:
            pushes.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
    starts = [p["data"][0]["start"] for p in pushes]
    confirms = [p["data"][0]["confirm"] for p in pushes]
    assert confirms == [False, False, True] * 10  # two forming updates, then the final one
    assert starts == [s for s in btc_frame.open_time_ms.iloc[HISTORY:HISTORY + 10] for _ in range(3)]
    final = [p["data"][0] for p in pushes if p["data"][0]["confirm"]]
    assert [float(f["close"]) for f in final] == btc_frame.close.iloc[HISTORY:HISTORY + 10].tolist()
    assert all(isinstance(f["open"], str) and f["end"] == f["start"] + 59_999 for f in final)
    forming = pushes[1]["data"][0]
    assert float(forming["volume"]) < btc_frame.volume.iloc[HISTORY]  # still accruing


async def test_rest_klines_are_newest_first_strings_up_to_the_forming_candle(
    server: ReplayServer, btc_frame: pd.DataFrame
) -> None:
    server.market.form(HISTORY, 0.5)
    status, body = await get(server, "/v5/market/kline", category="spot", symbol="BTCUSDT", interval="1", limit=3)
    assert status == 200 and body["retCode"] == 0 and body["result"]["category"] == "spot"
    rows = body["result"]["list"]
    assert [int(r[0]) for r in rows] == btc_frame.open_time_ms.iloc[HISTORY - 2:HISTORY + 1].tolist()[::-1]
    assert all(isinstance(v, str) for r in rows for v in r) and len(rows[0]) == 7
    assert float(rows[1][4]) == btc_frame.close.iloc[HISTORY - 1]  # closed: final values
    assert float(rows[0][4]) != btc_frame.close.iloc[HISTORY]  # forming: not yet
    assert body["time"] == server.market.clock.now_ms()

    _, window = await get(server, "/v5/market/kline", symbol="BTCUSDT", interval="1", limit=2,
                          start=int(btc_frame.open_time_ms.iloc[0]), end=int(btc_frame.open_time_ms.iloc[9]))
    assert window["result"]["category"] == "linear"  # Bybit's default category
    assert [int(r[0]) for r in window["result"]["list"]] == btc_frame.open_time_ms.iloc[[9, 8]].tolist()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"symbol": "DOGEUSDT", "interval": "1"}, "Not supported symbols"),
        ({"symbol": "BTCUSDT", "interval": "5"}, "Invalid period"),
        ({"symbol": "BTCUSDT", "interval": "1", "category": "inverse"}, "Not supported symbols"),
        ({"symbol": "BTCUSDT", "interval": "1", "start": "yesterday"}, "must be integers"),
    ],
)
async def test_rest_parameter_errors_are_ret_code_10001(server: ReplayServer, params: dict, message: str) -> None:
    status, body = await get(server, "/v5/market/kline", **params)
    assert status == 200 and body["retCode"] == 10001 and message in body["retMsg"]


async def test_instruments_and_time_serve_ccxt(server: ReplayServer) -> None:
    _, linear = await get(server, "/v5/market/instruments-info", category="linear", limit=1000)
    _, prelaunch = await get(server, "/v5/market/instruments-info", category="linear", status="PreLaunch")
    _, inverse = await get(server, "/v5/market/instruments-info", category="inverse")
    _, now = await get(server, "/v5/market/time")
    assert [(i["symbol"], i["baseCoin"], i["settleCoin"]) for i in linear["result"]["list"]] == [
        ("BTCUSDT", "BTC", "USDT"), ("ETHUSDT", "ETH", "USDT")]
    assert prelaunch["result"]["list"] == [] and inverse["result"]["list"] == []
    assert int(now["result"]["timeSecond"]) == now["time"] // 1000 == server.market.clock.now_ms() // 1000


@pytest.mark.parametrize(
    ("spec", "fault"),
    [("drop@5", Fault(FaultKind.DROP, 5)), ("skip@80:3", Fault(FaultKind.SKIP, 80, 3)),
     ("ratelimit:4", Fault(FaultKind.RATELIMIT, None, 4)), (" Stall@0 ", Fault(FaultKind.STALL, 0))],
)
def test_fault_specs_parse(spec: str, fault: Fault) -> None:
    assert parse_fault(spec) == fault


@pytest.mark.parametrize(
    ("spec", "message"),
    [("explode@3", "unknown kind 'explode'"), ("drop", "drop needs the candle it hits"),
     ("ratelimit@3", "ratelimit takes no @candle"), ("duplicate@3:2", "duplicate takes no :count"),
     ("skip@3:0", "count must be at least 1"), ("drop@-1", "is not a fault spec")],
)
def test_bad_fault_specs_name_the_problem(spec: str, message: str) -> None:
    with pytest.raises(FaultSpecError, match=message):
        parse_fault(spec)


def test_bad_replay_data_is_refused_clearly(btc_frame: pd.DataFrame) -> None:
    btc = ReplaySeries.from_frame("BTCUSDT", btc_frame.iloc[:50])
    with pytest.raises(ReplayDataError, match="history must be between 1 and 49"):
        ReplayMarket([btc], history=50)
    with pytest.raises(ReplayDataError, match="given twice"):
        ReplayMarket([btc, btc], history=10)
    with pytest.raises(ReplayDataError, match="base and quote coin of 'BTCXYZ'"):
        ReplayMarket([ReplaySeries.from_frame("BTCXYZ", btc_frame.iloc[:50])], history=10)
    two_minutes = btc_frame.iloc[:50:2]
    with pytest.raises(ReplayDataError, match="different intervals"):
        ReplayMarket([btc, ReplaySeries.from_frame("ETHUSDT", two_minutes)], history=10)
    with pytest.raises(ReplayDataError, match="candles 120 s apart are not on a Bybit interval"):
        ReplayMarket([ReplaySeries.from_frame("ETHUSDT", two_minutes)], history=10)
    with pytest.raises(ReplayDataError, match="speed"):
        ReplayServer(ReplayMarket([btc], history=10), speed=0)


def test_series_of_different_dates_are_aligned_on_the_first(btc_frame: pd.DataFrame, eth_frame: pd.DataFrame) -> None:
    market = ReplayMarket([ReplaySeries.from_frame("BTCUSDT", btc_frame.iloc[:40]),
                           ReplaySeries.from_frame("ETHUSDT", eth_frame.iloc[:30])], history=10)
    assert market.length == 30
    assert np.array_equal(market.open_time_ms, btc_frame.open_time_ms.iloc[:30].to_numpy())
    assert market.candle_values("ETHUSDT", 5) == tuple(eth_frame[["open", "high", "low", "close", "volume"]].iloc[5])


async def test_funding_history_is_settled_rates_up_to_the_virtual_now_newest_first(btc_candles: pd.DataFrame) -> None:
    """A frame with a funding column settles its rates; one without settles 0 every 8 h."""
    from tests.conftest import funding_settlements, with_funding

    frame = with_funding(btc_candles.iloc[:1000])
    market = ReplayMarket([ReplaySeries.from_frame("BTCUSDT", frame),
                           ReplaySeries.from_frame("ETHUSDT", btc_candles.iloc[:1000])], history=600)
    async with ReplayServer(market, speed=50) as srv:
        _, btc = await get(srv, "/v5/market/funding/history", category="linear", symbol="BTCUSDT")
        _, eth = await get(srv, "/v5/market/funding/history", category="linear", symbol="ETHUSDT")
        _, one = await get(srv, "/v5/market/funding/history", category="linear", symbol="BTCUSDT", limit=1,
                           startTime=0, endTime=2**45)
        _, bad = await get(srv, "/v5/market/funding/history", category="linear", symbol="BTCUSDT", startTime=0)
        _, spot = await get(srv, "/v5/market/funding/history", category="spot", symbol="BTCUSDT")
    now = int(frame["open_time_ms"].iloc[600])
    settled = [(t, r) for t, r in funding_settlements(frame) if t <= now]
    assert [(int(row["fundingRateTimestamp"]), float(row["fundingRate"])) for row in btc["result"]["list"]] == \
        settled[::-1]
    assert [row["fundingRate"] for row in eth["result"]["list"]] == ["0.0"] * len(settled)
    assert len(one["result"]["list"]) == 1 and one["result"]["list"][0] == btc["result"]["list"][0]
    assert bad["retCode"] == 10001 and spot["retCode"] == 10001


async def test_a_linear_ticker_subscription_gets_a_snapshot_then_a_delta_per_candle(btc_candles: pd.DataFrame) -> None:
    from tests.conftest import funding_settlements, with_funding

    frame = with_funding(btc_candles.iloc[:500])
    market = ReplayMarket([ReplaySeries.from_frame("BTCUSDT", frame)], history=470)
    async with ReplayServer(market, speed=50) as srv, connect(srv.ws_url("linear")) as ws:
        ack = await request(ws, {"op": "subscribe", "args": ["tickers.BTCUSDT"]})
        pushes = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in range(12)]
    async with ReplayServer(market, speed=50) as srv, connect(srv.ws_url("spot")) as ws:
        refused = await request(ws, {"op": "subscribe", "args": ["tickers.BTCUSDT"]})
    assert ack["success"] and not refused["success"]
    assert [p["type"] for p in pushes] == ["snapshot"] + ["delta"] * 11
    eight, rate = funding_settlements(frame)[1]
    announced = [(int(p["data"]["nextFundingTime"]), float(p["data"]["fundingRate"])) for p in pushes]
    assert announced[0] == (eight, rate)  # 07:50: next is 08:00
    assert announced[-1] == (eight + 8 * 3_600_000, 0.0)  # once 08:00 settled: 16:00, after the data (rate 0)
