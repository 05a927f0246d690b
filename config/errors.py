"""The base of every error a user can fix (bad file, bad value, bad flag).

The CLI prints these as one clear message and exits with status 2, never with a
traceback; anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """An error caused by input the user controls; the message says what to fix."""
