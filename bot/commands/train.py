"""``shadow train`` and ``shadow fetch``: thin registrations of the trainer's commands.

The command functions live in :mod:`trainer.cli` so that ``python -m trainer.train_ppo``
(which must not depend on ``bot``) runs exactly the same code with the same flags.
"""

from __future__ import annotations

import typer

from trainer.cli import fetch_command, train_command


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
    app.command("fetch")(fetch_command)
