"""The one exception type for problems a user can fix (bad input, missing files, bad options).

The CLI prints these as a single line and exits 1; anything else is a bug and keeps its trace.
"""


class SegvitError(Exception):
    """A user-facing error whose message says what was wrong and what was expected."""
