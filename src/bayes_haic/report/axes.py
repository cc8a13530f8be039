"""Axis styling shared by the figures: log-scale ratio axes with plain tick labels, and the
axes of an ORR risk-difference density."""

from __future__ import annotations

from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

HR_TICKS = (0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3)  # the forest plot and HR(t)
WIDE_TICKS = (0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5, 10)  # published-HR densities
DENSE_TICKS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 1, 1.5, 2, 3, 5)  # prior-sensitivity densities


def log_ratio_axis(ax, which: str = "x", ticks=HR_TICKS, within=None) -> None:
    """Put the ``which`` axis ("x" or "y") of ``ax`` on a log scale with ``ticks`` labelled as
    plain numbers (no minor labels); ``within=(lo, hi)`` keeps only the ticks in that range."""
    getattr(ax, f"set_{which}scale")("log")
    if within is not None:
        ticks = [t for t in ticks if within[0] <= t <= within[1]]
    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_major_locator(FixedLocator(list(ticks)))
    axis.set_major_formatter(ScalarFormatter())
    axis.set_minor_formatter(NullFormatter())


def finish_rd_axes(ax, xlabel: str, important: float) -> None:
    """Common styling of an ORR risk-difference density plot: reference lines at 0 and at the
    clinically important difference, labels and legend."""
    ax.axvline(0, color="black", lw=0.8)
    ax.axvline(important, color="black", lw=0.5, ls="--")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("posterior density")
    ax.set_ylim(0, None)
    ax.legend(fontsize=7, frameon=False)
