"""``python -m bot`` runs the ``shadow`` command line."""

from bot.cli import main

main()
