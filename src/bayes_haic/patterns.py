r"""Covariate patterns: exact sufficient statistics of a patient-level PWE model, the binned
propensity-score spline, and the grouping of patients for standardisation (months).

Exact pattern collapse
----------------------
In a patient-level PWE model (``covariates``, ``ps_covariate``) patient :math:`i` has the
linear predictor :math:`\eta_{ij} = \log\lambda_j + \beta x_i + z_i'\gamma` in interval
:math:`j`, and contributes :math:`d_i \eta_{i,j(i)} - \sum_j e_{ij} e^{\eta_{ij}}` to the
log-likelihood (:math:`e_{ij}` months at risk). Patients with the same pattern
:math:`p = (x_i, z_i)` share :math:`\eta_{pj}`, so the sum over patients equals, exactly,

.. math:: \log L = \sum_{p,j} D_{pj}\,\eta_{pj} - E_{pj} e^{\eta_{pj}},

with :math:`D_{pj}` the events and :math:`E_{pj}` the months at risk of pattern :math:`p` in
interval :math:`j` (the same identity as the arm-level collapse of Holford 1980, one level
finer). The gradient then costs O(patterns x J) instead of O(patients x J).

Binned PS spline (an approximation, only for large cohorts)
-----------------------------------------------------------
The logit propensity score is continuous, so every patient is a pattern of its own. Above
:data:`PS_BIN_MIN_N` patients, :func:`binned_rows` replaces each patient's spline basis row by
the mean basis row of its quantile bin of the logit PS (:data:`PS_BINS` bins), which makes the
``ps_covariate`` model collapsible (at most 2 x bins patterns). The fit records this
(``attrs["ps_spline_bins"]`` and its ``method``); ``tests/test_scale.py`` bounds its error
against the exact fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PS_BINS = 400  # quantile bins of the logit PS for the binned spline
PS_BIN_MIN_N = 20_000  # patients above which ps_covariate uses the binned spline


@dataclass(frozen=True)
class Patterns:
    """Exact sufficient statistics of a patient-level PWE model by (treatment, covariate row).

    ``treatment`` (P,), ``covariates`` (P, p): each pattern's values; ``events`` (P, J)
    events and ``exposure`` (P, J) months at risk per pattern and interval; ``count`` (P,)
    patients per pattern; ``index`` (n,) each patient's pattern."""

    treatment: np.ndarray
    covariates: np.ndarray
    events: np.ndarray
    exposure: np.ndarray
    count: np.ndarray
    index: np.ndarray

    @property
    def n_patterns(self) -> int:
        return int(self.count.size)


def unique_rows(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rows, index, count)``: the distinct rows of a 2-d array, each row's position among
    them (``rows[index] == values``) and how many rows share each (exact equality)."""
    v = np.ascontiguousarray(np.asarray(values, float))
    if v.ndim != 2:
        raise ValueError("unique_rows: expected a 2-d array")
    if v.shape[0] == 0:
        return v, np.zeros(0, np.int64), np.zeros(0, np.int64)
    rows, index, count = np.unique(v, axis=0, return_inverse=True, return_counts=True)
    return rows, index.ravel().astype(np.int64), count.astype(np.int64)


def collapse_patterns(time, event, treatment, covariates, cuts) -> Patterns:
    """Events and months at risk per (treatment, covariate row) pattern and PWE interval.

    ``time`` (months), ``event`` (0/1), ``treatment`` (0/1): (n,); ``covariates``: (n, p);
    ``cuts``: interval left ends (months, first 0). Memory O(n + P x J): one pass per interval."""
    from .survival import interval_index  # survival imports this module

    t = np.asarray(time, float)
    d = np.asarray(event, float)
    x = np.asarray(treatment, float)
    Z = np.asarray(covariates, float).reshape(t.size, -1)
    c = np.asarray(cuts, float)
    rows, index, count = unique_rows(np.column_stack([x, Z]))
    P, J = rows.shape[0], c.size
    ends = np.append(c[1:], np.inf)
    E = np.empty((P, J))
    for j in range(J):
        E[:, j] = np.bincount(index, weights=np.clip(np.minimum(t, ends[j]) - c[j], 0.0, None), minlength=P)
    D = np.bincount(index * J + interval_index(t, c), weights=d, minlength=P * J).reshape(P, J)
    return Patterns(rows[:, 0].astype(np.int64), rows[:, 1:], np.rint(D).astype(np.int64), E, count, index)


def binned_rows(score: np.ndarray, basis: np.ndarray, bins: int = PS_BINS) -> tuple[np.ndarray, np.ndarray]:
    """``(binned basis, bin of each patient)``: each row of ``basis`` (n, k) replaced by the mean
    row of its quantile bin of ``score`` (n,; the logit PS). Bins hold about n / ``bins``
    patients each (ties never split); the column means of the basis are unchanged."""
    s = np.asarray(score, float)
    B = np.asarray(basis, float)
    edges = np.unique(np.quantile(s, np.linspace(0.0, 1.0, int(bins) + 1)[1:-1]))
    b = np.searchsorted(edges, s, side="right")
    m = edges.size + 1
    cnt = np.bincount(b, minlength=m).astype(float)
    means = np.stack([np.bincount(b, weights=B[:, k], minlength=m) for k in range(B.shape[1])], axis=1)
    means = means / np.where(cnt > 0, cnt, 1.0)[:, None]
    return means[b], b
