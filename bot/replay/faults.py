"""The faults a replay can inject, written as short specs (``drop@50``, ``skip@80:3``).

Spec grammar: ``KIND[@CANDLE][:COUNT]``. ``CANDLE`` counts replayed candles from 0 (the
first candle after the history); ``COUNT`` defaults to 1.

=============  =============================================================================
kind           effect
=============  =============================================================================
drop@N         abort every websocket (no close frame) when candle N closes; N is not pushed
stall@N        from candle N on, connected clients get nothing (no data, no pong) while the
               TCP connection stays open; new connections are served normally
duplicate@N    push candle N's final (``confirm: true``) message twice
reorder@N      push candle N+1's final message before candle N's
malformed@N    push three malformed messages before candle N's final one (bad JSON, a
               non-numeric price, high below low)
skip@N[:C]     push nothing for candles N .. N+C-1 (REST still has them)
ratelimit[:C]  refuse the first C REST kline requests as rate-limited, alternating
               Bybit's retCode 10006 and 10018 (with HTTP 200, as Bybit does)
forbidden[:C]  answer the first C REST requests (any endpoint) with HTTP 403 and Bybit's
               body ``access too frequent``: the IP ban Bybit asks 10 minutes of quiet for
noreqid        subscribe acks carry no ``req_id`` (Bybit's ``req_id`` is optional)
delist@N       the last symbol is delisted as candle N closes: it is no longer pushed, and
               subscribing to it is refused (``Invalid symbol``); REST keeps its history
=============  =============================================================================
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from config.errors import UserError


class FaultKind(StrEnum):
    DROP = "drop"
    STALL = "stall"
    DUPLICATE = "duplicate"
    REORDER = "reorder"
    MALFORMED = "malformed"
    SKIP = "skip"
    RATELIMIT = "ratelimit"
    FORBIDDEN = "forbidden"
    NOREQID = "noreqid"
    DELIST = "delist"


_AT_CANDLE = {FaultKind.DROP, FaultKind.STALL, FaultKind.DUPLICATE, FaultKind.REORDER, FaultKind.MALFORMED,
              FaultKind.SKIP, FaultKind.DELIST}
_COUNTED = {FaultKind.SKIP, FaultKind.RATELIMIT, FaultKind.FORBIDDEN}
_SPEC = re.compile(r"^(?P<kind>[a-z]+)(?:@(?P<at>\d+))?(?::(?P<count>\d+))?$")


class FaultSpecError(UserError, ValueError):
    """A ``--fault`` spec that cannot be read; the message names it and shows the grammar."""


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault: its kind, the replayed candle it hits (``None`` for REST faults), how many."""

    kind: FaultKind
    at: int | None = None
    count: int = 1

    def covers(self, candle: int) -> bool:
        """Whether replayed candle number ``candle`` is hit."""
        return self.at is not None and self.at <= candle < self.at + self.count


def parse_fault(spec: str) -> Fault:
    """Read one spec such as ``skip@80:3``.

    Raises:
        FaultSpecError: unknown kind, a missing or unexpected ``@N``, or a count below 1.
    """
    match = _SPEC.match(spec.strip().lower())
    hint = f"; expected KIND[@CANDLE][:COUNT] with KIND one of {', '.join(k.value for k in FaultKind)}"
    if not match:
        raise FaultSpecError(f"fault {spec!r} is not a fault spec{hint}")
    try:
        kind = FaultKind(match["kind"])
    except ValueError:
        raise FaultSpecError(f"fault {spec!r}: unknown kind {match['kind']!r}{hint}") from None
    if kind in _AT_CANDLE and match["at"] is None:
        raise FaultSpecError(f"fault {spec!r}: {kind.value} needs the candle it hits, e.g. {kind.value}@50")
    if kind not in _AT_CANDLE and match["at"] is not None:
        raise FaultSpecError(f"fault {spec!r}: {kind.value} takes no @candle, e.g. {kind.value}:3")
    if kind not in _COUNTED and match["count"] is not None:
        raise FaultSpecError(f"fault {spec!r}: {kind.value} takes no :count")
    count = int(match["count"]) if match["count"] is not None else 1
    if count < 1:
        raise FaultSpecError(f"fault {spec!r}: count must be at least 1")
    return Fault(kind, int(match["at"]) if match["at"] is not None else None, count)


def parse_faults(specs: Iterable[str]) -> list[Fault]:
    """:func:`parse_fault` for each spec."""
    return [parse_fault(spec) for spec in specs]
