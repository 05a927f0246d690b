"""Bybit's subscription rules: topics over connections and requests, and acks per topic."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from bot.bybit.subscriptions import MAX_ARGS_CHARS, args_chars, plan_connections, plan_requests, read_ack

SYMBOL = st.from_regex(r"[A-Z0-9]{3,20}USDT", fullmatch=True)


@given(st.lists(SYMBOL, min_size=1, max_size=3000, unique=True), st.sampled_from(["1", "60", "D", "W", "M"]))
def test_connections_keep_every_topic_in_order_within_the_args_limit(symbols: list[str], interval: str) -> None:
    topics = [f"kline.{interval}.{s}" for s in symbols]
    connections = plan_connections(topics)
    assert [t for c in connections for t in c] == topics
    assert all(args_chars(c) <= MAX_ARGS_CHARS for c in connections)
    # greedy fill: no connection could have taken the next connection's first topic
    assert all(args_chars([*c, n[0]]) > MAX_ARGS_CHARS for c, n in pairwise(connections))


def test_a_thousand_symbols_need_two_connections_and_five_requests_each_at_most() -> None:
    topics = [f"kline.1.COIN{k:04d}USDT" for k in range(1000)]
    connections = plan_connections(topics)
    assert len(connections) == 2
    assert [len(r) for r in plan_requests(connections[0], "linear")] == [200, 200, 200, 200, 75]
    assert {len(r) for r in plan_requests(topics[:25], "spot")} == {10, 5}


def test_acks_judge_each_topic() -> None:
    request = ["kline.1.BTCUSDT", "kline.1.FOOUSDT", "kline.1.ETHUSDT"]
    assert read_ack(request, True, "").subscribed == request
    named = read_ack(request, False, "Invalid symbol :[kline.1.FOOUSDT]")
    assert (named.refused, named.resend, named.reason) == (
        ["kline.1.FOOUSDT"], ["kline.1.BTCUSDT", "kline.1.ETHUSDT"], "Invalid symbol :[kline.1.FOOUSDT]")
    again = read_ack(["kline.1.BTCUSDT", "kline.1.ETH"], False, "error:already subscribed,topic:kline.1.BTCUSDT")
    assert (again.subscribed, again.refused, again.resend) == (["kline.1.BTCUSDT"], [], ["kline.1.ETH"])
    # a topic is named only as a whole token: kline.1.ETH is not kline.1.ETHUSDT
    assert read_ack(["kline.1.ETH"], False, "Invalid symbol :[kline.1.ETHUSDT]").refused == ["kline.1.ETH"]
    unnamed = read_ack(request, False, "args size >10")
    assert (unnamed.refused, unnamed.resend) == (request, [])
