r"""Bayesian models for objective response (ORR) in a patient-level cohort.

Outcome ``response`` (1 = objective response, 0 = none, missing = not evaluable), treatment
``t`` (1 = HAIC-LEN-P, 0 = LEN-P). Patients with a missing response are **excluded** from every
model, and counted per arm (``attrs["n_missing_treated"]``, ``attrs["n_missing_control"]``):
the estimand is then that of the evaluable patients (complete-case analysis, valid if response
is missing at random given the model's terms).

Models (``adjust``)
-------------------
* ``"none"``: logistic :math:`\mathrm{logit}\,p_i = \alpha + \beta t_i` (``model="logistic"``),
  or per-arm beta-binomial :math:`p_k \sim Beta(a, b)`, :math:`y_i \sim Bernoulli(p_{t_i})`
  (``model="beta_binomial"``, prior ``response.arm_rate``). Crude (unadjusted) comparison.
* ``"covariates"``: :math:`\mathrm{logit}\,p_i = \alpha + \beta t_i + z_i^\top\gamma` with the
  covariates standardised (mean 0, SD 1 over the analysed patients), :math:`\gamma_j \sim`
  ``response.covariate``. :math:`\beta` is a *conditional* log OR.
* ``"ps_covariate"``: as above with :math:`z_i` the natural cubic spline of the logit propensity
  score ``ps`` supplied by the caller, with ``spline_df`` (default 3) non-constant basis
  functions as in R's ``ns(qlogis(ps), df = spline_df)``: the same basis function as the
  survival model's (:func:`bayes_haic.splines.ps_spline_basis`; centred, orthonormal, SD 1);
  spline coefficients take the ``response.covariate`` prior.
* ``"iptw"``: the marginal structural model :math:`\mathrm{logit}\,p = \alpha + \beta t` fitted
  by the IPT-weighted pseudo-likelihood :math:`\sum_i w_i \log f(y_i \mid p_i)` with the
  caller's weights rescaled to sum to their Kish effective sample size. With fixed weights
  this is a **fixed-weight pseudo-posterior** (:data:`FIXED_WEIGHT_METHOD`): it ignores the
  uncertainty of the estimated weights. Given ``design_fn(patient_weights) -> ipt_weights``,
  the Bayesian bootstrap of Saarela et al. (2015, Biometrics 71:279) propagates it instead
  (:data:`BOOTSTRAP_METHOD`), and the ``response.intercept`` / ``response.log_or`` priors enter
  by importance weighting of the replicates (:mod:`bayes_haic.bootstrap_prior`).
* ``"psm"``: the ``"none"`` model on the matched patients (``matched_ids``).

Priors: ``response.intercept`` (:math:`\alpha`), ``response.log_or`` (:math:`\beta`),
``response.covariate``, ``response.arm_rate``.

Estimand
--------
Posterior deterministics ``p_arm`` (arm: control, treated) are **marginal** response
probabilities: for ``covariates`` and ``ps_covariate`` by standardisation over the analysed
cohort, :math:`\bar p_k = n^{-1}\sum_i \mathrm{expit}(\alpha + \beta k + z_i^\top\gamma)`
(the average over the whole analysed cohort, whatever the design's weighting estimand; e.g.
Hernan & Robins, *Causal Inference: What If*, ch. 13); for ``iptw`` the MSM probabilities in the
weighted pseudo-population of the weights' estimand (``weights_estimand``: ATE, ATT or ATO;
``estimand`` attr ``"marginal (ATT)"`` etc.); for ``none``/``psm`` the arm rates. From them ``rd`` = :math:`\bar p_1 - \bar p_0`, ``rr`` = :math:`\bar p_1/\bar p_0` and
``or_`` = marginal odds ratio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr
from scipy import special

from . import fitinfo, sampling, splines
from .bootstrap_prior import combine_with_prior
from .covariates import column_or_array, propensity_scores, ps_spline, standardised
from .errors import InputError, describe_rows
from .labels import IMPORTANT_RD, marginal_estimand
from .priors import PriorSet, as_prior_set
from .results import result_row, summarise_draws
from .survival import WEIGHTS_POPULATIONS, check_weights_estimand, kish_scaled, priors_used
from .survival_bootstrap import call_design_fn, replicate_weights

ADJUSTMENTS = ("none", "covariates", "ps_covariate", "iptw", "psm")
ARMS = ("control", "treated")  # treatment 0, 1
FIXED_WEIGHT_METHOD = (
    "IPTW fixed-weight pseudo-posterior, weights scaled to the Kish effective sample size "
    "(approximation: ignores the design (propensity) uncertainty)"
)
BOOTSTRAP_METHOD = (
    "IPTW Bayesian bootstrap (Saarela et al. 2015): Dirichlet(1,...,1) patient weights, "
    "propensity model refitted per replicate, weighted logistic MSM maximum likelihood; "
    "design uncertainty propagated"
)
ESTIMAND_DETAIL = {
    "none": "crude marginal response probabilities per arm (no confounding adjustment)",
    "covariates": "marginal response probabilities by standardisation over the whole analysed "
    "cohort, from a covariate-adjusted logistic model",
    "ps_covariate": "marginal response probabilities by standardisation over the whole analysed "
    "cohort, from a logistic model with a spline of the logit propensity score",
    "iptw": "marginal response probabilities ({e}: {population}) in the IPT-weighted "
    "pseudo-population",
    "psm": "response probabilities per arm in the matched set (ATT-type, region of overlap)",
}


# --------------------------------------------------------------------------- data preparation




def _check_frame(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(frame, pd.DataFrame):
        raise InputError("cohort: expected a pandas DataFrame.")
    missing = [c for c in ("treatment", "response") if c not in frame.columns]
    if missing:
        raise InputError(f"cohort: missing column(s) {', '.join(missing)} for the response model.")
    t = pd.to_numeric(frame["treatment"], errors="coerce").to_numpy(float)
    bad = np.flatnonzero(~np.isin(t, (0.0, 1.0)))
    if bad.size:
        raise InputError(f"cohort: column 'treatment', {describe_rows(bad + 1)}: expected 1 or 0.")
    y = pd.to_numeric(frame["response"], errors="coerce").to_numpy(float)
    raw_missing = frame["response"].isna().to_numpy()
    bad = np.flatnonzero(~raw_missing & ~np.isin(y, (0.0, 1.0)))
    if bad.size:
        raise InputError(
            f"cohort: column 'response', {describe_rows(bad + 1)}: expected 1, 0 or missing "
            "(not evaluable)."
        )
    return t.astype(int), y


def _matched_mask(frame: pd.DataFrame, matched_ids) -> np.ndarray:
    if matched_ids is None:
        raise InputError("matched_ids: adjust='psm' needs the ids of the matched patients.")
    if hasattr(matched_ids, "matched_ids"):  # a MatchResult
        matched_ids = matched_ids.matched_ids
    if "id" not in frame.columns:
        raise InputError("cohort: no column 'id' to select the matched patients.")
    ids = pd.Index(np.asarray(matched_ids))
    unknown = ids[~ids.isin(frame["id"])]
    if len(unknown):
        shown = ", ".join(map(str, unknown[:8]))
        raise InputError(f"matched_ids: {len(unknown)} id(s) not in the cohort: {shown}.")
    return frame["id"].isin(ids).to_numpy()


def _ids(frame: pd.DataFrame) -> np.ndarray:
    if "id" in frame.columns and frame["id"].is_unique:
        return frame["id"].astype(str).to_numpy()
    return np.array([f"row{i + 1}" for i in range(len(frame))])


# --------------------------------------------------------------------------- PyMC models


@dataclass(frozen=True)
class ResponseSpec:
    """What is fixed when a response model graph is built (the data and the prior parameters
    are ``pm.Data`` and are not): ``model`` (``"logistic"`` / ``"beta_binomial"``), the number of
    adjustment terms ``n_terms`` (columns of Z), ``weighted`` (fixed-weight pseudo-likelihood)
    and the prior families. Fits of the same structure share one graph and its compilation
    (:func:`cached_model`), as the PWE models do."""

    model: str = "logistic"
    n_terms: int = 0
    weighted: bool = False
    families: tuple = ()

    def prior_vars(self) -> dict[str, str]:
        """Model variable -> prior key, for every variable whose prior comes from the prior set."""
        if self.model == "beta_binomial":
            return {"p_arm": "response.arm_rate"}
        v = {"intercept": "response.intercept", "log_or": "response.log_or"}
        if self.n_terms:
            v["beta_z"] = "response.covariate"
        return v

    @classmethod
    def of(cls, prior_set: PriorSet, model: str = "logistic", n_terms: int = 0,
           weighted: bool = False) -> "ResponseSpec":
        spec = cls(model, int(n_terms), bool(weighted))
        return replace(spec, families=tuple(prior_set.get(k).dist for k in spec.prior_vars().values()))


def _build_response(spec: ResponseSpec, prior_set: PriorSet) -> pm.Model:
    """The response model graph of ``spec``: data (``y_obs``, ``treatment``, ``z``, ``weights``;
    one row per patient, any number of rows) and prior parameters (``<variable>__<param>``) as
    ``pm.Data``; deterministics ``p_arm`` (standardised over the rows of Z when there are
    terms), ``rd``, ``rr``, ``or_``."""
    pv = spec.prior_vars()
    coords = {"arm": list(ARMS)}
    if spec.n_terms:
        coords["term"] = [str(j) for j in range(spec.n_terms)]  # relabelled after each fit
    with pm.Model(coords=coords) as model:
        y_d = pm.Data("y_obs", np.zeros(2))
        if spec.model == "beta_binomial":
            prior = prior_set.get(pv["p_arm"])
            if prior.dist != "Beta":
                raise InputError(f"{prior_set.source}: response.arm_rate must be Beta; found {prior}.")
            t_d = pm.Data("treatment", np.array([0, 1], "int64"))
            p = prior.to_pymc_data("p_arm", dims="arm")
            pm.Bernoulli("y", p=p[t_d], observed=y_d)
            _contrasts(p[0], p[1], name_p=None)
            return model
        t_d = pm.Data("treatment", np.array([0.0, 1.0]))
        a = prior_set.get(pv["intercept"]).to_pymc_data("intercept")
        b = prior_set.get(pv["log_or"]).to_pymc_data("log_or")
        eta0 = a
        if spec.n_terms:
            Z_d = pm.Data("z", np.zeros((2, spec.n_terms)))
            g = prior_set.get(pv["beta_z"]).to_pymc_data("beta_z", dims="term")
            eta0 = a + pm.math.dot(Z_d, g)
        eta = eta0 + b * t_d
        if spec.weighted:
            w = pm.Data("weights", np.ones(2))
            logp = -y_d * pm.math.log1pexp(-eta) - (1 - y_d) * pm.math.log1pexp(eta)
            pm.Potential("weighted_loglik", pm.math.sum(w * logp))
        else:
            pm.Bernoulli("y", logit_p=eta, observed=y_d)
        if spec.n_terms:
            p0 = pm.math.mean(pm.math.sigmoid(eta0))
            p1 = pm.math.mean(pm.math.sigmoid(eta0 + b))
        else:
            p0, p1 = pm.math.sigmoid(a), pm.math.sigmoid(a + b)
        _contrasts(p0, p1)
    return model


_MODELS: dict = {}


def cached_model(spec: ResponseSpec, prior_set: PriorSet) -> pm.Model:
    """The graph of ``spec``, built once per process (:func:`clear_model_cache` forgets them)."""
    if spec not in _MODELS:
        model = _build_response(spec, prior_set)
        sampling.register_structure(model, repr(("response._build_response", spec,
                                                 prior_set.families(spec.prior_vars()))))
        _MODELS[spec] = model
    return _MODELS[spec]


def clear_model_cache() -> None:
    """Forget the cached response model graphs (and so their compilations)."""
    _MODELS.clear()


def _model_values(spec: ResponseSpec, prior_set: PriorSet, y, t, Z=None, weights=None) -> dict:
    """The ``pm.Data`` values of a fit of ``spec``: the data and the prior parameters."""
    values = {"y_obs": np.asarray(y, float),
              "treatment": np.asarray(t, "int64" if spec.model == "beta_binomial" else float)}
    if spec.n_terms:
        values["z"] = np.asarray(Z, float)
    if spec.weighted:
        values["weights"] = np.asarray(weights, float)
    for var, key in spec.prior_vars().items():
        values.update(prior_set.get(key).data_values(var))
    return values


def model_with_data(prior_set: PriorSet, y, t, *, model: str = "logistic", Z=None,
                    weights=None, cached: bool = True) -> pm.Model:
    """The response model for these data and priors, its ``pm.Data`` set to them: the cached
    graph of its structure (``cached=False``: a new graph)."""
    spec = ResponseSpec.of(prior_set, model, 0 if Z is None else np.shape(Z)[1], weights is not None)
    m = cached_model(spec, prior_set) if cached else _build_response(spec, prior_set)
    sampling.set_data(m, _model_values(spec, prior_set, y, t, Z, weights))
    return m


def build_logistic_model(y, t, ids, prior_set: PriorSet, Z=None, z_names=(), weights=None):
    """Logistic model ``logit p = intercept + log_or * t (+ Z @ beta_z)``; weighted
    pseudo-likelihood (``pm.Potential``) when ``weights`` is given; deterministics ``p_arm``
    (standardised over the rows of Z when Z is given), ``rd``, ``rr``, ``or_``. A new graph
    (``fit_response`` samples the cached one, :func:`model_with_data`); ``ids`` and
    ``z_names`` are not used by the graph (the fit labels its draws)."""
    return model_with_data(prior_set, y, t, Z=Z, weights=weights, cached=False)


def build_beta_binomial_model(y, t, ids, prior_set: PriorSet):
    """Per-arm ``p_arm ~ response.arm_rate`` (Beta), ``y_i ~ Bernoulli(p_arm[t_i])`` (a new
    graph; ``ids`` is not used by it)."""
    return model_with_data(prior_set, y, t, model="beta_binomial", cached=False)


def _contrasts(p0, p1, name_p: str | None = "p_arm"):
    if name_p:
        pm.Deterministic(name_p, pm.math.stack([p0, p1]), dims="arm")
    pm.Deterministic("rd", p1 - p0)
    pm.Deterministic("rr", p1 / p0)
    pm.Deterministic("or_", (p1 / (1 - p1)) / (p0 / (1 - p0)))


# --------------------------------------------------------------------------- IPTW bootstrap


def _weighted_logistic_mle(y, t, w) -> tuple[float, float]:
    """Maximiser of sum w [y log p + (1 - y) log(1 - p)], logit p = a + b t (closed form: the
    weighted arm proportions). Fails if an arm's weighted proportion is 0 or 1."""
    p = []
    for k in (0, 1):
        m = t == k
        p.append(np.sum(w[m] * y[m]) / np.sum(w[m]))
    if not all(0 < q < 1 for q in p):
        raise InputError("IPTW bootstrap: an arm has all or no responders; the MSM has no MLE.")
    return special.logit(p[0]), special.logit(p[1]) - special.logit(p[0])


