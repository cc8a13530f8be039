"""The results table: one row per estimate, the same columns for every tier and model.

``results.csv`` written by the main job and by ``bayes-haic fit`` has exactly
:data:`RESULT_COLUMNS`. ``data_tier`` is ``published`` (the study's real published numbers),
``synthetic`` (the seeded synthetic cohort), ``user`` (a user's own cohort file) or
``reconstructed`` (pseudo-patients rebuilt from a published Kaplan-Meier figure by
``bayes-haic reconstruct``; never the study's patient data).
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

DATA_TIERS = ("published", "synthetic", "user", "reconstructed")

RESULT_COLUMNS = [
    "data_tier",  # published | synthetic | user | reconstructed
    "analysis",  # main | sensitivity | tipping point
    "endpoint",  # os | pfs | orr
    "measure",  # hr | rd | rr | or | median_treated | ...
    "adjustment",  # none | ps_covariate | iptw | psm | covariates | published
    "model",  # pwe | pwe-bootstrap | pwe-pooled-design | logistic | beta-binomial | normal-normal ...
    "estimand",  # conditional | marginal | arm-level (what the number means)
    "prior",  # the prior that produced the row: a set label (name plus any overrides), or the
    #           prior itself (e.g. "Beta(alpha: 1, beta: 1)") when no prior set changes the row
    "cut_set",  # PWE cut points, e.g. "8 quantile intervals" (empty for other models)
    "median",  # posterior median
    "lower",  # 2.5% posterior quantile
    "upper",  # 97.5% posterior quantile
    "prob_benefit",  # posterior P(HR < 1) or P(difference > 0); NaN where not meaningful
    "rhat_max",  # NaN for closed-form posteriors
    "ess_bulk_min",
    "divergences",
    "method",  # e.g. "PWE Poisson, NUTS" or "conjugate normal"
    "n_treated",
    "n_control",
    "source",  # cohort file name or published-evidence file
]


def summarise_draws(draws, benefit: str | None = None) -> dict:
    """Posterior median, 95% equal-tailed interval and P(benefit) of 1-d ``draws``.

    ``benefit`` is ``"below1"`` (P(x < 1), for ratios), ``"above0"`` (P(x > 0), for
    differences) or ``None``.
    """
    x = np.asarray(draws, float).ravel()
    lo, med, hi = np.quantile(x, [0.025, 0.5, 0.975])
    prob = math.nan
    if benefit == "below1":
        prob = float(np.mean(x < 1))
    elif benefit == "above0":
        prob = float(np.mean(x > 0))
    return {"median": float(med), "lower": float(lo), "upper": float(hi), "prob_benefit": prob}


# the columns that identify a row: no two rows of one results table share all of them
KEY_COLUMNS = ["data_tier", "analysis", "endpoint", "measure", "adjustment", "model", "estimand",
               "prior", "cut_set"]


def duplicate_keys(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of a results table whose :data:`KEY_COLUMNS` are not unique (empty if none)."""
    keys = frame[KEY_COLUMNS].astype(str)
    return frame[keys.duplicated(keep=False)]


def result_row(**fields) -> dict:
    """A results row with every column present (missing ones NaN/empty); unknown keys are an error."""
    unknown = set(fields) - set(RESULT_COLUMNS)
    if unknown:
        raise KeyError(f"unknown result column(s): {sorted(unknown)}")
    if fields.get("data_tier") not in DATA_TIERS:
        raise ValueError(f"data_tier must be one of {DATA_TIERS}, got {fields.get('data_tier')!r}")
    return {c: fields.get(c, math.nan) for c in RESULT_COLUMNS}


def atomic_write(path: str | Path, write) -> None:
    """Create ``path`` all at once: ``write(tmp_path)`` fills a temporary file in the same
    folder, which is then renamed over ``path`` (a reader never sees a half-written file).
    The file gets the usual permissions (0666 less the umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8", newline=""))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def results_frame(rows) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=RESULT_COLUMNS)


def write_results(rows, path: str | Path) -> pd.DataFrame:
    """Write the results table atomically; returns it as a DataFrame."""
    frame = results_frame(rows)
    dup = duplicate_keys(frame)
    if len(dup):  # a programming error, not a user's: every estimate must be identifiable
        raise ValueError("results rows are not unique by " + ", ".join(KEY_COLUMNS) + ":\n"
                         + dup[KEY_COLUMNS].to_string())
    atomic_write_text(path, frame.to_csv(index=False, float_format="%.6g"))
    return frame
