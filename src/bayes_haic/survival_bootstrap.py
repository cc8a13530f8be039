r"""IPTW for the PWE model with the design (propensity) uncertainty propagated, by the Bayesian
bootstrap of Saarela et al. (2015, Biometrics 71:279, "On Bayesian estimation of marginal
structural models"), combined with the prior set.

For replicate :math:`b = 1..B`:

1. draw patient weights :math:`g^{(b)} \sim n \cdot \mathrm{Dirichlet}(1, \dots, 1)`;
2. refit the treatment (propensity) model with weights :math:`g^{(b)}` and compute IPT weights
   :math:`v^{(b)}` -- done by the caller's ``design_fn(g) -> v``, so this module does not depend
   on how the propensity score is modelled;
3. maximise the weighted PWE (Poisson) log-likelihood of the collapsed statistics with patient
   weights :math:`g^{(b)} v^{(b)}` (rescaled to sum to n) over :math:`(\beta, \log\lambda_1..J)`.

The :math:`B` maximisers are draws from the posterior of the marginal log hazard ratio (for the
population of the weights' estimand: ATE, ATT or ATO) and the
baseline log hazards under the Bayesian bootstrap (a nonparametric model for the data
distribution) with a flat prior on the parameters; the weighted likelihood is a device to
compute the marginal-structural-model parameter, not a likelihood for the data. The prior set
then enters by :func:`bayes_haic.bootstrap_prior.combine_with_prior` (Newton & Raftery 1994:
importance weights :math:`p(\theta_b)`, PSIS-checked, resampled; a normal-approximation
"sandwich" posterior when the weights degenerate): the treatment log-HR prior
(``survival.log_hr`` or the endpoint's own key, :meth:`~bayes_haic.priors.PriorSet.log_hr_key`)
and, independently per interval, ``survival.log_baseline_hazard``. :func:`bootstrap_draws`
computes the prior-free replicates once; :func:`iptw_posterior` combines them with any prior
set, so a sensitivity study over prior sets does not repeat the bootstrap.
"""

from __future__ import annotations

from dataclasses import dataclass

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr
from scipy import optimize

