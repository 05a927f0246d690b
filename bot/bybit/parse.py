"""Raw websocket text in, :class:`env.types.Candle` out: the edge where Bybit JSON ends.

Every failure is a :class:`MalformedMessage` with a one-line reason, so the stream can
log it and go on: one bad message never ends the stream.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import ValidationError

from bot.bybit.markets import Interval
from bot.bybit.schemas import PUBLIC_MESSAGE, KlinePush, OpReply, TickerPush
from env.types import Candle

_PREVIEW_CHARS = 160


class MalformedMessage(ValueError):
    """A websocket message that is not valid Bybit v5 public data; ``str()`` says why."""


class UnknownTopic(MalformedMessage):
    """A push for a topic this connection never subscribed to."""


@dataclass(frozen=True, slots=True)
class TopicTarget:
    """What a subscribed topic stands for: the symbol and interval its candles carry."""

    symbol: str
    interval: Interval


def decode(raw: str | bytes) -> KlinePush | TickerPush | OpReply:
    """Validate one websocket message.

    Raises:
        MalformedMessage: not JSON, or not a kline push / ticker push / op reply of the expected shape.
    """
    try:
        return PUBLIC_MESSAGE.validate_json(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"][1:]) or "message"
        raise MalformedMessage(f"{where}: {first['msg']} in {preview(raw)}") from None


def closed_candles(push: KlinePush, topics: Mapping[str, TopicTarget]) -> list[Candle]:
    """The confirmed (closed) candles of a kline push; forming updates are ignored.

    Raises:
        UnknownTopic: the topic is not one of ``topics``.
        MalformedMessage: an entry's interval or ``end`` does not fit the topic.
    """
    target = topics.get(push.topic)
    if target is None:
        raise UnknownTopic(f"push for unsubscribed topic {push.topic!r}")
    iv = target.interval
    candles = []
    for item in push.data:
        if item.interval != iv.bybit:
            raise MalformedMessage(f"{push.topic}: data interval {item.interval!r} does not match the topic")
        if not iv.grid.on_grid(item.start):
            raise MalformedMessage(f"{push.topic}: start {item.start} is not on the {iv.grid.describe()} candle grid")
        if item.end != iv.grid.close_ms(item.start) - 1:
            raise MalformedMessage(f"{push.topic}: end {item.end} is not the next {iv.name} candle's start - 1")
        if item.confirm:
            candles.append(
                Candle(target.symbol, iv.name, item.start, item.open, item.high, item.low, item.close, item.volume)
            )
    return candles


def preview(raw: str | bytes) -> str:
    """The start of a raw message, for a log line that must stay one line."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return repr(text if len(text) <= _PREVIEW_CHARS else text[:_PREVIEW_CHARS] + "...")
