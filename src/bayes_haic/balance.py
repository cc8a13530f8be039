"""Covariate balance between treatment arms: standardized mean differences and variance ratios
(the love plot and overlap plot are in :mod:`bayes_haic.report.figures`).

For covariate ``x`` and arm means ``m1`` (treated), ``m0`` (control), possibly weighted, the
**standardized mean difference** is

    SMD = (m1 - m0) / s,

where the denominator ``s`` is computed once, from the *unadjusted full cohort*, and used for
every comparison (before matching, after matching, after weighting), so that a change in SMD
reflects a change in the mean difference only (Stuart 2010, Stat Sci 25:1-21; the choice of
cobalt, and of MatchIt's ``summary()``):

* ``denominator="pooled"`` (default): ``s = sqrt((v1 + v0) / 2)`` with ``v1``, ``v0`` the
  unweighted within-arm variances of the full cohort (Austin 2009, Stat Med 28:3083-3107);
* ``denominator="treated"``: ``s = sqrt(v1)``, the treated arm's SD (MatchIt's ``summary()``
  for the ATT); kept so results can be compared with MatchIt.

Variances: a **binary** covariate (all values 0 or 1) has variance ``p (1 - p)``; a
**continuous** one has the unbiased weighted variance ``sum w (x - m)^2 / (1 - sum w^2)`` with
weights normalised to sum to 1 (the sample variance, ``n - 1`` denominator, when unweighted) --
MatchIt's and cobalt's formulas. If ``s`` is 0 (treated SD 0 with ``"treated"``) the pooled SD is
used instead, as MatchIt does; if that is 0 too the covariate is constant and its SMD is 0.

The **variance ratio** (continuous covariates only) is ``v1 / v0`` in the same (matched or
weighted) sample; a ratio near 1 indicates similar spread. Imbalance is flagged when
``|SMD| > threshold`` (default 0.1; Austin 2009).

Matched samples are 1:1 without replacement, so every matched patient has weight 1.
"""

from __future__ import annotations

import sys as _sys
import types as _types

import numpy as np
import pandas as pd

from .errors import InputError, describe_rows

DENOMINATORS = ("pooled", "treated")
_ADJUSTMENTS = ("before", "matched", "weighted")


def is_binary(x) -> bool:
    """True if every value of ``x`` is 0 or 1."""
    x = np.asarray(x, dtype=float)
    return bool(np.all((x == 0) | (x == 1)))


def weighted_mean(x, w=None) -> float:
    """``sum w x / sum w`` (the plain mean when ``w`` is None)."""
    x = np.asarray(x, dtype=float)
    w = np.ones_like(x) if w is None else np.asarray(w, dtype=float)
    return float(np.sum(w * x) / np.sum(w))


def weighted_variance(x, w=None, binary: bool | None = None) -> float:
    """Variance of ``x`` under weights ``w``: ``p (1 - p)`` if binary, else the unbiased weighted variance.

    Continuous: ``sum w (x - m)^2 / (1 - sum w^2)`` with ``w`` normalised to sum to 1; equals
    ``np.var(x, ddof=1)`` for equal weights. NaN if fewer than two positive weights.
    """
    x = np.asarray(x, dtype=float)
    w = np.ones_like(x) if w is None else np.asarray(w, dtype=float)
    if binary is None:
        binary = is_binary(x)
    w = w / np.sum(w)
    m = float(np.sum(w * x))
    if binary:
        return m * (1.0 - m)
    if np.count_nonzero(w) < 2:
        return float("nan")
    return float(np.sum(w * (x - m) ** 2) / (1.0 - np.sum(w**2)))


def _treatment_array(frame: pd.DataFrame, treatment) -> np.ndarray:
    if isinstance(treatment, str):
        if treatment not in frame.columns:
            raise InputError(f"cohort: no treatment column '{treatment}'.")
        t = frame[treatment]
        where = f"column '{treatment}'"
    else:
        t = pd.Series(np.asarray(treatment))
        where = "treatment"
        if len(t) != len(frame):
            raise InputError(
                f"balance: treatment has {len(t)} values but the cohort has {len(frame)} rows."
            )
    t_num = pd.to_numeric(t, errors="coerce").to_numpy()
    bad = np.flatnonzero(~np.isin(t_num, (0, 1)))
    if bad.size:
        raise InputError(f"cohort: {where}, {describe_rows(bad + 1)}: expected 0 or 1.")
    t_int = t_num.astype(int)
    if t_int.min() == t_int.max():
        raise InputError(f"cohort: {where}: need patients in both arms (1 and 0).")
    return t_int


