"""The study's published evidence as data: every published number, one row each.

``data/published/study.csv`` holds one row per number published in the abstract of the study
(Int J Surg 2024, PMID 38549220), plus a few numbers *derived* from them (the PSM cohort size
and responder counts reproduced from the ORR percentages, and the upper bound on SE(log HR)
implied by "P < 0.001"). Columns:

``id``            unique name of the number, e.g. ``hr_os_iptw``
``measure``       what it is: one of :data:`MEASURES` (``median_os``, ``hr_os``, ``orr``, ...)
``endpoint``      ``os``, ``pfs``, ``orr``, ``safety`` or ``cohort``
``analysis_set``  ``all`` (before adjustment), ``PSM``, ``IPTW`` or ``not_stated``
``arm``           ``HAIC-LEN-P``, ``LEN-P`` or ``contrast`` (a between-arm quantity); another
                  study's file names its arms ``treated`` and ``control``
``value``         the number (empty only for a qualitative statement such as the AE result)
``lower, upper``  published 95% confidence interval, empty when none was published
``unit``          ``months``, ``ratio``, ``percent``, ``patients``, ``log_ratio`` or ``none``
``p_value``       the P value as printed, e.g. ``< 0.001``; the between-arm test for arm rows
``provenance``    ``verbatim`` (as published) or ``derived`` (our arithmetic, see ``source``)
``source``        the statement it comes from, or the derivation

``data/published/meta_analyses.csv`` holds the pooled estimates of related meta-analyses used for
evidence-based priors (:func:`load_meta_analyses`).

:func:`load_published` validates the file at the door and reports every problem as an
:class:`~bayes_haic.errors.InputError` naming the file, the data row and the column.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import InputError, describe_rows
from .labels import STUDY_ARMS
from .paths import data_dir

COLUMNS = (
    "id",
    "measure",
    "endpoint",
    "analysis_set",
    "arm",
    "value",
    "lower",
    "upper",
    "unit",
    "p_value",
    "provenance",
    "source",
)

# measure -> the unit it must be given in
MEASURES: dict[str, str] = {
    "n_patients": "patients",
    "responders": "patients",
    "median_os": "months",
    "median_pfs": "months",
    "hr_os": "ratio",
    "hr_pfs": "ratio",
    "orr": "percent",
    "dcr": "percent",
    "ae_grade34": "none",
    "se_log_hr_bound": "log_ratio",
}
ENDPOINTS = ("os", "pfs", "orr", "dcr", "safety", "cohort")
ANALYSIS_SETS = ("all", "PSM", "IPTW", "not_stated")
# this study's arm names; any other study's file uses the generic "treated" / "control"
ARMS = ("HAIC-LEN-P", "LEN-P", "contrast", "treated", "control")
TREATED, CONTROL = STUDY_ARMS
PROVENANCE = ("verbatim", "derived")
# measures that may be qualitative (value left empty)
QUALITATIVE = ("ae_grade34",)

_P_VALUE = re.compile(r"^(?:(<|>|<=|>=|=)\s*)?(0?\.\d+|1(?:\.0+)?|0)$")


def study_path() -> Path:
    """The shipped published-evidence file, ``data/published/study.csv``."""
    return data_dir() / "published" / "study.csv"


def meta_analyses_path() -> Path:
    """The shipped meta-analysis file, ``data/published/meta_analyses.csv``."""
    return data_dir() / "published" / "meta_analyses.csv"


def parse_p_value(text: str) -> tuple[str, float]:
    """Split a printed P value into (relation, number): ``"< 0.001"`` -> ``("<", 0.001)``.

    A bare number is read as ``("=", p)``. Raises ``ValueError`` for anything else.
    """
    m = _P_VALUE.match(text.strip())
    if not m:
        raise ValueError(f"not a P value: {text!r}")
    return (m.group(1) or "="), float(m.group(2))


@dataclass(frozen=True)
class PublishedNumber:
    """One row of the published-evidence file."""

    id: str
    measure: str
    endpoint: str
    analysis_set: str
    arm: str
    value: float  # NaN for qualitative rows
    lower: float  # NaN when no CI was published
    upper: float
    unit: str
    p_value: str  # as printed, "" when none
    provenance: str
    source: str

    @property
    def has_ci(self) -> bool:
        return not (math.isnan(self.lower) or math.isnan(self.upper))

    def p(self) -> tuple[str, float] | None:
        """The P value as (relation, number), or None when none was published."""
        return parse_p_value(self.p_value) if self.p_value else None


@dataclass(frozen=True)
class PublishedEvidence:
    """The validated published numbers of one study, with look-ups by measure and set."""

    numbers: tuple[PublishedNumber, ...]
    source: str  # file the numbers were read from

    def find(self, measure: str, *, analysis_set=None, arm=None, endpoint=None):
        """All rows matching ``measure`` and any of the given filters."""
        return [
            n
            for n in self.numbers
            if n.measure == measure
            and (analysis_set is None or n.analysis_set == analysis_set)
            and (arm is None or n.arm == arm)
            and (endpoint is None or n.endpoint == endpoint)
        ]

    def get(self, measure: str, *, analysis_set=None, arm=None, endpoint=None) -> PublishedNumber:
        """The single row matching the filters; InputError if none or several match."""
        hits = self.find(measure, analysis_set=analysis_set, arm=arm, endpoint=endpoint)
        wanted = ", ".join(
            f"{k}={v!r}"
            for k, v in (
                ("measure", measure),
                ("analysis_set", analysis_set),
                ("arm", arm),
                ("endpoint", endpoint),
            )
            if v is not None
        )
        if not hits:
            raise InputError(f"{self.source}: no published number with {wanted}.")
        if len(hits) > 1:
            raise InputError(
                f"{self.source}: {len(hits)} published numbers match {wanted} "
                f"({', '.join(h.id for h in hits)}); give analysis_set and/or arm."
            )
        return hits[0]

    def value(self, measure: str, *, analysis_set=None, arm=None, endpoint=None) -> float:
        """The number itself, e.g. ``ev.value("hr_os", analysis_set="IPTW")`` -> 0.384."""
        return self.get(measure, analysis_set=analysis_set, arm=arm, endpoint=endpoint).value

    def by_id(self, id_: str) -> PublishedNumber:
        for n in self.numbers:
            if n.id == id_:
                return n
        raise InputError(f"{self.source}: no published number with id {id_!r}.")

    def frame(self) -> pd.DataFrame:
        """All rows as a DataFrame (for reports)."""
        return pd.DataFrame([n.__dict__ for n in self.numbers], columns=list(COLUMNS))


def _read_text_table(path: Path, columns) -> pd.DataFrame:
    if not path.is_file():
        raise InputError(f"{path}: file not found.")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable CSV file ({exc}).") from None
    expected = ", ".join(columns)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(
            f"{path}: missing column(s) {', '.join(missing)}; expected columns {expected}."
        )
    unknown = [c for c in frame.columns if c not in columns]
    if unknown:
        raise InputError(
            f"{path}: unknown column(s) {', '.join(unknown)}; expected columns {expected}."
        )
    return frame.apply(lambda s: s.str.strip())


def _numbers(frame, column, path, *, allow_empty: bool) -> np.ndarray:
    """Column as floats; InputError naming the rows with text that is not a finite number."""
    out = np.full(len(frame), np.nan)
    bad = []
    for i, text in enumerate(frame[column]):
        if text == "":
            if not allow_empty:
                bad.append(i)
            continue
        try:
            x = float(text)
        except ValueError:
            bad.append(i)
            continue
        if not math.isfinite(x):
            bad.append(i)
        out[i] = x
    if bad:
        found = ", ".join(repr(frame[column].iloc[i]) for i in bad[:8])
        raise InputError(
            f"{path}: column '{column}', {describe_rows(np.add(bad, 1))}: expected a finite "
            f"number{' or empty' if allow_empty else ''}, found {found}."
        )
    return out


def _check_allowed(frame, column, allowed, path) -> None:
    bad = [i for i, v in enumerate(frame[column]) if v not in allowed]
    if bad:
        found = ", ".join(repr(frame[column].iloc[i]) for i in bad[:8])
        raise InputError(
            f"{path}: column '{column}', {describe_rows(np.add(bad, 1))}: expected one of "
            f"{', '.join(allowed)}, found {found}."
        )


def _fail_rows(path, column, rows, what) -> None:
    if rows:
        raise InputError(f"{path}: column '{column}', {describe_rows(np.add(rows, 1))}: {what}.")


def load_published(path: str | Path | None = None) -> PublishedEvidence:
    """Read and validate the published-evidence file (default ``data/published/study.csv``).

    Checks: the columns are exactly :data:`COLUMNS`; ids are unique and non-empty; measure,
    endpoint, analysis set, arm, unit and provenance take their allowed values and each measure
    has its unit; values are finite numbers (empty only for qualitative measures), counts are
    whole, percentages lie in [0, 100], ratios are positive, a CI brackets its value; P values
    read like ``< 0.001``, ``0.001`` or ``> 0.05``; every row names its source. Row numbers in
    messages count data rows from 1.
    """
    path = Path(path) if path is not None else study_path()
    frame = _read_text_table(path, COLUMNS)
    if frame.empty:
        raise InputError(f"{path}: no rows; expected one row per published number.")

    empty_id = [i for i, v in enumerate(frame["id"]) if v == ""]
    _fail_rows(path, "id", empty_id, "empty id; every number needs a unique id")
    dup = frame["id"].duplicated(keep=False)
    if dup.any():
        rows = list(np.flatnonzero(dup.to_numpy()))
        _fail_rows(path, "id", rows, f"duplicate ids {sorted(set(frame['id'][dup]))}")
    _check_allowed(frame, "measure", tuple(MEASURES), path)
    _check_allowed(frame, "endpoint", ENDPOINTS, path)
    _check_allowed(frame, "analysis_set", ANALYSIS_SETS, path)
    _check_allowed(frame, "arm", ARMS, path)
    _check_allowed(frame, "unit", tuple(sorted(set(MEASURES.values()))), path)
    _check_allowed(frame, "provenance", PROVENANCE, path)
    wrong_unit = [
        i for i, (m, u) in enumerate(zip(frame["measure"], frame["unit"])) if MEASURES[m] != u
    ]
    if wrong_unit:
        i = wrong_unit[0]
        m = frame["measure"].iloc[i]
        _fail_rows(
            path,
            "unit",
            wrong_unit,
            f"unit does not fit the measure (e.g. {m} is in {MEASURES[m]}, "
            f"found {frame['unit'].iloc[i]!r})",
        )

    value = _numbers(frame, "value", path, allow_empty=True)
    lower = _numbers(frame, "lower", path, allow_empty=True)
    upper = _numbers(frame, "upper", path, allow_empty=True)
    measure = frame["measure"].to_numpy()
    unit = frame["unit"].to_numpy()
    rows = range(len(frame))
    _fail_rows(
        path,
        "value",
        [i for i in rows if np.isnan(value[i]) and measure[i] not in QUALITATIVE],
        f"empty value; only qualitative measures ({', '.join(QUALITATIVE)}) may leave it empty",
    )
    given = [i for i in rows if not np.isnan(value[i])]
    _fail_rows(
        path,
        "value",
        [i for i in given if unit[i] == "patients" and (value[i] < 0 or value[i] % 1)],
        "expected a whole number of patients",
    )
    _fail_rows(
        path,
        "value",
        [i for i in given if unit[i] == "percent" and not 0 <= value[i] <= 100],
        "expected a percentage between 0 and 100",
    )
    _fail_rows(
        path,
        "value",
        [i for i in given if unit[i] in ("ratio", "months", "log_ratio") and value[i] <= 0],
        "expected a positive number",
    )
    _fail_rows(
        path,
        "lower",
        [i for i in rows if np.isnan(lower[i]) != np.isnan(upper[i])],
        "give both lower and upper of a confidence interval, or neither",
    )
    with_ci = [i for i in rows if not np.isnan(lower[i]) and not np.isnan(upper[i])]
    _fail_rows(
        path,
        "lower",
        [i for i in with_ci if not lower[i] <= value[i] <= upper[i]],
        "the interval (lower, upper) must contain value",
    )
    _fail_rows(
        path,
        "lower",
        [i for i in with_ci if unit[i] == "ratio" and lower[i] <= 0],
        "a ratio's interval must be positive",
    )

    bad_p = []
    for i, text in enumerate(frame["p_value"]):
        if text:
            try:
                parse_p_value(text)
            except ValueError:
                bad_p.append(i)
    if bad_p:
        found = ", ".join(repr(frame["p_value"].iloc[i]) for i in bad_p[:8])
        raise InputError(
            f"{path}: column 'p_value', {describe_rows(np.add(bad_p, 1))}: expected a P value as "
            f"printed, e.g. '< 0.001', '0.001' or '> 0.05' (or empty), found {found}."
        )
    _fail_rows(
        path,
        "source",
        [i for i, text in enumerate(frame["source"]) if not text],
        "empty source; say where the number was published or how it was derived",
    )

    numbers = tuple(
        PublishedNumber(
            id=r.id,
            measure=r.measure,
            endpoint=r.endpoint,
            analysis_set=r.analysis_set,
            arm=r.arm,
            value=float(value[i]),
            lower=float(lower[i]),
            upper=float(upper[i]),
            unit=r.unit,
            p_value=r.p_value,
            provenance=r.provenance,
            source=r.source,
        )
        for i, r in enumerate(frame.itertuples(index=False))
    )
    return PublishedEvidence(numbers, str(path))


META_COLUMNS = (
    "id",
    "meta_analysis",
    "measure",
    "endpoint",
    "value",
    "lower",
    "upper",
    "unit",
    "n_studies",
    "includes_study",
    "source",
)


def load_meta_analyses(path: str | Path | None = None) -> pd.DataFrame:
    """Pooled estimates of related meta-analyses (default ``data/published/meta_analyses.csv``).

    One row per pooled ratio (``value``, 95% CI ``lower``-``upper``, may be empty), with
    ``includes_study`` (``yes``, ``likely``, ``no``, ``unknown``) recording whether the pooled
    estimate probably contains this study's data -- a prior built from it must then be
    down-weighted (see :mod:`bayes_haic.reanalysis`). Returns a DataFrame indexed by ``id``.
    """
    path = Path(path) if path is not None else meta_analyses_path()
    frame = _read_text_table(path, META_COLUMNS)
    dup = frame["id"].duplicated(keep=False) | (frame["id"] == "")
    _fail_rows(
        path, "id", list(np.flatnonzero(dup.to_numpy())), "ids must be unique and non-empty"
    )
    _check_allowed(frame, "includes_study", ("yes", "likely", "no", "unknown"), path)
    _check_allowed(frame, "unit", ("ratio",), path)
    out = frame.copy()
    for col in ("value", "lower", "upper"):
        out[col] = _numbers(frame, col, path, allow_empty=col != "value")
    out["n_studies"] = _numbers(frame, "n_studies", path, allow_empty=True)
    v, lo, hi = (out[c].to_numpy() for c in ("value", "lower", "upper"))
    bad = [
        i
        for i in range(len(out))
        if v[i] <= 0
        or np.isnan(lo[i]) != np.isnan(hi[i])
        or (not np.isnan(lo[i]) and not 0 < lo[i] <= v[i] <= hi[i])
    ]
    _fail_rows(path, "value", bad, "expected a positive ratio inside its positive interval")
    return out.set_index("id")
