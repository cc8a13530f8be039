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


#: A library warning that is no user's mistake: PyTensor warns once per process when it cannot
#: link a system BLAS (pip-installed numpy ships its own OpenBLAS, which PyTensor's C backend does
#: not find). Our models are small, so this costs little; the benchmark reports the speed we
#: actually get. The command line and the main job's workers silence it (no warning filter is set
#: when the library is imported). It lives here, not beside the sampler, so that the command line
#: can set the filter without importing PyMC (``bayes-haic --help`` in 0.1 s, not 5 s).
BLAS_WARNING = "PyTensor could not link to a BLAS installation"
