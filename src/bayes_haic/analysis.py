"""One analysis = a cohort + a model + a prior set: the glue the main job, the CLI and the
``models/`` scripts share.

:func:`make_design` runs the propensity design stage once per cohort; :func:`fit_survival` and
:func:`fit_orr` fit one endpoint under one adjustment strategy, by name:

* ``none``          -- no adjustment (the crude contrast in the cohort);
* ``iptw``          -- inverse probability of treatment weighting; the weights' uncertainty is
  propagated by a Bayesian bootstrap that refits the propensity model in every replicate
  (Saarela et al. 2015);
* ``ps_covariate``  -- a spline of the logit propensity score in the linear predictor;
* ``psm``           -- the 1:1 caliper-matched set;
* ``covariates``    -- direct regression adjustment.

Every returned InferenceData carries provenance in ``attrs`` (cohort file and hash, data tier,
prior label, sampler settings).
"""

from __future__ import annotations

import numpy as np

from . import propensity, reconstruct, response, survival, survival_bootstrap
from .config import DesignConfig
from .errors import InputError
from .sampling import SamplerSettings
from .schema import Cohort

SURVIVAL_STRATEGIES = ("none", "iptw", "ps_covariate", "psm", "covariates")


def make_design(cohort: Cohort, settings: DesignConfig | None = None) -> propensity.Design:
    """The propensity design of ``cohort`` on its covariates (PS model, weights, matching, balance)."""
    s = settings or DesignConfig()
    reconstruct.check_strategy(cohort, "the propensity design (PS model, weights, matching)")
    if not cohort.covariates:
        raise InputError(f"{cohort.path}: no covariates chosen; the propensity design needs "
                         "--covariates (or a sidecar list).")
    return propensity.design(cohort.frame, list(cohort.covariates), estimand=s.estimand,
                             stabilized=s.stabilized, truncate=s.truncate, caliper=s.caliper)


def design_fn(cohort: Cohort, design: propensity.Design):
    """``patient_weights -> IPT weights``: refits the PS model with Bayesian-bootstrap weights."""
    frame = cohort.frame
    t = frame["treatment"].to_numpy()
    ws = design.weight_settings

    def fn(patient_weights):
        fit = design.ps_fit.refit(frame, sample_weight=np.asarray(patient_weights, float))
        return propensity.ipt_weights(fit.ps, t, estimand=ws["estimand"],
                                      stabilized=ws["stabilized"], truncate=ws["truncate"])

    return fn


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
                 n_boot: int = 400, time_varying: bool = False, pair_effect: bool = False):
    """Fit the PWE model for ``endpoint`` ("os" / "pfs") under ``strategy``; an InferenceData.

    ``design`` (from :func:`make_design`) is reused when given; ``cuts`` are months;
    ``time_varying`` lets the log-HR vary across intervals (not with IPTW); ``pair_effect``
    adds a matched-pair random effect to the PSM model."""
    sampler = sampler or SamplerSettings()
    if strategy not in SURVIVAL_STRATEGIES:
        raise InputError(f"--adjust: expected one of {', '.join(SURVIVAL_STRATEGIES)}; "
                         f"found {strategy!r}.")
    reconstruct.check_strategy(cohort, strategy)
    cohort = reconstruct.for_endpoint(cohort, endpoint)  # a reconstructed cohort: its rows
    frame = cohort.frame
    common = dict(cuts=cuts, prior_set=prior_set, sampler=sampler, baseline=baseline,
                  time_varying=time_varying)
    if strategy == "iptw":
        if time_varying:
            raise InputError("--adjust iptw: the Bayesian bootstrap fits a proportional-hazards "
                             "model; a time-varying HR is available for the other strategies.")
        design = design or make_design(cohort)
        idata = survival_bootstrap.iptw_bayesian_bootstrap(
            frame, endpoint, design_fn(cohort, design), n_boot=n_boot, seed=sampler.seed,
            cuts=cuts, prior_set=prior_set)
    elif strategy == "none":
        idata = survival.fit_pwe(frame, endpoint, **common)
    elif strategy == "covariates":
        idata = survival.fit_pwe(frame, endpoint, adjust="covariates",
                                 covariates=list(cohort.covariates), **common)
    elif strategy == "ps_covariate":
        design = design or make_design(cohort)
        idata = survival.fit_pwe(frame, endpoint, adjust="ps_covariate", ps=design.ps_fit.ps,
                                 **common)
    else:  # psm
        design = design or make_design(cohort)
        matched = design.matched_frame(frame)
        idata = survival.fit_pwe(matched, endpoint, adjust="psm", pair="pair",
                                 pair_effect=pair_effect, **common)
    reconstruct.label_fit(idata, cohort)
    return _provenance(idata, cohort, sampler)


def fit_orr(cohort: Cohort, strategy: str, *, design=None, prior_set=None,
            sampler: SamplerSettings | None = None, n_boot: int = 400):
    """Fit the response (ORR) model under ``strategy``; an InferenceData (marginal RD/RR/OR)."""
    sampler = sampler or SamplerSettings()
    frame = cohort.frame
    kwargs = {}
    if strategy == "iptw":
        design = design or make_design(cohort)
        kwargs = {"weights": design.weights, "design_fn": design_fn(cohort, design),
                  "n_boot": n_boot}
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
    return _provenance(idata, cohort, sampler)
