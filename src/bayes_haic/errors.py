"""Errors that describe a user's mistake (bad file, bad option, bad prior).

The CLI prints an :class:`InputError` as one paragraph and exits with code 2; it never shows a
traceback for these. Library code raises :class:`InputError` for anything a user can fix, and lets
genuine bugs propagate as ordinary exceptions.
"""

from __future__ import annotations


class InputError(Exception):
    """A user-fixable problem with input data, configuration or options.

    The message must name the file, the column or key, the rows where relevant, and what was
    expected, e.g. ``"cohort.csv: column 'os_time', rows 3, 7: expected a non-negative number
    of months, found 'abc', '-2'."``
    """


def describe_rows(rows, limit: int = 8) -> str:
    """Format 1-based data row numbers for an error message, e.g. ``"rows 3, 7, 9 (and 4 more)"``."""
    rows = [int(r) for r in rows]
    shown = ", ".join(str(r) for r in rows[:limit])
    more = f" (and {len(rows) - limit} more)" if len(rows) > limit else ""
    word = "row" if len(rows) == 1 else "rows"
    return f"{word} {shown}{more}"