from . import fitinfo
from .bootstrap_prior import combine_with_prior
from .errors import InputError
from .priors import PriorSet, as_prior_set
from .sampler_settings import DEFAULT_SEED
from .survival import (
    ARMS,
    ModelSpec,
    check_arrays,
    exposure_matrix,
    fit_attrs,
    interval_index,
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


def weighted_pwe_mle(events, exposure) -> tuple[float, np.ndarray]:
    """Maximiser ``(log_hr, log_lambda)`` of the weighted PWE log-likelihood
    ``sum_jk D_jk eta_jk - E_jk exp(eta_jk)``, ``eta_jk = log_lambda_j + log_hr * k``.

    ``events``, ``exposure``: arrays (arm, intervals) as from :func:`~bayes_haic.survival.collapse`.
    The baseline is profiled out (``lambda_j = D_j. / (E_0j + E_1j e^beta)``) and the score for
    ``beta`` (monotone) is solved by Brent's method.
    """
    D = np.asarray(events, float)
    E = np.asarray(exposure, float)
    Dj = D.sum(axis=0)
    if D[1].sum() <= 0 or D[0].sum() <= 0:
        raise InputError("IPTW bootstrap: an arm has no events; the hazard ratio is not estimable.")
    if np.any((Dj > 0) & (E.sum(axis=0) <= 0)):
        raise InputError("IPTW bootstrap: an interval has events but no exposure.")
    if np.any(Dj <= 0):
        raise InputError(
            "IPTW bootstrap: an interval has no events, so its baseline hazard has no finite "
            "maximum-likelihood estimate; use fewer intervals (quantile cuts)."
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


REPLICATE_BLOCK_VALUES = 5_000_000  # replicates x patients refitted at once (40 MB per array)


def replicate_weights(design_fn, n: int, n_boot: int, seed: int):
    """The Bayesian-bootstrap replicates of Saarela et al. (2015): for each of ``n_boot``
    replicates, yields ``(g, v)``: Dirichlet(1, ..., 1) x n patient weights ``g`` (mean 1) and
    the IPT weights ``v = design_fn(g)`` of the propensity model refitted with them. Seeded by
    ``seed``; shared by the survival and response IPTW bootstraps. If ``design_fn`` has an
    attribute ``many`` (``G (replicates, n) -> V (replicates, n)``, the same weights for a block
    of replicates), the replicates are refitted in blocks of at most
    :data:`REPLICATE_BLOCK_VALUES` / n."""
    rng = np.random.default_rng(seed)
    many = getattr(design_fn, "many", None)
    if many is None:
        for _ in range(int(n_boot)):
            g = rng.dirichlet(np.ones(n)) * n
            yield g, call_design_fn(design_fn, g, n)
        return
    # design_fn.many(G) -> V: the same replicates (the same random stream), a block at a time;
    # memory O(block x n)
    block = max(1, min(int(n_boot), REPLICATE_BLOCK_VALUES // max(n, 1)))
    for start in range(0, int(n_boot), block):
        G = np.stack([rng.dirichlet(np.ones(n)) * n for _ in range(min(block, int(n_boot) - start))])
        V = many(G)
        for g, v in zip(G, V):
            yield g, call_design_fn(lambda _g, v=v: v, g, n)


@dataclass(frozen=True)
class BootstrapDraws:
    """Prior-free IPTW Bayesian-bootstrap replicates of one endpoint (:func:`bootstrap_draws`).

    ``log_hr`` (B,), ``log_lambda`` (B, J): the replicates' weighted ML estimates; ``cuts``
    (months); ``collapsed``: the statistics under the full-sample IPT weights (``design_fn`` of
    all-ones weights), for the observed-data and predictive groups; ``seed``."""

    endpoint: str
    log_hr: np.ndarray
    log_lambda: np.ndarray
    cuts: np.ndarray
    collapsed: xr.Dataset
    seed: int
    patients: dict | None = None  # time, event, treatment and the full-sample IPT weights (sum n)

    @property
    def n_boot(self) -> int:
        return int(self.log_hr.size)


def bootstrap_draws(frame: pd.DataFrame, endpoint: str, design_fn, *, n_boot: int = 1000,
                    seed: int = DEFAULT_SEED, cuts=None) -> BootstrapDraws:
    """The ``n_boot`` prior-free replicates of the IPTW Bayesian bootstrap (module docstring,
    steps 1-3). ``design_fn(patient_weights) -> ipt_weights`` refits the propensity model with
    the given patient weights (length n, mean 1, in the row order of ``frame``) and returns the
    IPT weights for the same rows. ``cuts``: None (8 quantile intervals of the event times) or a
    list from 0 (months). Deterministic for a given ``seed`` if ``design_fn`` is."""
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 2:
        raise InputError(f"n_boot: expected an integer >= 2; found {n_boot!r}.")
    t, d, x = endpoint_columns(frame, endpoint)
    n = t.size
    cuts = cut_points(t, d) if cuts is None else validate_cuts(cuts)
    t, d, x, _ = check_arrays(t, d, x, None)
    # Speed (the same numbers as collapse() per replicate, to rounding): every replicate's collapsed
    # statistics are weighted sums of fixed per-patient statistics, w (patients) @ S (patients x
    # (arm, interval)), instead of an xarray collapse per replicate. Memory O(n): one replicate's
    # weights at a time, never replicates x patients.
    J = cuts.size
    rows = np.arange(n)
    ev = np.zeros((n, 2, J))
    ev[rows, x, interval_index(t, cuts)] = d
    ex = np.zeros((n, 2, J))
    ex[rows, x, :] = exposure_matrix(t, cuts)
    ev, ex = ev.reshape(n, 2 * J), ex.reshape(n, 2 * J)
    events = np.empty((n_boot, 2, J))
    exposure = np.empty((n_boot, 2, J))
    for b, (g, v) in enumerate(replicate_weights(design_fn, n, n_boot, seed)):
        w = g * v
        w *= n / w.sum()
        if not np.all(np.isfinite(w)):
            check_arrays(t, d, x, w)  # raises the weights error collapse() would
        events[b] = (w @ ev).reshape(2, J)
        exposure[b] = (w @ ex).reshape(2, J)
    log_hr = np.empty(n_boot)
    log_lambda = np.empty((n_boot, J))
    for b in range(n_boot):
        log_hr[b], log_lambda[b] = weighted_pwe_mle(events[b], exposure[b])
    w_full = call_design_fn(design_fn, np.ones(n), n)
    w_full = w_full * (n / w_full.sum())
    coll_full = collapse(t, d, x, cuts, w_full)
    patients = {"time": t, "event": d, "treatment": x, "weight": w_full}
    return BootstrapDraws(endpoint, log_hr, log_lambda, cuts, coll_full, int(seed), patients)


def iptw_posterior(boot: BootstrapDraws, prior_set: PriorSet | str | None = None, *,
                   weights_estimand: str = "ATE") -> az.InferenceData:
    """The IPTW posterior of ``boot.endpoint`` under ``prior_set``: the bootstrap replicates
    combined with the treatment log-HR prior and the per-interval baseline prior
    (:func:`bayes_haic.bootstrap_prior.combine_with_prior`).

    Returns an InferenceData shaped like :func:`~bayes_haic.survival.fit_pwe`'s: one chain of
    ``B`` draws of ``log_hr``, ``hr``, ``log_lambda`` (intervals), ``hazard`` (arm, intervals);
    ``observed_data`` / ``posterior_predictive`` use the full-sample IPT weights; no
    ``log_likelihood`` (the weighted likelihood is not a likelihood of the data) and no
    ``sample_stats``. ``attrs`` as for ``fit_pwe`` with ``method`` = :data:`BOOTSTRAP_METHOD`
    plus how the prior entered, and ``bootstrap_n``, ``bootstrap_seed``, ``prior_path``
    (``reweighting`` / ``normal-exact`` / ``normal-nuts``), ``prior_pareto_k``, ``prior_ess``,
    (``estimand`` = ``"marginal (ATE)"`` etc., from ``weights_estimand``, the IPT weights'
    estimand as ``design.weight_settings["estimand"]``),
    ``bootstrap_log_hr_mean`` / ``bootstrap_log_hr_sd`` (the prior-free replicates).
    """
    ps = as_prior_set(prior_set)
    endpoint = boot.endpoint
    J = boot.cuts.size
    hr_key = ps.log_hr_key(endpoint)
    priors = [ps.get(hr_key)] + [ps.get("survival.log_baseline_hazard")] * J
    raw = np.column_stack([boot.log_hr, boot.log_lambda])
    comb = combine_with_prior(raw, priors, seed=boot.seed,
                              names=["log_hr"] + [f"log_lambda_{j}" for j in range(J)])
    log_hr, log_lambda = comb.draws[:, 0], comb.draws[:, 1:]
    n_boot = boot.n_boot
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
    method = f"{BOOTSTRAP_METHOD}; {comb.text()}"
    spec = ModelSpec(J, "independent", hr_prior=hr_key)
    attrs = fit_attrs(endpoint, "iptw", boot.cuts, ps, boot.collapsed, spec, method=method,
                   weights_estimand=weights_estimand)
    attrs.update({"inference": fitinfo.BOOTSTRAP, "bootstrap_n": int(n_boot), "bootstrap_seed": int(boot.seed),
                  "prior_path": comb.path, "prior_pareto_k": float(comb.k),
                  "prior_ess": float(comb.ess),
                  "bootstrap_log_hr_mean": float(boot.log_hr.mean()),
                  "bootstrap_log_hr_sd": float(boot.log_hr.std(ddof=1))})
    attrs["log_likelihood"] = "none: a weighted pseudo-likelihood is not a density of the data"
    return finish_idata(az.InferenceData(posterior=post), boot.collapsed, attrs, seed=boot.seed,
                        patient=boot.patients)


def iptw_bayesian_bootstrap(
    frame: pd.DataFrame,
    endpoint: str,
    design_fn,
    *,
    n_boot: int = 1000,
    seed: int = DEFAULT_SEED,
    cuts=None,
    prior_set: PriorSet | str | None = None,
    weights_estimand: str = "ATE",
):
    """Posterior of the marginal log-HR of ``endpoint`` by the IPTW Bayesian bootstrap combined
    with ``prior_set``: :func:`bootstrap_draws` then :func:`iptw_posterior`."""
    boot = bootstrap_draws(frame, endpoint, design_fn, n_boot=n_boot, seed=seed, cuts=cuts)
    return iptw_posterior(boot, prior_set, weights_estimand=weights_estimand)
