r"""Bayesian-bootstrap draws combined with a prior: the IPTW posterior under any prior set.

The IPTW Bayesian bootstrap (Saarela et al. 2015; :mod:`bayes_haic.survival_bootstrap`,
:func:`bayes_haic.response.fit_response`) gives :math:`B` draws :math:`\theta_b` of the
marginal-structural-model parameters from a nonparametric posterior with the design
(propensity) uncertainty propagated, but with no prior on :math:`\theta`: each replicate is a
weighted maximum-likelihood fit. Newton & Raftery (1994, JRSS B 56:3, "Approximate Bayesian
inference with the weighted likelihood bootstrap") showed that such draws approximate the
posterior under a flat prior, and that a proper prior :math:`p(\theta)` enters by importance
weighting: :math:`w_b \propto p(\theta_b)`, followed by sampling-importance-resampling (SIR;
Rubin 1988). :func:`combine_with_prior` does exactly this:

1. log weights :math:`\log w_b = \sum_j \log p_j(\theta_{bj})` over the parameters with a prior
   in the set (independent priors);
2. Pareto smoothing (PSIS) and its diagnostic :math:`\hat k` (:mod:`bayes_haic.importance`);
3. if :math:`\hat k` is below the threshold and the effective sample size is at least
   ``min_ess_share`` of :math:`B`: :math:`B` draws resampled systematically with the weights;
4. otherwise (the prior is much narrower than, or far from, the bootstrap distribution, so the
   weights degenerate) the **refit path**: the bootstrap distribution is summarised by its mean
   :math:`m` and covariance :math:`\Sigma` and used as a normal likelihood,
   :math:`p(\theta \mid \text{data}) \propto N(\theta; m, \Sigma)\, p(\theta)` -- the
   "sandwich" posterior of Müller (2013, Econometrica 81:1805), which keeps the robust
   (design-based) covariance. With Normal priors this posterior is Normal and drawn exactly
   (closed form); with other families it is sampled by NUTS.

Under a vague prior step 3 returns (a resample of) the bootstrap draws, i.e. the prior-free
result; under a Normal prior on a parameter whose bootstrap distribution is close to Normal, the
result is the normal-normal combination of the two (tested).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import InputError
from .importance import K_MAX, psis_weights, systematic_resample

# the PSIS effective sample size must reach this share of the bootstrap replicates for the
# reweighted draws to be used (else the normal-approximation path): with fewer, the resample
# repeats a few replicates and its tails are poorly resolved
MIN_ESS_SHARE = 0.25


@dataclass(frozen=True)
class PriorCombination:
    """Draws from the bootstrap posterior combined with a prior.

    ``draws``: (B, p) equally weighted draws; ``path``: ``"reweighting"`` (PSIS + systematic
    resampling), ``"normal-exact"`` (normal approximation with Normal priors, closed form) or
    ``"normal-nuts"`` (normal approximation with other priors, NUTS); ``k`` and ``ess``: the
    PSIS diagnostic and effective sample size of the importance weights (computed on every
    path); ``unique``: number of distinct bootstrap replicates among the resampled draws
    (reweighting path)."""

    draws: np.ndarray
    path: str
    k: float
    ess: float
    unique: int = -1

    def text(self) -> str:
        """The method sentence for results rows and reports."""
        if self.path == "reweighting":
            return (f"prior combined by PSIS importance weighting and resampling (Newton & Raftery "
                    f"1994; k={self.k:.2f}, ESS={self.ess:.0f})")
        how = "exact normal draws" if self.path == "normal-exact" else "NUTS"
        k = "inf" if not math.isfinite(self.k) else f"{self.k:.2f}"
        return (f"prior combined with a normal approximation of the bootstrap distribution "
                f"(Müller 2013 sandwich posterior; {how}), because the importance weights were "
                f"too uneven (k={k}, ESS={self.ess:.0f} of {self.draws.shape[0]})")


def combine_with_prior(draws, priors, *, seed: int, k_max: float = K_MAX,
                       min_ess_share: float = MIN_ESS_SHARE, names=None) -> PriorCombination:
    """Combine bootstrap ``draws`` (B, p) with independent ``priors`` (one :class:`Prior` per
    column, or ``None`` for a column without a prior) as described in the module docstring.

    Returns a :class:`PriorCombination` with B equally weighted draws. Deterministic for a given
    ``seed``. ``names`` (column names) are used in error messages and in the NUTS path.
    """
    x = np.asarray(draws, float)
    if x.ndim != 2 or x.shape[0] < 2:
        raise InputError(f"bootstrap draws: expected a (replicates, parameters) array with at least "
                         f"2 replicates; found shape {x.shape}.")
    priors = list(priors)
    if len(priors) != x.shape[1]:
        raise InputError(f"bootstrap draws: {x.shape[1]} parameters but {len(priors)} priors.")
    names = list(names) if names is not None else [f"theta_{j}" for j in range(x.shape[1])]
    rng = np.random.default_rng([int(seed), 1994])
    B = x.shape[0]
    logw = np.zeros(B)
    for j, p in enumerate(priors):
        if p is not None:
            logw += p.logpdf(x[:, j])
    rw = psis_weights(logw, k_max=k_max, min_ess=min_ess_share * B)
    if rw.reliable:
        idx = systematic_resample(rw.weights, B, rng)
        return PriorCombination(x[idx], "reweighting", rw.k, rw.ess, int(np.unique(idx).size))
    m = x.mean(axis=0)
    S = np.atleast_2d(np.cov(x, rowvar=False))
    if all(p is None or p.dist == "Normal" for p in priors):
        out = normal_posterior_draws(m, S, priors, B, rng)
        return PriorCombination(out, "normal-exact", rw.k, rw.ess)
    return PriorCombination(_nuts_draws(m, S, priors, names, B, seed), "normal-nuts", rw.k, rw.ess)


def normal_posterior(mean, cov, priors) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of ``N(theta; mean, cov) x prod_j N(theta_j; mu_j, sigma_j^2)`` (the
    normal-normal combination; ``None`` entries of ``priors`` are flat)."""
    m = np.asarray(mean, float)
    S = np.atleast_2d(np.asarray(cov, float))
    prec0 = np.zeros(m.size)
    mu0 = np.zeros(m.size)
    for j, p in enumerate(priors):
        if p is not None:
            prec0[j] = 1.0 / p.params["sigma"] ** 2
            mu0[j] = p.params["mu"]
    P = np.linalg.inv(S) + np.diag(prec0)
    C = np.linalg.inv(P)
    C = (C + C.T) / 2
    return C @ (np.linalg.solve(S, m) + prec0 * mu0), C


