"""Market data settings: where candles come from (``[exchange]``) and which ones the live
feed streams (``[feed]``). Public endpoints only: Shadow never places an order."""

from __future__ import annotations

import re
from typing import Literal, get_args

from pydantic import Field, ValidationInfo, field_validator

from config.section import SYMBOL, Section


class ExchangeSettings(Section):
    """Where market data comes from and how the connection is kept alive. Public endpoints
    only: Shadow never places an order. Point both URLs at ``shadow replay-server`` to run
    against a local replay instead of Bybit."""

    category: Literal["spot", "linear"] = Field(
        "linear", description="Bybit market: spot, or linear perpetuals (which pay and receive funding, see Funding)"
    )
    ws_url: str = Field(
        "wss://stream.bybit.com/v5/public/linear",
        description="Bybit v5 public websocket URL; its /v5/public/... path must match category",
    )
    rest_url: str = Field("https://api.bybit.com", description="Bybit v5 REST base URL (used through ccxt)")
    ping_interval_s: float = Field(20.0, gt=0, description="seconds between the JSON pings Bybit asks clients to send")
    watchdog_s: float = Field(
        45.0, gt=0, description="a connection silent this long (no data, no pong) is closed and reconnected"
    )
    open_timeout_s: float = Field(
        10.0, gt=0, description="seconds allowed to open the websocket and to get the subscribe acks"
    )
    backoff_min_s: float = Field(
        1.0, gt=0, description="first delay of the jittered exponential back-off (reconnects, REST retries)"
    )
    backoff_max_s: float = Field(60.0, gt=0, description="longest delay of the back-off")
    rest_timeout_s: float = Field(10.0, gt=0, description="timeout of one REST request")
    rest_attempts: int = Field(
        6, ge=1, le=100, description="tries of one REST request on rate-limit or network errors before giving up"
    )
    forbidden_wait_s: float = Field(
        600.0, gt=0, le=86_400,
        description="after an HTTP 403 from Bybit (an IP ban, or a blocked region) nothing is sent to it for this "
        "long; Bybit asks for at least 10 minutes",
    )
    rest_requests_per_s: float = Field(
        40.0, gt=0, le=120,
        description="REST requests started per second at most, all symbols together (Bybit bans an IP that sends "
        "more than 600 in 5 s, i.e. 120/s, for 10 minutes or more; leave room for other clients on the IP)",
    )

    @field_validator("ws_url")
    @classmethod
    def _websocket_url(cls, value: str, info: ValidationInfo) -> str:
        if not re.match(r"^wss?://", value):
            raise ValueError("must start with ws:// or wss://")
        market = re.search(r"/v5/public/([a-z]+)/?$", value)
        category = info.data.get("category")
        if market and category and market.group(1) != category:
            raise ValueError(
                f"is the {market.group(1)} stream but exchange.category is {category!r}; "
                f"use a /v5/public/{category} URL"
            )
        return value

    @field_validator("rest_url")
    @classmethod
    def _http_scheme(cls, value: str) -> str:
        if not re.match(r"^https?://", value):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("watchdog_s")
    @classmethod
    def _longer_than_ping(cls, value: float, info: ValidationInfo) -> float:
        ping = info.data.get("ping_interval_s")
        if ping is not None and value <= ping:
            raise ValueError(f"must be longer than ping_interval_s ({ping}), "
                             "or every quiet spell looks like a dead link")
        return value

    @field_validator("backoff_max_s")
    @classmethod
    def _not_below_min(cls, value: float, info: ValidationInfo) -> float:
        low = info.data.get("backoff_min_s")
        if low is not None and value < low:
            raise ValueError(f"must be at least backoff_min_s ({low})")
        return value


Timeframe = Literal["1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d", "1w", "1M"]
TIMEFRAMES: tuple[str, ...] = get_args(Timeframe)
"""Candle timeframes Bybit serves (ccxt names); ``interval`` on the wire is 1, 3, ... D, W, M."""

UNIT_MS: dict[str, int] = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
"""Milliseconds per unit of a fixed-length interval or look-back (``15m``, ``4h``, ``1d``, ``2w``)."""


class FeedSettings(Section):
    """Which candles the live feed streams, and what it does with a symbol Bybit refuses."""

    symbols: list[str] = Field(["BTCUSDT"], min_length=1, description="Bybit symbols to stream, e.g. BTCUSDT")
    interval: str = Field(
        "1m", description="candle interval: 1m 3m 5m 15m 30m 1h 2h 4h 6h 12h 1d, 1w (weeks open Monday 00:00 UTC) "
        "or 1M (calendar months)"
    )
    subscribe_attempts: int = Field(
        6, ge=1, le=100,
        description="refusals of a symbol's subscription (a delisted or unknown symbol) before it is dropped until "
        "restart; between them it is retried alone after the [exchange] back-off, and the other symbols go on",
    )

    @field_validator("symbols")
    @classmethod
    def _bybit_symbols(cls, value: list[str]) -> list[str]:
        for symbol in value:
            if not SYMBOL.match(symbol):
                raise ValueError(f"{symbol!r} is not a Bybit symbol (upper-case letters and digits, e.g. BTCUSDT)")
        duplicates = sorted({s for s in value if value.count(s) > 1})
        if duplicates:
            raise ValueError(f"listed more than once: {', '.join(duplicates)}")
        return value

    @field_validator("interval")
    @classmethod
    def _known_interval(cls, value: str) -> str:
        if value not in TIMEFRAMES:
            raise ValueError(f"unknown interval; use one of {' '.join(TIMEFRAMES)}")
        return value
