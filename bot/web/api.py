"""The dashboard's JSON API: one handler per page's data, every list windowed or paged.

===========================  ==========================================================
``GET /api/overview``        accounts and symbols now, the latest session, health
``GET /api/markets``         the series that can be charted, per account
``GET /api/candles``         bars of one symbol at a resolution, ``limit`` bars ending at
                             ``end``, with trade marks and exposure; ``more_before`` says
                             whether older bars exist (ask again with ``end`` before them)
``GET /api/equity``          equity, buy & hold, flat and drawdown, at most ``points`` bars
                             over ``[start, end]``
``GET /api/trades``          closed trades: filters, ``sort``/``order``, ``offset``/``limit``
``GET /api/trades.csv``      every trade the same filters select, as CSV
``GET /api/trade-models``    the models (or baselines) that opened trades
``GET /api/timeline``        model, retrain, promotion, rollback, risk and session events,
                             newest first, ``limit`` per page from the ``before`` cursor
``GET /api/events``          server-sent events: what each commit changed
===========================  ==========================================================

Times are epoch milliseconds. Everything is read through :class:`~bot.web.reader.LedgerReader`.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

from aiohttp import web

from bot.ledger_watch import LedgerWatch
from bot.web import params
from bot.web.reader import LedgerReader
from bot.web.rollups import CACHED_FROM_FACTOR, BarCache
from config.settings import ServiceSettings
from state.errors import LedgerError
from state.queries.equity import Account, EquityBar, accounts, combine, equity_bars
from state.queries.market import Market, candle_bars, exposure, market_json, markets, trade_marks
from state.queries.overview import ledger_health, overview
from state.queries.resolution import bucket_start, levels_for
from state.queries.scope import Scope, ledger_accounts
from state.queries.timeline import MAX_EVENTS, parse_cursor, timeline
from state.queries.trades import (
    COLUMNS,
    MAX_PAGE_SIZE,
    SORTABLE,
    Sort,
    TradeFilter,
    iter_trades,
    trade_models,
    trades_page,
)
from state.readers import iso_ms

MAX_BARS = 5000
MAX_POINTS = 5000
HEARTBEAT_S = 15.0
"""Seconds between keep-alive comments on an idle event stream (proxies close silent ones)."""

HealthCheck = Callable[[], Awaitable[dict[str, Any]]]


@dataclass
class DashboardContext:
    """What the handlers read from.

    Args:
        reader: the ledger's reads.
        watch: the ledger's commits, for ``/api/events``.
        now_ms: the time ages are measured to (the daemon's clock).
        service: ``[service]``: the health rule used for a ledger read without its daemon.
        health: the running daemon's own verdict (``/health``); ``None`` for ``shadow ui``.
    """

    reader: LedgerReader
    watch: LedgerWatch
    now_ms: Callable[[], int]
    service: ServiceSettings
    health: HealthCheck | None = None
    cache: BarCache = field(default_factory=BarCache)

    @property
    def mode(self) -> str:
        return "daemon" if self.health is not None else "ledger"


class DashboardApi:
    """The handlers; :meth:`add_routes` puts them on an application."""

    def __init__(self, context: DashboardContext) -> None:
        self.context = context

    def add_routes(self, app: web.Application) -> None:
        for path, handler in (("/api/overview", self.overview), ("/api/markets", self.markets),
                              ("/api/candles", self.candles), ("/api/equity", self.equity),
                              ("/api/trades", self.trades), ("/api/trades.csv", self.trades_csv),
                              ("/api/trade-models", self.trade_models), ("/api/timeline", self.timeline),
                              ("/api/events", self.events)):
            app.router.add_get(path, handler)

    async def _read(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(conn, *args, **kwargs)`` on the reader; a ledger that cannot be read is a 503."""
        try:
            return await self.context.reader.run(partial(fn, **kwargs) if kwargs else fn, *args)
        except LedgerError as exc:
            raise web.HTTPServiceUnavailable(text=json.dumps({"error": str(exc)}),
                                             content_type="application/json") from None

    # ------------------------------------------------------------------ pages
    async def overview(self, request: web.Request) -> web.Response:
        context = self.context
        now_ms = context.now_ms()
        document = await self._read(overview, now_ms, _scope(request))
        if context.health is not None:
            health = await context.health() | {"source": "daemon"}
        else:
            health = ledger_health(document, max_age_intervals=context.service.health_max_age_intervals,
                                   margin_s=context.service.health_margin_s)
        return web.json_response({"generated_at": iso_ms(now_ms), "now_ms": now_ms, "mode": context.mode,
                                  "ledger": str(context.reader.path), "health": health, **document})

    async def markets(self, request: web.Request) -> web.Response:
        found = await self._read(markets, _scope(request))
        return web.json_response({"accounts": ledger_accounts(), "markets": [market_json(m) for m in found]})

    async def candles(self, request: web.Request) -> web.Response:
        market = await self._market(request)
        levels = levels_for(market.interval_ms)
        level = params.integer(request, "level", market.interval_ms)
        if level not in levels:
            raise params.bad_request(f"level={level}: {market.symbol} can be shown at {levels}")
        limit = params.integer(request, "limit", 1000, low=1, high=MAX_BARS)
        end = params.integer(request, "end", market.last_ms)
        assert limit is not None and end is not None
        end = min(end, market.last_ms)
        start = max(bucket_start(market.first_ms, level), bucket_start(end, level) - (limit - 1) * level)
        payload = await self._read(self._candles, market, level, start, bucket_start(end, level) + level - 1)
        return web.json_response(payload | {"market": market_json(market), "level_ms": level, "levels_ms": levels,
                                            "more_before": start > market.first_ms})

    def _candles(self, conn: sqlite3.Connection, market: Market, level: int, start: int, end: int) -> dict[str, Any]:
        bars = self._series(conn, "bars", market, level, start, end,
                            lambda c, s, e: candle_bars(c, market, level, s, e))
        shade = self._series(conn, "exposure", market, level, start, end,
                             lambda c, s, e: exposure(c, market, level, s, e))
        marks = trade_marks(conn, market, level, start, end)
        return {"bars": bars, "exposure": shade, "marks": [asdict(m) for m in marks], "start_ms": start, "end_ms": end}

    def _series(self, conn: sqlite3.Connection, kind: str, market: Market, level: int, start: int, end: int,
                compute: Callable[[sqlite3.Connection, int, int], list[Any]]) -> list[Any]:
        if level < CACHED_FROM_FACTOR * market.interval_ms:
            return compute(conn, start, end)
        return self.context.cache.window((kind, market.symbol, market.interval, level), conn, compute,
                                         level_ms=level, first_ms=market.first_ms, last_ms=market.last_ms,
                                         start_ms=start, end_ms=end)

    async def _market(self, request: web.Request) -> Market:
        symbol = params.text(request, "symbol")
        if symbol is None:
            raise params.bad_request("symbol: missing")
        found: list[Market] = [m for m in await self._read(markets, _scope(request)) if m.symbol == symbol]
        if not found:
            raise web.HTTPNotFound(text=json.dumps({"error": f"no market {symbol!r} in this ledger"}),
                                   content_type="application/json")
        return found[0]

    async def equity(self, request: web.Request) -> web.Response:
        scope = _scope(request)
        points = params.integer(request, "points", 1500, low=10, high=MAX_POINTS)
        assert points is not None
        found = await self._read(markets, scope)
        if not found:
            return web.json_response({"level_ms": None, "times_ms": [], "equity": [], "buy_and_hold": [], "flat": [],
                                      "drawdown": [], "symbols": []})
        first, last = min(m.first_ms for m in found), max(m.last_ms for m in found)
        start = params.integer(request, "start", first)
        end = params.integer(request, "end", last)
        assert start is not None and end is not None
        interval = max(m.interval_ms for m in found)
        levels = [lv for lv in levels_for(interval) if all(lv % m.interval_ms == 0 for m in found)]
        level = next((lv for lv in levels if (end - start) / lv <= points), levels[-1])
        curve = await self._read(self._equity, scope, {m.symbol: m for m in found}, level, start, end)
        return web.json_response({"level_ms": level} | asdict(curve))

    def _equity(self, conn: sqlite3.Connection, scope: Scope, by_symbol: dict[str, Market], level: int, start: int,
                end: int) -> Any:
        bars: dict[Account, list[EquityBar]] = {}
        for account in accounts(conn, scope):
            bars[account] = self._series(conn, "equity", by_symbol[account.symbol], level, start, end,
                                         partial(_equity_bars, symbol=account.symbol, level=level))
        return combine(bars)

    async def trades(self, request: web.Request) -> web.Response:
        trade_filter, sort = _trade_query(request)
        offset = params.integer(request, "offset", 0, low=0)
        limit = params.integer(request, "limit", 50, low=1, high=MAX_PAGE_SIZE)
        page = await self._read(trades_page, trade_filter, sort, offset=offset, limit=limit)
        return web.json_response({"columns": COLUMNS, "rows": page.rows, "total": page.total,
                                  "net_pnl": page.net_pnl, "offset": page.offset, "limit": limit})

    async def trades_csv(self, request: web.Request) -> web.Response:
        trade_filter, sort = _trade_query(request)
        body = await self._read(_trades_csv, trade_filter, sort)
        return web.Response(body=body, headers={"Content-Type": "text/csv; charset=utf-8",
                                                "Content-Disposition": 'attachment; filename="shadow-trades.csv"'})

    async def trade_models(self, request: web.Request) -> web.Response:
        return web.json_response({"models": await self._read(trade_models, _scope(request))})

    async def timeline(self, request: web.Request) -> web.Response:
        limit = params.integer(request, "limit", 100, low=1, high=MAX_EVENTS)
        before_text = params.text(request, "before")
        try:
            before = parse_cursor(before_text) if before_text else None
        except ValueError:
            raise params.bad_request(f"before={before_text!r}: not a cursor from a previous page") from None
        events = await self._read(timeline, _scope(request), before=before, limit=limit)
        return web.json_response({"events": [asdict(e) for e in events],
                                  "next": events[-1].cursor if len(events) == limit else None})

    # ------------------------------------------------------------------- live
    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: ``change`` with the newly decided candles and ledger events."""
        headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        if request.method == "HEAD":
            return web.Response(headers=headers)
        response = web.StreamResponse(headers=headers)
        await response.prepare(request)
        watch = self.context.watch
        queue = watch.subscribe()
        try:
            await response.write(b"retry: 1000\n\n")
            while True:
                try:
                    changes = await asyncio.wait_for(queue.get(), HEARTBEAT_S)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if changes is None:
                    break
                data = {"decided": changes.decided, "events": [asdict(e) for e in changes.events]}
                await response.write(f"event: change\ndata: {json.dumps(data)}\n\n".encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            watch.unsubscribe(queue)
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response


def _equity_bars(conn: sqlite3.Connection, start: int, end: int, *, symbol: str, level: int) -> list[EquityBar]:
    return equity_bars(conn, symbol, level, start, end)


def _scope(request: web.Request) -> Scope:
    return Scope(params.text(request, "account"), params.text(request, "symbol"))


def _trade_query(request: web.Request) -> tuple[TradeFilter, Sort]:
    trade_filter = TradeFilter(
        scope=_scope(request), model=params.text(request, "model"),
        side=params.choice(request, "side", ("long", "short")),
        from_ms=params.integer(request, "from"), to_ms=params.integer(request, "to"),
    )
    column = params.choice(request, "sort", SORTABLE, "exit_time_ms")
    order = params.choice(request, "order", ("asc", "desc"), "desc")
    assert column is not None
    return trade_filter, Sort(column, order == "desc")


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _trades_csv(conn: sqlite3.Connection, trade_filter: TradeFilter, sort: Sort) -> bytes:
    """Every trade the filter selects as CSV (header first). A text cell that a spreadsheet
    would run as a formula gets a leading apostrophe; numbers are left alone."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for chunk in iter_trades(conn, trade_filter, sort):
        writer.writerows(["'" + v if isinstance(v, str) and v.startswith(_FORMULA_START) else v for v in row]
                         for row in chunk)
    return buffer.getvalue().encode()
