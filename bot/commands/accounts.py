"""``shadow accounts``: the paper accounts side by side over a range of candles."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from bot.commands.common import console, ledger_reader, review_table
from config.cli import ConfigOption, DbOption, command_settings, split_list

if TYPE_CHECKING:
    from trainer.evaluation.account_figures import AccountFigures


def accounts(
    ctx: typer.Context,
    start: Annotated[str | None, typer.Option("--from", help="first candle, UTC (e.g. 2023-03-10)")] = None,
    end: Annotated[str | None, typer.Option("--to", help="stop before this candle, UTC")] = None,
    names: Annotated[str | None, typer.Option("--account", "-a", help="only these accounts, comma-separated")] = None,
    symbol: Annotated[str | None, typer.Option("--symbol", "-s", help="only this symbol, e.g. BTCUSDT")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the figures as JSON")] = False,
    db: DbOption = None,
    config: ConfigOption = None,
) -> None:
    """Compare the accounts over the same candles: return, Sharpe, max drawdown, trades, fees,
    funding (paid +, received -), exposure, and timing against buy & hold (timing = return - net exposure x buy & hold
    return), per symbol and in total."""
    from state.account_curves import account_curves
    from state.decision_log import snapshot
    from state.readers import check_account
    from trainer.data.ranges import parse_range
    from trainer.evaluation.account_figures import compare_accounts

    start_ms, end_ms = parse_range(start, end)
    wanted = split_list(names) if names else []
    with ledger_reader(command_settings(ctx).ledger) as conn, snapshot(conn):
        for name in wanted:
            check_account(conn, name)
        curves = account_curves(conn, start_ms=start_ms, end_ms=end_ms, accounts=wanted,
                                symbols=[symbol] if symbol else [])
    figures = compare_accounts(curves)
    if as_json:
        typer.echo(json.dumps([f.to_dict() for f in figures], indent=2))
        return
    if not figures:
        console.print("no decisions in the range", markup=False)
        return
    console.print(figures_table(figures))


def figures_table(figures: list[AccountFigures]) -> object:
    """One row per account and symbol, then the account's total."""
    from env.candles import format_ms

    first, last = min(f.first_ms for f in figures), max(f.last_ms for f in figures)
    table = review_table(f"accounts, {format_ms(first)} .. {format_ms(last)} (UTC)", "account", "symbol",
                         "decisions", "from (UTC)", "start equity", "final equity", "return", "Sharpe", "max DD",
                         "trades", "fees", "funding", "exposure", "net exp.", "buy & hold", "timing")
    for f in figures:
        m = f.metrics
        table.add_row(f.account, f.symbol, f"{f.decisions:,}", format_ms(f.first_ms), f"{f.start_equity:,.2f}",
                      f"{f.final_equity:,.2f}", _pct(m.total_return), "n/a" if m.sharpe is None else f"{m.sharpe:.2f}",
                      _pct(m.max_drawdown, sign=False), f"{m.n_trades:,}", f"{m.fees_paid:,.2f}",
                      f"{m.funding_paid:+,.2f}", _pct(m.exposure, sign=False), f"{f.net_exposure:+.2f}",
                      _pct(f.buy_and_hold_return), _pct(f.timing))
    return table


def _pct(value: float, *, sign: bool = True) -> str:
    return f"{100 * value:{'+' if sign else ''}.2f}%"


def register(app: typer.Typer) -> None:
    app.command("accounts")(accounts)
