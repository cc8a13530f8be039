"""One analysis = a cohort + a model + a prior set: the glue the main job, the CLI and the
``models/`` scripts share.

:func:`make_design` runs the propensity design stage once per cohort; :func:`fit_survival` and
:func:`fit_orr` fit one endpoint under one adjustment strategy, by name:

* ``none``          -- no adjustment (the crude contrast in the cohort);
* ``iptw``          -- inverse probability of treatment weighting; the weights' uncertainty is
  propagated by a Bayesian bootstrap that refits the propensity model in every replicate
  (Saarela et al. 2015), and the prior set enters by importance weighting of the replicates
  (Newton & Raftery 1994; :mod:`bayes_haic.bootstrap_prior`);
* ``ps_covariate``  -- a spline of the logit propensity score in the linear predictor; the
  estimate conditions on the one estimated score (said in its ``method``);
* ``psm``           -- the 1:1 caliper-matched set; the design uncertainty is propagated by
  rematching after a Bayesian-bootstrap refit of the propensity model in each of
  ``psm_design_draws`` design draws, fitting the outcome model with its prior to each matched
  set and pooling the draws (the two-step approach of Kaplan & Chen 2012, Psychometrika 77:581;
  Liao & Zigler 2020, Stat Med 39:2112);
* ``covariates``    -- direct regression adjustment.

Every returned InferenceData carries provenance in ``attrs`` (cohort file and hash, data tier,
prior label, sampler settings).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import replace

import arviz as az
import numpy as np
import xarray as xr
from scipy.special import expit

from . import fitinfo, propensity, reconstruct, response, survival, survival_bootstrap
from .errors import InputError
from .propensity import make_design
from .sampling import SamplerSettings
from .schema import Cohort, require_response

SURVIVAL_STRATEGIES = ("none", "iptw", "ps_covariate", "psm", "covariates")
PSM_DESIGN_DRAWS = 8  # rematched sets pooled by the PSM fit (design uncertainty)
ONE_SCORE = "conditions on one estimated propensity score (design uncertainty not propagated)"
ONE_MATCH = ("conditions on one estimated propensity score and one matched set (design "
             "uncertainty not propagated)")


def design_fn(cohort: Cohort, design: propensity.Design):
    """``patient_weights -> IPT weights``: refits the PS model with Bayesian-bootstrap weights
    (memoised per cohort, design and weights: :func:`design_replicate`)."""
    frame = cohort.frame
    t = frame["treatment"].to_numpy()
    ws = design.weight_settings

    def refit(patient_weights):
        fit = design.ps_fit.refit(frame, sample_weight=patient_weights)
        return propensity.ipt_weights(fit.ps, t, estimand=ws["estimand"],
                                      stabilized=ws["stabilized"], truncate=ws["truncate"])

    def fn(patient_weights):
        return design_replicate("ipt_weights", cohort, design, patient_weights, refit)

    def refit_many(rows):
        logit = design.ps_fit.refit_logit_ps_many(frame, rows)
        return [propensity.ipt_weights(expit(e), t, estimand=ws["estimand"],
                                       stabilized=ws["stabilized"], truncate=ws["truncate"])
                for e in logit]

    def many(patient_weights):  # a block of replicates (rows), the new ones refitted together
        return design_replicates("ipt_weights", cohort, design, patient_weights, refit_many)

    fn.many = many
    return fn


_REPLICATES: OrderedDict = OrderedDict()
#: the largest cohort whose design replicates are memoised, and how many replicates are kept
REPLICATE_MEMO_MAX_PATIENTS = 20_000
REPLICATE_MEMO_SIZE = 1_000


def _replicate_key(kind: str, cohort: Cohort, design, g: np.ndarray) -> tuple:
    return (kind, cohort.sha256, id(design), hashlib.sha256(g.tobytes()).hexdigest())


def _remember(key: tuple, design, value) -> None:
    _REPLICATES[key] = (design, value)
    while len(_REPLICATES) > REPLICATE_MEMO_SIZE:
        _REPLICATES.popitem(last=False)


def _recall(key: tuple):
    _REPLICATES.move_to_end(key)
    out = _REPLICATES[key][1]
    return out.copy() if isinstance(out, np.ndarray) else out  # callers may scale weights in place


def design_replicate(kind: str, cohort: Cohort, design: propensity.Design, patient_weights, compute):
    """``compute(g)`` for Bayesian-bootstrap patient weights ``g``, memoised by ``kind``, the
    cohort (its hash), the design object and the exact bytes of ``g``.

    The IPTW bootstraps of OS, PFS and ORR, of every cut-point set and prior set, and the PSM
    design draws of every fit draw the same seeded ``g`` sequences, so each propensity refit
    (and rematch) is computed once per process instead of once per fit, and each fit gets the
    same value. Only cohorts of at most :data:`REPLICATE_MEMO_MAX_PATIENTS` patients are
    memoised, at most :data:`REPLICATE_MEMO_SIZE` replicates (least recently used dropped), so
    memory stays below ~160 MB. An entry keeps its design alive, so the design's ``id`` in the key
    is never reused.
    """
    g = np.ascontiguousarray(patient_weights, dtype=float)
    if g.size > REPLICATE_MEMO_MAX_PATIENTS:
        return compute(g)
    key = _replicate_key(kind, cohort, design, g)
    if key not in _REPLICATES:
        _remember(key, design, compute(g))
    return _recall(key)


def design_replicates(kind: str, cohort: Cohort, design: propensity.Design, rows, compute_many) -> list:
    """:func:`design_replicate` for a block of patient-weight ``rows`` (replicates, n): the rows
    not memoised yet are computed together by ``compute_many(rows) -> list``."""
    G = np.ascontiguousarray(rows, dtype=float)
    if G.shape[1] > REPLICATE_MEMO_MAX_PATIENTS:
        return list(compute_many(G))
    keys = [_replicate_key(kind, cohort, design, g) for g in G]
    new = [i for i, k in enumerate(keys) if k not in _REPLICATES]
    if new:
        for i, value in zip(new, compute_many(G[new])):
            _remember(keys[i], design, value)
    return [_recall(k) for k in keys]


def _provenance(idata, cohort: Cohort, sampler: SamplerSettings):
    """Record which data produced a fit (the model and prior are recorded by the fitters)."""
    idata.attrs.update({
        "cohort": cohort.path,
        "cohort_sha256": cohort.sha256,
        "data_tier": cohort.data_tier,
        "seed": sampler.seed,
    })
    return idata


def endpoint_cuts(cohort: Cohort, endpoint: str, cuts="quantile", n_intervals: int = 8):
    """Cut points (months) for ``endpoint``: quantiles of its event times, or a given grid."""
    t, d, _ = survival.endpoint_columns(reconstruct.for_endpoint(cohort, endpoint).frame, endpoint)
    if isinstance(cuts, str):
        return survival.cut_points(t, d, method=cuts, n_intervals=n_intervals)
    return survival.validate_cuts(cuts)


def fit_survival(cohort: Cohort, endpoint: str, strategy: str, *, design=None, prior_set=None,
                 sampler: SamplerSettings | None = None, cuts=None, baseline: str = "rw",
                 n_boot: int = 400, time_varying: bool = False, pair_effect: bool = False,
                 psm_design_draws: int = PSM_DESIGN_DRAWS):
    """Fit the PWE model for ``endpoint`` ("os" / "pfs") under ``strategy``; an InferenceData.

    ``design`` (from :func:`make_design`) is reused when given; ``cuts`` are months (default:
    8 quantile intervals of the cohort's event times); ``time_varying`` lets the log-HR vary
    across intervals (not with IPTW); ``pair_effect`` adds a matched-pair random effect to the
    PSM model. ``psm_design_draws``: number of rematched sets pooled by the PSM fit (1, a
    pair effect or a time-varying HR: the design's one matched set, said in ``method``).
    IPTW bootstrap replicates are cached per cohort, design, endpoint, cut points, ``n_boot``
    and seed, so refits under other prior sets only recombine them with the prior."""
    sampler = sampler or SamplerSettings()
    if strategy not in SURVIVAL_STRATEGIES:
        raise InputError(f"--adjust: expected one of {', '.join(SURVIVAL_STRATEGIES)}; "
                         f"found {strategy!r}.")
    reconstruct.check_strategy(cohort, strategy)
    cohort = reconstruct.for_endpoint(cohort, endpoint)  # a reconstructed cohort: its rows
    frame = cohort.frame
    if cuts is None:
        cuts = endpoint_cuts(cohort, endpoint)
    common = dict(cuts=cuts, prior_set=prior_set, sampler=sampler, baseline=baseline,
                  time_varying=time_varying)
    if strategy == "iptw":
        if time_varying:
            raise InputError("--adjust iptw: the Bayesian bootstrap fits a proportional-hazards "
                             "model; a time-varying HR is available for the other strategies.")
        design = design or make_design(cohort)
        boot = iptw_bootstrap(cohort, design, endpoint, cuts, n_boot, sampler.seed)
        idata = survival_bootstrap.iptw_posterior(
            boot, prior_set, weights_estimand=design.weight_settings["estimand"])
    elif strategy == "none":
        idata = survival.fit_pwe(frame, endpoint, **common)
    elif strategy == "covariates":
        idata = survival.fit_pwe(frame, endpoint, adjust="covariates",
                                 covariates=list(cohort.covariates), **common)
    elif strategy == "ps_covariate":
        design = design or make_design(cohort)
        idata = survival.fit_pwe(frame, endpoint, adjust="ps_covariate", ps=design.ps_fit.ps,
                                 **common)
        _append_method(idata, ONE_SCORE)
    elif pair_effect or time_varying or psm_design_draws <= 1:
        design = design or make_design(cohort)
        matched = design.matched_frame(frame)
        idata = survival.fit_pwe(matched, endpoint, adjust="psm", pair="pair",
                                 pair_effect=pair_effect, **common)
        _append_method(idata, ONE_MATCH)
    else:
        design = design or make_design(cohort)
        idata = psm_propagated(cohort, design, endpoint, cuts=cuts, prior_set=prior_set,
                               sampler=sampler, baseline=baseline, n_draws=psm_design_draws)
    reconstruct.label_fit(idata, cohort)
    return _provenance(idata, cohort, sampler)


def _append_method(idata, text: str) -> None:
    idata.attrs["method"] = f"{idata.attrs.get('method', '')}; {text}"


_BOOT_CACHE: OrderedDict = OrderedDict()


def iptw_bootstrap(cohort: Cohort, design: propensity.Design, endpoint: str, cuts, n_boot: int,
                   seed: int) -> survival_bootstrap.BootstrapDraws:
    """The prior-free IPTW Bayesian-bootstrap replicates of ``endpoint``
    (:func:`bayes_haic.survival_bootstrap.bootstrap_draws` with :func:`design_fn`), cached
    (the 16 most recent) by cohort hash, design settings, endpoint, cut points, ``n_boot`` and
    ``seed``."""
    key = (cohort.sha256, tuple(cohort.covariates), tuple(sorted(design.weight_settings.items())),
           endpoint, tuple(float(c) for c in cuts), int(n_boot), int(seed))
    if key not in _BOOT_CACHE:
        _BOOT_CACHE[key] = survival_bootstrap.bootstrap_draws(
            cohort.frame, endpoint, design_fn(cohort, design), n_boot=n_boot, seed=seed, cuts=cuts)
        while len(_BOOT_CACHE) > 16:
            _BOOT_CACHE.popitem(last=False)
    _BOOT_CACHE.move_to_end(key)
    return _BOOT_CACHE[key]


def psm_propagated(cohort: Cohort, design: propensity.Design, endpoint: str, *, cuts, prior_set,
                   sampler: SamplerSettings, baseline: str = "rw",
                   n_draws: int = PSM_DESIGN_DRAWS):
    """PSM with the design uncertainty propagated (two-step; Kaplan & Chen 2012).

    For design draw ``m = 1..n_draws``: Dirichlet(1, ..., 1) x n patient weights, the
    propensity model refitted with them and the cohort rematched (same caliper and rules,
    :meth:`bayes_haic.propensity.Design.rematch`); the PWE model is fitted with its priors to
    the matched patients (unweighted: the bootstrap weights only perturb the design) by NUTS
    with ``sampler`` (seed + m). The draws of all fits are
    pooled (chains concatenated: ``chains_per_design_draw`` consecutive chains per design draw),
    i.e. the posterior mixture over the design. Convergence is diagnosed per fit
    (:func:`bayes_haic.sampling.convergence`). ``observed_data`` / ``posterior_predictive``
    refer to the design's own matched set; no ``log_likelihood`` (the fits saw different
    patients). ``n_treated`` / ``n_control`` are those of the design's own matched set; attrs
    ``matched_pairs_min`` / ``_max`` give the range over the draws."""
    frame = cohort.frame
    n = len(frame)
    rng = np.random.default_rng([int(sampler.seed), 2012])
    fits, pairs = [], []
    for m in range(int(n_draws)):
        g = rng.dirichlet(np.ones(n)) * n
        match = design_replicate("rematch", cohort, design, g, lambda g_: design.rematch(frame, g_))
        matched = match.matched_frame(frame, id_col=design.ps_fit.id_col)
        fit = survival.fit_pwe(matched, endpoint, adjust="psm", cuts=cuts, prior_set=prior_set,
                               sampler=replace(sampler, seed=int(sampler.seed) + m),
                               baseline=baseline)
        fits.append(fit)
        pairs.append(match.n_pairs)
    own = design.matched_frame(frame)
    t, d, x = survival.endpoint_columns(own, endpoint)
    coll = survival.collapse(t, d, x, cuts)
    chains = fits[0].posterior.sizes["chain"]
    post = xr.concat([f.posterior for f in fits], dim="chain", join="override")
    post = post.assign_coords(chain=np.arange(post.sizes["chain"]))
    post = post.drop_vars([v for v in ("expected_events",) if v in post])  # per matched set
    groups = {"posterior": post}
    if all("sample_stats" in f.groups() for f in fits):
        stats = xr.concat([f.sample_stats for f in fits], dim="chain", join="override")
        groups["sample_stats"] = stats.assign_coords(chain=np.arange(stats.sizes["chain"]))
    pooled = az.InferenceData(**groups)
    pooled.attrs.update({k: v for k, v in fits[0].attrs.items() if k.startswith("sampler_")})
    attrs = dict(fits[0].attrs)
    attrs.update({
        "inference": fitinfo.POOLED,
        "n_treated": int(coll.attrs["n_treated"]), "n_control": int(coll.attrs["n_control"]),
        "design_draws": int(n_draws), "chains_per_design_draw": int(chains),
        "matched_pairs_min": int(min(pairs)), "matched_pairs_max": int(max(pairs)),
        "method": (f"{attrs['method']}; design uncertainty propagated: {n_draws} rematched sets "
                   f"({min(pairs)}-{max(pairs)} pairs) after Bayesian-bootstrap refits of the "
                   "propensity model, posterior draws pooled (two-step, Kaplan & Chen 2012)"),
    })
    attrs["log_likelihood"] = "none: the pooled fits saw different (rematched) patients"
    own_patients = {"time": t, "event": d, "treatment": x}  # the design's own matched set
    return survival.finish_idata(pooled, coll, attrs, seed=int(sampler.seed), patient=own_patients, loglik=False)


def fit_orr(cohort: Cohort, strategy: str, *, design=None, prior_set=None,
            sampler: SamplerSettings | None = None, n_boot: int = 400):
    """Fit the response (ORR) model under ``strategy``; an InferenceData (marginal RD/RR/OR)."""
    require_response(cohort)
    sampler = sampler or SamplerSettings()
    frame = cohort.frame
    kwargs = {}
    if strategy == "iptw":
        design = design or make_design(cohort)
        key = ("orr", cohort.sha256, tuple(cohort.covariates),
               tuple(sorted(design.weight_settings.items())), int(n_boot), int(sampler.seed))
        kwargs = {"weights": design.weights, "design_fn": design_fn(cohort, design),
                  "n_boot": n_boot, "replicates": _BOOT_CACHE.get(key),
                  "weights_estimand": design.weight_settings["estimand"]}
    elif strategy == "ps_covariate":
        design = design or make_design(cohort)
        kwargs = {"ps": design.ps_fit.ps}
    elif strategy == "psm":
        design = design or make_design(cohort)
        kwargs = {"matched_ids": design.match}
    elif strategy == "covariates":
        kwargs = {"covariates": list(cohort.covariates)}
    idata = response.fit_response(frame, adjust=strategy, prior_set=prior_set, sampler=sampler,
                                  **kwargs)
    if strategy == "iptw" and "bootstrap" in idata.groups():
        _BOOT_CACHE[key] = (idata.bootstrap["intercept"].values, idata.bootstrap["log_or"].values)
        while len(_BOOT_CACHE) > 16:
            _BOOT_CACHE.popitem(last=False)
    if strategy == "ps_covariate":
        _append_method(idata, ONE_SCORE)
    elif strategy == "psm":
        _append_method(idata, ONE_MATCH)
    return _provenance(idata, cohort, sampler)
