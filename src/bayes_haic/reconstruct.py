"""Pseudo-patient data from a published Kaplan-Meier figure (data tier ``reconstructed``).

The algorithm of Guyot, Ades, Ouwens & Welton (2012), "Enhanced secondary analysis of survival
data: reconstructing the data from published Kaplan-Meier survival curves", BMC Med Res Methodol
12:9, written from the paper's description. Inputs, per arm:

* the digitised curve: points ``(T_k, S_k)``, ``T`` in months and ``S`` a proportion, cleaned
  so that ``T_0 = 0, S_0 = 1``, times strictly increasing and ``S`` non-increasing
  (:func:`clean_curve`);
* the numbers-at-risk table: ``n_i`` patients at risk at times ``t_i`` (months), ``t_0 = 0``;
  only ``n_0`` is required (the paper's "no numbers at risk" case);
* optionally the arm's total number of events ``D``.

For each at-risk interval ``[t_i, t_{i+1})`` (the digitised points ``lower_i .. upper_i`` in it):

1. a first guess of the number censored, ``c_i = round(n_i S(t_{i+1}) / S(t_i) - n_{i+1})``;
2. the ``c_i`` censoring times are spread evenly over the interval,
   ``t_i + j (t_{i+1} - t_i) / (c_i + 1)``, j = 1..c_i;
3. at each digitised point k the events are ``d_k = round(n_k (1 - S_k / KM_last))`` (the drop
   of the digitised curve relative to the reconstructed Kaplan-Meier estimate at the last point
   with an event), the reconstructed KM becomes ``KM_last (1 - d_k / n_k)``, and the number at
   risk at the next point is ``n_k - d_k - (censorings in [T_k, T_{k+1}))``;
4. if the number at risk reached at ``t_{i+1}`` differs from ``n_{i+1}``, ``c_i`` is corrected by
   the difference and steps 2-4 are repeated until it is met (or no censoring is left; then the
   reconstruction continues from the smaller number reached, and the accuracy report shows it).

The last interval (after the last at-risk time) has no next count: its censoring is assumed to
occur at the same rate per month as before, ``c = round(sum of earlier c * (T_end - t_last) /
(t_last - t_0))`` with ``t_last`` the last at-risk time and ``T_end`` the curve's last time (0
when the table has one row: the paper's case of no numbers at risk; the authors' published R
code divides by the time of the last digitised point before ``t_last`` instead, which differs
by at most one point spacing), and when ``D``
is given ``c`` is corrected until the arm's total events equal ``D`` (if the earlier intervals
already reach ``D``, the last interval has no events). Patients still at risk at the curve's end
are censored there.

Output: one row per pseudo-patient (event at the digitised time of its drop, censoring at its
spread time). These are **not** the study's patients: the tier ``reconstructed`` says so
everywhere. All times are in months (input in other units is converted by :data:`TIME_UNITS`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import InputError
from .labels import MATCHED_SET
from .schema import ENDPOINT_COLUMNS, require_endpoint

# months per unit (a year is 365.25 days, a month a twelfth of it)
TIME_UNITS = {"months": 1.0, "days": 12.0 / 365.25, "weeks": 7 * 12.0 / 365.25, "years": 12.0}
# survival read as percent when the largest value exceeds this (a proportion is at most 1;
# digitising noise can push a proportion slightly above 1, never to 1.5)
PERCENT_THRESHOLD = 1.5
# digitising noise tolerated above 1 (and below 0) on the proportion scale, clipped and reported
SURVIVAL_TOLERANCE = 0.02
MAX_ITERATIONS = 1000

METHOD = ("Guyot et al. 2012 (BMC Med Res Methodol 12:9) reconstruction of individual data from "
          "a digitised Kaplan-Meier curve and its numbers at risk")
LIMITATIONS = (
    "Reconstructed data (Guyot et al. 2012) reproduce the published Kaplan-Meier curves and "
    "numbers at risk, not the study's patients: event times are placed at the digitised drops "
    "and censoring times spread evenly within each at-risk interval, so the results carry the "
    "digitising error (see the accuracy report written beside the cohort file) and nothing "
    "beyond arm, time and event is known (no covariates, no response, no link between a "
    "patient's OS and PFS).")
RECONSTRUCTED_BANNER = (
    "RECONSTRUCTED DATA: the patient-level results here use pseudo-patients rebuilt from a "
    "published Kaplan-Meier figure (Guyot et al. 2012), not the study's patient data. They "
    "reproduce the published curves and numbers at risk, not the individual patients.")


# ------------------------------------------------------------------------------ reading


@dataclass
class Curve:
    """One arm's digitised curve after cleaning: ``time`` (months, strictly increasing, starts
    at 0) and ``survival`` (proportion, non-increasing, starts at 1); ``changes`` lists in words
    what cleaning changed; ``n_raw`` is the number of digitised points read."""

    arm: str
    time: np.ndarray
    survival: np.ndarray
    changes: list = field(default_factory=list)
    n_raw: int = 0


@dataclass
class AtRisk:
    """One arm's numbers-at-risk table: ``time`` (months, starts at 0) and ``n_risk``."""

    arm: str
    time: np.ndarray
    n_risk: np.ndarray
    lines: np.ndarray  # file line of each row (header = line 1)


