"""The cohort schema: one validated format for patient-level data (time unit: months).

A cohort file is a CSV with one row per patient and the columns

==============  ==============================================================
``id``          unique patient identifier (text)
``treatment``   1 = HAIC-LEN-P, 0 = LEN-P
``os_time``     overall survival time, months from start of treatment (>= 0)
``os_event``    1 = death observed, 0 = censored
``pfs_time``    progression-free survival time, months (>= 0, never after ``os_time``)
``pfs_event``   1 = progression or death observed, 0 = censored
``response``    objective response (1/0); empty = not evaluable (empty in every row:
                a cohort without response data, for the survival analyses only)
==============  ==============================================================

plus any baseline covariate columns (numeric, no missing values), chosen by configuration: the
``--covariates`` option, else the ``covariates`` list of a sidecar file ``<cohort>.meta.json``,
else every extra column. The sidecar also declares the data tier (``"data_tier": "synthetic"``);
a cohort without one is a user's cohort (tier ``user``). A cohort written by ``bayes-haic
reconstruct`` has tier ``reconstructed`` and is validated by
:func:`bayes_haic.reconstruct.load_reconstructed` (one endpoint per row, no covariates).

:func:`load_cohort` checks everything and raises :class:`~bayes_haic.errors.InputError` with a
message naming the file, the column, the lines (line 1 is the header) and what was expected.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import InputError, describe_rows

REQUIRED_COLUMNS = ["id", "treatment", "os_time", "os_event", "pfs_time", "pfs_event", "response"]
ARM_LABELS = {1: "HAIC-LEN-P", 0: "LEN-P"}
# PFS may exceed OS by rounding only (months)
TIME_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Cohort:
    """A validated cohort: typed data frame plus what it is and where it came from."""

    frame: pd.DataFrame
    covariates: list
    path: str
    data_tier: str  # "synthetic", "user" or "reconstructed"
    sha256: str
    meta: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def has_response(self) -> bool:
        """Whether any patient's response was evaluated (else: a survival-only cohort)."""
        return bool(self.frame["response"].notna().any())

    @property
    def n_treated(self) -> int:
        return int((self.frame["treatment"] == 1).sum())

    @property
    def n_control(self) -> int:
        return int((self.frame["treatment"] == 0).sum())


def sidecar_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.stem + ".meta.json")