def bootstrap_replicates(y, t, keep, design_fn, n_boot: int, seed: int):
    """Prior-free IPTW Bayesian-bootstrap replicates (Saarela et al. 2015) of the logistic MSM:
    arrays ``(intercept, log_or)`` of length ``n_boot``; ``keep`` marks the analysed rows of the
    cohort the design function refits on."""
    a = np.empty(n_boot)
    b = np.empty(n_boot)
    for r, (g, v) in enumerate(replicate_weights(design_fn, keep.size, n_boot, seed)):
        w = (g * v)[keep]
        a[r], b[r] = _weighted_logistic_mle(y, t, w)
    return a, b


#: the priors an IPTW bootstrap response fit combines with its replicates (:func:`_bootstrap`)
BOOTSTRAP_PRIORS = ("response.intercept", "response.log_or")


def _bootstrap(a, b, seed: int, prior_set: PriorSet):
    """The replicates ``(a, b)`` of :func:`bootstrap_replicates` combined with the
    ``response.intercept`` and ``response.log_or`` priors of ``prior_set`` by
    :func:`bayes_haic.bootstrap_prior.combine_with_prior`; returns (InferenceData with a
    ``bootstrap`` group holding the prior-free replicates, the combination)."""
    n_boot = a.size
    raw = xr.Dataset({"intercept": ("replicate", a), "log_or": ("replicate", b)})
    comb = combine_with_prior(np.column_stack([a, b]),
                              [prior_set.get(k) for k in BOOTSTRAP_PRIORS],
                              seed=seed, names=["intercept", "log_or"])
    a, b = comb.draws[:, 0], comb.draws[:, 1]
    p0, p1 = special.expit(a), special.expit(a + b)
    dims = ("chain", "draw")
    post = xr.Dataset(
        {
            "intercept": (dims, a[None]),
            "log_or": (dims, b[None]),
            "p_arm": (dims + ("arm",), np.stack([p0, p1], -1)[None]),
            "rd": (dims, (p1 - p0)[None]),
            "rr": (dims, (p1 / p0)[None]),
            "or_": (dims, np.exp(b)[None]),
        },
        coords={"chain": [0], "draw": np.arange(n_boot), "arm": list(ARMS)},
    )
    return az.InferenceData(posterior=post, bootstrap=raw, warn_on_custom_groups=False), comb


