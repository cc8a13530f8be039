"""Where the project's shipped data, prior files and reports live.

The package is used from a checkout of the repository (``pip install -e .``): shipped data are
in ``data/``, prior sets in ``models/priors/`` and reports go to ``reports/``. :func:`project_root`
finds that checkout by walking up from this file; ``BAYES_HAIC_ROOT`` overrides it.
"""

from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """The repository folder holding ``data/`` and ``models/`` (or ``$BAYES_HAIC_ROOT``)."""
    env = os.environ.get("BAYES_HAIC_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file() and (parent / "data").is_dir():
            return parent
    return Path.cwd()


def data_dir() -> Path:
    return project_root() / "data"


def priors_dir() -> Path:
    return project_root() / "models" / "priors"


def default_cohort_path() -> Path:
    """The shipped synthetic default cohort (``data/synthetic/cohort.csv``)."""
    return data_dir() / "synthetic" / "cohort.csv"