def read_sidecar(path: str | Path) -> dict:
    """The cohort's ``.meta.json`` sidecar as a dict ({} when there is none)."""
    side = sidecar_path(path)
    if not side.is_file():
        return {}
    try:
        meta = json.loads(side.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{side}: not valid JSON ({exc}).") from None
    if not isinstance(meta, dict):
        raise InputError(f"{side}: expected a JSON object with keys like 'data_tier'.")
    tier = meta.get("data_tier", "user")
    if tier not in ("synthetic", "user", "reconstructed"):
        raise InputError(
            f"{side}: key 'data_tier' must be 'synthetic', 'user' or 'reconstructed'; found {tier!r} "
            "(the 'published' tier is the study's summary evidence, never a cohort file)."
        )
    return meta


def _lines(mask: pd.Series) -> list[int]:
    """File line numbers (header = line 1) of the True entries of a row mask."""
    return [int(i) + 2 for i in np.flatnonzero(np.asarray(mask))]


def _numeric(raw: pd.DataFrame, col: str, path: Path, expected: str) -> pd.Series:
    text = raw[col].str.strip()
    values = pd.to_numeric(text, errors="coerce")
    bad = values.isna() & (text != "")
    if bad.any():
        examples = ", ".join(repr(v) for v in text[bad].unique()[:3])
        raise InputError(
            f"{path}: column '{col}', {describe_rows(_lines(bad)).replace('row', 'line')}: expected "
            f"{expected}; found {examples}."
        )
    return values


def _fail(path, col, mask, expected, found=None):
    where = describe_rows(_lines(mask)).replace("row", "line")
    extra = f"; found {found}" if found else ""
    raise InputError(f"{path}: column '{col}', {where}: expected {expected}{extra}.")


def _check_binary(values: pd.Series, path, col, allow_missing=False):
    missing = values.isna()
    if missing.any() and not allow_missing:
        _fail(path, col, missing, "0 or 1 (a value is required)", "an empty cell")
    bad = ~missing & ~values.isin([0, 1])
    if bad.any():
        found = ", ".join(f"{v:g}" for v in values[bad].unique()[:3])
        _fail(path, col, bad, "0 or 1", found)


def _with_suggestions(names, available, phrase: str) -> str:
    """``'os_event' (did you mean 'os_evnt'?)``-style list of missing names with close matches."""
    out = []
    for name in names:
        close = difflib.get_close_matches(name, list(available), n=1, cutoff=0.6)
        out.append(f"'{name}'" + (f" ({phrase} '{close[0]}'?)" if close else ""))
    return ", ".join(out)


def load_cohort(path: str | Path, covariates=None) -> Cohort:
    """Read and validate a cohort CSV; returns a :class:`Cohort` with typed columns.

    ``covariates`` is a list of column names (or a comma-separated string); ``None`` takes the
    sidecar's list, else every column beyond the required ones.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such cohort file; expected a CSV in the cohort schema "
                         f"(columns {', '.join(REQUIRED_COLUMNS)}, plus covariates).")
    data = path.read_bytes()
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot be read as a CSV file ({exc}).") from None
    raw.columns = [str(c).strip() for c in raw.columns]
    if raw.empty:
        raise InputError(f"{path}: has a header but no patient rows; expected one row per patient.")
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing:
        hints = _with_suggestions(missing, raw.columns, "did you mean to rename")
        raise InputError(
            f"{path}: missing required column(s) {hints}; the cohort schema needs "
            f"{', '.join(REQUIRED_COLUMNS)} (found {', '.join(map(repr, raw.columns))})."
        )
    meta = read_sidecar(path)
    if meta.get("data_tier") == "reconstructed":  # pseudo-patients from a KM figure
        from .reconstruct import load_reconstructed

        return load_reconstructed(path, raw, meta, data, covariates)
    if covariates is None:
        covariates = meta.get("covariates")
        if covariates is None:
            covariates = [c for c in raw.columns if c not in REQUIRED_COLUMNS]
    elif isinstance(covariates, str):
        covariates = [c.strip() for c in covariates.split(",") if c.strip()]
    covariates = list(covariates)
    unknown = [c for c in covariates if c not in raw.columns]
    if unknown:
        hints = _with_suggestions(unknown, raw.columns, "did you mean")
        raise InputError(
            f"{path}: covariate column(s) {hints} not found; available columns: "
            f"{', '.join(c for c in raw.columns if c not in REQUIRED_COLUMNS) or '(none)'}."
        )

    # a column full of missing values (an all-empty response column is a cohort without
    # response data: survival analyses only)
    for col in [c for c in REQUIRED_COLUMNS if c != "response"] + covariates:
        if (raw[col].str.strip() == "").all():
            raise InputError(f"{path}: column '{col}' is empty in every row; expected values.")

    ids = raw["id"].str.strip()
    empty_id = ids == ""
    if empty_id.any():
        _fail(path, "id", empty_id, "a patient identifier", "an empty cell")
    dup = ids.duplicated(keep=False)
    if dup.any():
        _fail(path, "id", dup, "unique patient identifiers",
              ", ".join(repr(v) for v in ids[dup].unique()[:3]) + " more than once")

    out = pd.DataFrame({"id": ids})
    out["treatment"] = _numeric(raw, "treatment", path, "1 (HAIC-LEN-P) or 0 (LEN-P)")
    _check_binary(out["treatment"], path, "treatment")
    for col in ("os_time", "pfs_time"):
        v = _numeric(raw, col, path, "a non-negative number of months")
        if v.isna().any():
            _fail(path, col, v.isna(), "a non-negative number of months", "an empty cell")
        bad = ~np.isfinite(v) | (v < 0)
        if bad.any():
            _fail(path, col, bad, "a non-negative number of months",
                  ", ".join(f"{x:g}" for x in v[bad].unique()[:3]))
        out[col] = v.astype(float)
    for col in ("os_event", "pfs_event"):
        out[col] = _numeric(raw, col, path, "1 (event) or 0 (censored)")
        _check_binary(out[col], path, col)
    out["response"] = _numeric(raw, "response", path, "1 (responder), 0, or empty (not evaluable)")
    _check_binary(out["response"], path, "response", allow_missing=True)

    late = out["pfs_time"] > out["os_time"] + TIME_TOLERANCE
    if late.any():
        _fail(path, "pfs_time", late, "pfs_time <= os_time (progression-free survival cannot "
              "outlast overall survival)")
    death_not_pfs = (out["os_event"] == 1) & (out["pfs_event"] == 0) & (
        (out["os_time"] - out["pfs_time"]).abs() <= TIME_TOLERANCE)
    if death_not_pfs.any():
        _fail(path, "pfs_event", death_not_pfs, "1 where the patient died at pfs_time (death "
              "without prior progression is a PFS event)", "0")

    for col in covariates:
        v = _numeric(raw, col, path, "a number (covariates are numeric; code categories as 0/1)")
        if v.isna().any():
            _fail(path, col, v.isna(), "a value (covariates may not be missing; impute or drop "
                  "the patients explicitly before the analysis)", "an empty cell")
        out[col] = v.astype(float)

    for arm, label in ARM_LABELS.items():
        if not (out["treatment"] == arm).any():
            raise InputError(f"{path}: column 'treatment': no patient has treatment = {arm} "
                             f"({label}); expected both arms to be present.")
    for col in ("treatment", "os_event", "pfs_event"):
        out[col] = out[col].astype(int)
    tier = meta.get("data_tier", "user")
    return Cohort(out, covariates, str(path), tier, hashlib.sha256(data).hexdigest(), meta)


def kaplan_meier_median(time, event) -> float:
    """Kaplan-Meier median survival time in months (inf when the curve stays above 0.5; NaN
    when no row has this endpoint, as in a reconstructed cohort of the other endpoint)."""
    from lifelines import KaplanMeierFitter

    time, event = np.asarray(time, float), np.asarray(event, float)
    if np.isnan(time).all():
        return float("nan")
    km = KaplanMeierFitter().fit(time[~np.isnan(time)], event[~np.isnan(time)].astype(int))
    return float(km.median_survival_time_)


def summarise_cohort(cohort: Cohort) -> pd.DataFrame:
    """Per-arm summary: n, events and Kaplan-Meier medians (months), ORR, covariate means.

    Rows are the quantities, columns the arms (``HAIC-LEN-P``, ``LEN-P``).
    """
    f = cohort.frame
    cols = {}
    for arm in (1, 0):
        g = f[f["treatment"] == arm]
        evaluable = g["response"].notna()
        row = {
            "patients": len(g),
            "OS events": int(g["os_event"].sum()),
            "median OS (months, KM)": kaplan_meier_median(g["os_time"], g["os_event"]),
            "PFS events": int(g["pfs_event"].sum()),
            "median PFS (months, KM)": kaplan_meier_median(g["pfs_time"], g["pfs_event"]),
            "ORR (%)": 100 * g.loc[evaluable, "response"].mean() if evaluable.any() else np.nan,
            "response not evaluable": int((~evaluable).sum()),
        }
        for c in cohort.covariates:
            row[f"mean {c}"] = g[c].mean()
        cols[ARM_LABELS[arm]] = row
    return pd.DataFrame(cols)