# --------------------------------------------------------------------------- fitting


def fit_response(
    frame: pd.DataFrame,
    *,
    adjust: str = "none",
    covariates=None,
    weights=None,
    ps=None,
    matched_ids=None,
    prior_set: PriorSet | str | None = None,
    sampler: sampling.SamplerSettings | None = None,
    model: str = "logistic",
    design_fn=None,
    n_boot: int = 400,
    replicates=None,
    spline_df: int = splines.DEFAULT_DF,
    weights_estimand: str = "ATE",
) -> az.InferenceData:
    """Fit a Bayesian response model to a cohort (see the module docstring for the models).

    ``covariates``: column names (``adjust="covariates"``). ``weights``: IPT weights, one per
    row of ``frame`` or a column name (``"iptw"``). ``ps``: propensity scores in (0, 1), one per
    row or a column name (``"ps_covariate"``). ``matched_ids``: ids of the matched patients, or a
    :class:`~bayes_haic.matching.MatchResult` (``"psm"``). ``model``: ``"logistic"`` or
    ``"beta_binomial"`` (``"none"`` and ``"psm"`` only). ``design_fn``: for ``"iptw"``, a
    callable ``patient_weights -> ipt_weights`` (one per row of ``frame``) that refits the
    propensity model; given, the weights' uncertainty is propagated by ``n_boot`` Bayesian
    bootstrap replicates (seeded by ``sampler.seed``) instead of NUTS with fixed weights, and
    ``weights`` is not used (the full-sample weights are ``design_fn`` of all-ones).
    ``replicates``: the prior-free replicates ``(intercept, log_or)`` of an earlier fit of the
    same cohort and design (its ``bootstrap`` group), reused instead of recomputed.
    ``spline_df``: non-constant basis functions of the PS spline (``"ps_covariate"``), as ``df``
    in R's ``ns()`` (fewer, said in ``method``, for a score with too few distinct values); the
    survival model's ``spline_df`` means the same. ``weights_estimand``:
    the IPT weights' estimand (``"ATE"``, ``"ATT"``, ``"ATO"``; pass
    ``design.weight_settings["estimand"]``), written into the ``estimand`` (``"marginal (ATT)"``)
    and ``estimand_detail`` attrs of ``"iptw"`` fits; not used otherwise.

    Returns an InferenceData: ``posterior`` (``intercept``, ``log_or``, [``beta_z``], or
    ``p_arm`` per arm for the beta-binomial; always ``p_arm``, ``rd``, ``rr``, ``or_``),
    ``sample_stats`` (NUTS fits), ``log_likelihood`` (``y``, per patient, unweighted),
    ``posterior_predictive`` (``y``), ``observed_data`` (``y``), ``constant_data``
    (``treatment``, ``weights``), and ``attrs``: ``endpoint``, ``adjustment``, ``estimand``
    (:func:`bayes_haic.labels.marginal_estimand`: "marginal" unadjusted, "marginal (ATE)" etc.
    for IPTW and for the standardised covariate and PS-covariate models, "marginal (matched
    set)" for PSM), ``estimand_detail``, ``model``,
    ``method``, ``prior``, ``n_treated``, ``n_control`` (analysed), ``n_missing_treated``,
    ``n_missing_control`` (excluded: response not evaluable), ``covariates``.
    """
    if adjust not in ADJUSTMENTS:
        raise InputError(f"adjust: expected one of {', '.join(ADJUSTMENTS)}; found {adjust!r}.")
    if model not in ("logistic", "beta_binomial"):
        raise InputError(f"model: expected 'logistic' or 'beta_binomial'; found {model!r}.")
    if model == "beta_binomial" and adjust not in ("none", "psm"):
        raise InputError("model: 'beta_binomial' is for adjust='none' or 'psm' only.")
    if adjust != "iptw" and (weights is not None or design_fn is not None):
        raise InputError("weights / design_fn: given with adjust other than 'iptw'.")
    t_all, y_all = _check_frame(frame)
    w_estimand = check_weights_estimand(weights_estimand)
    settings = sampler or sampling.SamplerSettings()
    ps_set = as_prior_set(prior_set)

    rows = np.ones(len(frame), bool)
    if adjust == "psm":
        rows = _matched_mask(frame, matched_ids)
    w_all = None
    if adjust == "iptw":
        if weights is None and design_fn is None:
            raise InputError("weights: adjust='iptw' needs weights (an array or a column name).")
        if design_fn is not None:
            w_all = call_design_fn(design_fn, np.ones(len(frame)), len(frame))
        else:
            w_all = column_or_array(frame, weights, "weights")
            if np.any(w_all < 0):
                raise InputError("weights: expected non-negative IPT weights.")
    ps_all = None
    if adjust == "ps_covariate":
        ps_all = propensity_scores(frame, ps)
    if adjust == "covariates":
        if not covariates:
            raise InputError("covariates: adjust='covariates' needs a list of covariate columns.")
        covariates = list(covariates)
        missing = [c for c in covariates if c not in frame.columns]
        if missing:
            raise InputError(f"covariates: not in the cohort: {', '.join(missing)}.")

    missing_y = np.isnan(y_all)
    n_miss = {k: int(np.sum(rows & missing_y & (t_all == k))) for k in (0, 1)}
    keep = rows & ~missing_y
    y, t, ids = y_all[keep], t_all[keep], _ids(frame)[keep]
    for k, arm in ((1, "treated"), (0, "control")):
        if not np.any(t == k):
            raise InputError(f"cohort: no evaluable {arm} patients for the response model.")

    Z, z_names, spline_note = None, [], ""
    if adjust == "covariates":
        Z, z_names = standardised(frame.loc[keep], covariates)
    elif adjust == "ps_covariate":
        Z, z_names, spline_note = ps_spline(ps_all[keep], spline_df, prefix="spline")

    w = None
    if w_all is not None:
        w = w_all[keep]
        if not w.sum() > 0:
            raise InputError("weights: the analysed patients' weights are all zero.")
        w = kish_scaled(w)

    if adjust == "iptw" and design_fn is not None:
        a, b = replicates if replicates is not None else \
            bootstrap_replicates(y, t, keep, design_fn, int(n_boot), settings.seed)
        idata, comb = _bootstrap(np.asarray(a, float), np.asarray(b, float), settings.seed, ps_set)
        method = f"{BOOTSTRAP_METHOD}; {comb.text()}"
        inference = fitinfo.BOOTSTRAP
    else:
        pm_model = model_with_data(ps_set, y, t, model=model, Z=Z, weights=w)
        if model == "beta_binomial":
            method = "beta-binomial per arm, NUTS"
        else:
            method = "logistic, NUTS" + (f"; {FIXED_WEIGHT_METHOD}" if w is not None else "")
        idata = sampling.sample(pm_model, settings)
        if Z is not None:
            idata.posterior = idata.posterior.assign_coords(term=list(z_names))
        inference = fitinfo.NUTS
    if adjust == "psm":
        method += "; on the matched set"
    method += spline_note
    attrs = {
        "model": "response",
        "inference": inference,
        "endpoint": "orr",
        "adjustment": adjust,
        "estimand": marginal_estimand(adjust, w_estimand),
        "estimand_detail": ESTIMAND_DETAIL[adjust].format(
            e=w_estimand, population=WEIGHTS_POPULATIONS[w_estimand]),
        "response_model": model,
        "method": method,
        "prior": ps_set.label(),
        "priors_used": priors_used(BOOTSTRAP_PRIORS if inference == fitinfo.BOOTSTRAP else
                                   ResponseSpec(model, 0 if Z is None else Z.shape[1]).prior_vars().values()),
        "n_treated": int(np.sum(t == 1)),
        "n_control": int(np.sum(t == 0)),
        "n_missing_treated": n_miss[1],
        "n_missing_control": n_miss[0],
        "missing_response": "excluded (complete-case); counted per arm",
        "covariates": list(z_names),
    }
    return _finish(idata, y, t, ids, Z, w, attrs, settings.seed)


