"""``shadow verify``: prove on your own ledger that live trading decided what the backtest decides."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from bot.commands.common import console
from config.cli import EXIT_FAILED, EXIT_OK, AccountOption, ConfigOption, DbOption, command_settings

if TYPE_CHECKING:
    from trainer.verification.ledger import SymbolVerdict

AGREE, DIVERGE = EXIT_OK, EXIT_FAILED
"""Exit statuses; bad input exits with 2, as everywhere."""
MAX_TURNS_SHOWN = 6
"""A ledger retrained for months has many turns: the report shows the first three and the last two."""


def verify(
    ctx: typer.Context,
    db: DbOption = None,
    account: AccountOption = None,
    symbol: Annotated[str | None, typer.Option("--symbol", "-s", help="Only this symbol, e.g. BTCUSDT.")] = None,
    start: Annotated[
        str | None, typer.Option("--from", help="re-run the strategies from this candle on, UTC (e.g. 2023-03-10); "
                                    "earlier decisions are replayed from their recorded actions")
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="compare decisions before this time only, UTC")] = None,
    config: ConfigOption = None,
) -> None:
    """Replay the ledger through the backtest and compare every decision, bit for bit.

    The strategies and models that took the decisions (hot-swaps included) decide again on the stored candles.

    Settings come from what each daemon session recorded (ledgers older than schema 4: --config).

    Prints per account and symbol the decisions compared and the first divergence. Exit status 0: all agree; 1: a
    divergence.
    """

    from contextlib import closing

    from state.database import connect_reader
    from trainer.data.ranges import parse_range
    from trainer.verification.ledger import verify_ledger

    settings = command_settings(ctx)
    start_ms, end_ms = parse_range(start, end)
    path = settings.ledger.db_path
    with closing(connect_reader(path, settings.ledger.lock_timeout_s)) as conn:
        verdicts = verify_ledger(conn, path, settings, account=account, symbol=symbol, start_ms=start_ms,
                                 end_ms=end_ms)
    for verdict in verdicts:
        for line in describe(verdict):
            console.print(line, soft_wrap=True, highlight=False, markup=False)
    diverged = [f"{v.account} {v.symbol}" for v in verdicts if v.divergence is not None]
    if diverged:
        console.print(f"{len(diverged)} of {len(verdicts)} account symbol(s) diverge: {', '.join(diverged)}",
                      soft_wrap=True, highlight=False, markup=False)
    raise typer.Exit(DIVERGE if diverged else AGREE)


def describe(verdict: SymbolVerdict) -> list[str]:
    """The report's lines for one account's symbol: the verdict, then who decided and where the settings came from."""
    from env.candles import format_ms
    from trainer.verification.ledger import COMPARED

    head = (f"{verdict.account} {verdict.symbol} {verdict.interval}: {verdict.decisions:,} decisions "
            f"{format_ms(verdict.first_ms)} .. {format_ms(verdict.last_ms)}")
    d = verdict.divergence
    if d is None:
        first = f"{head}: all agree bit for bit ({COMPARED})"
    else:
        first = (f"{head}: first divergence at {format_ms(d.open_time_ms)} (decided by {d.decided_by}): "
                 f"{d.field}: live {d.live}, backtest {d.backtest}")
    turns = [f"{label} ({n:,})" for label, n in verdict.deciders]
    if len(turns) > MAX_TURNS_SHOWN:
        turns[3:-2] = [f"{len(turns) - 5:,} more turns"]
    turns_text = ", then ".join(turns)
    replayed = (f"; the {verdict.replayed:,} before {format_ms(verdict.rerun_from_ms)} replayed from their "
                "recorded actions" if verdict.replayed else "")
    return [first, f"  decided by {turns_text}{replayed}; settings {verdict.settings_source}"]


def register(app: typer.Typer) -> None:
    app.command("verify")(verify)
