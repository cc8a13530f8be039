"""The cohort schema: one validated format for patient-level data (time unit: months).

A cohort file is a CSV with one row per patient and the columns

==============  ==============================================================
``id``          unique patient identifier (text)
``treatment``   1 = HAIC-LEN-P, 0 = LEN-P
``os_time``     overall survival time, months from start of treatment (>= 0)
``os_event``    1 = death observed, 0 = censored
``pfs_time``    progression-free survival time, months (>= 0, never after ``os_time``)
``pfs_event``   1 = progression or death observed, 0 = censored
``response``    objective response (1/0); empty = not evaluable (empty in every row,
                or no ``response`` column at all: a cohort without response data, for
                the survival analyses only)
==============  ==============================================================

A cohort needs at least one survival endpoint: a cohort with OS only (a registry without
progression data) leaves out ``pfs_time`` and ``pfs_event`` (or leaves both empty in every row),
one with PFS only leaves out the OS pair, and :attr:`Cohort.endpoints` says which it has. The
analyses of an endpoint a cohort lacks are not run, and asking for one is an error; the OS
columns are never stood in for PFS.

Missing values are empty cells or the markers of :data:`MISSING_MARKERS` (``NA``, ``NaN``, ``.``,
``NULL``), so a file written by R's ``write.csv`` or by SAS reads as it is.

A file with its own column names is read through a **column mapping** (schema name -> the
file's name, e.g. ``{"treatment": "chemo", "os_time": "dtime"}``; ``[data.columns]`` in a
configuration, ``--column treatment=chemo`` on the command line, ``columns=`` in the Python API),
and times in another unit are converted to months (``time_unit``: ``days`` (x 12/365.25),
``weeks``, ``months``, ``years``). Both are applied once, here, so the rest of the code sees the
schema's names in months; error messages name the file's own columns. A data frame is read the
same way by :func:`cohort_from_frame`.

The arms are named in reports by ``arms`` (treated, control): given by configuration, else the
sidecar's ``"arms"`` (``{"treated": ..., "control": ...}``), else HAIC-LEN-P / LEN-P for the
study's own (synthetic) cohort, else "treated" / "control".

The endpoints keep the schema's keys (``os``, ``pfs``, ``orr`` for the binary ``response``:
columns, ``results.csv``, seeds), but a cohort whose second survival endpoint is relapse-free,
disease-free or event-free survival, or whose response is complete response, names it
(``endpoint_names``: ``{"pfs": ("RFS", "relapse-free survival"), "orr": ("CR", "complete
response")}``; ``[data.endpoint_names]`` in a configuration, the sidecar's ``"endpoint_names"``),
and every label, heading and message of a run uses that name (:func:`name_endpoints`,
:func:`endpoint_label`).

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

import contextvars
import dataclasses
import difflib
import functools
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import InputError, describe_rows
from .labels import ARM_LABELS, STUDY_ARMS  # noqa: F401  (the study's arm names; re-exported)

REQUIRED_COLUMNS = ["id", "treatment", "os_time", "os_event", "pfs_time", "pfs_event", "response"]
# each survival endpoint's (time, event) columns; a cohort has at least one of the pairs
ENDPOINT_COLUMNS = {"os": ("os_time", "os_event"), "pfs": ("pfs_time", "pfs_event")}
# each endpoint's report names (short, long) unless a cohort names its own (name_endpoints)
ENDPOINT_NAMES = {"os": ("OS", "overall survival"), "pfs": ("PFS", "progression-free survival"),
                  "orr": ("ORR", "objective response")}
# the endpoint names in force for labels and messages (set per run by name_endpoints)
_ENDPOINT_NAMING = contextvars.ContextVar("endpoint_naming", default=ENDPOINT_NAMES)
GENERIC_ARMS = ("treated", "control")  # a user's cohort without arm names
# months per unit of a cohort file's times
TIME_UNITS = {"days": 12 / 365.25, "weeks": 7 * 12 / 365.25, "months": 1.0, "years": 12.0}
# how rows are named in messages: ("line", 2) for a file (line 1 = header), ("row", 1) for a frame
_ROW_STYLE = contextvars.ContextVar("row_style", default=("line", 2))
# PFS may exceed OS by rounding only (months)
TIME_TOLERANCE = 1e-6
# cells read as missing values, as an empty cell is: R's NA, pandas' NaN, SAS's ".", NULL
MISSING_MARKERS = frozenset({"", "NA", "N/A", "NaN", "nan", ".", "NULL", "null"})


@dataclass(frozen=True)
class Cohort:
    """A validated cohort: typed data frame plus what it is and where it came from."""

    frame: pd.DataFrame
    covariates: list
    path: str
    data_tier: str  # "synthetic", "user" or "reconstructed"
    sha256: str
    meta: dict = field(default_factory=dict)
    arms: tuple = STUDY_ARMS  # report names of (treatment = 1, treatment = 0)
    # report names (short, long) of the survival endpoints, e.g. {"pfs": ("RFS", "relapse-free survival")}
    endpoint_names: dict = field(default_factory=lambda: dict(ENDPOINT_NAMES))
    columns: dict = field(default_factory=dict)  # schema name -> the file's column, if mapped
    time_unit: str = "months"  # unit of the file's times (converted to months on loading)

    def arm_label(self, arm) -> str:
        """The report name of an arm: ``1``/``"treated"`` or ``0``/``"control"``."""
        return self.arms[0] if arm in (1, "treated") else self.arms[1]

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def has_response(self) -> bool:
        """Whether any patient's response was evaluated (else: a survival-only cohort)."""
        return bool(self.frame["response"].notna().any())

    @property
    def endpoints(self) -> tuple:
        """The survival endpoints with data, in the order ``("os", "pfs")``: both for most
        cohorts, ``("os",)`` for one without progression data (its PFS columns empty)."""
        return tuple(e for e, (tcol, _) in ENDPOINT_COLUMNS.items()
                     if self.frame[tcol].notna().any())

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
    """File line numbers (header = line 1) of the True entries of a row mask (for a data frame:
    1-based row positions)."""
    offset = _ROW_STYLE.get()[1]
    return [int(i) + offset for i in np.flatnonzero(np.asarray(mask))]