def _linear_predictor(post: xr.Dataset, t, Z):
    """Per-draw, per-patient P(response) from the posterior (chain, draw, patient)."""
    if "intercept" not in post:  # beta-binomial
        p = post["p_arm"].values  # chain, draw, arm
        return p[..., np.asarray(t, int)]
    eta = post["intercept"].values[..., None] + post["log_or"].values[..., None] * t
    if Z is not None:
        eta = eta + np.einsum("cdk,nk->cdn", post["beta_z"].values, Z)
    return special.expit(eta)


def _finish(idata, y, t, ids, Z, w, attrs, seed):
    post = idata.posterior
    drop = [v for v in ("y_obs",) if v in post]
    post = post.drop_vars(drop)
    p = _linear_predictor(post, t, Z)
    ll = y * np.log(p) + (1 - y) * np.log1p(-p)
    rng = np.random.default_rng(seed)
    pp = (rng.random(p.shape) < p).astype(float)
    chain, draw = post["chain"].values, post["draw"].values
    dims3 = ("chain", "draw", "patient")
    coords3 = {"chain": chain, "draw": draw, "patient": ids}
    post.attrs.update(attrs)
    groups = {
        "posterior": post,
        "log_likelihood": xr.Dataset({"y": (dims3, ll)}, coords=coords3),
        "posterior_predictive": xr.Dataset({"y": (dims3, pp)}, coords=coords3),
        "observed_data": xr.Dataset({"y": ("patient", y)}, coords={"patient": ids}),
        "constant_data": xr.Dataset(
            {
                "treatment": ("patient", np.asarray(t, float)),
                "weights": ("patient", np.ones(len(y)) if w is None else np.asarray(w, float)),
            },
            coords={"patient": ids},
        ),
    }
    if "bootstrap" in idata.groups():  # the prior-free IPTW replicates, for reuse
        groups["bootstrap"] = idata["bootstrap"]
    return sampling.with_groups(idata, groups, attrs)