def _read_table(path, columns: list[str], what: str) -> pd.DataFrame:
    """A small CSV with exactly ``columns`` (text); adds ``_line`` (header = line 1)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file; expected {what} as a CSV with header "
                         f"{','.join(columns)}.")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True,
                          skip_blank_lines=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot be read as a CSV file ({exc}); expected {what} with "
                         f"header {','.join(columns)}.") from None
    found = [str(c).strip().lower() for c in raw.columns]
    if found != columns:
        raise InputError(f"{path}: line 1: expected the header {','.join(columns)} ({what}); "
                         f"found {','.join(str(c) for c in raw.columns)!r}.")
    raw.columns = columns
    raw["_line"] = np.arange(len(raw)) + 2
    blank = (raw[columns].apply(lambda s: s.str.strip()) == "").all(axis=1)
    raw = raw[~blank].reset_index(drop=True)
    if raw.empty:
        raise InputError(f"{path}: has a header but no rows; expected {what}.")
    return raw


def _number(raw, col, path, expected, integer=False) -> np.ndarray:
    text = raw[col].str.strip()
    values = pd.to_numeric(text, errors="coerce")
    bad = values.isna() | ~np.isfinite(values.fillna(0))
    if integer:
        bad |= values.notna() & (values != values.round())
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(f"{path}: line {raw['_line'].iloc[i]}, column '{col}': expected "
                         f"{expected}; found {text.iloc[i]!r}.")
    return values.to_numpy(float)


def _bad_row(path, line, col, expected, found) -> InputError:
    return InputError(f"{path}: line {line}, column '{col}': expected {expected}; found {found}.")


def read_points(path, time_unit: str = "months") -> tuple[dict[str, Curve], str]:
    """Read digitised points (CSV ``arm,time,survival``) and clean each arm's curve.

    ``time`` is in ``time_unit`` (converted to months). ``survival`` is a proportion or a
    percentage for the whole file: percent when the largest value exceeds
    :data:`PERCENT_THRESHOLD` (1.5), then divided by 100. Returns ``({arm: Curve}, scale)`` with
    scale ``"percent"`` or ``"proportion"``. Errors (:class:`InputError`) name the line.
    """
    path = Path(path)
    raw = _read_table(path, ["arm", "time", "survival"], "digitised Kaplan-Meier points")
    arms = raw["arm"].str.strip()
    if (arms == "").any():
        line = raw["_line"][arms == ""].iloc[0]
        raise _bad_row(path, line, "arm", "the arm's name", "an empty cell")
    t = _number(raw, "time", path, f"a time in {time_unit}") * TIME_UNITS[time_unit]
    s = _number(raw, "survival", path, "a survival proportion (0-1) or percentage (0-100)")
    scale = "percent" if s.max() > PERCENT_THRESHOLD else "proportion"
    if scale == "percent":
        s = s / 100.0
    for mask, expected in ((t < 0, "a time >= 0 (time is counted from the start of treatment)"),
                           (s > 1 + SURVIVAL_TOLERANCE,
                            f"survival at most 1 (read as a {scale}"
                            + (": the largest value exceeds 1.5, so the file is in percent and "
                               "was divided by 100)" if scale == "percent" else
                               "; values up to 1.5 are read as proportions)")),
                           (s < -SURVIVAL_TOLERANCE, "survival at least 0")):
        if mask.any():
            i = int(np.flatnonzero(mask)[0])
            col = "time" if expected.startswith("a time") else "survival"
            raise _bad_row(path, raw["_line"].iloc[i], col, expected,
                           repr(raw[col].iloc[i].strip()))
    curves = {}
    for arm in dict.fromkeys(arms):  # arms in file order
        m = (arms == arm).to_numpy()
        curves[arm] = clean_curve(t[m], s[m], arm)
    return curves, scale


def clean_curve(time, survival, arm: str = "") -> Curve:
    """Clean one arm's digitised points (months, proportions) into a Kaplan-Meier curve.

    In order: values within :data:`SURVIVAL_TOLERANCE` outside [0, 1] are clipped; points are
    sorted by time; upward jumps are removed (each point takes the running minimum of the
    survival before it: a KM curve never rises); points at the same time are merged into one
    with the lowest survival (the curve's value after the drop at that time, as a KM curve is
    right-continuous); survival at time 0 is set to 1 and a point (0, 1) is added if missing.
    Returns a :class:`Curve` whose ``changes`` say what was changed and how often.
    """
    t = np.asarray(time, float)
    s = np.asarray(survival, float)
    changes = []
    clipped = (s > 1) | (s < 0)
    if clipped.any():
        changes.append(f"{int(clipped.sum())} survival value(s) within {SURVIVAL_TOLERANCE} "
                       "outside [0, 1] clipped to the range")
        s = np.clip(s, 0.0, 1.0)
    order = np.argsort(t, kind="stable")
    if (order != np.arange(t.size)).any():
        changes.append(f"{int((order != np.arange(t.size)).sum())} point(s) out of time order "
                       "sorted")
    t, s = t[order], s[order]
    run_min = np.minimum.accumulate(s)
    up = s > run_min
    if up.any():
        changes.append(f"{int(up.sum())} upward jump(s) removed (largest "
                       f"{float((s - run_min).max()):.3g}; survival set to the lower value "
                       "before it)")
        s = run_min
    uniq, first = np.unique(t, return_index=True)
    if uniq.size < t.size:
        changes.append(f"{t.size - uniq.size} point(s) at a repeated time merged (the lowest "
                       "survival at that time kept)")
        s = np.minimum.reduceat(s, first)
        t = uniq
    if t[0] > 0:
        t, s = np.r_[0.0, t], np.r_[1.0, s]
        changes.append("point (0, 1) added: a Kaplan-Meier curve starts at survival 1 at time 0")
    elif s[0] < 1:
        changes.append(f"survival at time 0 was {s[0]:.3g}; set to 1 (a Kaplan-Meier curve "
                       "starts at 1)")
        s = s.copy()
        s[0] = 1.0
    return Curve(arm, t, s, changes, int(np.asarray(time).size))


def read_at_risk(path, time_unit: str = "months") -> dict[str, AtRisk]:
    """Read a numbers-at-risk table (CSV ``arm,time,n_risk``; time in ``time_unit``, converted
    to months). Per arm the times must be distinct, the first 0 (the arm's size), and the
    counts non-negative whole numbers that never increase; rows are sorted by time."""
    path = Path(path)
    raw = _read_table(path, ["arm", "time", "n_risk"], "the numbers-at-risk table")
    arms = raw["arm"].str.strip()
    if (arms == "").any():
        raise _bad_row(path, raw["_line"][arms == ""].iloc[0], "arm", "the arm's name",
                       "an empty cell")
    t = _number(raw, "time", path, f"a time in {time_unit}") * TIME_UNITS[time_unit]
    n = _number(raw, "n_risk", path, "a whole number of patients at risk", integer=True)
    lines = raw["_line"].to_numpy()
    for mask, col, expected in ((t < 0, "time", "a time >= 0"),
                                (n < 0, "n_risk", "a number of patients >= 0")):
        if mask.any():
            i = int(np.flatnonzero(mask)[0])
            raise _bad_row(path, lines[i], col, expected, repr(raw[col].iloc[i].strip()))
    tables = {}
    for arm in dict.fromkeys(arms):
        m = (arms == arm).to_numpy()
        order = np.argsort(t[m], kind="stable")
        ta, na, la = t[m][order], n[m][order], lines[m][order]
        dup = np.flatnonzero(np.diff(ta) == 0)
        if dup.size:
            raise _bad_row(path, la[dup[0] + 1], "time", f"one row per time for arm {arm!r}",
                           f"time {raw['time'].iloc[np.flatnonzero(m)[order][dup[0] + 1]].strip()} "
                           "twice")
        if ta[0] != 0:
            raise _bad_row(path, la[0], "time", f"a first row at time 0 for arm {arm!r} (the "
                           "number of patients at the start)", f"{ta[0]:g} months as the earliest")
        rise = np.flatnonzero(np.diff(na) > 0)
        if rise.size:
            k = rise[0] + 1
            raise _bad_row(path, la[k], "n_risk", f"numbers at risk that never increase over "
                           f"time (arm {arm!r}: {na[k - 1]:g} at {ta[k - 1]:g} months)",
                           f"{na[k]:g} at {ta[k]:g} months")
        if na[0] < 1:
            raise _bad_row(path, la[0], "n_risk", f"at least one patient at time 0 for arm "
                           f"{arm!r}", "0")
        tables[arm] = AtRisk(arm, ta, na.astype(int), la)
    return tables


# ------------------------------------------------------------------------------ the algorithm


@dataclass
class ArmReconstruction:
    """The reconstruction of one arm (all times in months).

    ``events[k]`` / ``censored[k]``: events at the digitised point ``time[k]`` and censorings in
    ``[time[k], time[k+1])``; ``km``: the reconstructed Kaplan-Meier estimate at each point;
    ``n_risk_reconstructed``: numbers at risk reached at the at-risk times; ``iterations``:
    passes per interval; ``ipd``: one row per pseudo-patient (``time``, ``event``)."""

    arm: str
    time: np.ndarray
    survival: np.ndarray
    events: np.ndarray
    censored: np.ndarray
    km: np.ndarray
    risk_time: np.ndarray
    n_risk_published: np.ndarray
    n_risk_reconstructed: np.ndarray
    censored_per_interval: np.ndarray
    iterations: np.ndarray
    total_events: int | None
    ipd: pd.DataFrame

    def km_curve(self):
        """The Kaplan-Meier curve of the reconstructed pseudo-patients
        (:class:`bayes_haic.checks.KMCurve`, months)."""
        from .checks import km_by_arm

        return km_by_arm(self.ipd["time"].to_numpy(), self.ipd["event"].to_numpy(), np.ones(len(self.ipd)))["treated"]


@dataclass
class _Pass:
    events: np.ndarray
    censored: np.ndarray
    censor_times: list
    km: np.ndarray
    km_last: float
    n_end: int


def _interval_pass(T, S, lo, hi, t_end, n_start, n_censor, km_last) -> _Pass:
    """One pass over the digitised points ``lo..hi`` of an interval ending at ``t_end``:
    ``n_censor`` censoring times spread evenly over ``(T[lo], t_end)``, then events per point
    from the drops (steps 2-3 of the module docstring). ``km_last``: the reconstructed KM at
    the last point with an event before ``lo``. Censorings beyond the patients left are
    dropped, so the number at risk never goes below 0."""
    k = np.arange(lo, hi + 1)
    cen = T[lo] + np.arange(1, n_censor + 1) * (t_end - T[lo]) / (n_censor + 1)
    where = np.clip(np.searchsorted(T[k], cen, side="right") - 1, 0, k.size - 1)
    c_planned = np.bincount(where, minlength=k.size)
    d = np.zeros(k.size, int)
    c = np.zeros(k.size, int)
    km = np.empty(k.size)
    times = []
    n = int(n_start)
    for j, kk in enumerate(k):
        dk = int(np.rint(n * (1.0 - S[kk] / km_last))) if km_last > 0 and n > 0 else 0
        dk = min(max(dk, 0), n)
        if dk > 0:
            km_last = km_last * (1.0 - dk / n)
        km[j] = km_last
        d[j] = dk
        c[j] = min(int(c_planned[j]), n - dk)
        times.extend(cen[where == j][: c[j]])
        n = n - dk - c[j]
    return _Pass(d, c, times, km, km_last, n)


def _solve(run, first_guess, target_reached, upper):
    """Iterate the censoring count ``c`` (from ``first_guess``, clamped to ``[0, upper]``):
    ``run(c)`` gives a pass and ``target_reached(pass)`` the signed excess (0 = target met).
    ``c`` is corrected by the excess until it is 0, or the excess is negative with ``c = 0``
    (nothing left to remove), or a count repeats (the pass closest to the target is kept)."""
    c = int(min(max(first_guess, 0), upper))
    seen = {}
    for it in range(1, MAX_ITERATIONS + 1):
        p = run(c)
        excess = target_reached(p)
        seen[c] = (abs(excess), p)
        if excess == 0 or (excess < 0 and c == 0) or (excess > 0 and c == upper):
            return c, p, it
        nxt = int(min(max(c + excess, 0), upper))
        if nxt in seen:
            c = min(seen, key=lambda x: (seen[x][0], x))
            return c, seen[c][1], it
        c = nxt
    return c, p, MAX_ITERATIONS  # pragma: no cover (the repeat check ends every cycle)


def reconstruct_arm(curve: Curve, at_risk: AtRisk, total_events: int | None = None,
                    path: str = "") -> ArmReconstruction:
    """Reconstruct one arm's pseudo-patients from its cleaned curve and at-risk table (Guyot et
    al. 2012; see the module docstring). At-risk times that are not digitised points are added
    as points on the curve's step (the value of the last point before them). An at-risk time
    after the curve's last point is an error unless its count is 0 (then it is dropped)."""
    T, S = curve.time.copy(), curve.survival.copy()
    rt, nr = at_risk.time.copy(), at_risk.n_risk.copy()
    beyond = rt > T[-1]
    if beyond.any():
        bad = beyond & (nr > 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(
                f"{path}: line {at_risk.lines[i]}, column 'time': expected at-risk times within "
                f"the digitised curve of arm {curve.arm!r} (which ends at {T[-1]:g} months); "
                f"found {rt[i]:g} months with {nr[i]} patients at risk. Digitise the curve up "
                "to that time or drop the row.")
        curve.changes.append(f"{int(beyond.sum())} at-risk time(s) after the curve's end with 0 "
                             "at risk ignored")
        rt, nr = rt[~beyond], nr[~beyond]
    missing = ~np.isin(rt, T)
    if missing.any():
        idx = np.searchsorted(T, rt[missing], side="right") - 1
        T = np.r_[T, rt[missing]]
        S = np.r_[S, S[idx]]
        order = np.argsort(T, kind="stable")
        T, S = T[order], S[order]
        curve.changes.append(f"{int(missing.sum())} at-risk time(s) added as points on the "
                             "curve's step")
    lower = np.searchsorted(T, rt)  # index of the point at each at-risk time
    m = rt.size
    N = T.size
    events = np.zeros(N, int)
    cens = np.zeros(N, int)
    km = np.ones(N)
    n_rec = nr.astype(int).copy()
    cpi = np.zeros(m, int)
    iters = np.zeros(m, int)
    cen_times = []
    km_last = 1.0
    n_start = int(nr[0])
    for i in range(m - 1):
        lo, hi = lower[i], lower[i + 1] - 1
        target = int(nr[i + 1])
        guess = int(np.rint(n_start * S[lower[i + 1]] / S[lo] - target)) if S[lo] > 0 else 0
        c, p, it = _solve(
            lambda c, lo=lo, hi=hi, n0=n_start, kl=km_last: _interval_pass(
                T, S, lo, hi, T[lower[i + 1]], n0, c, kl),
            guess, lambda p, target=target: p.n_end - target, n_start)
        events[lo:hi + 1], cens[lo:hi + 1], km[lo:hi + 1] = p.events, p.censored, p.km
        cen_times.extend(p.censor_times)
        cpi[i], iters[i] = int(p.censored.sum()), it
        km_last = p.km_last
        n_start = p.n_end  # = the published count, or fewer when it cannot be met
        n_rec[i + 1] = p.n_end
    # the last interval: censoring at the earlier rate per month, corrected to the total events
    lo, hi = lower[m - 1], N - 1
    span = T[lower[m - 1]] - T[0] if m > 1 else 0.0  # the earlier intervals' months
    guess = (int(min(np.rint(cpi[:m - 1].sum() * (T[hi] - T[lo]) / span), n_start))
             if m > 1 and span > 0 else 0)
    before = int(events[:lo].sum())

    def run(c, S_=S):
        return _interval_pass(T, S_, lo, hi, T[hi], n_start, c, km_last)

    if total_events is not None and before >= total_events:
        flat = S.copy()
        flat[lo:] = km_last  # no drops: no events in the last interval
        p, it = run(guess, flat), 1
    elif total_events is not None:
        _, p, it = _solve(run, guess, lambda p: int(p.events.sum()) + before - total_events,
                          n_start)
    else:
        p, it = run(guess), 1
    events[lo:], cens[lo:], km[lo:] = p.events, p.censored, p.km
    cen_times.extend(p.censor_times)
    cpi[m - 1], iters[m - 1] = int(p.censored.sum()), it
    ev_t = np.repeat(T, events)
    ipd = pd.DataFrame({
        "time": np.r_[ev_t, np.asarray(cen_times, float), np.full(p.n_end, T[-1])],
        "event": np.r_[np.ones(ev_t.size, int), np.zeros(len(cen_times) + p.n_end, int)],
    }).sort_values(["time", "event"], ascending=[True, False], kind="stable")
    assert len(ipd) == int(nr[0]), "every patient of the arm is accounted for"
    return ArmReconstruction(curve.arm, T, S, events, cens, km, rt, nr.astype(int), n_rec, cpi,
                             iters, total_events, ipd.reset_index(drop=True))


# ------------------------------------------------------------------------------ cohort


def arm_codes(arms, treated: str | None, path="") -> dict[str, int]:
    """``{arm name: treatment code}``: ``treated`` (or the arm named 'HAIC-LEN-P') is 1."""
    arms = list(arms)
    if len(arms) != 2:
        raise InputError(f"{path}: column 'arm': expected exactly two arms (treated and "
                         f"control); found {len(arms)}: {', '.join(map(repr, arms))}.")
    if treated is None:
        if "HAIC-LEN-P" in arms:
            treated = "HAIC-LEN-P"
        else:
            raise InputError(f"{path}: arms {arms[0]!r} and {arms[1]!r}: expected --treated "
                             "ARM naming the arm coded treatment = 1 (HAIC-LEN-P's place).")
    if treated not in arms:
        raise InputError(f"--treated: expected one of the arms in {path} "
                         f"({', '.join(map(repr, arms))}); found {treated!r}.")
    return {a: int(a == treated) for a in arms}


@dataclass
class Reconstruction:
    """One figure (one endpoint) reconstructed: per-arm results plus what went in."""

    endpoint: str
    arms: dict  # arm name -> ArmReconstruction
    codes: dict  # arm name -> treatment code
    curves: dict  # arm name -> Curve (with the cleaning changes)
    scale: str
    points_path: str
    at_risk_path: str
    time_unit: str


def reconstruct_figure(points_path, at_risk_path, *, endpoint: str = "os", treated=None,
                       events: dict | None = None, time_unit: str = "months") -> Reconstruction:
    """Read and clean a digitised figure and its at-risk table and reconstruct both arms.

    ``events``: optional ``{arm: total events}``. Arms must be the same in both files."""
    curves, scale = read_points(points_path, time_unit)
    tables = read_at_risk(at_risk_path, time_unit)
    for a in curves:
        if a not in tables:
            raise InputError(f"{at_risk_path}: column 'arm': expected a row at time 0 for every "
                             f"arm of {points_path}; arm {a!r} is missing (found "
                             f"{', '.join(map(repr, tables))}).")
    for a in tables:
        if a not in curves:
            raise InputError(f"{points_path}: column 'arm': expected the digitised curve of "
                             f"every arm of {at_risk_path}; arm {a!r} is missing (found "
                             f"{', '.join(map(repr, curves))}).")
    codes = arm_codes(curves, treated, points_path)
    events = dict(events or {})
    for a in events:
        if a not in curves:
            raise InputError(f"--events: expected ARM=N with ARM one of "
                             f"{', '.join(map(repr, curves))}; found {a!r}.")
        if not 0 <= events[a] <= tables[a].n_risk[0]:
            raise InputError(f"--events {a}={events[a]}: expected between 0 and the arm's "
                             f"{tables[a].n_risk[0]} patients.")
    arms = {a: reconstruct_arm(curves[a], tables[a], events.get(a), str(at_risk_path))
            for a in curves}
    return Reconstruction(endpoint, arms, codes, curves, scale, str(points_path),
                          str(at_risk_path), time_unit)


def cohort_frame(recs: list[Reconstruction]) -> pd.DataFrame:
    """The reconstructed cohort in the cohort schema: one row per pseudo-patient and endpoint.

    A figure shows one endpoint, and nothing links a pseudo-patient of the OS figure to one of
    the PFS figure, so rows are never paired: an OS row has empty PFS cells and vice versa
    (ids ``os-T0001``, ``pfs-C0001``: endpoint, arm T = treated / C = control, number).
    ``response`` is empty (a figure has no response data)."""
    parts = []
    for rec in recs:
        tcol, ecol = ENDPOINT_COLUMNS[rec.endpoint]
        for arm, r in rec.arms.items():
            code = rec.codes[arm]
            n = len(r.ipd)
            part = pd.DataFrame({
                "id": [f"{rec.endpoint}-{'T' if code else 'C'}{i + 1:04d}" for i in range(n)],
                "treatment": code, "os_time": np.nan, "os_event": pd.NA,
                "pfs_time": np.nan, "pfs_event": pd.NA, "response": pd.NA})
            part[tcol] = r.ipd["time"].to_numpy()
            part[ecol] = r.ipd["event"].to_numpy()
            parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    for col in ("os_event", "pfs_event", "response", "treatment"):
        frame[col] = frame[col].astype("Int64")
    return frame


def _sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def sidecar(recs: list[Reconstruction], *, figure: str = "", population: str = "",
            endpoint_names=None) -> dict:
    """The sidecar (``<cohort>.meta.json``) of a reconstructed cohort: tier, endpoints, source
    figure, digitisation files (with SHA-256), arms and the method, and the endpoints' report
    names when given (``{"pfs": {"short": "RFS", "long": "relapse-free survival"}}``)."""
    names = {"endpoint_names": dict(endpoint_names)} if endpoint_names else {}
    return {**names,
        "data_tier": "reconstructed",
        "endpoints": [r.endpoint for r in recs],
        "source_figure": figure,
        "population": population,
        "method": METHOD,
        "rows": "one row per pseudo-patient and endpoint; OS and PFS rows are not paired",
        "covariates": [],
        "arms": {r.endpoint: {a: c for a, c in r.codes.items()} for r in recs},
        "digitisation": {r.endpoint: {
            "points": r.points_path, "points_sha256": _sha256(r.points_path),
            "at_risk": r.at_risk_path, "at_risk_sha256": _sha256(r.at_risk_path),
            "survival_scale": r.scale, "time_unit": r.time_unit,
            "total_events": {a: x.total_events for a, x in r.arms.items()
                             if x.total_events is not None},
            "cleaning": {a: c.changes for a, c in r.curves.items()},
        } for r in recs},
    }


# ------------------------------------------------------------------------------ accuracy


def accuracy_table(rec: Reconstruction) -> pd.DataFrame:
    """Long table per arm: the absolute difference between the digitised survival and the
    reconstructed Kaplan-Meier estimate at the digitised times (max and mean, proportions),
    the medians (months; digitised curve vs reconstructed KM; NaN when not reached) and the
    numbers at risk at each published time (published vs reconstructed)."""
    from .checks import km_on_grid

    rows = []
    for arm, r in rec.arms.items():
        km = km_on_grid(r.ipd["time"].to_numpy(), r.ipd["event"].to_numpy(), r.time)
        diff = np.abs(km - r.survival)
        base = {"endpoint": rec.endpoint, "arm": arm, "treatment": rec.codes[arm]}
        rows.append({**base, "quantity": "max_abs_diff_survival", "time": np.nan,
                     "published": np.nan, "reconstructed": float(diff.max())})
        rows.append({**base, "quantity": "mean_abs_diff_survival", "time": np.nan,
                     "published": np.nan, "reconstructed": float(diff.mean())})
        rows.append({**base, "quantity": "median_months", "time": np.nan,
                     "published": _median(r.time, r.survival), "reconstructed": _median(r.time, km)})
        if r.total_events is not None:
            rows.append({**base, "quantity": "total_events", "time": np.nan,
                         "published": r.total_events, "reconstructed": int(r.ipd["event"].sum())})
        t = r.ipd["time"].to_numpy()
        for tt, npub in zip(r.risk_time, r.n_risk_published):
            rows.append({**base, "quantity": "n_risk", "time": float(tt), "published": int(npub),
                         "reconstructed": int((t >= tt).sum())})
    out = pd.DataFrame(rows)
    out["difference"] = out["reconstructed"] - out["published"]
    return out


def _median(t, s) -> float:
    """First time a step curve (right-continuous) is at or below 0.5 (NaN if never)."""
    below = np.flatnonzero(np.asarray(s) <= 0.5)
    return float(t[below[0]]) if below.size else np.nan


# ------------------------------------------------------------------------------ writing


def output_paths(out) -> dict[str, Path]:
    """The files written for cohort ``out``: the cohort, its sidecar, the accuracy report and
    the accuracy table."""
    from .schema import sidecar_path

    out = Path(out)
    return {"cohort": out, "sidecar": sidecar_path(out),
            "html": out.with_name(out.stem + ".accuracy.html"),
            "csv": out.with_name(out.stem + ".accuracy.csv")}


# ------------------------------------------------------------------------------ using it


def load_reconstructed(path, raw: pd.DataFrame, meta: dict, digest: str, covariates=None):
    """Validate a cohort file of tier ``reconstructed`` (read as text by
    :func:`bayes_haic.schema.load_cohort`): each row belongs to one endpoint of the sidecar's
    ``endpoints`` (its time and event filled, the other endpoint's empty); no covariates, no
    response. Returns a :class:`~bayes_haic.schema.Cohort`."""
    from .schema import Cohort, check_binary, fail_rows, numeric_column

    path = Path(path)
    arms = reconstructed_arms(meta)
    if covariates:
        raise InputError(f"{path}: covariates {covariates!r} requested, but a cohort "
                         "reconstructed from a Kaplan-Meier figure (tier 'reconstructed') has "
                         "none; expected no --covariates (only arm, time and event are known).")
    endpoints = meta.get("endpoints")
    if not endpoints or any(e not in ENDPOINT_COLUMNS for e in endpoints):
        raise InputError(f"{path.with_name(path.stem + '.meta.json')}: key 'endpoints': expected "
                         f"a list of 'os' and/or 'pfs' for a reconstructed cohort; found "
                         f"{endpoints!r}.")
    ids = raw["id"].str.strip()
    if (ids == "").any() or ids.duplicated().any():
        fail_rows(path, "id", (ids == "") | ids.duplicated(keep=False), "unique patient identifiers")
    out = pd.DataFrame({"id": ids})
    out["treatment"] = numeric_column(raw, "treatment", path, f"1 ({arms[0]}) or 0 ({arms[1]})")
    check_binary(out["treatment"], path, "treatment")
    filled = {}
    for e, (tcol, ecol) in ENDPOINT_COLUMNS.items():
        t = numeric_column(raw, tcol, path, "a non-negative number of months")
        d = numeric_column(raw, ecol, path, "1 (event) or 0 (censored)")
        check_binary(d, path, ecol, allow_missing=True)
        if (t < 0).any():
            fail_rows(path, tcol, t < 0, "a non-negative number of months")
        if (t.isna() != d.isna()).any():
            fail_rows(path, ecol, t.isna() != d.isna(), f"{tcol} and {ecol} both filled or both "
                  "empty (a reconstructed row belongs to one endpoint)")
        out[tcol], out[ecol] = t.astype(float), d.astype("Int64")
        filled[e] = t.notna()
        if e not in endpoints and filled[e].any():
            fail_rows(path, tcol, filled[e], f"empty cells (the sidecar's endpoints are "
                  f"{', '.join(endpoints)})")
    one = sum(filled[e].astype(int) for e in ENDPOINT_COLUMNS)
    if (one != 1).any():
        fail_rows(path, "id", one != 1, "rows with exactly one endpoint's time and event (OS and "
              "PFS rows of a reconstructed cohort are separate pseudo-patients)")
    out["response"] = np.nan
    if (raw["response"].str.strip() != "").any():
        fail_rows(path, "response", raw["response"].str.strip() != "", "empty cells (a "
              "reconstructed cohort has no response data)")
    for e in endpoints:
        for arm, label in ((1, arms[0]), (0, arms[1])):
            if not ((out["treatment"] == arm) & filled[e]).any():
                raise InputError(f"{path}: column 'treatment': no {e.upper()} row has treatment "
                                 f"= {arm} ({label}); expected both arms for every endpoint of "
                                 "the sidecar.")
    out["treatment"] = out["treatment"].astype(int)
    return Cohort(out, [], str(path), "reconstructed", digest, meta, arms=arms)


def reconstructed_arms(meta: dict) -> tuple:
    """(treated, control): the names of the arms in the digitised figures of a reconstructed
    cohort (its sidecar's ``"arms"``, per endpoint ``{name: treatment code}``; the first
    endpoint's when figures name them differently), else "treated" and "control". The study's
    own figures give HAIC-LEN-P and LEN-P; another study's figures give its arms."""
    from .schema import GENERIC_ARMS

    for codes in (meta.get("arms") or {}).values():
        if isinstance(codes, dict):
            by_code = {v: str(k) for k, v in codes.items()}
            if set(by_code) == {0, 1}:
                return by_code[1], by_code[0]
    return GENERIC_ARMS


def for_endpoint(cohort, endpoint: str):
    """A reconstructed cohort's rows of the survival endpoint ``endpoint`` (a cohort of another
    tier unchanged); InputError when the cohort has no data for it (e.g. PFS in a cohort with
    OS only)."""
    from dataclasses import replace

    if endpoint not in ENDPOINT_COLUMNS or not hasattr(cohort, "endpoints"):
        return cohort
    require_endpoint(cohort, endpoint)
    if cohort.data_tier != "reconstructed":
        return cohort
    tcol, ecol = ENDPOINT_COLUMNS[endpoint]
    frame = cohort.frame[cohort.frame[tcol].notna()].reset_index(drop=True).copy()
    frame[ecol] = frame[ecol].astype(int)
    return replace(cohort, frame=frame)


def is_matched_set(cohort) -> bool:
    """Whether a reconstructed cohort's source curves are of a propensity-matched set."""
    pop = str(getattr(cohort, "meta", {}).get("population", "")).lower()
    return getattr(cohort, "data_tier", None) == "reconstructed" and "matched" in pop


def check_strategy(cohort, strategy: str, endpoint: str | None = None) -> None:
    """Refuse covariate-based strategies (and the response endpoint) on a reconstructed cohort:
    it has no covariates and no response data. ``strategy`` may also be a phrase such as
    "the propensity design"."""
    if getattr(cohort, "data_tier", None) != "reconstructed":
        return
    if endpoint == "orr":
        raise InputError(f"{cohort.path}: endpoint 'orr' needs response data, and a cohort "
                         "reconstructed from a Kaplan-Meier figure (tier 'reconstructed') has "
                         "none; expected --endpoint os or pfs.")
    if strategy == "none":
        return
    matched = (" Its source curves are of a matched set, so 'none' is the matched-set "
               "comparison." if is_matched_set(cohort) else "")
    what = f"adjustment '{strategy}'" if " " not in strategy else strategy
    raise InputError(
        f"{cohort.path}: {what} needs baseline covariates, and a cohort "
        "reconstructed from a Kaplan-Meier figure (tier 'reconstructed') has none: only the "
        "arm, the time and the event of each pseudo-patient are known. Expected --adjust none "
        "(the comparison of the two published curves)." + matched)


def label_fit(idata, cohort) -> None:
    """Label a fit on a reconstructed cohort: what the contrast is and where the data came
    from (``estimand_detail`` and ``method`` attributes, read by the results rows and report)."""
    if getattr(cohort, "data_tier", None) != "reconstructed":
        return
    fig = cohort.meta.get("source_figure") or "a published Kaplan-Meier figure"
    if is_matched_set(cohort):
        idata.attrs["estimand"] = MATCHED_SET
        idata.attrs["estimand_detail"] = (
            "matched-set comparison: marginal HR in the published propensity-matched set, "
            f"reconstructed from its Kaplan-Meier curves ({fig}); no further adjustment")
    else:
        idata.attrs["estimand_detail"] = (
            "crude HR between the published curves, reconstructed from their Kaplan-Meier "
            f"figure ({fig}); no adjustment")
    what = "matched-set comparison on reconstructed data" if is_matched_set(cohort) else \
        "reconstructed data"
    idata.attrs["method"] = f"{idata.attrs.get('method', '')}; {what} ({fig})"
