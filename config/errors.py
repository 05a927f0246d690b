"""The base of every error a user can fix (bad file, bad value, bad flag), and the
wording helpers that keep its message to one line.

The CLI prints these as one clear line and exits with status 2, never with a traceback
(:func:`config.cli.run_app`); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import re


class UserError(Exception):
    """An error caused by input the user controls; the message says what to fix."""


def one_line(message: str) -> str:
    """``message`` with its line breaks (and the indentation after them) as single spaces."""
    return re.sub(r"\s*\n\s*", " ", message.strip())


def clause(text: str) -> str:
    """A library's sentence as a clause to follow a colon: one line, no final full stop,
    a capital first letter lowered (``"Input should be 1."`` -> ``"input should be 1"``;
    ``"URL ..."`` keeps its capitals)."""
    text = one_line(text).rstrip(".")
    return text[0].lower() + text[1:] if text[:2].istitle() else text