def _where(mask) -> str:
    """``lines 3, 7`` (a file) or ``rows 2, 6`` (a data frame) for a row mask."""
    return describe_rows(_lines(mask)).replace("row", _ROW_STYLE.get()[0])


def numeric_column(raw: pd.DataFrame, col: str, path: Path, expected: str) -> pd.Series:
    """Column ``col`` of a file read as text, as numbers (empty cells NaN); any other text is
    an :class:`InputError` naming the file, column, lines and what was ``expected``."""
    text = raw[col].str.strip()
    values = pd.to_numeric(text, errors="coerce")
    bad = values.isna() & (text != "")
    if bad.any():
        examples = ", ".join(repr(v) for v in text[bad].unique()[:3])
        raise InputError(
            f"{path}: column '{col}', {_where(bad)}: expected "
            f"{expected}; found {examples}."
        )
    return values


def fail_rows(path, col, mask, expected, found=None):
    """Raise the :class:`InputError` for the rows ``mask`` of column ``col``."""
    where = _where(mask)
    extra = f"; found {found}" if found else ""
    raise InputError(f"{path}: column '{col}', {where}: expected {expected}{extra}.")


def check_binary(values: pd.Series, path, col, allow_missing=False):
    """Every value 0 or 1 (empty allowed with ``allow_missing``), else an :class:`InputError`."""
    missing = values.isna()
    if missing.any() and not allow_missing:
        fail_rows(path, col, missing, "0 or 1 (a value is required)", "a missing value")
    bad = ~missing & ~values.isin([0, 1])
    if bad.any():
        found = ", ".join(f"{v:g}" for v in values[bad].unique()[:3])
        fail_rows(path, col, bad, "0 or 1", found)


def _with_suggestions(names, available, phrase: str) -> str:
    """``'os_event' (did you mean 'os_evnt'?)``-style list of missing names with close matches."""
    out = []
    for name in names:
        close = difflib.get_close_matches(name, list(available), n=1, cutoff=0.6)
        out.append(f"'{name}'" + (f" ({phrase} '{close[0]}'?)" if close else ""))
    return ", ".join(out)


