"""Where the shipped configuration, prior sets and data live, in a checkout or after ``pip install``.

Two layouts, one set of files:

* **a checkout** of the repository (``make setup`` installs it editable): the default
  configuration is ``models/main.toml``, the prior sets ``models/priors/*.toml``, the published
  evidence ``data/published/`` and the synthetic default cohort ``data/synthetic/``.
  :func:`project_root` finds the checkout by walking up from this file; ``BAYES_HAIC_ROOT``
  overrides it.
* **an installed package** (``pip install .`` or a wheel): the same files are package data,
  ``bayes_haic/_models/`` (from ``models/``) and ``bayes_haic/_data/`` (from ``data/``);
  ``pyproject.toml`` maps the folders, so there is a single copy in the repository.

Nothing depends on the current directory. How a name is resolved (configuration, prior set,
cohort): an explicit path given by the user wins; a prior set's name is then looked up next to
the configuration file in use (``<config folder>/priors/NAME.toml``, e.g. the checkout's
``models/priors/`` or a folder made by ``bayes-haic init``), then among the shipped sets
(:func:`priors_dir`).
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def checkout_root() -> Path | None:
    """The repository checkout this package runs from (``$BAYES_HAIC_ROOT`` if set), or None
    for an installed package."""
    env = os.environ.get("BAYES_HAIC_ROOT")
    if env:
        return Path(env).resolve()
    for parent in _PACKAGE.parents:
        if (parent / "pyproject.toml").is_file() and (parent / "data").is_dir() \
                and (parent / "models").is_dir():
            return parent
    return None


def project_root() -> Path:
    """The folder that holds ``data/`` and ``models/``: the checkout, or for an installed
    package its own folder (whose ``_data``/``_models`` are reached through :func:`data_dir`
    and :func:`models_dir`)."""
    return checkout_root() or _PACKAGE


def in_checkout() -> bool:
    return checkout_root() is not None


def data_dir() -> Path:
    """``data/`` of the checkout, or the installed package data ``bayes_haic/_data``."""
    root = checkout_root()
    return root / "data" if root else _PACKAGE / "_data"


def models_dir() -> Path:
    """``models/`` of the checkout, or the installed package data ``bayes_haic/_models``."""
    root = checkout_root()
    return root / "models" if root else _PACKAGE / "_models"


def priors_dir() -> Path:
    """The shipped prior sets: ``models/priors`` (checkout) or ``bayes_haic/_models/priors``."""
    return models_dir() / "priors"


def default_cohort_path() -> Path:
    """The shipped synthetic default cohort (``data/synthetic/cohort.csv``)."""
    return data_dir() / "synthetic" / "cohort.csv"


def shipped(relative: str | Path) -> Path:
    """A shipped file named as in a checkout, e.g. ``shipped("data/synthetic/cohort.csv")`` or
    ``shipped("models/priors/reference.toml")``, wherever it is installed."""
    parts = Path(relative).parts
    if parts and parts[0] == "data":
        return data_dir().joinpath(*parts[1:])
    if parts and parts[0] == "models":
        return models_dir().joinpath(*parts[1:])
    return project_root() / relative


def display_path(path: str | Path) -> str:
    """``path`` relative to the checkout (``data/published/study.csv``), or to the installed
    package's data (``bayes_haic:data/published/study.csv``), else as given."""
    p = Path(path).resolve()
    for base, prefix in ((checkout_root(), ""), (_PACKAGE / "_data", "bayes_haic:data"),
                         (_PACKAGE / "_models", "bayes_haic:models")):
        if base is None:
            continue
        try:
            rel = p.relative_to(base.resolve())
        except ValueError:
            continue
        return f"{prefix}/{rel}" if prefix else str(rel)
    return str(path)