# --------------------------------------------------------------------------- summaries


def prob_rd_above(idata: az.InferenceData, threshold: float = IMPORTANT_RD) -> float:
    """Posterior P(RD > threshold), e.g. P(RD > 0.2) for a clinically important difference."""
    return float(np.mean(idata.posterior["rd"].values > threshold))


def response_summary(idata: az.InferenceData, important: float = IMPORTANT_RD) -> dict:
    """Posterior medians / 95% intervals of the marginal arm probabilities, RD, RR, OR, plus
    P(RD > 0) and P(RD > ``important``) (``p_rd_above_important``; the clinically important
    difference, a proportion: ``[response] important_difference``, default the study's 0.2),
    and the excluded (not evaluable) counts."""
    post = idata.posterior
    out = {}
    for k, arm in enumerate(ARMS):
        s = summarise_draws(post["p_arm"].values[..., k])
        out.update({f"p_{arm}_{q}": s[q] for q in ("median", "lower", "upper")})
    for name in ("rd", "rr", "or_"):
        s = summarise_draws(post[name].values)
        out.update({f"{name.rstrip('_')}_{q}": s[q] for q in ("median", "lower", "upper")})
    out["p_rd_above_0"] = prob_rd_above(idata, 0.0)
    out["important_rd"] = float(important)
    out["p_rd_above_important"] = prob_rd_above(idata, important)
    for key in ("n_treated", "n_control", "n_missing_treated", "n_missing_control"):
        out[key] = idata.attrs.get(key)
    return out


