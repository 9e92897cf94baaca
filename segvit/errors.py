"""The one exception type for problems a user can fix (bad input, missing files, bad options).

The CLI prints these as a single line and exits 1; anything else is a bug and keeps its trace.
"""


class SegvitError(Exception):
    """A user-facing error whose message says what was wrong and what was expected."""


def first_line(error: BaseException | str) -> str:
    """The first non-blank line of an error's message, stripped: a reason that fits a one-line
    SegvitError. An exception without a message gives its type's name; a blank text, ""."""
    line = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
    return line or ("" if isinstance(error, str) else type(error).__name__)
