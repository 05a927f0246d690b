"""Bybit's subscription rules as plain code: how topics are spread over connections and
requests, and what a subscribe reply says about each topic. No I/O, so every rule is
unit-tested; :mod:`bot.bybit.ws` applies them on the wire.

Limits (Bybit v5, ``/v5/ws/connect``):

- one public connection carries at most **21,000 characters of args** in total, over all
  its subscribe requests. Shadow counts the JSON text of the args array (quotes, commas and
  spaces included), the strictest reading, so a plan that fits here fits Bybit;
- a spot subscribe request carries at most **10 args**; linear documents no per-request
  cap, and Shadow sends at most 200 per request.

Replies: Bybit answers a request with one ack, ``success: false`` when any topic in it was
refused, naming the refused topics in ``ret_msg`` (``Invalid symbol :[kline.1.FOOUSDT]``,
``error:already subscribed,topic:kline.1.BTCUSDT``). :func:`read_ack` turns that into a
verdict per topic.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

MAX_ARGS_CHARS = 21_000
ARGS_PER_REQUEST: dict[str, int] = {"spot": 10, "linear": 200}
_ALREADY_SUBSCRIBED = "already subscribed"
_TOKEN = re.compile(r"[A-Za-z0-9_.]+")


def args_chars(topics: Sequence[str]) -> int:
    """What Bybit's args limit counts, at its strictest: the JSON text of the args array."""
    return len(json.dumps(list(topics)))


def plan_connections(topics: Sequence[str], max_chars: int = MAX_ARGS_CHARS) -> list[list[str]]:
    """``topics`` in order, cut into as few connections as the args limit allows.

    Raises:
        ValueError: a single topic longer than the limit (no symbol is that long).
    """
    connections: list[list[str]] = []
    current: list[str] = []
    chars = len("[]")
    for topic in topics:
        cost = len(json.dumps(topic)) + (len(", ") if current else 0)
        if current and chars + cost > max_chars:
            connections.append(current)
            current, chars, cost = [], len("[]"), len(json.dumps(topic))
        if chars + cost > max_chars:
            raise ValueError(f"topic {topic!r} alone exceeds Bybit's {max_chars} characters of args per connection")
        current.append(topic)
        chars += cost
    if current:
        connections.append(current)
    return connections


def plan_requests(topics: Sequence[str], category: str) -> list[list[str]]:
    """One connection's topics cut into subscribe requests of at most the category's cap."""
    size = ARGS_PER_REQUEST[category]
    return [list(topics[first:first + size]) for first in range(0, len(topics), size)]


@dataclass(frozen=True, slots=True)
class AckVerdict:
    """What one subscribe ack says about the topics of its request.

    Attributes:
        subscribed: topics now streaming (accepted, or already subscribed before).
        refused: topics Bybit refused; ``reason`` says why.
        resend: topics the reply says nothing about, because it named only others: send
            them again to learn their fate (a repeat is answered "already subscribed").
        reason: Bybit's ``ret_msg`` for a refusal.
    """

    subscribed: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    resend: list[str] = field(default_factory=list)
    reason: str = ""


def read_ack(topics: Sequence[str], success: bool | None, ret_msg: str) -> AckVerdict:
    """The verdict on each of a request's ``topics`` from its ack.

    A refusal that names none of the request's topics (a malformed request, a limit) refuses
    them all: each is then retried on its own, so the good ones come back at once.
    """
    if success is not False:
        return AckVerdict(subscribed=list(topics))
    named = set(_TOKEN.findall(ret_msg)) & set(topics)
    if not named:
        return AckVerdict(refused=list(topics), reason=ret_msg or "no reason given")
    unnamed = [t for t in topics if t not in named]
    if _ALREADY_SUBSCRIBED in ret_msg.lower():
        return AckVerdict(subscribed=[t for t in topics if t in named], resend=unnamed)
    return AckVerdict(refused=[t for t in topics if t in named], resend=unnamed, reason=ret_msg)