def _require_columns(path, wanted, available, phrase: str, what, suggest_from=None) -> None:
    """InputError naming the columns of ``wanted`` absent from ``available`` (with close matches
    among ``suggest_from``, default ``available``, under ``phrase``); ``what(hints)`` words the
    message."""
    absent = [c for c in wanted if c not in available]
    if absent:
        pool = available if suggest_from is None else suggest_from
        raise InputError(f"{path}: " + what(_with_suggestions(absent, pool, phrase)))


def load_cohort(path: str | Path, covariates=None, *, columns=None, time_unit: str = "months",
                arms=None, endpoint_names=None) -> Cohort:
    """Read and validate a cohort CSV; returns a :class:`Cohort` with typed columns.

    ``covariates`` is a list of column names (or a comma-separated string); ``None`` takes the
    sidecar's list, else every column beyond the required ones. ``columns`` maps schema names to
    the file's own (``{"treatment": "chemo"}``), ``time_unit`` is the unit of the file's times
    (converted to months), ``arms`` the report names of (treated, control), ``endpoint_names``
    those of the survival endpoints (``{"pfs": ("RFS", "relapse-free survival")}``; else the
    sidecar's, else OS and PFS).
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
    meta = read_sidecar(path)
    cohort = _validate(raw, path, hashlib.sha256(data).hexdigest(), meta, covariates, columns,
                       time_unit, arms)
    return dataclasses.replace(cohort, endpoint_names=_endpoint_names(endpoint_names, meta, path))


def cohort_from_frame(frame: pd.DataFrame, covariates=None, *, columns=None,
                      time_unit: str = "months", arms=None, name: str = "data frame",
                      data_tier: str = "user", endpoint_names=None) -> Cohort:
    """A validated :class:`Cohort` from a pandas DataFrame (the Python API's route in).

    The same checks and options as :func:`load_cohort`; messages name ``name``, the frame's own
    columns and 1-based row positions. Missing values may be NaN/None or empty strings.
    """
    if not isinstance(frame, pd.DataFrame):
        raise InputError(f"{name}: expected a pandas DataFrame with one row per patient; "
                         f"found {type(frame).__name__}.")

    def text(v):
        if v is None or (not isinstance(v, str) and pd.isna(v)):
            return ""
        if isinstance(v, (bool, np.bool_)):
            return str(int(v))
        return str(v)

    raw = pd.DataFrame({str(c): [text(v) for v in frame[c]] for c in frame.columns})
    digest = hashlib.sha256(raw.to_csv(index=False).encode()).hexdigest()
    token = _ROW_STYLE.set(("row", 1))
    try:
        cohort = _validate(raw, name, digest, {"data_tier": data_tier}, covariates, columns,
                           time_unit, arms)
    finally:
        _ROW_STYLE.reset(token)
    return dataclasses.replace(cohort, endpoint_names=_endpoint_names(endpoint_names, {}, name))


def _apply_columns(raw: pd.DataFrame, path, columns: dict) -> pd.DataFrame:
    """Rename the file's own columns to the schema's (``columns``: schema -> file)."""
    if not columns:
        return raw
    unknown = [k for k in columns if k not in REQUIRED_COLUMNS]
    if unknown:
        raise InputError(
            f"column mapping: unknown schema column(s) {', '.join(map(repr, unknown))}; map the "
            f"schema's names ({', '.join(REQUIRED_COLUMNS)}) to {path}'s own, e.g. "
            "treatment=chemo.")
    absent = [(k, v) for k, v in columns.items() if v not in raw.columns]
    if absent:
        hints = "; ".join(f"{k} -> '{v}'" + (f" (did you mean '{c[0]}'?)" if (
            c := difflib.get_close_matches(v, list(raw.columns), n=1, cutoff=0.6)) else "")
            for k, v in absent)
        raise InputError(f"{path}: the column mapping names column(s) the file does not have: "
                         f"{hints}; found {', '.join(map(repr, raw.columns))}.")
    targets = list(columns.values())
    twice = sorted({v for v in targets if targets.count(v) > 1})
    if twice:
        raise InputError(f"column mapping: {path}'s column(s) {', '.join(map(repr, twice))} "
                         "mapped to more than one schema column.")
    clash = [k for k, v in columns.items() if k in raw.columns and k != v
             and k not in columns.values()]
    if clash:
        raise InputError(
            f"{path}: has its own column(s) {', '.join(map(repr, clash))} and the column mapping "
            f"also maps {', '.join(repr(columns[k]) for k in clash)} to them; rename one or map "
            "both explicitly.")
    return raw.rename(columns={v: k for k, v in columns.items()})


def _own_names(message: str, columns: dict) -> str:
    """Name the file's own columns in an error message: ``column 'dtime' (os_time)``."""
    for schema_name, own in (columns or {}).items():
        if schema_name != own:
            message = re.sub(rf"column '{re.escape(schema_name)}'",
                             f"column '{own}' (mapped to {schema_name})", message)
    return message


def _validate(raw, path, digest, meta, covariates, columns, time_unit, arms) -> Cohort:
    columns = dict(columns or {})
    if time_unit not in TIME_UNITS:
        raise InputError(f"time unit: expected one of {', '.join(TIME_UNITS)}; found "
                         f"{time_unit!r}.")
    try:
        return _validate_mapped(raw, path, digest, meta, covariates, columns, time_unit, arms)
    except InputError as exc:
        raise InputError(_own_names(str(exc), columns)) from None


def _validate_mapped(raw, path, digest, meta, covariates, columns, time_unit, arms) -> Cohort:
    raw.columns = [str(c).strip() for c in raw.columns]
    if raw.empty:
        raise InputError(f"{path}: has a header but no patient rows; expected one row per patient.")
    found = list(raw.columns)  # the file's own columns, for the message below
    raw = _apply_columns(raw, path, columns)
    for col in raw.columns:  # missing-value markers (NA, NaN, ".") as empty cells; ids as given
        if col != "id":
            raw[col] = raw[col].where(~raw[col].str.strip().isin(MISSING_MARKERS), "")
    if "response" not in raw.columns:  # a survival-only cohort: no response data
        raw["response"] = ""
    pairs = [cols for cols in ENDPOINT_COLUMNS.values() if any(c in raw.columns for c in cols)]
    if pairs:  # an endpoint whose two columns are both left out: no data for it (empty cells)
        for cols in ENDPOINT_COLUMNS.values():
            if cols not in pairs:
                raw[list(cols)] = ""
    # a schema column the file has is no candidate for renaming into another one
    candidates = [c for c in raw.columns if c not in REQUIRED_COLUMNS]
    _require_columns(path, REQUIRED_COLUMNS, raw.columns, "did you mean to rename", lambda hints: (
        f"missing required column(s) {hints}; the cohort schema needs id, treatment and the "
        "time and event of at least one survival endpoint (os_time and os_event, pfs_time and "
        f"pfs_event), and optionally response (found {', '.join(map(repr, found))}); a file "
        "with its own names can be mapped (--column treatment=chemo, [data.columns]). A cohort "
        "without an endpoint leaves out both of its columns, not one."), suggest_from=candidates)
    if meta.get("data_tier") == "reconstructed":  # pseudo-patients from a KM figure
        from .reconstruct import load_reconstructed

        cohort = load_reconstructed(path, raw, meta, digest, covariates)  # arms: the figures'
        if arms is None:
            return cohort
        return dataclasses.replace(cohort, arms=_arm_names(arms, {}, "reconstructed", path))
    if covariates is None:
        covariates = meta.get("covariates")
        if covariates is None:
            covariates = [c for c in raw.columns if c not in REQUIRED_COLUMNS]
    elif isinstance(covariates, str):
        covariates = [c.strip() for c in covariates.split(",") if c.strip()]
    covariates = list(covariates)
    _require_columns(path, covariates, raw.columns, "did you mean", lambda hints: (
        f"covariate column(s) {hints} not found; available columns: "
        f"{', '.join(c for c in raw.columns if c not in REQUIRED_COLUMNS) or '(none)'}."))

    # a column full of missing values (an all-empty response column is a cohort without
    # response data; an endpoint whose time and event are both empty is one without that endpoint)
    def empty(col):
        return bool((raw[col].str.strip() == "").all())

    endpoints = [e for e, cols in ENDPOINT_COLUMNS.items() if not all(map(empty, cols))]
    if not endpoints:
        raise InputError(f"{path}: no survival data: columns os_time, os_event, pfs_time and "
                         "pfs_event are empty in every row; expected the time and event of at "
                         "least one survival endpoint.")
    for col in ["id", "treatment", *(c for e in endpoints for c in ENDPOINT_COLUMNS[e]), *covariates]:
        if empty(col):
            raise InputError(f"{path}: column '{col}' is empty in every row; expected values.")

    ids = raw["id"].str.strip()
    empty_id = ids == ""
    if empty_id.any():
        fail_rows(path, "id", empty_id, "a patient identifier", "an empty cell")
    dup = ids.duplicated(keep=False)
    if dup.any():
        fail_rows(path, "id", dup, "unique patient identifiers",
              ", ".join(repr(v) for v in ids[dup].unique()[:3]) + " more than once")

    out = pd.DataFrame({"id": ids})
    out["treatment"] = numeric_column(raw, "treatment", path, "1 (treated) or 0 (control)")
    check_binary(out["treatment"], path, "treatment")
    unit = f"a non-negative number of {time_unit}"
    for e, (tcol, ecol) in ENDPOINT_COLUMNS.items():
        if e not in endpoints:  # no data: empty, as in a reconstructed cohort's other endpoint
            out[tcol], out[ecol] = np.nan, pd.Series(pd.NA, index=out.index, dtype="Int64")
            continue
        v = numeric_column(raw, tcol, path, unit)
        if v.isna().any():
            fail_rows(path, tcol, v.isna(), unit, "a missing value")
        bad = ~np.isfinite(v) | (v < 0)
        if bad.any():
            fail_rows(path, tcol, bad, unit, ", ".join(f"{x:g}" for x in v[bad].unique()[:3]))
        out[tcol] = v.astype(float) * TIME_UNITS[time_unit]
        out[ecol] = numeric_column(raw, ecol, path, "1 (event) or 0 (censored)")
        check_binary(out[ecol], path, ecol)
    out["response"] = numeric_column(raw, "response", path, "1 (responder), 0, or empty (not evaluable)")
    check_binary(out["response"], path, "response", allow_missing=True)

    if len(endpoints) == 2:
        late = out["pfs_time"] > out["os_time"] + TIME_TOLERANCE
        if late.any():
            fail_rows(path, "pfs_time", late, "pfs_time <= os_time (progression-free survival "
                      "cannot outlast overall survival)")
        death_not_pfs = (out["os_event"] == 1) & (out["pfs_event"] == 0) & (
            (out["os_time"] - out["pfs_time"]).abs() <= TIME_TOLERANCE)
        if death_not_pfs.any():
            fail_rows(path, "pfs_event", death_not_pfs, "1 where the patient died at pfs_time "
                      "(death without prior progression is a PFS event)", "0")

    values = {col: numeric_column(raw, col, path, "a number (covariates are numeric; code "
                                  "categories as 0/1)") for col in covariates}
    gaps = {col: v.isna() for col, v in values.items() if v.isna().any()}
    if gaps:  # every covariate with missing values at once
        where = "; ".join(f"column '{col}', {_where(m)}" for col, m in gaps.items())
        n = int(np.logical_or.reduce(list(gaps.values())).sum())
        raise InputError(f"{path}: {where}: expected a value (covariates may not be missing; "
                         f"impute them or drop the {n} patient(s) explicitly before the "
                         "analysis, or leave the column out of the covariates); found a missing "
                         "value (an empty cell or NA).")
    for col, v in values.items():
        out[col] = v.astype(float)

    for arm, label in ARM_LABELS.items():
        if not (out["treatment"] == arm).any():
            raise InputError(f"{path}: column 'treatment': no patient has treatment = {arm} "
                             f"({label}); expected both arms to be present.")
    for col in ["treatment", *(ENDPOINT_COLUMNS[e][1] for e in endpoints)]:
        out[col] = out[col].astype(int)
    tier = meta.get("data_tier", "user")
    return Cohort(out, covariates, str(path), tier, digest, meta,
                  arms=_arm_names(arms, meta, tier, path), columns=columns, time_unit=time_unit)


def _arm_names(arms, meta, tier, path) -> tuple:
    """(treated, control) report names: given, else the sidecar's, else by tier."""
    if arms is None and isinstance(meta.get("arms"), dict):
        arms = (meta["arms"].get("treated"), meta["arms"].get("control"))
    if arms is None:
        return STUDY_ARMS if tier == "synthetic" else GENERIC_ARMS
    if isinstance(arms, dict):
        arms = (arms.get("treated"), arms.get("control"))
    arms = tuple(arms)
    if len(arms) != 2 or not all(isinstance(a, str) and a.strip() for a in arms) \
            or arms[0].strip() == arms[1].strip():
        raise InputError(f"{path}: arm names: expected two different names (treated, control), "
                         f"e.g. treated = \"chemo\", control = \"no chemo\"; found {arms!r}.")
    return tuple(a.strip() for a in arms)


def check_endpoint_names(given, where: str) -> dict:
    """``given`` endpoint names (as a sidecar's ``"endpoint_names"``) checked, with the schema's
    for the rest: ``{endpoint: (short, long)}``; an :class:`InputError` naming ``where``."""
    return _endpoint_names(given, {}, where)


def _endpoint_names(given, meta, path) -> dict:
    """{endpoint: (short, long)} report names: the schema's, overridden by the sidecar's
    ``"endpoint_names"``, then by ``given`` (either as ``{"pfs": ("RFS", "relapse-free
    survival")}`` or ``{"pfs": {"short": ..., "long": ...}}``)."""
    names = dict(ENDPOINT_NAMES)
    for source in (meta.get("endpoint_names"), given):
        if source is None:
            continue
        if not isinstance(source, dict):
            raise InputError(f"{path}: endpoint names: expected a table keyed by endpoint, e.g. "
                             f"pfs = {{short = \"RFS\", long = \"relapse-free survival\"}}; "
                             f"found {source!r}.")
        for key, value in source.items():
            if isinstance(value, dict):
                value = (value.get("short"), value.get("long"))
            ok = (key in ENDPOINT_NAMES and isinstance(value, (tuple, list)) and len(value) == 2
                  and all(isinstance(v, str) and v.strip() for v in value)
                  and len(value[0].strip()) <= 12 and len(value[1].strip()) <= 60)
            if not ok:
                raise InputError(
                    f"{path}: endpoint names: expected, for an endpoint key among "
                    f"{', '.join(ENDPOINT_NAMES)}, a short name (1-12 characters) and a long "
                    "one (1-60), e.g. pfs = {short = \"RFS\", long = \"relapse-free survival\"}; "
                    f"found {key!r} = {value!r}.")
            names[key] = (value[0].strip(), value[1].strip())
    shorts = [names[e][0].casefold() for e in ENDPOINT_NAMES]
    if len(set(shorts)) < len(shorts):
        raise InputError(f"{path}: endpoint names: the endpoints need different short names; "
                         f"found {', '.join(f'{e} = {names[e][0]!r}' for e in ENDPOINT_NAMES)}.")
    return names


def naming_scope(fn):
    """Decorator: ``fn`` runs in a copy of the current context, so :func:`name_endpoints` inside
    it names the endpoints until it returns and never beyond. The one-fit command
    (:func:`~bayes_haic.pipeline.run_fit`), the main job and each of its blocks (also in a worker
    process), the sensitivity job and :meth:`bayes_haic.api.FitResult.plot` are decorated and
    name the endpoints as their cohort does as soon as they have it; other labels (the API's
    ``repr``, ``check-cohort``) read ``cohort.endpoint_names`` directly."""

    @functools.wraps(fn)
    def scoped(*args, **kwargs):
        return contextvars.copy_context().run(fn, *args, **kwargs)

    return scoped


def name_endpoints(names: dict) -> None:
    """Let :func:`endpoint_label`, :func:`endpoint_name` and :func:`endpoint_title` use ``names``
    (a cohort's ``endpoint_names``) for the rest of the enclosing :func:`naming_scope` (outside
    any scope: for the rest of the Python session's context; the defaults are OS and PFS)."""
    _ENDPOINT_NAMING.set({**ENDPOINT_NAMES, **(names or {})})


def endpoint_label(endpoint: str) -> str:
    """The short name of a survival endpoint (``"OS"``, ``"PFS"``, or the cohort's, e.g.
    ``"RFS"``) for labels; an unknown key in upper case."""
    names = _ENDPOINT_NAMING.get()
    return names[endpoint][0] if endpoint in names else str(endpoint).upper()


def endpoint_name(endpoint: str) -> str:
    """The long name of a survival endpoint in lower case (``"overall survival"``)."""
    names = _ENDPOINT_NAMING.get()
    return names[endpoint][1] if endpoint in names else str(endpoint)


def endpoint_title(endpoint: str) -> str:
    """``"Overall survival"`` for ``"os"`` (a report heading); an unknown key as given."""
    name = endpoint_name(endpoint)
    return name[:1].upper() + name[1:]


def require_endpoint(cohort: Cohort, endpoint: str) -> None:
    """InputError unless ``cohort`` has data for the survival endpoint ``endpoint``."""
    if endpoint not in ENDPOINT_COLUMNS:
        raise InputError(f"endpoint: expected one of {', '.join(ENDPOINT_COLUMNS)}; found "
                         f"{endpoint!r}.")
    if endpoint in cohort.endpoints:
        return
    label = {e: names[0] for e, names in cohort.endpoint_names.items()}
    if cohort.data_tier == "reconstructed":
        raise InputError(f"{cohort.path}: a reconstructed cohort of "
                         f"{', '.join(label[e] for e in cohort.endpoints)} only (its sidecar's "
                         f"'endpoints'); expected one of them, not {label[endpoint]}. Reconstruct "
                         f"the {label[endpoint]} figure with `bayes-haic reconstruct --endpoint "
                         f"{endpoint}`.")
    tcol, ecol = ENDPOINT_COLUMNS[endpoint]
    have = " and ".join(label[e] for e in cohort.endpoints)
    raise InputError(f"{cohort.path}: no {cohort.endpoint_names[endpoint][1]} ({label[endpoint]}) data: "
                     f"columns {tcol} and {ecol} are missing or empty in every row, so this "
                     f"cohort has {have} only; expected an endpoint it has "
                     f"({_endpoint_keys(cohort)}), or a file with {tcol} and {ecol}.")


def _endpoint_keys(cohort: Cohort) -> str:
    """``"os, pfs = RFS"``: the keys of the survival endpoints ``cohort`` has, as a fit is asked
    for them, each with the cohort's name for it when that is not the key in capitals."""
    return ", ".join(e + (f" = {cohort.endpoint_names[e][0]}"
                          if cohort.endpoint_names[e][0] != e.upper() else "")
                     for e in cohort.endpoints)


def require_response(cohort: Cohort) -> None:
    """InputError unless some patient of ``cohort`` has an evaluated response (0 or 1)."""
    if not cohort.has_response:
        raise InputError(f"{cohort.path}: no response data (the response column is missing or "
                         f"empty in every row), so no response ({cohort.endpoint_names['orr'][0]}) "
                         "model can be fitted; "
                         "expected a survival endpoint it has "
                         f"({_endpoint_keys(cohort)}), or a file with a 0/1 response column.")


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

    Rows are the quantities, columns the arms (``cohort.arms``, e.g. ``HAIC-LEN-P``, ``LEN-P``).
    """
    f = cohort.frame
    cols = {}
    for arm in (1, 0):
        g = f[f["treatment"] == arm]
        evaluable = g["response"].notna()
        row = {"patients": len(g)}
        for e in cohort.endpoints:  # an endpoint without data has no rows here
            tcol, ecol = ENDPOINT_COLUMNS[e]
            label = cohort.endpoint_names[e][0]
            row[f"{label} events"] = int(g[ecol].sum())
            row[f"median {label} (months, KM)"] = kaplan_meier_median(g[tcol], g[ecol])
        row[f"{cohort.endpoint_names['orr'][0]} (%)"] = (100 * g.loc[evaluable, "response"].mean()
                                                         if evaluable.any() else np.nan)
        row["response not evaluable"] = int((~evaluable).sum())
        for c in cohort.covariates:
            row[f"mean {c}"] = g[c].mean()
        cols[cohort.arm_label(arm)] = row
    return pd.DataFrame(cols)
