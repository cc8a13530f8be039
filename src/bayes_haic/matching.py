"""Propensity-score matching: 1:1 greedy nearest-neighbour matching without replacement.

Each treated patient (``treatment == 1``) is paired with the control whose distance ``d`` (the
logit of the propensity score, ``log(e / (1 - e))``) is nearest, among the controls not yet used,
provided that ``|d_treated - d_control| <= caliper * SD(d)`` (Austin 2011, Pharm Stat 10:150-161,
recommends 0.2 SD of the logit). Treated patients without a control inside the caliper stay
unmatched; a control is used at most once. The matched set estimates the average effect in the
matched treated patients (an ATT-type estimand restricted to the region of common support).

The algorithm is that of R's ``MatchIt::matchit(method = "nearest", distance = "glm",
link = "linear.logit", caliper = 0.2, std.caliper = TRUE)`` (MatchIt 4.5, ``nn_matchC_vec``),
reproduced rule for rule so that the same distances give the same pairs:

* **Caliper width.** ``caliper * sd(d)``, where ``sd`` is the sample SD (``n - 1``
  denominator) of the distance over *all* patients, treated and control together (MatchIt's
  ``sd(distance[!discarded])``; not a pooled within-arm SD). A control exactly at the caliper
  is accepted (``<=``).
* **Order of the treated.** ``"largest"`` (MatchIt's default for the ATT): treated patients in
  descending order of the distance; ``"smallest"``: ascending; ``"data"``: input order. Ties
  in the distance keep the input order (R's ``order()`` is stable, also when decreasing).
* **Nearest control and ties.** All patients are sorted by distance, ascending and stable (ties
  keep input order). For a treated patient the candidates are the nearest unused control to its
  left in that sorted list and the nearest to its right; each counts only if inside the caliper.
  The nearer one is taken, and the **left** one (lower or equal distance) when both are equally
  near. Among controls with the same distance as each other, the one adjacent to the treated
  patient in the sorted list is taken.

Intended difference from MatchIt 4.5.1-4.5.3: those releases compare ``abs(d_i - d_j)`` with the
C integer ``abs``, which truncates the difference to a whole number (MatchIt issue #163,
"Caliper not working as intended on versions 4.5.1 - 4.5.3"); a caliper narrower than one logit
unit then has no effect and the nearer neighbour is not always chosen. This module compares the
exact difference, which is MatchIt's documented behaviour. ``tests/reference/matchit_README.md``
says how the reference matched sets were made with MatchIt 4.5.1 despite the bug. Random
ordering (``m.order = "random"``) is not offered: it cannot reproduce R's random numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import InputError, describe_rows

ORDERS = ("largest", "smallest", "data")


@dataclass(frozen=True)
class MatchResult:
    """Result of :func:`match_nearest`.

    Attributes
    ----------
    pairs
        One row per matched pair, in the order the pairs were formed: ``pair`` (1, 2, ...),
        ``treated_id``, ``control_id``, ``treated_distance``, ``control_distance`` (logit PS)
        and ``distance`` (``|treated_distance - control_distance|``, logit units).
    ids
        All patient ids, in input order.
    matched
        Boolean array aligned with ``ids``: the patient is in a matched pair.
    unmatched_treated_ids
        Treated patients left without a control inside the caliper.
    caliper
        The caliper as requested, in SD units of the distance (``None``: no caliper).
    caliper_distance
        The caliper actually used, in logit units (``caliper * distance_sd``; ``None``: no caliper).
    distance_sd
        Sample SD (``n - 1``) of the distance over all patients.
    order
        Order in which treated patients were matched (``"largest"``, ``"smallest"``, ``"data"``).
    """

    pairs: pd.DataFrame
    ids: np.ndarray
    matched: np.ndarray
    unmatched_treated_ids: np.ndarray
    caliper: float | None
    caliper_distance: float | None
    distance_sd: float
    order: str

    @property
    def n_pairs(self) -> int:
        return len(self.pairs)

    @property
    def n_unmatched_treated(self) -> int:
        return len(self.unmatched_treated_ids)

    @property
    def matched_ids(self) -> np.ndarray:
        """Ids of all matched patients (treated and control), in input order."""
        return self.ids[self.matched]

    def matched_mask(self, ids) -> np.ndarray:
        """Boolean array aligned with ``ids`` (e.g. a cohort's ``id`` column): patient is matched."""
        ids = np.asarray(ids)
        known = pd.Index(self.ids)
        missing = ~known.isin(ids)
        if missing.any() or len(ids) != len(self.ids):
            raise InputError(
                "the ids given do not correspond to the patients that were matched "
                f"({len(ids)} ids given, {len(self.ids)} matched on); use the cohort the "
                "propensity scores were computed on."
            )
        return pd.Index(ids).isin(self.matched_ids)

    def matched_frame(self, frame: pd.DataFrame, id_col: str = "id") -> pd.DataFrame:
        """The matched patients of ``frame`` with a ``pair`` column, sorted by pair, treated first."""
        if id_col not in frame.columns:
            raise InputError(f"cohort: no column '{id_col}' to identify patients.")
        mask = self.matched_mask(frame[id_col].to_numpy())
        pair_of = pd.concat(
            [
                pd.Series(self.pairs["pair"].to_numpy(), index=self.pairs["treated_id"].to_numpy()),
                pd.Series(self.pairs["pair"].to_numpy(), index=self.pairs["control_id"].to_numpy()),
            ]
        )
        out = frame.loc[mask].copy()
        out["pair"] = pair_of.loc[out[id_col].to_numpy()].to_numpy()
        out["_is_control"] = out[id_col].isin(self.pairs["control_id"]).to_numpy()
        out = out.sort_values(["pair", "_is_control"], kind="stable").drop(columns="_is_control")
        return out


def _check_inputs(distance, treatment, ids, caliper, order):
    d = np.asarray(distance, dtype=float)
    t = np.asarray(treatment)
    ids = np.asarray(ids)
    if d.ndim != 1 or t.ndim != 1 or ids.ndim != 1 or not (len(d) == len(t) == len(ids)):
        raise InputError(
            f"matching: distance, treatment and ids must be 1-D and of equal length; found "
            f"lengths {d.size}, {t.size}, {ids.size}."
        )
    bad = np.flatnonzero(~np.isfinite(d))
    if bad.size:
        raise InputError(
            f"matching: the distance (logit propensity score) is not finite at {describe_rows(bad + 1)}; "
            "a propensity score of exactly 0 or 1 has no logit. Check the propensity model for "
            "separation."
        )
    t_num = pd.to_numeric(pd.Series(t), errors="coerce").to_numpy()
    bad = np.flatnonzero(~np.isin(t_num, (0, 1)))
    if bad.size:
        raise InputError(f"matching: treatment must be 0 or 1; not so at {describe_rows(bad + 1)}.")
    t = t_num.astype(int)
    dup = pd.Index(ids).duplicated()
    if dup.any():
        raise InputError(
            f"matching: patient ids must be unique; repeated at {describe_rows(np.flatnonzero(dup) + 1)}."
        )
    if t.sum() == 0 or t.sum() == len(t):
        raise InputError("matching: need at least one treated and one control patient.")
    if caliper is not None:
        if isinstance(caliper, bool) or not np.isscalar(caliper) or not np.isfinite(caliper) or caliper <= 0:
            raise InputError(
                f"matching: caliper must be a positive number of SDs of the logit propensity score "
                f"or None for no caliper; found {caliper!r}."
            )
    if order not in ORDERS:
        raise InputError(f"matching: order must be one of {', '.join(ORDERS)}; found {order!r}.")
    return d, t, ids


def _find(parent: np.ndarray, p: int) -> int:
    """Union-find root with path compression: the nearest available position from ``p``."""
    root = p
    while root >= 0 and root < len(parent) and parent[root] != root:
        root = parent[root]
    while p >= 0 and p < len(parent) and parent[p] != p:
        parent[p], p = root, parent[p]
    return root


def match_nearest(
    logit_ps,
    treatment,
    ids,
    caliper: float | None = 0.2,
    order: str = "largest",
) -> MatchResult:
    """1:1 greedy nearest-neighbour matching without replacement on the logit propensity score.

    Parameters
    ----------
    logit_ps
        Distance per patient: the logit of the propensity score (``PSFit.logit_ps``).
    treatment
        1 for treated (HAIC-LEN-P), 0 for control (LEN-P); treated patients are matched.
    ids
        Patient ids, unique; the pairs are reported by id.
    caliper
        Maximum allowed ``|logit difference|`` in SDs of the logit over all patients (default
        0.2); ``None`` for no caliper.
    order
        ``"largest"`` (default, MatchIt's), ``"smallest"`` or ``"data"``: the order in which
        treated patients choose their control. See the module docstring for all tie rules.

    Returns
    -------
    MatchResult
        The pairs, the matched indicator, unmatched treated ids and the caliper in logit units.
        Deterministic: the same input always gives the same pairs.
    """
    d, t, ids = _check_inputs(logit_ps, treatment, ids, caliper, order)
    n = len(d)
    sd = float(np.std(d, ddof=1)) if n > 1 else 0.0
    cal = None if caliper is None else float(caliper) * sd

    # Positions in the list of all patients sorted by distance (stable: ties keep input order).
    by_distance = np.argsort(d, kind="stable")
    rank = np.empty(n, dtype=int)
    rank[by_distance] = np.arange(n)
    ds = d[by_distance]
    is_control = t[by_distance] == 0

    # left[p] / right[p]: union-find pointers to the nearest available control at or left/right
    # of sorted position p (-1 / n when there is none). Using a control unions it away.
    left = np.where(is_control, np.arange(n), np.arange(n) - 1)
    right = np.where(is_control, np.arange(n), np.arange(n) + 1)

    treated = np.flatnonzero(t == 1)
    if order == "largest":
        sequence = treated[np.argsort(-d[treated], kind="stable")]
    elif order == "smallest":
        sequence = treated[np.argsort(d[treated], kind="stable")]
    else:
        sequence = treated

    rows = []
    matched = np.zeros(n, dtype=bool)
    for i in sequence:
        p = rank[i]
        k_left = _find(left, p - 1) if p > 0 else -1
        k_right = _find(right, p + 1) if p < n - 1 else n
        gap_left = abs(ds[p] - ds[k_left]) if k_left >= 0 else np.inf
        gap_right = abs(ds[p] - ds[k_right]) if k_right < n else np.inf
        if cal is not None:
            if gap_left > cal:
                gap_left = np.inf
            if gap_right > cal:
                gap_right = np.inf
        if gap_left == np.inf and gap_right == np.inf:
            continue
        k = k_left if gap_left <= gap_right else k_right
        j = by_distance[k]
        left[k] = k - 1
        right[k] = k + 1
        matched[i] = matched[j] = True
        rows.append((ids[i], ids[j], d[i], d[j], abs(d[i] - d[j])))

    pairs = pd.DataFrame(
        rows, columns=["treated_id", "control_id", "treated_distance", "control_distance", "distance"]
    )
    pairs.insert(0, "pair", np.arange(1, len(pairs) + 1))
    unmatched = ids[(t == 1) & ~matched]
    return MatchResult(
        pairs=pairs,
        ids=ids,
        matched=matched,
        unmatched_treated_ids=unmatched,
        caliper=None if caliper is None else float(caliper),
        caliper_distance=cal,
        distance_sd=sd,
        order=order,
    )