def _covariate_matrix(frame: pd.DataFrame, covariates) -> np.ndarray:
    covariates = list(covariates)
    missing = [c for c in covariates if c not in frame.columns]
    if missing:
        raise InputError(f"cohort: no covariate column(s) {', '.join(map(repr, missing))}.")
    cols = []
    for c in covariates:
        col = frame[c]
        if col.dtype == bool:
            col = col.astype(int)
        values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise InputError(
                f"cohort: column '{c}', {describe_rows(bad + 1)}: expected a finite number, "
                f"found {', '.join(repr(v) for v in col.iloc[bad[:3]])}."
            )
        cols.append(values)
    return np.column_stack(cols) if cols else np.empty((len(frame), 0))


def _matched_array(frame: pd.DataFrame, matched, id_col: str) -> np.ndarray:
    if hasattr(matched, "matched_mask"):  # a MatchResult
        if id_col not in frame.columns:
            raise InputError(f"cohort: no id column '{id_col}' to align the matched set with.")
        return matched.matched_mask(frame[id_col].to_numpy())
    m = np.asarray(matched)
    if m.dtype != bool or m.shape != (len(frame),):
        raise InputError(
            "balance: 'matched' must be a MatchResult or a boolean array with one value per cohort row."
        )
    return m


def _weights_array(frame: pd.DataFrame, weights) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    if w.shape != (len(frame),):
        raise InputError(
            f"balance: weights must have one value per cohort row ({len(frame)}); found shape {w.shape}."
        )
    bad = np.flatnonzero(~np.isfinite(w) | (w < 0))
    if bad.size:
        raise InputError(f"balance: weights must be finite and >= 0; not so at {describe_rows(bad + 1)}.")
    return w


def balance_table(
    frame: pd.DataFrame,
    covariates,
    treatment="treatment",
    weights=None,
    matched=None,
    *,
    id_col: str = "id",
    threshold: float = 0.1,
    denominator: str = "pooled",
) -> pd.DataFrame:
    """Balance of ``covariates`` between arms: before adjustment, after matching, after weighting.

    Parameters
    ----------
    frame
        The cohort, one row per patient.
    covariates
        Numeric covariate columns (0/1 columns are treated as binary).
    treatment
        Name of the 0/1 treatment column, or an array aligned with ``frame``.
    weights
        Optional weights per row (e.g. IPTW from :func:`bayes_haic.propensity.ipt_weights`).
    matched
        Optional :class:`~bayes_haic.matching.MatchResult` (aligned through ``id_col``) or a
        boolean array per row marking the matched patients.
    threshold
        ``|SMD|`` above which a covariate is flagged as imbalanced.
    denominator
        ``"pooled"`` (default) or ``"treated"``; see the module docstring.

    Returns
    -------
    DataFrame
        One row per covariate: ``covariate``, ``kind`` (``binary``/``continuous``), for each of
        ``before``, ``matched``, ``weighted``: ``mean_treated_*``, ``mean_control_*``,
        ``smd_*``, ``vr_*`` (NaN for binary covariates) and ``flag_*`` (``|smd| > threshold``);
        columns of adjustments not requested are NaN / NA. ``attrs`` records ``denominator``,
        ``threshold`` and the sample sizes per arm (``n_treated_before`` ...).
    """
    if denominator not in DENOMINATORS:
        raise InputError(
            f"balance: denominator must be one of {', '.join(DENOMINATORS)}; found {denominator!r}."
        )
    if not (isinstance(threshold, (int, float)) and threshold > 0):
        raise InputError(f"balance: threshold must be a positive number; found {threshold!r}.")
    covariates = list(covariates)
    if not covariates:
        raise InputError("balance: give at least one covariate.")
    t = _treatment_array(frame, treatment)
    X = _covariate_matrix(frame, covariates)
    samples = {"before": np.ones(len(frame))}
    if matched is not None:
        samples["matched"] = _matched_array(frame, matched, id_col).astype(float)
    if weights is not None:
        samples["weighted"] = _weights_array(frame, weights)

    attrs = {"denominator": denominator, "threshold": float(threshold)}
    for name, w in samples.items():
        for arm, label in ((1, "treated"), (0, "control")):
            if not np.any(w[t == arm] > 0):
                raise InputError(f"balance: the {name} sample has no {label} patients.")
            attrs[f"n_{label}_{name}"] = int(np.count_nonzero(w[t == arm] > 0))

    rows = []
    for j, cov in enumerate(covariates):
        x = X[:, j]
        binary = is_binary(x)
        v1 = weighted_variance(x[t == 1], binary=binary)
        v0 = weighted_variance(x[t == 0], binary=binary)
        pooled = np.sqrt((v1 + v0) / 2.0)
        s = np.sqrt(v1) if denominator == "treated" else pooled
        if not np.isfinite(s) or s < np.sqrt(np.finfo(float).eps):
            s = pooled
        row = {"covariate": cov, "kind": "binary" if binary else "continuous"}
        for name in _ADJUSTMENTS:
            if name not in samples:
                row.update({f"mean_treated_{name}": np.nan, f"mean_control_{name}": np.nan,
                            f"smd_{name}": np.nan, f"vr_{name}": np.nan, f"flag_{name}": pd.NA})
                continue
            w = samples[name]
            w1, w0 = w[t == 1], w[t == 0]
            m1, m0 = weighted_mean(x[t == 1], w1), weighted_mean(x[t == 0], w0)
            if s < np.sqrt(np.finfo(float).eps):
                smd = 0.0  # constant covariate: no difference possible
            else:
                smd = (m1 - m0) / s
            vr = np.nan
            if not binary:
                vr = weighted_variance(x[t == 1], w1, binary=False) / weighted_variance(
                    x[t == 0], w0, binary=False
                )
            row.update({f"mean_treated_{name}": m1, f"mean_control_{name}": m0,
                        f"smd_{name}": smd, f"vr_{name}": vr, f"flag_{name}": bool(abs(smd) > threshold)})
        rows.append(row)
    out = pd.DataFrame(rows)
    for name in _ADJUSTMENTS:
        out[f"flag_{name}"] = out[f"flag_{name}"].astype("boolean")
    out.attrs.update(attrs)
    return out


