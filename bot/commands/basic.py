"""``shadow config`` and ``shadow selftest``."""

from __future__ import annotations

import typer

from bot.commands.common import console
from config import UserError
from config.cli import ConfigOption, command_settings


def show_config(ctx: typer.Context, config: ConfigOption = None) -> None:
    """Print the resolved settings (defaults + TOML file + SHADOW_* variables)."""
    settings = command_settings(ctx)
    for section, values in settings.model_dump().items():
        console.print(f"[bold]\\[{section}][/bold]")
        for key, value in values.items():
            console.print(f"{key} = {value!r}")


def selftest() -> None:
    """Run the environment self-test on the bundled real candles."""
    from env.crypto_trading_env import self_test

    problems = self_test()
    if problems:
        raise UserError("CryptoTradingEnv self-test failed: " + "; ".join(problems))
    console.print("✅ CryptoTradingEnv test completed successfully!")


def register(app: typer.Typer) -> None:
    app.command("config")(show_config)
    app.command("selftest")(selftest)
