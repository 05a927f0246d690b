"""The ``shadow`` command line: one entry point, a sub-command per job.

Commands are thin wrappers over library functions. Heavy imports (torch, SB3) happen
inside the commands that need them, so ``shadow --help`` stays instant. Errors a user
can fix print one line and exit with status 2 (:func:`config.cli.run_app`).
"""

from __future__ import annotations

import importlib

import typer

from config.cli import run_app

app = typer.Typer(
    name="shadow",
    help="Paper-trade Bybit candles with a PPO policy; train, backtest and review the ledger.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

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
    "bot.commands.ui",
)
for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)


def main() -> None:
    """Console-script entry point: run the app, turning user errors into one-line exits."""
    run_app(app, prog_name="shadow")


if __name__ == "__main__":
    main()