def normal_posterior_draws(mean, cov, priors, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` draws from :func:`normal_posterior`."""
    mu, C = normal_posterior(mean, cov, priors)
    return rng.multivariate_normal(mu, C, size=n, method="cholesky")


def _nuts_draws(m, S, priors, names, n: int, seed: int) -> np.ndarray:
    """Draws of ``N(theta; m, S) x prod_j p_j(theta_j)`` by PyMC's NUTS (non-Normal priors)."""
    import pymc as pm
    import pytensor.tensor as pt

    from .sampling import SamplerSettings, sample

    with pm.Model() as model:
        parts = []
        for j, p in enumerate(priors):
            parts.append(p.to_pymc(names[j]) if p is not None else pm.Flat(names[j]))
        theta = pt.stack(parts)
        pm.Potential("bootstrap_normal", pm.logp(pm.MvNormal.dist(mu=m, cov=S), theta))
    chains = 2
    draws = max(500, -(-n // chains))
    idata = sample(model, SamplerSettings(draws=draws, tune=1000, chains=chains, seed=int(seed),
                                          target_accept=0.9, backend="pymc"))
    post = idata.posterior
    cols = [post[v].values.reshape(-1) for v in names]
    out = np.column_stack(cols)
    idx = np.linspace(0, out.shape[0] - 1, n).round().astype(int)
    return out[idx]
