"""``shadow config`` and ``shadow selftest``."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape

from bot.commands.common import console
from config import UserError
from config.cli import ConfigOption, command_settings
from config.settings import value_sources


def show_config(ctx: typer.Context, config: ConfigOption = None) -> None:
    """Print the resolved settings (defaults < profile < TOML file < SHADOW_* variables), each
    with where its value came from."""
    settings = command_settings(ctx)
    sources = value_sources(config)
    console.print(f"profile = {settings.profile!r}  # {sources['profile']}", highlight=False)
    for section, values in settings.model_dump(exclude={"profile"}).items():
        if not isinstance(values, dict):  # [[accounts]]: an array of tables
            _show_tables(section, values, sources[section])
            continue
        console.print(f"[bold]\\[{section}][/bold]")
        for key, value in _leaves(values, ()):
            name = ".".join((section, *key))
            console.print(escape(f"{'.'.join(key)} = {value!r}  # {sources[name]}"), highlight=False)


def _show_tables(name: str, entries: list[dict[str, Any]], source: str) -> None:
    """An array of tables, one ``[[name]]`` block per entry (``name = []`` when empty)."""
    if not entries:
        console.print(escape(f"{name} = []  # {source}"), highlight=False)
    for entry in entries:
        console.print(f"[bold]\\[\\[{name}]][/bold]  # {escape(source)}", highlight=False)
        for key, value in entry.items():
            console.print(escape(f"{key} = {value!r}"), highlight=False)


def _leaves(values: dict[str, Any], path: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
    """``(key path, value)`` of every leaf of a nested settings dump (``reward.mode``)."""
    out: list[tuple[tuple[str, ...], Any]] = []
    for key, value in values.items():
        out += _leaves(value, (*path, key)) if isinstance(value, dict) else [((*path, key), value)]
    return out


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
