"""The ``shadow`` command line: one entry point, a sub-command per job.

Commands are thin wrappers over library functions. Heavy imports (torch, SB3) happen
inside the commands that need them, so ``shadow --help`` stays instant. Errors a user
can fix (:class:`config.errors.UserError`) print one line and exit with status 2.
"""

from __future__ import annotations

import importlib
import sys

import typer
from rich.console import Console
from rich.markup import escape

from config import UserError

app = typer.Typer(
    name="shadow",
    help="Paper-trade Bybit candles with a PPO policy; train, backtest and review the ledger.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err_console = Console(stderr=True)

# Each command group lives in its own module with a ``register(app)`` function.
COMMAND_MODULES: tuple[str, ...] = (
    "bot.commands.basic",
    "bot.commands.run",
    "bot.commands.ledger",
    "bot.commands.models",
    "bot.commands.retrain",
    "bot.commands.train",
    "bot.commands.replay",
    "bot.commands.evaluate",
    "bot.commands.verify",
    "bot.commands.tune",
    "bot.commands.ops",
)
for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)


def main() -> None:
    """Console-script entry point: run the app, turning user errors into clean exits."""
    try:
        app()
    except UserError as exc:
        err_console.print(f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
