"""The ``shadow`` command line: one entry point, a sub-command per job.

Commands are thin wrappers over library functions. Heavy imports (torch, SB3) happen
inside the commands that need them, so ``shadow --help`` stays instant. Errors a user
can fix (:class:`config.errors.UserError`) print one line and exit with status 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from config import UserError, load_settings

app = typer.Typer(
    name="shadow",
    help="Paper-trade Bybit candles with a PPO policy; train, backtest and review the ledger.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)

ConfigOption = Annotated[
    Optional[Path], typer.Option("--config", "-c", help="TOML settings file (default: $SHADOW_CONFIG).")
]


@app.command("config")
def show_config(config: ConfigOption = None) -> None:
    """Print the resolved settings (defaults + TOML file + SHADOW_* variables) as TOML-like text."""
    settings = load_settings(config)
    for section, values in settings.model_dump().items():
        console.print(f"[bold][{section}][/bold]")
        for key, value in values.items():
            console.print(f"{key} = {value!r}")


@app.command("selftest")
def selftest() -> None:
    """Run the environment self-test on the bundled real candles."""
    from env.crypto_trading_env import self_test

    problems = self_test()
    if problems:
        raise UserError("CryptoTradingEnv self-test failed: " + "; ".join(problems))
    console.print("✅ CryptoTradingEnv test completed successfully!")


def main() -> None:
    """Console-script entry point: run the app, turning user errors into clean exits."""
    try:
        app()
    except UserError as exc:
        err_console.print(f"[bold red]error:[/bold red] {exc}", highlight=False)
        sys.exit(2)