def response_rows(idata: az.InferenceData, data_tier: str, source: str, *,
                  analysis: str = "main") -> list[dict]:
    """Result rows for ``rd``, ``rr`` and ``or`` (``prob_benefit`` = P(RD > 0), which for the
    marginal probabilities is the same event as RR > 1 and OR > 1). P(RD > 0.2) is in
    :func:`response_summary` / :func:`prob_rd_above`."""
    a = idata.attrs
    model = str(a.get("response_model", "logistic")).replace("_", "-")
    if "sample_stats" not in idata.groups() and a.get("adjustment") == "iptw":
        model += "-bootstrap"
    diag = {"rhat_max": math.nan, "ess_bulk_min": math.nan, "divergences": math.nan}
    if "sample_stats" in idata.groups():
        c = sampling.convergence(idata, var_names=["rd", "rr", "or_"])
        diag = {
            "rhat_max": c["rhat_max"],
            "ess_bulk_min": c["ess_bulk_min"],
            "divergences": c["divergences"],
        }
    p_benefit = prob_rd_above(idata, 0.0)
    rows = []
    for var, measure in (("rd", "rd"), ("rr", "rr"), ("or_", "or")):
        s = summarise_draws(idata.posterior[var].values)
        rows.append(
            result_row(
                data_tier=data_tier,
                analysis=analysis,
                endpoint="orr",
                measure=measure,
                adjustment=a.get("adjustment"),
                model=model,
                cut_set="",
                estimand=a.get("estimand", "marginal"),
                prior=a.get("prior"),
                median=s["median"],
                lower=s["lower"],
                upper=s["upper"],
                prob_benefit=p_benefit,
                method=a.get("method")
                + (
                    f"; excluded (response not evaluable): {a.get('n_missing_treated')} treated, "
                    f"{a.get('n_missing_control')} control"
                ),
                n_treated=a.get("n_treated"),
                n_control=a.get("n_control"),
                source=source,
                **diag,
            )
        )
    return rows


def ml_logistic(frame: pd.DataFrame, covariates=None):
    """Maximum-likelihood logistic fit of response on treatment (+ standardised covariates) by
    statsmodels, on the evaluable patients; for checks against the Bayesian fit."""
    import statsmodels.api as sm

    t, y = _check_frame(frame)
    keep = ~np.isnan(y)
    cols = [t[keep].astype(float)]
    if covariates:
        cols += list(standardised(frame.loc[keep], covariates)[0].T)
    X = sm.add_constant(np.column_stack(cols))
    return sm.GLM(y[keep], X, family=sm.families.Binomial()).fit()


__all__ = [
    "ADJUSTMENTS",
    "fit_response",
    "response_rows",
    "response_summary",
    "prob_rd_above",
    "build_logistic_model",
    "build_beta_binomial_model",
    "ml_logistic",
]