#: variance ratios outside this range flag a difference in spread between the arms (Austin
#: 2009, Stat Med 28:3083-3107; Stuart 2010)
VR_RANGE = (0.5, 2.0)


#: the adjusted sample of each strategy that has one: its column suffix in a balance table
STRATEGY_SAMPLES = {"psm": "matched", "iptw": "weighted"}


def strategy_imbalance(table: pd.DataFrame, strategy: str) -> pd.DataFrame:
    """:func:`residual_imbalance` of the adjusted sample that ``strategy`` uses
    (:data:`STRATEGY_SAMPLES`); empty for a strategy that uses none."""
    if strategy not in STRATEGY_SAMPLES:
        return residual_imbalance(pd.DataFrame({"covariate": []}), "weighted")
    return residual_imbalance(table, STRATEGY_SAMPLES[strategy])


def residual_imbalance(table: pd.DataFrame, adjustment: str) -> pd.DataFrame:
    """The covariates that remain imbalanced after ``adjustment`` (``"matched"`` or
    ``"weighted"``) in a :func:`balance_table`: ``|SMD|`` above the table's threshold, or a
    variance ratio (continuous covariates) outside :data:`VR_RANGE`. Columns ``covariate``,
    ``smd``, ``vr`` (NaN for binary covariates), ``smd_flag``, ``vr_flag``; sorted by ``|SMD|``,
    largest first. Empty when every covariate is balanced or the table has no such column."""
    if adjustment not in ("matched", "weighted"):
        raise ValueError(f"residual_imbalance: adjustment is 'matched' or 'weighted', not {adjustment!r}")
    cols = ["covariate", "smd", "vr", "smd_flag", "vr_flag"]
    smd = table.get(f"smd_{adjustment}")
    if smd is None or smd.isna().all():
        return pd.DataFrame(columns=cols)
    vr = table[f"vr_{adjustment}"]
    threshold = float(table.attrs.get("threshold", 0.1))
    out = pd.DataFrame({"covariate": table["covariate"], "smd": smd, "vr": vr,
                        "smd_flag": smd.abs() > threshold,
                        "vr_flag": vr.notna() & ((vr < VR_RANGE[0]) | (vr > VR_RANGE[1]))})
    out = out[out["smd_flag"] | out["vr_flag"]]
    return out.iloc[np.argsort(-out["smd"].abs().to_numpy(), kind="stable")].reset_index(drop=True)


# ------------------------------------------------------------------------------ bh.balance(...)
# ``bayes_haic.balance`` is both this module and the API function ``bh.balance(df, ...)``
# (:func:`bayes_haic.api.balance`): importing the module makes it the package attribute, so the
# module itself is made callable and calls the API function.


class _CallableModule(_types.ModuleType):
    def __call__(self, *args, **kwargs):
        """``bh.balance(df, covariates=...)``: see :func:`bayes_haic.api.balance`."""
        from .api import balance as _balance

        return _balance(*args, **kwargs)


_sys.modules[__name__].__class__ = _CallableModule
