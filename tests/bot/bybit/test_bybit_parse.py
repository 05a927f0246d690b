"""Decoding Bybit websocket messages into candles: strict, with one-line reasons."""

from __future__ import annotations

import json

import pytest

from bot.bybit.markets import INTERVALS, INTERVALS_BY_BYBIT, UnknownSymbolError, ccxt_symbol, kline_topic
from bot.bybit.parse import MalformedMessage, TopicTarget, UnknownTopic, closed_candles, decode
from bot.bybit.schemas import KlinePush, OpReply
from config.settings import TIMEFRAMES
from env.types import Candle

TOPICS = {"kline.1.BTCUSDT": TopicTarget("BTCUSDT", INTERVALS["1m"])}


def push(confirm: bool = True, **changes: object) -> dict:
    """The kline push from Bybit's documentation, moved to a 1-minute candle."""
    item = {"start": 1672324800000, "end": 1672324859999, "interval": "1", "open": "16649.5", "close": "16677",
            "high": "16677", "low": "16608", "volume": "2.081", "turnover": "34666.4005", "confirm": confirm,
            "timestamp": 1672324988882}
    item |= changes
    return {"topic": "kline.1.BTCUSDT", "type": "snapshot", "ts": 1672324988882, "data": [item]}


def test_confirmed_kline_becomes_a_candle_with_exact_values() -> None:
    message = decode(json.dumps(push()))
    assert isinstance(message, KlinePush)
    assert closed_candles(message, TOPICS) == [
        Candle("BTCUSDT", "1m", 1672324800000, 16649.5, 16677.0, 16608.0, 16677.0, 2.081)
    ]


def test_forming_kline_yields_no_candle() -> None:
    assert closed_candles(decode(json.dumps(push(confirm=False))), TOPICS) == []


def test_pong_and_ack_decode_as_op_replies() -> None:
    pong = decode(b'{"success":true,"ret_msg":"pong","conn_id":"c1","req_id":"ping-1","op":"ping"}')
    ack = decode('{"success":false,"ret_msg":"Invalid symbol :[kline.1.X]","conn_id":"c1","req_id":"s",'
                 '"op":"subscribe"}')
    assert pong == OpReply(op="ping", success=True, ret_msg="pong", req_id="ping-1")
    assert isinstance(ack, OpReply) and ack.success is False and "Invalid symbol" in ack.ret_msg


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ('{"topic": "kline.1.BTCUSDT", "data": [', "Invalid JSON"),
        ("[1, 2]", "neither a topic push nor an op reply"),
        ('{"hello": 1}', "neither a topic push nor an op reply"),
        (json.dumps(push(open="abc")), "data.0.open"),
        (json.dumps(push(low="-6")), "data.0.low: Input should be greater than 0"),
        (json.dumps(push(high="1")), "high/low do not bracket"),
        (json.dumps(push(volume="nan")), "data.0.volume"),
        (json.dumps(push(confirm="yes")), "data.0.confirm"),
        (json.dumps(push(start="1672324800000")), "data.0.start"),
        (json.dumps(push() | {"data": []}), "data"),
    ],
)
def test_malformed_messages_raise_with_the_field_named(raw: str, reason: str) -> None:
    with pytest.raises(MalformedMessage, match=reason) as caught:
        decode(raw)
    assert "\n" not in str(caught.value)  # one log line


def test_a_message_is_previewed_not_dumped_whole() -> None:
    with pytest.raises(MalformedMessage) as caught:
        decode('{"topic": ' + '"x' * 5000)
    assert len(str(caught.value)) < 400


def test_push_for_a_topic_never_subscribed_is_an_unknown_topic() -> None:
    message = decode(json.dumps(push() | {"topic": "kline.1.ETHUSDT"}))
    with pytest.raises(UnknownTopic, match=r"kline\.1\.ETHUSDT"):
        closed_candles(message, TOPICS)


@pytest.mark.parametrize(("changes", "reason"), [({"interval": "5"}, "interval '5'"), ({"end": 1672324899999}, "end")])
def test_entry_that_does_not_fit_its_topic_is_malformed(changes: dict, reason: str) -> None:
    with pytest.raises(MalformedMessage, match=reason):
        closed_candles(decode(json.dumps(push(**changes))), TOPICS)


def test_interval_table_covers_exactly_the_configurable_intervals() -> None:
    assert tuple(INTERVALS) == TIMEFRAMES
    assert {iv.bybit for iv in INTERVALS.values()} == set(INTERVALS_BY_BYBIT)
    assert INTERVALS["1h"].bybit == "60" and INTERVALS["1d"].bybit == "D" and INTERVALS["1d"].grid.step_ms == 86_400_000
    assert INTERVALS["1w"].bybit == "W" and INTERVALS["1M"].bybit == "M"
    assert kline_topic("ETHUSDT", INTERVALS["5m"]) == "kline.5.ETHUSDT"


def test_ccxt_symbol_picks_the_market_of_the_category() -> None:
    markets_by_id = {"BTCUSDT": [{"symbol": "BTC/USDT", "spot": True},
                                 {"symbol": "BTC/USDT:USDT", "spot": False, "linear": True, "swap": True}]}
    assert ccxt_symbol(markets_by_id, "BTCUSDT", "spot") == "BTC/USDT"
    assert ccxt_symbol(markets_by_id, "BTCUSDT", "linear") == "BTC/USDT:USDT"
    with pytest.raises(UnknownSymbolError, match="'DOGEUSDT' is not a Bybit linear market"):
        ccxt_symbol(markets_by_id, "DOGEUSDT", "linear")


@pytest.mark.parametrize(
    ("interval", "start", "end", "ok"),
    [
        ("W", 1_704_067_200_000, 1_704_671_999_999, True),  # Monday 2024-01-01 .. Sunday 23:59:59.999
        ("W", 1_704_326_400_000, 1_704_931_199_999, False),  # Thursday 2024-01-04: a 7-day multiple, not Bybit's
        ("M", 1_706_745_600_000, 1_709_251_199_999, True),  # February 2024: 29 days
        ("M", 1_706_745_600_000, 1_709_337_599_999, False),  # February 2024 as if it had 30 days
    ],
)
def test_weekly_and_monthly_pushes_follow_bybits_calendar(interval: str, start: int, end: int, ok: bool) -> None:
    iv = INTERVALS_BY_BYBIT[interval]
    topics = {f"kline.{interval}.BTCUSDT": TopicTarget("BTCUSDT", iv)}
    message = decode(json.dumps(push(interval=interval, start=start, end=end) | {"topic": f"kline.{interval}.BTCUSDT"}))
    if ok:
        assert [c.open_time_ms for c in closed_candles(message, topics)] == [start]
    else:
        with pytest.raises(MalformedMessage, match=r"start .* is not on the 1w|end .* next 1M candle"):
            closed_candles(message, topics)
