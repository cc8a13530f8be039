r"""IPTW for the PWE model with the design (propensity) uncertainty propagated, by the Bayesian
bootstrap of Saarela et al. (2015, Biometrics 71:279, "On Bayesian estimation of marginal
structural models").

For replicate :math:`b = 1..B`:

1. draw patient weights :math:`g^{(b)} \sim n \cdot \mathrm{Dirichlet}(1, \dots, 1)`;
2. refit the treatment (propensity) model with weights :math:`g^{(b)}` and compute IPT weights
   :math:`v^{(b)}` -- done by the caller's ``design_fn(g) -> v``, so this module does not depend
   on how the propensity score is modelled;
3. maximise the weighted PWE (Poisson) log-likelihood of the collapsed statistics with patient
   weights :math:`g^{(b)} v^{(b)}` (rescaled to sum to n) over :math:`(\beta, \log\lambda_1..J)`.

The :math:`B` maximisers are draws from the posterior of the marginal (ATE) log hazard ratio
and the baseline log hazards under the Bayesian bootstrap (a nonparametric model for the data
distribution); the weighted likelihood is a device to compute the marginal-structural-model
parameter, not a likelihood for the data. Optionally (``penalise=True``) each replicate
maximises the weighted log-likelihood plus the log prior density of ``survival.log_hr`` (or the
endpoint's own key, :meth:`~bayes_haic.priors.PriorSet.log_hr_key`) and,
independently per interval, ``survival.log_baseline_hazard`` (Normal priors only), i.e. a
posterior mode; this stabilises intervals with few events but is not part of Saarela et al.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from scipy import optimize

from .errors import InputError
from .priors import PriorSet, as_prior_set
from .sampling import DEFAULT_SEED
from .survival import (
    ARMS,
    ModelSpec,
    _attrs,
    collapse,
    cut_points,
    endpoint_columns,
    finish_idata,
    validate_cuts,
)

BOOTSTRAP_METHOD = (
    "IPTW Bayesian bootstrap (Saarela et al. 2015): Dirichlet(1,...,1) patient weights, "
    "propensity model refitted per replicate, weighted PWE Poisson maximum likelihood; "
    "design uncertainty propagated"
)


def weighted_pwe_mle(events, exposure, penalty: dict | None = None) -> tuple[float, np.ndarray]:
    """Maximiser ``(log_hr, log_lambda)`` of the weighted PWE log-likelihood
    ``sum_jk D_jk eta_jk - E_jk exp(eta_jk)``, ``eta_jk = log_lambda_j + log_hr * k``.

    ``events``, ``exposure``: arrays (arm, intervals) as from :func:`~bayes_haic.survival.collapse`.
    Without ``penalty``, the baseline is profiled out (``lambda_j = D_j. / (E_0j + E_1j e^beta)``)
    and the score for ``beta`` (monotone) is solved by Brent's method. ``penalty``:
    ``{"log_hr": (mu, sigma), "log_lambda": (mu, sigma)}`` adds independent Normal log prior
    densities and the mode (the objective is strictly convex) is found by Newton's method.
    """
    D = np.asarray(events, float)
    E = np.asarray(exposure, float)
    if penalty is None:
        return _profile_mle(D, E)
    return _penalised_mode(D, E, penalty)


def _profile_mle(D, E):
    Dj = D.sum(axis=0)
    if D[1].sum() <= 0 or D[0].sum() <= 0:
        raise InputError("IPTW bootstrap: an arm has no events; the hazard ratio is not estimable.")
    if np.any((Dj > 0) & (E.sum(axis=0) <= 0)):
        raise InputError("IPTW bootstrap: an interval has events but no exposure.")
    if np.any(Dj <= 0):
        raise InputError(
            "IPTW bootstrap: an interval has no events, so its baseline hazard has no finite "
            "maximum-likelihood estimate; use fewer intervals (quantile cuts) or penalise=True."
        )

    def score(beta):
        eb = np.exp(beta)
        return D[1].sum() - np.sum(Dj * E[1] * eb / (E[0] + E[1] * eb))

    lo, hi = -30.0, 30.0
    if not (score(lo) > 0 > score(hi)):
        raise InputError("IPTW bootstrap: the weighted log hazard ratio has no finite maximiser.")
    beta = optimize.brentq(score, lo, hi, xtol=1e-12, rtol=1e-12)
    log_lambda = np.log(Dj) - np.log(E[0] + E[1] * np.exp(beta))
    return float(beta), log_lambda


def _penalised_mode(D, E, penalty):
    m1, s1 = penalty["log_hr"]
    m0, s0 = penalty["log_lambda"]
    J = D.shape[1]
    k = np.array([0.0, 1.0])[:, None]

    def parts(theta):
        beta, alpha = theta[0], theta[1:]
        eta = alpha[None, :] + beta * k
        mu = E * np.exp(eta)
        f = -np.sum(D * eta - mu) + 0.5 * ((beta - m1) / s1) ** 2 + 0.5 * np.sum(((alpha - m0) / s0) ** 2)
        g = np.empty(J + 1)
        g[0] = -np.sum(D[1] - mu[1]) + (beta - m1) / s1**2
        g[1:] = -np.sum(D - mu, axis=0) + (alpha - m0) / s0**2
        H = np.zeros((J + 1, J + 1))
        H[0, 0] = mu[1].sum() + 1 / s1**2
        H[0, 1:] = H[1:, 0] = mu[1]
        H[np.arange(1, J + 1), np.arange(1, J + 1)] = mu.sum(axis=0) + 1 / s0**2
        return f, g, H

    # the objective is strictly convex: Newton's method with step halving
    Dj, Ej = D.sum(axis=0), E.sum(axis=0)
    theta = np.concatenate([[m1], np.where((Dj > 0) & (Ej > 0), np.log(np.maximum(Dj, 1e-300) / np.maximum(Ej, 1e-300)), m0)])
    f, g, H = parts(theta)
    for _ in range(200):
        step = np.linalg.solve(H, g)
        size = 1.0
        while True:
            new = theta - size * step
            f_new, g_new, H_new = parts(new)
            if f_new <= f + 1e-12 * abs(f) or size < 1e-10:
                break
            size /= 2
        theta, f, g, H = new, f_new, g_new, H_new
        if np.max(np.abs(step)) * size < 1e-10:
            return float(theta[0]), theta[1:]
    raise RuntimeError("penalised PWE mode: Newton's method did not converge in 200 steps")


def _normal_penalty(prior_set: PriorSet, endpoint: str) -> dict:
    out = {}
    for name, key in (("log_hr", prior_set.log_hr_key(endpoint)),
                      ("log_lambda", "survival.log_baseline_hazard")):
        p = prior_set.get(key)
        if p.dist != "Normal":
            raise InputError(
                f"penalise=True needs a Normal prior for '{key}'; prior set '{prior_set.label()}' "
                f"has {p}."
            )
        out[name] = (p.params["mu"], p.params["sigma"])
    return out


def call_design_fn(design_fn, g, n):
    """``design_fn(g)``: the IPT weights for patient weights ``g``, checked (``n`` finite,
    non-negative values, one per cohort row)."""
    v = np.asarray(design_fn(g), float).ravel()
    if v.size != n or not np.all(np.isfinite(v)) or np.any(v < 0):
        raise InputError(
            f"design_fn: must return {n} finite non-negative IPT weights (one per patient); "
            f"returned {v.size} values"
            + ("" if v.size != n else f", {int(np.sum(~np.isfinite(v) | (v < 0)))} invalid")
            + "."
        )
    return v


def iptw_bayesian_bootstrap(
    frame: pd.DataFrame,
    endpoint: str,
    design_fn,
    *,
    n_boot: int = 1000,
    seed: int = DEFAULT_SEED,
    cuts=None,
    prior_set: PriorSet | str | None = None,
    penalise: bool = False,
):
    """Posterior of the marginal (ATE) log-HR of ``endpoint`` by the IPTW Bayesian bootstrap.

    ``design_fn(patient_weights) -> ipt_weights``: refits the propensity model with the given
    patient weights (length n, mean 1, in the row order of ``frame``) and returns the IPT weights
    for the same rows. ``cuts``: None (8 quantile intervals of the event times) or a list from 0.
    ``prior_set`` is recorded, and used only with ``penalise=True``.

    Returns an InferenceData shaped like :func:`~bayes_haic.survival.fit_pwe`'s: one chain of
    ``n_boot`` draws of ``log_hr``, ``hr``, ``log_lambda`` (intervals), ``hazard`` (arm,
    intervals); ``observed_data`` / ``log_likelihood`` / ``posterior_predictive`` use the
    full-sample IPT weights (``design_fn`` of all-ones weights); no ``sample_stats``. ``attrs``
    as for ``fit_pwe`` with ``method`` = :data:`BOOTSTRAP_METHOD`, plus ``bootstrap_n``,
    ``bootstrap_seed`` and ``penalised``. Deterministic for a given ``seed`` if ``design_fn`` is.
    """
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 2:
        raise InputError(f"n_boot: expected an integer >= 2; found {n_boot!r}.")
    t, d, x = endpoint_columns(frame, endpoint)
    n = t.size
    cuts = cut_points(t, d) if cuts is None else validate_cuts(cuts)
    ps = as_prior_set(prior_set)
    penalty = _normal_penalty(ps, endpoint) if penalise else None
    rng = np.random.default_rng(seed)
    J = cuts.size
    log_hr = np.empty(n_boot)
    log_lambda = np.empty((n_boot, J))
    for b in range(n_boot):
        g = rng.dirichlet(np.ones(n)) * n
        w = g * call_design_fn(design_fn, g, n)
        w *= n / w.sum()
        coll = collapse(t, d, x, cuts, w)
        log_hr[b], log_lambda[b] = weighted_pwe_mle(coll["events"].values, coll["exposure"].values, penalty)

    w_full = call_design_fn(design_fn, np.ones(n), n)
    coll_full = collapse(t, d, x, cuts, w_full * (n / w_full.sum()))
    hazard = np.exp(log_lambda[:, None, :] + log_hr[:, None, None] * np.array([0.0, 1.0])[None, :, None])
    post = xr.Dataset(
        {
            "log_hr": (("chain", "draw"), log_hr[None]),
            "hr": (("chain", "draw"), np.exp(log_hr)[None]),
            "log_lambda": (("chain", "draw", "intervals"), log_lambda[None]),
            "hazard": (("chain", "draw", "arm", "intervals"), hazard[None]),
        },
        coords={"chain": [0], "draw": np.arange(n_boot), "arm": list(ARMS), "intervals": np.arange(J)},
    )
    import arviz as az

    method = BOOTSTRAP_METHOD + (
        "; each replicate penalised by the log prior density (posterior mode)" if penalise else ""
    )
    attrs = _attrs(endpoint, "iptw", cuts, ps, coll_full, ModelSpec(J, "independent", hr_prior=ps.log_hr_key(endpoint)), method=method)
    attrs.update({"bootstrap_n": int(n_boot), "bootstrap_seed": int(seed), "penalised": int(penalise)})
    return finish_idata(az.InferenceData(posterior=post), coll_full, attrs, seed=seed)
