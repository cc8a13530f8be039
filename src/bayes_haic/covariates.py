"""Per-patient regressors shared by the survival and response models: a column or array of one
value per cohort row, standardised covariates, and the natural spline of the logit propensity
score (:mod:`bayes_haic.splines`). One definition, so both models see the same design.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special

from . import splines
from .errors import InputError, describe_rows


def column_or_array(frame: pd.DataFrame, value, what: str) -> np.ndarray:
    """``value`` as a flat float array of one finite number per row of ``frame``: the column
    of that name if ``value`` is a string, else the values themselves."""
    if isinstance(value, str):
        if value not in frame.columns:
            raise InputError(f"{what}: column '{value}' not in the cohort.")
        value = frame[value].to_numpy()
    arr = np.asarray(value, float).ravel()
    if arr.size != len(frame):
        raise InputError(f"{what}: expected one value per cohort row ({len(frame)}); found {arr.size}.")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise InputError(f"{what}: {describe_rows(bad + 1)}: expected finite numbers.")
    return arr


def standardised(frame: pd.DataFrame, covariates) -> tuple[np.ndarray, list]:
    """The ``covariates`` columns of ``frame`` as an (n, p) matrix, each centred and scaled to
    SD 1 (the SD of these rows, divisor n), and their names. InputError for a missing,
    non-numeric or constant column (naming the column and rows)."""
    if covariates is None or len(covariates) == 0:
        raise InputError("covariates: adjust='covariates' needs a list of covariate column names.")
    names = [covariates] if isinstance(covariates, str) else list(covariates)
    missing = [c for c in names if c not in frame.columns]
    if missing:
        raise InputError(f"covariates: column(s) {', '.join(repr(c) for c in missing)} not in the cohort.")
    Z = np.empty((len(frame), len(names)))
    for k, c in enumerate(names):
        v = pd.to_numeric(frame[c], errors="coerce").to_numpy(float)
        bad = np.flatnonzero(~np.isfinite(v))
        if bad.size:
            raise InputError(f"covariates: column '{c}', {describe_rows(bad + 1)}: expected a number.")
        sd = v.std()
        if not sd > 0:
            raise InputError(f"covariates: column '{c}' is constant among the analysed patients; drop it.")
        Z[:, k] = (v - v.mean()) / sd
    return Z, names


def propensity_scores(frame: pd.DataFrame, ps) -> np.ndarray:
    """The propensity scores (a column name or array, one per row), checked to lie in (0, 1)."""
    if ps is None:
        raise InputError("ps: adjust='ps_covariate' needs the propensity score (a column name or array).")
    p = column_or_array(frame, ps, "ps")
    bad = np.flatnonzero((p <= 0) | (p >= 1))
    if bad.size:
        raise InputError(f"ps: {describe_rows(bad + 1)}: expected probabilities strictly between 0 and 1.")
    return p


def ps_spline(p: np.ndarray, df: int, prefix: str = "ps_spline") -> tuple[np.ndarray, list, str]:
    """The natural cubic spline of logit(``p``) with ``df`` non-constant basis functions, as R's
    ``ns(qlogis(ps), df)`` (:func:`bayes_haic.splines.ps_spline_basis`: centred, orthonormalised,
    SD 1, so a coefficient prior is on uncorrelated unit-SD basis functions), their names, and
    the method note ('' unless fewer than ``df`` functions were possible: a score with few
    distinct values, :func:`bayes_haic.splines.supported_basis`)."""
    x = special.logit(np.asarray(p, float))
    B, used = splines.supported_basis(x, df)
    return B, [f"{prefix}_{k + 1}" for k in range(B.shape[1])], splines.reduced_df_note(used, df, x)
