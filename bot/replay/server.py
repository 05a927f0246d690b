"""A local server that speaks Bybit v5 market data while it replays candle files.

One aiohttp app serves both sides on one port:

- websocket ``/v5/public/spot`` and ``/v5/public/linear``: subscribe with acks as Bybit
  gives them (each topic judged on its own, refusals named in ``ret_msg``; Bybit's
  10-args cap per spot request and 21,000 characters of args per connection), JSON
  ping/pong, and kline pushes: a few ``confirm: false`` updates while a candle forms,
  then its ``confirm: true``; on linear also ``tickers.{symbol}``: a snapshot on
  subscribing, then a delta as each candle closes, with the next funding time and its rate;
- REST ``/v5/market/kline``, ``/v5/market/instruments-info``, ``/v5/market/funding/history``
  and ``/v5/market/time``, enough for ccxt's ``bybit`` to load markets and fetch candles and
  funding without the internet.

The replay starts when the first client subscribes and runs at ``speed`` candles per
second of real time; both sides answer from the same virtual clock. Faults
(:mod:`bot.replay.faults`) are injected on the way out. Every HTTP request and every
websocket op received is recorded, so tests can check what a client asked for.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import count
from types import TracebackType
from typing import Any

from aiohttp import WSMsgType, web
from aiohttp.typedefs import Handler

from bot.bybit.markets import ticker_topic
from bot.bybit.subscriptions import MAX_ARGS_CHARS, args_chars
from bot.replay.faults import Fault, FaultKind
from bot.replay.market import ReplayDataError, ReplayMarket

log = logging.getLogger(__name__)

CATEGORIES = ("spot", "linear")
SPOT_MAX_ARGS = 10
MAX_KLINE_LIMIT = 1000
DEFAULT_KLINE_LIMIT = 200
MAX_FUNDING_LIMIT = 200
RATE_LIMIT_ANSWERS = ((10006, "Too many visits!"), (10018, "Exceeded the IP Rate Limit."))
FORBIDDEN_BODY = "access too frequent"
PARAM_ERROR_RET_CODE = 10001
MALFORMED_PAYLOADS: tuple[str, ...] = (
    '{"topic": "{topic}", "data": [',  # cut-off JSON
    ('{"topic": "{topic}", "type": "snapshot", "ts": 1, "data": [{"start": 0, "end": 59999, "interval": "1", '
     '"open": "abc", "close": "1", "high": "1", "low": "1", "volume": "1", "confirm": true}]}'),  # price not a number
    ('{"topic": "{topic}", "type": "snapshot", "ts": 1, "data": [{"start": 0, "end": 59999, "interval": "1", '
     '"open": "2", "close": "2", "high": "1", "low": "3", "volume": "1", "confirm": true}]}'),  # high below low
)


@dataclass(eq=False)
class _Client:
    """One websocket client of the replay."""

    ws: web.WebSocketResponse
    transport: asyncio.Transport | None
    conn_id: str
    category: str
    topics: set[str] = field(default_factory=set)
    stalled: bool = False


class ReplayServer:
    """Serve ``market`` as Bybit would, replaying it at ``speed`` candles per second.

    Args:
        market: the data and its virtual clock.
        speed: candles per second of real time (1/60 is real time for 1m candles).
        faults: faults to inject (see :mod:`bot.replay.faults`).
        updates_per_candle: ``confirm: false`` pushes before each candle's final one.
        host, port: where to listen; port 0 picks a free one (see :attr:`port`).

    Use as ``async with ReplayServer(market, speed=100) as server:``.
    """

    def __init__(
        self,
        market: ReplayMarket,
        *,
        speed: float,
        faults: Sequence[Fault] = (),
        updates_per_candle: int = 2,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if not speed > 0:
            raise ReplayDataError(f"speed must be a positive number of candles per second, not {speed}")
        if updates_per_candle < 0:
            raise ReplayDataError(f"updates_per_candle must be 0 or more, not {updates_per_candle}")
        self.market = market
        self.speed = speed
        self.faults = list(faults)
        self.updates_per_candle = updates_per_candle
        self.host = host
        self.port = port
        self.http_requests: list[tuple[str, str]] = []  # (method, path with query)
        self.ws_ops: list[dict[str, Any]] = []  # every op a client sent, as received
        self.started = asyncio.Event()  # the first subscription arrived: the replay runs
        self.finished = asyncio.Event()  # the last candle has closed
        self._clients: set[_Client] = set()
        self._conn_ids = count(1)
        self._rate_limited_left = sum(f.count for f in self.faults if f.kind is FaultKind.RATELIMIT)
        self._rate_limited = 0
        self._forbidden_left = sum(f.count for f in self.faults if f.kind is FaultKind.FORBIDDEN)
        self.delisted: set[str] = set()  # symbols no longer listed (fault delist@N)
        self._runner: web.AppRunner | None = None
        self._replay_task: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------

    async def __aenter__(self) -> ReplayServer:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen and start the replay task (which waits for the first subscription)."""
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/v5/public/{category}", self._websocket)
        app.router.add_get("/v5/market/kline", self._kline)
        app.router.add_get("/v5/market/instruments-info", self._instruments)
        app.router.add_get("/v5/market/funding/history", self._funding_history)
        app.router.add_get("/v5/market/time", self._time)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        self._replay_task = asyncio.create_task(self._replay(), name="replay")

    async def stop(self) -> None:
        """Stop the replay, close every client and the listener."""
        if self._replay_task is not None:
            self._replay_task.cancel()
            await asyncio.gather(self._replay_task, return_exceptions=True)
        for client in list(self._clients):
            await client.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def ws_url(self, category: str = "linear") -> str:
        return f"ws://{self.host}:{self.port}/v5/public/{category}"

    # -- the replay ------------------------------------------------------------

    async def _replay(self) -> None:
        await self.started.wait()
        market = self.market
        loop = asyncio.get_running_loop()
        period = 1.0 / self.speed
        began = loop.time()
        held: list[tuple[str, str]] = []  # finals kept back by a reorder fault
        log.info("replay: %d candle(s) of %s at %g candles/s", market.length - market.history,
                 ", ".join(market.symbols), self.speed)
        for n, index in enumerate(range(market.history, market.length)):
            skipped = self._hits(FaultKind.SKIP, n)
            for update in range(1, self.updates_per_candle + 1):
                fraction = update / (self.updates_per_candle + 1)
                await _sleep_until(loop, began + (n + fraction) * period)
                market.form(index, fraction)
                if not skipped:
                    await self._push([(market.topic(s), market.kline_push(s, index, fraction))
                                      for s in market.symbols if s not in self.delisted])
            await _sleep_until(loop, began + (n + 1) * period)
            market.close(index)
            if self._hits(FaultKind.DELIST, n):
                log.warning("replay fault: %s delisted as candle %d closes", market.symbols[-1], n)
                self.delisted.add(market.symbols[-1])
            listed = [s for s in market.symbols if s not in self.delisted]
            await self._push([(ticker_topic(s), market.ticker_push(s)) for s in listed])
            finals = [(market.topic(s), market.kline_push(s, index)) for s in listed]
            if self._hits(FaultKind.DROP, n):
                log.warning("replay fault: dropping %d connection(s) as candle %d closes", len(self._clients), n)
                for client in list(self._clients):
                    if client.transport is not None:
                        client.transport.abort()
                    self._clients.discard(client)
                continue
            if self._hits(FaultKind.STALL, n):
                log.warning("replay fault: stalling %d connection(s) from candle %d on", len(self._clients), n)
                for client in self._clients:
                    client.stalled = True
            if skipped:
                log.warning("replay fault: candle %d not pushed (REST has it)", n)
                continue
            if self._hits(FaultKind.MALFORMED, n):
                log.warning("replay fault: %d malformed message(s) before candle %d", len(MALFORMED_PAYLOADS), n)
                topic = market.topic(market.symbols[0])
                await self._push([(topic, p.replace("{topic}", topic)) for p in MALFORMED_PAYLOADS])
            if self._hits(FaultKind.REORDER, n):
                log.warning("replay fault: candle %d held back until after candle %d", n, n + 1)
                held = finals
                continue
            await self._push(finals)
            if self._hits(FaultKind.DUPLICATE, n):
                log.warning("replay fault: candle %d pushed twice", n)
                await self._push(finals)
            if held:
                await self._push(held)
                held = []
        await self._push(held)
        self.finished.set()
        log.info("replay: finished, %d candle(s) closed", market.length - market.history)

    def _hits(self, kind: FaultKind, n: int) -> bool:
        return any(f.kind is kind and f.covers(n) for f in self.faults)

    async def _push(self, messages: list[tuple[str, str]]) -> None:
        """Send each ``(topic, text)`` to the clients subscribed to that topic."""
        for client in list(self._clients):
            if client.stalled:
                continue
            for topic, text in messages:
                if topic in client.topics:
                    await self._send(client, text)

    async def _send(self, client: _Client, text: str) -> None:
        try:
            await client.ws.send_str(text)
        except (ConnectionError, RuntimeError):  # the client went away meanwhile
            self._clients.discard(client)

    # -- websocket -------------------------------------------------------------

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        category = request.match_info["category"]
        if category not in CATEGORIES:
            raise web.HTTPNotFound(text=f"no public stream for {category!r}; use one of {', '.join(CATEGORIES)}")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        client = _Client(ws, request.transport, f"replay-{next(self._conn_ids)}", category)
        self._clients.add(client)
        try:
            async for message in ws:
                if message.type is WSMsgType.TEXT and not client.stalled:
                    await self._on_op(client, message.data)
        finally:
            self._clients.discard(client)
        return ws

    async def _on_op(self, client: _Client, text: str) -> None:
        try:
            op = json.loads(text)
            name = op["op"]
        except (ValueError, TypeError, KeyError):
            await self._send(client, json.dumps({"success": False, "ret_msg": "error:invalid op",
                                                 "conn_id": client.conn_id, "op": ""}))
            return
        self.ws_ops.append(op)
        reply = {"success": True, "ret_msg": "", "conn_id": client.conn_id, "req_id": op.get("req_id", ""), "op": name}
        if name == "subscribe" and any(f.kind is FaultKind.NOREQID for f in self.faults):
            del reply["req_id"]
        subscribed_before = set(client.topics)
        if name == "ping":
            reply["ret_msg"] = "pong"
        elif name in ("subscribe", "unsubscribe"):
            args = op.get("args") if isinstance(op.get("args"), list) else []
            problem = self._subscription_problem(client, name, args)
            if problem:
                reply |= {"success": False, "ret_msg": problem}
            if name == "unsubscribe":
                client.topics.difference_update(args)
        else:
            reply |= {"success": False, "ret_msg": f"error:handler not found for op {name!r}"}
        await self._send(client, json.dumps(reply))
        for symbol in self.market.symbols:  # Bybit follows a new ticker subscription with a snapshot
            if ticker_topic(symbol) in client.topics - subscribed_before:
                await self._send(client, self.market.ticker_push(symbol, "snapshot"))

    def _subscription_problem(self, client: _Client, op: str, args: list[Any]) -> str | None:
        """Bybit's refusal of a request (``None``: all accepted). A subscribe judges each
        topic: good ones are subscribed even when others are refused by name."""
        if not args:
            return "error:args is empty"
        if client.category == "spot" and len(args) > SPOT_MAX_ARGS:
            return f"args size >{SPOT_MAX_ARGS}"
        symbols = [s for s in self.market.symbols if s not in self.delisted]
        listed = {self.market.topic(s) for s in symbols}
        if client.category == "linear":  # a perpetual's funding announcements
            listed |= {ticker_topic(s) for s in symbols}
        unknown = [str(a) for a in args if a not in listed]
        if op == "unsubscribe":
            return f"Invalid symbol :[{', '.join(unknown)}]" if unknown else None
        already = [a for a in args if a in client.topics]
        new = [a for a in args if a in listed and a not in client.topics]
        if args_chars([*client.topics, *new]) > MAX_ARGS_CHARS:
            return f"error:the args of this connection would exceed {MAX_ARGS_CHARS} characters"
        client.topics.update(new)
        if new:
            self.started.set()
        if unknown:
            return f"Invalid symbol :[{', '.join(unknown)}]"
        return f"error:already subscribed,topic:{','.join(already)}" if already else None

    # -- REST --------------------------------------------------------------------

    @web.middleware
    async def _record(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.http_requests.append((request.method, request.path_qs))
        if self._forbidden_left > 0 and request.path.startswith("/v5/market/"):
            self._forbidden_left -= 1
            log.warning("replay fault: answering REST %s with HTTP 403", request.path_qs)
            return web.Response(status=403, text=FORBIDDEN_BODY)
        return await handler(request)

    def _answer(self, result: dict[str, Any], ret_code: int = 0, ret_msg: str = "OK") -> web.Response:
        return web.json_response({"retCode": ret_code, "retMsg": ret_msg, "result": result, "retExtInfo": {},
                                  "time": self.market.clock.now_ms()})

    async def _kline(self, request: web.Request) -> web.Response:
        if self._rate_limited_left > 0:
            self._rate_limited_left -= 1
            self._rate_limited += 1
            log.warning("replay fault: refusing REST %s as rate-limited", request.path_qs)
            ret_code, ret_msg = RATE_LIMIT_ANSWERS[(self._rate_limited - 1) % 2]
            return self._answer({}, ret_code, ret_msg)
        query = request.query
        category = query.get("category", "linear")  # Bybit's default
        symbol = query.get("symbol", "")
        try:
            start, end, limit = _integers(query, "start", "end", "limit")
        except ValueError:
            return self._answer({}, PARAM_ERROR_RET_CODE, "params error: start, end and limit must be integers")
        limit = min(MAX_KLINE_LIMIT, max(1, DEFAULT_KLINE_LIMIT if limit is None else limit))
        if category not in CATEGORIES or symbol not in self.market.symbols:
            return self._answer({}, PARAM_ERROR_RET_CODE, "Not supported symbols")
        if query.get("interval") != self.market.interval.bybit:
            return self._answer({}, PARAM_ERROR_RET_CODE, f"Invalid period: this replay serves interval "
                                                          f"{self.market.interval.bybit} only")
        rows = self.market.kline_rows(symbol, start, end, limit)
        return self._answer({"category": category, "symbol": symbol, "list": rows})

    async def _funding_history(self, request: web.Request) -> web.Response:
        query = request.query
        category, symbol = query.get("category", ""), query.get("symbol", "")
        if category != "linear" or symbol not in self.market.symbols:
            return self._answer({}, PARAM_ERROR_RET_CODE, "params error: category only supports linear and the symbol "
                                                          "must be listed")
        try:
            start, end, limit = _integers(query, "startTime", "endTime", "limit")
        except ValueError:
            return self._answer({}, PARAM_ERROR_RET_CODE, "params error: startTime, endTime and limit must be integers")
        limit = min(MAX_FUNDING_LIMIT, max(1, MAX_FUNDING_LIMIT if limit is None else limit))
        if start is not None and end is None:
            return self._answer({}, PARAM_ERROR_RET_CODE, "params error: endTime is required with startTime")
        rows = self.market.funding_history(symbol, start, end, limit)
        return self._answer({"category": category, "list": rows})

    async def _instruments(self, request: web.Request) -> web.Response:
        category = request.query.get("category", "")
        listed = self.market.instruments(category, request.query.get("status"))
        return self._answer({"category": category, "list": listed, "nextPageCursor": ""})

    async def _time(self, request: web.Request) -> web.Response:
        now_ms = self.market.clock.now_ms()
        return self._answer({"timeSecond": str(now_ms // 1000), "timeNano": str(now_ms * 1_000_000)})


def _integers(query: Mapping[str, str], *names: str) -> list[int | None]:
    """The named query parameters as integers, ``None`` where absent.

    Raises:
        ValueError: a parameter that is not an integer.
    """
    return [int(query[name]) if name in query else None for name in names]


async def _sleep_until(loop: asyncio.AbstractEventLoop, deadline: float) -> None:
    await asyncio.sleep(max(0.0, deadline - loop.time()))
