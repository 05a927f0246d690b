"""The dashboard inside ``shadow run --http``: beside /health, /metrics and /status, judged
by the running daemon, and every committed decision on an open event stream within a second."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pandas as pd

from tests.bot.service_harness import HISTORY, running_service


async def test_the_daemon_serves_the_dashboard_and_streams_each_decision(tmp_path: Path,
                                                                         btc_candles: pd.DataFrame) -> None:
    frame = btc_candles.iloc[: HISTORY + 40].reset_index(drop=True)
    committed: dict[int, float] = {}
    async with running_service(frame, tmp_path / "l.sqlite", speed=8.0) as service:
        service.daemon.listeners.append(
            lambda symbol, item, _: committed.setdefault(item.candle.open_time_ms, time.monotonic()))
        async with service.client.get(service.api.url + "/") as page:
            assert page.status == 200 and "<title>Shadow · Overview</title>" in await page.text()
        status, index = await service.get("/api")
        assert status == 200 and {"/", "/health", "/metrics", "/status", "/api/"} <= set(index["endpoints"])
        received: dict[int, float] = {}
        async with service.client.get(service.api.url + "/api/events") as stream:
            while len(received) < 10:
                line = (await asyncio.wait_for(stream.content.readline(), 5)).decode()
                if line.startswith("data:"):
                    for open_ms in json.loads(line[5:])["decided"].values():
                        received.setdefault(open_ms, time.monotonic())
        status, overview = await service.get("/api/overview")
        assert status == 200 and overview["mode"] == "daemon" and overview["health"]["source"] == "daemon"
        assert overview["health"]["checks"]["stream_connected"] is True
        await service.finished()
    delays = [received[t] - committed[t] for t in received if t in committed]
    assert len(delays) >= 8 and max(delays) < 1.0, delays
