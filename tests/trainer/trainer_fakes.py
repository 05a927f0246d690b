"""A fake ccxt Bybit for tests: no network, same ``fetch_ohlcv`` contract."""

from __future__ import annotations

from typing import Any

from trainer.history import Market

MINUTE = 60_000
T0 = 1_700_000_000_000 - 1_700_000_000_000 % MINUTE
MARKET = Market("BTC/USDT:USDT", "1m")


class FakeBybit:
    """Candles ``T0 + i minutes`` for i in range(n); ``now`` sits inside the last one, which
    is therefore still forming (Bybit returns it anyway, as the real one does)."""

    def __init__(self, n: int, failures: list[Exception | None] | None = None) -> None:
        self.rows = [[T0 + i * MINUTE, 100.0 + i, 101.0 + i, 99.0 + i, 100.5 + i, 1.0 + i] for i in range(n)]
        self.now = T0 + (n - 1) * MINUTE + 30_000
        self.failures = list(failures or [])
        self.calls: list[tuple[int, int, int]] = []

    def milliseconds(self) -> int:
        return self.now

    def add_candles(self, count: int) -> None:
        for _ in range(count):
            last = self.rows[-1]
            self.rows.append([last[0] + MINUTE, *[v + 1 for v in last[1:]]])
        self.now += count * MINUTE

    def fetch_ohlcv(self, symbol: str, timeframe: str = "1m", since: int | None = None, limit: int | None = None,
                    params: dict[str, Any] | None = None) -> list[list[float]]:
        assert symbol == MARKET.symbol and timeframe == "1m"
        until = (params or {})["until"]
        self.calls.append((since, until, limit))
        if self.failures and (failure := self.failures.pop(0)) is not None:
            raise failure
        return [list(r) for r in self.rows if since <= r[0] <= until][:limit]


class LocalBybit:
    """A tiny Bybit v5 REST server on 127.0.0.1 (instruments-info and kline only), so the
    real ccxt client can be tested end to end through the ``rest_url`` override.

    Serves 1-minute candles up to the current minute (which is still forming), newest
    first as Bybit does, and answers the first ``rate_limited`` kline requests with
    Bybit's ``retCode 10006`` "Too many visits!"."""

    def __init__(self, n: int, rate_limited: int = 0) -> None:
        import time

        now_minute = int(time.time() * 1000) // MINUTE * MINUTE
        self.rows = [[now_minute - (n - 1 - i) * MINUTE, 100.0 + i % 7, 101.0 + i % 7, 99.0 + i % 7, 100.5 + i % 7,
                      1.0 + i] for i in range(n)]
        self.rate_limited = rate_limited
        self.paths: list[str] = []
        self.kline_queries: list[dict[str, str]] = []

    def __enter__(self) -> LocalBybit:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        server_self = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                body = server_self.respond(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def respond(self, raw_path: str) -> str:
        import json
        from urllib.parse import parse_qsl, urlsplit

        parts = urlsplit(raw_path)
        query = dict(parse_qsl(parts.query))
        self.paths.append(parts.path)
        if parts.path == "/v5/market/instruments-info":
            return json.dumps({"retCode": 0, "retMsg": "OK", "result": {
                "category": query["category"], "nextPageCursor": "", "list": [_instrument(query["category"])]}})
        if parts.path == "/v5/market/kline":
            self.kline_queries.append(query)
            if self.rate_limited > 0:
                self.rate_limited -= 1
                return json.dumps({"retCode": 10006, "retMsg": "Too many visits!", "result": {}, "time": 0})
            start, end, limit = int(query["start"]), int(query["end"]), int(query["limit"])
            rows = [r for r in self.rows if start <= r[0] <= end][:limit]
            return json.dumps({"retCode": 0, "retMsg": "OK", "result": {
                "category": query["category"], "symbol": query["symbol"],
                "list": [[str(v) for v in r] + ["0"] for r in reversed(rows)]}})
        return json.dumps({"retCode": 10001, "retMsg": f"unknown path {parts.path}", "result": {}})


def _instrument(category: str) -> dict[str, Any]:
    common = {"symbol": "BTCUSDT", "baseCoin": "BTC", "quoteCoin": "USDT", "status": "Trading",
              "lotSizeFilter": {"basePrecision": "0.000001", "quotePrecision": "0.0000001", "minOrderQty": "0.000048",
                                "maxOrderQty": "71.73956243", "minOrderAmt": "1", "maxOrderAmt": "2000000",
                                "qtyStep": "0.001", "minNotionalValue": "5", "maxMktOrderQty": "100"},
              "priceFilter": {"tickSize": "0.01", "minPrice": "0.10", "maxPrice": "199999.80"}}
    if category == "spot":
        return common
    return common | {"contractType": "LinearPerpetual", "settleCoin": "USDT", "launchTime": "1585526400000",
                     "deliveryTime": "0", "priceScale": "2", "leverageFilter": {"minLeverage": "1",
                     "maxLeverage": "100.00", "leverageStep": "0.01"}, "fundingInterval": 480}
