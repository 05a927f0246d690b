"""``shadow replay-server``: a local Bybit-compatible server replaying candle files."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bot.commands.common import console
from config import UserError

if TYPE_CHECKING:  # the replay pulls in aiohttp: import it only when the command runs
    from bot.replay.faults import Fault
    from bot.replay.market import ReplayMarket


def replay_server(
    data: Annotated[list[Path], typer.Option("--data", help="Candle file (CSV or .csv.gz); repeat, one per symbol.")],
    symbol: Annotated[list[str], typer.Option("--symbol", help="Bybit symbol of each --data file, in the same order.")],
    speed: Annotated[float, typer.Option(
        help="Candles per second of real time (1m candles: 60 = one hour a minute).")] = 10.0,
    port: Annotated[int, typer.Option(help="TCP port (0 picks a free one).")] = 8765,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    history: Annotated[int, typer.Option(help="Candles already closed when the replay starts (for warm-up).")] = 300,
    updates: Annotated[int, typer.Option(help="confirm:false pushes before each candle's final one.")] = 2,
    fault: Annotated[list[str], typer.Option(
        "--fault", help="Inject a fault: drop@N stall@N duplicate@N reorder@N malformed@N skip@N[:C] ratelimit[:C] "
        "forbidden[:C] noreqid delist@N.",
    )] = [],  # noqa: B006 (typer reads the default, never mutates it)
) -> None:
    """Replay candle files as Bybit v5 market data (websocket + REST) on a local port.

    The replay starts when the first client subscribes. Point Shadow at it with
    \\[exchange] ws_url/rest_url (printed below). Stop with Ctrl-C.
    """
    from bot.replay.faults import parse_faults
    from bot.replay.market import ReplayMarket, ReplaySeries

    if len(data) != len(symbol):
        raise UserError(f"give one --symbol per --data file ({len(data)} file(s), {len(symbol)} symbol(s))")
    faults = parse_faults(fault)
    market = ReplayMarket([ReplaySeries.from_file(s, path) for s, path in zip(symbol, data, strict=True)],
                          history=history)
    try:
        asyncio.run(_serve(market, speed=speed, faults=faults, updates=updates, host=host, port=port))
    except KeyboardInterrupt:
        console.print("stopped")


async def _serve(market: ReplayMarket, *, speed: float, faults: list[Fault], updates: int, host: str,
                 port: int) -> None:
    from bot.replay.server import ReplayServer

    server = ReplayServer(market, speed=speed, faults=faults, updates_per_candle=updates, host=host, port=port)
    try:
        await server.start()
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        console.print(
            f"replaying {market.length - market.history} {market.interval.name} candle(s) of "
            f"{', '.join(market.symbols)} at {speed:g} candles/s after {market.history} of history"
            + (f", faults: {', '.join(f'{f.kind.value}@{f.at}' if f.at is not None else f.kind.value for f in faults)}"
               if faults else "")
        )
        console.print("point Shadow at it with (ws_url ends in /spot for category = \"spot\"):", markup=False)
        for line in ("[exchange]", f'ws_url = "{server.ws_url("linear")}"', f'rest_url = "{server.rest_url}"'):
            console.print("  " + line, markup=False, highlight=False, soft_wrap=True)
        console.print("waiting for the first subscription (Ctrl-C stops)")
        await server.started.wait()
        console.print("replay started")
        await server.finished.wait()
        console.print("replay finished; still serving REST and pings (Ctrl-C stops)")
        await asyncio.Event().wait()
    finally:
        await server.stop()


def register(app: typer.Typer) -> None:
    app.command("replay-server")(replay_server)
