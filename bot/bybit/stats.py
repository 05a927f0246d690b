"""Counters of what the feed saw and did, for the daemon's heartbeat and metrics.

Plain integers (the event loop is single-threaded), read by whoever holds the feed.
Every counted event is also logged where it happens.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(slots=True)
class FeedStats:
    """What the websocket stream and the backfill did since the feed started."""

    messages: int = 0  # websocket messages received
    malformed: int = 0  # messages skipped as not valid Bybit data
    unknown_topics: int = 0  # pushes for topics never subscribed
    stream_candles: int = 0  # confirmed candles received from the stream
    backfilled_candles: int = 0  # candles released that came from REST
    released: int = 0  # candles handed to the consumer
    duplicates: int = 0  # copies dropped
    out_of_order: int = 0  # stream candles older than one the stream already sent
    gaps: int = 0  # holes detected in the stream
    skipped_absent: int = 0  # candles the exchange does not have (hole given up)
    connections: int = 0  # websocket connections opened
    subscribe_refusals: int = 0  # topics Bybit refused to subscribe (each retry counts)
    reconnects: int = 0  # connections lost or closed and reopened
    watchdog_closes: int = 0  # connections closed for silence
    connect_failures: int = 0  # failed attempts to open a connection
    backfills: int = 0  # successful backfill calls
    backfill_failures: int = 0  # backfill calls that failed after their retries
    last_message_ms: int | None = None  # clock time of the last websocket message
    connected: bool = False  # every connection open and subscribed now (False while one reconnects)

    def as_dict(self) -> dict[str, int | None]:
        """The counters by name (``feed/<name>`` in the daemon's metrics)."""
        return asdict(self)


@dataclass(slots=True)
class RestStats:
    """What the REST client did since it was created."""

    requests: int = 0  # market-data requests sent
    retries: int = 0  # requests repeated after a rate-limit or network error
    rate_limited: int = 0  # of those, rate-limit answers (retCode 10006/10018)
    forbidden: int = 0  # HTTP 403 answers (IP ban or blocked region), each followed by forbidden_wait_s of quiet

    def as_dict(self) -> dict[str, int]:
        """The counters by name (``rest/<name>`` in the daemon's metrics)."""
        return asdict(self)
