"""The one way Shadow builds a ccxt Bybit client: key-less, public GETs only, one base URL.

Both the trainer's history fetch (:mod:`trainer.data.history`, synchronous ccxt) and the
daemon's REST backfill (:mod:`bot.bybit.rest`, ``ccxt.async_support``) build their client
here, so they point at the same ``[exchange] rest_url`` the same way. Both decide which
candles have closed with :meth:`env.intervals.CandleGrid.newest_closed_open_ms` on the
exchange's clock.

It lives in ``trainer/`` because that is the lowest layer that may talk to an exchange:
``bot`` may import ``trainer`` but ``trainer`` may not import ``bot`` (architecture.md),
and ``env``/``config`` know nothing about networks.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any, TypeVar

import ccxt
import ccxt.async_support as ccxt_async

_Exchange = TypeVar("_Exchange", bound=ccxt.Exchange)


FORBIDDEN_ADVICE = ("an IP ban (more than 600 requests in 5 s) or a blocked region; Bybit asks clients to stop "
                    "every request for at least 10 minutes")
"""What an HTTP 403 from Bybit means, for every message that reports one."""


class PrivateEndpointRefused(RuntimeError):
    """Raised if any code asks for a private or non-GET endpoint: a bug, never allowed."""


class AccessForbidden(ccxt.PermissionDenied):  # type: ignore[misc]  # ccxt ships no types: its classes are Any
    """Bybit answered HTTP 403 Forbidden: this IP is banned (too many requests) or its
    region is blocked. Not a rate limit to retry at once: Bybit asks for 10 minutes of quiet.

    ccxt maps every 403 to ``RateLimitExceeded``; :class:`_PublicOnly` raises this instead.

    Attributes:
        reason: Bybit's reason, from the response body.
        url: the request that was refused.
    """

    def __init__(self, reason: str, url: str) -> None:
        self.reason = reason
        self.url = url
        super().__init__(f"HTTP 403 Forbidden from {url}: {reason}")


def forbidden_reason(body: str, limit: int = 200) -> str:
    """Bybit's reason for a 403, from the response body: ``retMsg`` of a JSON answer, the text
    of an HTML page (CloudFront's region block), or the plain text (``access too frequent``)."""
    text = (body or "").strip()
    try:
        answer = json.loads(text)
    except ValueError:
        answer = None
    if isinstance(answer, dict) and answer.get("retMsg"):
        text = f"{answer['retMsg']} (retCode {answer.get('retCode')})"
    elif "<" in text:
        text = re.sub(r"(?is)<(script|style|title)\b.*?</\1>|<[^>]+>", " ", text)
    text = " ".join(html.unescape(text).split())
    if not text:
        return "no reason given"
    return text if len(text) <= limit else text[:limit] + "..."


class _PublicOnly:
    """Refuses to sign anything but a public GET, and reports a 403 as what it is.

    ``sign()`` is the one funnel every ccxt request goes through (sync and async alike),
    so refusing here covers ``create_order``, ``fetch_balance`` and every implicit private
    method: not even a bug can reach an order or account endpoint. ``handle_errors()`` sees
    every response first: an HTTP 403 becomes :class:`AccessForbidden` with Bybit's reason.
    """

    def sign(self, path: str, api: Any = "public", method: str = "GET",
             params: dict[str, Any] | None = None) -> dict[str, Any]:
        kind = api[0] if isinstance(api, (list, tuple)) else api
        if kind != "public" or method != "GET":
            raise PrivateEndpointRefused(
                f"refused {method} {kind}/{path}: Shadow reads public market data only and never trades"
            )
        # sign() is the ccxt exchange's, which follows this mixin in the subclasses' MRO
        signed: dict[str, Any] = super().sign(path, api, method, params or {})  # type: ignore[misc]
        return signed

    def handle_errors(self, code: int, reason: str, url: str, method: str, headers: dict[str, str], body: str,
                      response: Any, request_headers: Any, request_body: Any) -> Any:
        if code == 403:  # ccxt would call it a rate limit and let the caller hammer on
            raise AccessForbidden(forbidden_reason(body), url)
        return super().handle_errors(code, reason, url, method, headers, body, response,  # type: ignore[misc]
                                     request_headers, request_body)


class PublicBybit(_PublicOnly, ccxt.bybit):  # type: ignore[misc]  # ccxt ships no types: its classes are Any
    """Synchronous ccxt Bybit limited to public GETs (the trainer)."""


class AsyncPublicBybit(_PublicOnly, ccxt_async.bybit):  # type: ignore[misc]  # ccxt ships no types
    """Asynchronous ccxt Bybit limited to public GETs (the daemon)."""


def bybit_exchange(
    rest_url: str, category: str, timeout_ms: int = 15_000, *, exchange_class: type[_Exchange] = PublicBybit,
    throttle: bool = True,
) -> _Exchange:
    """A key-less Bybit client whose every REST host is ``rest_url``.

    Pointing all of ccxt's ``urls['api']`` entries at one base URL lets the trainer and
    the daemon talk to a local Bybit-compatible server (``shadow replay-server``, testnet)
    as easily as to api.bybit.com. Market loading is limited to ``category`` (one
    ``/v5/market/instruments-info`` family instead of spot + linear + inverse + options).

    Args:
        rest_url: base URL, e.g. ``https://api.bybit.com``.
        category: ``spot`` or ``linear``.
        timeout_ms: one request's timeout.
        exchange_class: :class:`PublicBybit` (default) or :class:`AsyncPublicBybit`.
        throttle: keep ccxt's own request throttle (10 market-data requests per second
            for Bybit); off for a caller that paces its requests itself.
    """
    exchange: _Exchange = exchange_class({
        "enableRateLimit": throttle,
        "timeout": timeout_ms,
        "options": {"fetchMarkets": {"types": [category]}},
    })
    exchange.urls["api"] = {name: rest_url.rstrip("/") for name in exchange.urls["api"]}
    return exchange


def kline_window(start_ms: int, end_ms: int) -> dict[str, int]:
    """``fetch_ohlcv`` params asking Bybit for the candles opened in ``[start_ms, end_ms]``.

    Pass these instead of ccxt's ``since``: ccxt rounds ``since`` *up* to a multiple of the
    interval from the epoch, which for weeks is a Thursday (Bybit's weeks open on Monday, so
    the week asked for is skipped) and for months is 30 days.
    """
    return {"start": start_ms, "end": end_ms}


def short_error(exc: BaseException, limit: int = 200) -> str:
    """``exc`` as one line of at most ``limit`` characters: ccxt puts whole HTTP response
    bodies (an HTML error page, say) into its messages, which must not flood a log line or
    a one-line CLI error."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + "..."
