r"""Importance weighting of posterior draws: Pareto-smoothed weights, weighted quantiles and
resampling.

A sample :math:`\theta_1..\theta_S` from a density :math:`q` represents a target :math:`p` with
weights :math:`w_s \propto p(\theta_s) / q(\theta_s)`. The raw ratios are Pareto-smoothed
(PSIS; Vehtari, Simpson, Gelman, Yao & Gabry 2024, JMLR 25(72)) with ``az.psislw``; the
estimated Pareto shape :math:`\hat k` says whether the weights can be trusted: below
:math:`\min(k_{max}, 1 - 1/\log_{10} S)` and with an effective sample size
:math:`r_{eff} / \sum_s w_s^2` of at least ``min_ess``.

Used by :mod:`bayes_haic.sensitivity` (one prior set's posterior from another's draws) and by
:mod:`bayes_haic.bootstrap_prior` (Bayesian-bootstrap draws combined with a prior).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

K_MAX = 0.7  # Pareto k above which importance weighting is not trusted (Vehtari et al. 2024)
# smallest PSIS effective sample size for a reweighted MCMC posterior (the main job's bulk-ESS
# alert level): with fewer, tail probabilities such as P(HR < 1) are poorly estimated even
# when k is low
MIN_ESS = 400


def weighted_quantile(x, weights, q) -> np.ndarray:
    """Quantiles of draws ``x`` with normalised ``weights`` (midpoint interpolation of the
    weighted ECDF; equal weights give the usual sample quantiles up to interpolation)."""
    x = np.asarray(x, float).ravel()
    w = np.asarray(weights, float).ravel()
    order = np.argsort(x)
    xs, ws = x[order], w[order] / w.sum()
    cw = np.cumsum(ws) - ws / 2
    return np.interp(q, cw, xs)


@dataclass(frozen=True)
class Reweighting:
    """PSIS weights that turn draws from one distribution into draws from another.

    ``weights``: normalised, flattened over (chain, draw); ``k``: Pareto shape estimate;
    ``ess``: effective sample size ``r_eff / sum(w^2)``; ``k_threshold``:
    ``min(k_max, 1 - 1/log10(S))``. Reliable: ``k < k_threshold`` and ``ess >= min_ess``."""

    weights: np.ndarray
    k: float
    ess: float
    r_eff: float
    k_threshold: float
    min_ess: float = MIN_ESS

    @property
    def reliable(self) -> bool:
        return bool(self.k < self.k_threshold and self.ess >= self.min_ess)  # False for NaN k


def psis_weights(log_ratio: np.ndarray, *, k_max: float = K_MAX, min_ess: float = MIN_ESS) -> Reweighting:
    """Pareto-smoothed importance weights from log density ratios ``(chain, draw)`` or
    ``(draws,)``; ``r_eff`` (relative efficiency of the draws for the weights) from the ESS of
    the raw ratios when there are several chains, else 1 (independent draws)."""
    import arviz as az

    from .diagnostics import arviz_numpy

    lr = np.asarray(log_ratio, float)
    if lr.ndim == 1:
        lr = lr[None, :]
    flat = lr.ravel()
    n = flat.size
    thr = min(k_max, 1 - 1 / math.log10(n))
    if not np.all(np.isfinite(flat)):
        return Reweighting(np.full(n, 1.0 / n), math.inf, 0.0, 1.0, thr, min_ess)
    if np.ptp(flat) < 1e-12:  # same density: equal weights
        return Reweighting(np.full(n, 1.0 / n), -math.inf, float(n), 1.0, thr, min_ess)
    raw = np.exp(lr - lr.max())
    r_eff = 1.0
    if lr.shape[0] > 1 and lr.shape[1] > 3:
        with arviz_numpy():  # (the same value without a ~0.2-0.4 s numba compile per process)
            e = float(az.ess(raw, method="mean"))
        if np.isfinite(e):
            r_eff = float(np.clip(e / n, 0.01, 1.0))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        lw, k = az.psislw(flat, r_eff)
    w = np.exp(lw - lw.max())
    w /= w.sum()
    return Reweighting(w, float(k), float(r_eff / np.sum(w**2)), r_eff, thr, min_ess)


def systematic_resample(weights, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``n`` draws resampled with probabilities ``weights`` (normalised) by systematic
    resampling (one uniform offset; each draw is taken ``floor(n w)`` or ``ceil(n w)`` times, the
    least added Monte Carlo noise of the standard schemes; Douc, Cappe & Moulines 2005)."""
    w = np.asarray(weights, float).ravel()
    w = w / w.sum()
    positions = (rng.random() + np.arange(n)) / n
    idx = np.searchsorted(np.cumsum(w), positions, side="right")
    return np.minimum(idx, w.size - 1)
