"""Provenance: what produced a result (data file hash, seed, versions, date, command line)."""

from __future__ import annotations

import datetime as _dt
import platform
import sys
from importlib import metadata

# the packages the numbers depend on; the report adds its own (bayes_haic.report.main)
PACKAGES = ("bayes-haic", "pymc", "pytensor", "arviz", "numpy", "pandas", "xarray", "scipy",
            "nutpie", "lifelines", "statsmodels")


def package_versions(names=PACKAGES) -> dict[str, str]:
    """Installed versions of the packages ``names`` (default: those results depend on)."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def run_info(argv=None) -> dict:
    """Python version, platform, UTC run time and the command line."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "run_at_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "command": " ".join(argv if argv is not None else sys.argv),
    }
