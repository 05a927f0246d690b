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
