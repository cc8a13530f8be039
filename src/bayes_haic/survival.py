r"""Bayesian piecewise-exponential (PWE) survival models for OS and PFS (time unit: months).

Model
-----
Follow-up is split at cut points :math:`0 = c_0 < c_1 < \dots < c_{J-1}`; interval
:math:`j` is :math:`(c_j, c_{j+1}]` and the last interval is open, :math:`(c_{J-1}, \infty)`.
The hazard of a patient in arm :math:`k` (1 = treated, 0 = control) is piecewise constant,

.. math:: h_k(t) = \lambda_j \exp(\beta k), \qquad t \in (c_j, c_{j+1}],

with ``log_lambda`` :math:`= \log\lambda_j` (per month) and ``log_hr`` :math:`= \beta`.
With :math:`D_{jk}` events and :math:`E_{jk}` months of exposure in interval :math:`j`, arm
:math:`k`, the PWE likelihood equals, up to a constant, the Poisson likelihood of
:math:`D_{jk}` with mean :math:`\mu_{jk} = E_{jk}\lambda_j e^{\beta k}` (Holford 1980,
Biometrics 36:299; Laird & Olivier 1981, JASA 76:231), so the model is fitted on the
:math:`2J` collapsed counts rather than on one row per patient and interval:

.. math:: \log L = \sum_{jk} w\text{-}D_{jk}\,\eta_{jk} - E_{jk} e^{\eta_{jk}},
          \qquad \eta_{jk} = \log\lambda_j + \beta k .

With weights (IPTW) :math:`D` and :math:`E` are weighted sums, and the expression is a
weighted pseudo-likelihood (entered as a ``pm.Potential``; non-integer counts are not Poisson).

Baseline: ``"rw"`` (default) a Gaussian random walk,
:math:`\log\lambda_1 \sim` ``survival.log_baseline_hazard``,
:math:`\log\lambda_{j+1} = \log\lambda_j + \sigma z_j`, :math:`z_j \sim N(0, 1)` (non-centred),
:math:`\sigma \sim` ``survival.baseline_rw_sd``; or ``"independent"``,
:math:`\log\lambda_j \sim` ``survival.log_baseline_hazard`` for every interval.
``log_hr`` :math:`\sim` ``survival.log_hr`` (or the endpoint's own ``survival.log_hr_os`` /
``survival.log_hr_pfs`` when the prior set defines it).

Estimands
---------
``adjust="none"``: the crude marginal hazard ratio in the cohort (no confounding control).
``adjust="iptw"``: the marginal hazard ratio in the weighted pseudo-population, for the weights'
estimand (``weights_estimand``: ATE, the whole cohort's population; ATT, the treated patients';
ATO, the overlap population), recorded as ``estimand = "marginal (ATT)"`` etc. With fixed
weights the result is a pseudo-posterior that ignores the uncertainty in the estimated weights;
:mod:`bayes_haic.survival_bootstrap` propagates it (Saarela et al. 2015, Biometrics 71:279).

Reuse
-----
The PyMC model for a structure (number of intervals, baseline kind, prior families) is built
once and cached; the data (``events``, ``exposure``) and the prior parameters are
``pm.Data`` containers that are updated for each fit, so a sensitivity grid over data sets and
prior parameters does not rebuild the graph (and, with the nutpie backends, the default, does
not recompile it).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from scipy import special

from . import covariates as covariates_mod
from . import fitinfo, sampling, splines
from . import patterns as patterns_mod
from .errors import InputError, describe_rows
from .labels import IMPORTANT_HR, MATCHED_SET, marginal_estimand
from .priors import PriorSet, as_prior_set
from .results import result_row, summarise_draws
from .sampler_settings import DEFAULT_SEED, RANDOM_WALK_TARGET_ACCEPT
from .schema import ENDPOINT_COLUMNS

ARMS = ("control", "treated")  # treatment 0, 1
BASELINES = ("rw", "independent")
ADJUSTMENTS = ("none", "iptw", "ps_covariate", "covariates", "psm")
FIXED_WEIGHT_METHOD = (
    "IPTW fixed-weight pseudo-posterior, weights scaled to the Kish effective sample size "
    "(approximation: ignores the design (propensity) uncertainty)"
)

# --------------------------------------------------------------------------- cut points


def validate_cuts(cuts, where: str = "cut points") -> np.ndarray:
    """Check cut points: finite, 1-d, first is 0, strictly increasing; returns a float array."""
    try:
        c = np.asarray(cuts, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"{where}: expected a list of numbers (months), found {cuts!r}.") from None
    if c.ndim != 1 or c.size == 0:
        raise InputError(f"{where}: expected a non-empty 1-d list of months, found {cuts!r}.")
    if not np.all(np.isfinite(c)):
        raise InputError(
            f"{where}: every cut point must be a finite number of months (the last interval is "
            f"open-ended already; do not add inf); found {c.tolist()}."
        )
    if c[0] != 0:
        raise InputError(f"{where}: the first cut point must be 0 (months); found {c[0]:g}.")
    if np.any(np.diff(c) <= 0):
        raise InputError(f"{where}: cut points must be strictly increasing; found {c.tolist()}.")
    return c


def cut_points(time, event, method: str = "quantile", n_intervals: int = 8, grid=None) -> np.ndarray:
    """Left ends of the PWE intervals, in months, starting at 0.

    ``method="quantile"``: cuts at the ``k / n_intervals`` quantiles of the observed event times
    (k = 1..n_intervals-1), so each interval holds about the same number of events; ties are
    merged, so fewer intervals may result. ``method="grid"`` (or any ``grid`` given): the fixed
    ``grid``, e.g. ``[0, 3, 6, 9, 12, 18, 24, 36]``. The last interval is open to the end of
    follow-up (its hazard is extrapolated as constant beyond it).
    """
    if grid is not None or method == "grid":
        if grid is None:
            raise InputError("cut points: method='grid' needs grid=[0, ...] (months).")
        return validate_cuts(grid, "grid")
    if method != "quantile":
        raise InputError(f"cut points: unknown method {method!r}; expected 'quantile' or 'grid'.")
    if isinstance(n_intervals, bool) or not isinstance(n_intervals, (int, np.integer)) or n_intervals < 1:
        raise InputError(f"cut points: n_intervals must be a positive integer; found {n_intervals!r}.")
    t, d, _, _ = check_arrays(time, event, np.zeros(np.size(time)), None)
    te = t[d == 1]
    if te.size == 0:
        raise InputError("cut points: no events observed; quantile cut points need events.")
    q = np.quantile(te, np.arange(1, n_intervals) / n_intervals)
    c = np.unique(np.concatenate([[0.0], q[q > 0]]))
    return validate_cuts(c)


def interval_labels(cuts) -> list[str]:
    """Labels such as ``"0-3"``, ..., ``"36+"`` for intervals starting at ``cuts`` (months)."""
    c = np.asarray(cuts, float)
    labels = [f"{a:.4g}-{b:.4g}" for a, b in itertools.pairwise(c)]
    labels.append(f"{c[-1]:.4g}+")
    if len(set(labels)) < len(labels):  # cut points closer than 4 significant digits
        labels = [f"{a!r}-{b!r}" for a, b in itertools.pairwise(c)] + [f"{c[-1]!r}+"]
    return labels


# --------------------------------------------------------------------------- data


def check_arrays(time, event, treatment, weights, names=("time", "event", "treatment")):
    """``(time, event, treatment, weights)`` as flat arrays (months; event and treatment as 0/1
    integers; weights None or non-negative floats), or an InputError naming the column and rows."""
    t = np.asarray(time, dtype=float).ravel()
    d = np.asarray(event, dtype=float).ravel()
    x = np.asarray(treatment, dtype=float).ravel()
    if not (t.size == d.size == x.size):
        raise InputError(
            f"{names[0]}, {names[1]}, {names[2]}: lengths differ ({t.size}, {d.size}, {x.size})."
        )
    bad = np.flatnonzero(~np.isfinite(t) | (t < 0))
    if bad.size:
        raise InputError(
            f"column '{names[0]}', {describe_rows(bad + 1)}: expected a non-negative number of "
            f"months, found {t[bad[:3]].tolist()}."
        )
    bad = np.flatnonzero(~np.isin(d, (0.0, 1.0)))
    if bad.size:
        raise InputError(
            f"column '{names[1]}', {describe_rows(bad + 1)}: expected 1 (event) or 0 (censored), "
            f"found {d[bad[:3]].tolist()}."
        )
    bad = np.flatnonzero(~np.isin(x, (0.0, 1.0)))
    if bad.size:
        raise InputError(
            f"column '{names[2]}', {describe_rows(bad + 1)}: expected 1 (treated) or 0 (control), "
            f"found {x[bad[:3]].tolist()}."
        )
    w = None
    if weights is not None:
        w = np.asarray(weights, dtype=float).ravel()
        if w.size != t.size:
            raise InputError(f"weights: expected {t.size} values (one per patient), found {w.size}.")
        bad = np.flatnonzero(~np.isfinite(w) | (w < 0))
        if bad.size:
            raise InputError(
                f"weights, {describe_rows(bad + 1)}: expected finite non-negative numbers, "
                f"found {w[bad[:3]].tolist()}."
            )
    return t, d.astype(int), x.astype(int), w


def interval_index(t, cuts) -> np.ndarray:
    """Interval of each time ``t`` (months) under the (c_j, c_{j+1}] convention (t = 0 goes to the
    first interval): integer array like ``t``."""
    cuts = np.asarray(cuts, float)
    return np.clip(np.searchsorted(cuts, np.asarray(t, float), side="left") - 1, 0, cuts.size - 1)


def exposure_matrix(t, cuts) -> np.ndarray:
    """Months at risk of each patient (rows, follow-up ``t``) in each interval (columns): (n, J)."""
    t, cuts = np.asarray(t, float), np.asarray(cuts, float)
    ends = np.append(cuts[1:], np.inf)
    return np.clip(np.minimum(t[:, None], ends[None, :]) - cuts[None, :], 0.0, None)


def collapse(time, event, treatment, cuts, weights=None) -> xr.Dataset:
    """Collapsed sufficient statistics of the PWE model.

    Returns an ``xarray.Dataset`` with ``events`` (D_jk, weighted number of events) and
    ``exposure`` (E_jk, weighted months at risk), both with dims ``(arm, intervals)``; coords
    ``arm = ("control", "treated")``, ``intervals`` (labels) and ``start`` / ``end`` (months;
    the last ``end`` is inf); attrs ``cuts``, ``n_control``, ``n_treated``, ``weighted``.
    Memory O(n): one pass per interval, never an n x J matrix.
    """
    cuts = validate_cuts(cuts)
    t, d, x, w = check_arrays(time, event, treatment, weights)
    wt = np.ones_like(t) if w is None else w
    J = cuts.size
    ends = np.append(cuts[1:], np.inf)
    E = np.zeros((2, J))
    for j in range(J):
        e = np.clip(np.minimum(t, ends[j]) - cuts[j], 0.0, None) * wt
        E[:, j] = np.bincount(x, weights=e, minlength=2)[:2]
    D = np.zeros((2, J))
    np.add.at(D, (x, interval_index(t, cuts)), d * wt)
    coords = {
        "arm": list(ARMS),
        "intervals": interval_labels(cuts),
        "start": ("intervals", cuts),
        "end": ("intervals", ends),
    }
    return xr.Dataset(
        {"events": (("arm", "intervals"), D), "exposure": (("arm", "intervals"), E)},
        coords=coords,
        attrs={
            "cuts": cuts.tolist(),
            "n_control": int(np.sum(x == 0)),
            "n_treated": int(np.sum(x == 1)),
            "weighted": int(w is not None),
            "max_follow_up": float(t.max()) if t.size else 0.0,
        },
    )


def expand_person_intervals(time, event, treatment, cuts, weights=None, covariates=None, ids=None) -> pd.DataFrame:
    """One row per patient and interval at risk (the long format of the PWE likelihood).

    Columns: ``id``, ``interval`` (0-based index), ``interval_label``, ``start``, ``treatment``,
    ``exposure`` (months at risk in the interval), ``event`` (1 if the event falls in it),
    ``weight`` (1 if no weights), plus the columns of ``covariates`` (a DataFrame or dict of
    per-patient arrays). Patients contribute rows up to their event/censoring interval.
    """
    cuts = validate_cuts(cuts)
    t, d, x, w = check_arrays(time, event, treatment, weights)
    n = t.size
    last = interval_index(t, cuts)
    expo = exposure_matrix(t, cuts)
    pid, j = np.nonzero(np.arange(cuts.size)[None, :] <= last[:, None])
    labels = np.array(interval_labels(cuts))
    out = pd.DataFrame(
        {
            "id": (np.arange(n) if ids is None else np.asarray(ids))[pid],
            "interval": j,
            "interval_label": labels[j],
            "start": cuts[j],
            "treatment": x[pid],
            "exposure": expo[pid, j],
            "event": ((j == last[pid]) & (d[pid] == 1)).astype(int),
            "weight": (np.ones(n) if w is None else w)[pid],
        }
    )
    if covariates is not None:
        cov = pd.DataFrame(covariates).reset_index(drop=True)
        if len(cov) != n:
            raise InputError(f"covariates: expected {n} rows (one per patient), found {len(cov)}.")
        for col in cov.columns:
            out[col] = cov[col].to_numpy()[pid]
    return out


def endpoint_columns(frame: pd.DataFrame, endpoint: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(time, event, treatment) arrays of ``endpoint`` (``"os"`` or ``"pfs"``) from a cohort frame."""
    if endpoint not in ENDPOINT_COLUMNS:
        raise InputError(f"endpoint: expected one of {', '.join(ENDPOINT_COLUMNS)}; found {endpoint!r}.")
    tcol, ecol = ENDPOINT_COLUMNS[endpoint]
    missing = [c for c in (tcol, ecol, "treatment") if c not in frame.columns]
    if missing:
        raise InputError(f"cohort: missing column(s) {', '.join(missing)} for endpoint '{endpoint}'.")
    t, d, x, _ = check_arrays(frame[tcol], frame[ecol], frame["treatment"], None, (tcol, ecol, "treatment"))
    return t, d, x


# --------------------------------------------------------------------------- PyMC model


def priors_used(keys) -> str:
    """A fit's ``priors_used`` attribute: the prior-set keys its computation drew on, sorted and
    comma-separated (the methods page lists only these)."""
    return ", ".join(sorted(set(keys)))


def _prior_rvs(spec: "ModelSpec", prior_set: PriorSet):
    """``prior(var, **kw)``: the random variable ``var`` of ``spec`` with its prior from
    ``prior_set``, the prior's parameters held in ``pm.Data`` containers ``<var>__<param>`` so
    they can be changed without a rebuild (:meth:`bayes_haic.priors.Prior.to_pymc_data`)."""
    pv = spec.prior_vars()
    return lambda var, **kw: prior_set.get(pv[var]).to_pymc_data(var, **kw)


def _baseline_log_lambda(spec: "ModelSpec", prior):
    """The baseline log hazard per month of each interval (dims ``intervals``): independent
    priors, one value (one interval) or a random walk, as ``spec.baseline`` says."""
    if spec.baseline == "independent":
        return prior("log_lambda", dims="intervals")
    if spec.n_intervals == 1:
        return pm.Deterministic("log_lambda", prior("log_lambda_first")[None], dims="intervals")
    return _random_walk("log_lambda", prior("log_lambda_first"), prior("baseline_rw_sd"), spec.n_intervals)


@dataclass(frozen=True)
class ModelSpec:
    """What is fixed when a PWE model graph is built (data and prior parameters are not).

    ``layout="collapsed"``: the likelihood on the 2 x J arm-interval statistics of
    :func:`collapse` (unadjusted, IPTW, PSM without pair effects): unweighted, an observed
    ``pm.Poisson`` variable ``events``; ``weighted=True`` (IPTW), a ``pm.Potential`` (weighted
    counts are not Poisson). ``layout="patient"`` (unweighted only): an observed per-patient
    variable ``survival`` (a ``pm.CustomDist`` of the event indicator) with log density
    ``d_i eta_i,j(i) - sum_j e_ij exp(eta_ij)``, where
    ``eta_ij = log_lambda_j + x_i log_hr_j + z_i' coef + u_pair(i)`` (the per-patient collapse
    of the person-interval rows; needed when the linear predictor varies within an arm). An
    observed variable lets PyMC compute the log-likelihood, prior and predictive draws.
    ``layout="pattern"``: the same patient-level model on the exact sufficient statistics of its
    (treatment, covariate row) patterns (:mod:`bayes_haic.patterns`; a ``pm.Potential`` equal
    to the patient layout's log-likelihood); :func:`fit_pwe` samples on it when there are at most
    :data:`PATTERN_MAX_SHARE` patterns per patient, and the fit stays a ``"patient"`` fit
    (attrs ``layout``; ``likelihood_patterns`` gives the number of patterns).
    """

    n_intervals: int
    baseline: str = "rw"
    layout: str = "collapsed"
    time_varying: bool = False
    n_covariates: int = 0
    covariate_prior: str = "survival.covariate"
    n_pairs: int = 0
    weighted: bool = False
    # the treatment log-HR's prior key (PriorSet.log_hr_key of the endpoint); not part of the
    # structure: the graph only depends on the prior's family, which key() includes
    hr_prior: str = field(default="survival.log_hr", compare=False)

    def prior_vars(self) -> dict[str, str]:
        """Model variable -> prior key, for every variable whose prior comes from the prior set."""
        v = {}
        if self.time_varying:
            v["log_hr_first"] = self.hr_prior
            v["log_hr_rw_sd"] = "survival.log_hr_rw_sd"
        else:
            v["log_hr"] = self.hr_prior
        if self.baseline == "rw":
            v["log_lambda_first"] = "survival.log_baseline_hazard"
            if self.n_intervals > 1:
                v["baseline_rw_sd"] = "survival.baseline_rw_sd"
        else:
            v["log_lambda"] = "survival.log_baseline_hazard"
        if self.n_covariates:
            v["coef"] = self.covariate_prior
        if self.n_pairs:
            v["pair_sd"] = "survival.pair_sd"
        return v

    def key(self, prior_set: PriorSet) -> tuple:
        return (self, tuple(prior_set.get(k).dist for k in self.prior_vars().values()))


def _model_coords(spec: ModelSpec) -> dict:
    # interval labels are placeholders: the graph is shared by data sets with other cuts, and
    # finish_idata() relabels the posterior with the data set's intervals
    J = spec.n_intervals
    coords = {
        "arm": list(ARMS),
        "intervals": [str(j) for j in range(J)],
        "steps": [str(j) for j in range(1, J)],
    }
    if spec.n_covariates:
        coords["covariates"] = [str(j) for j in range(spec.n_covariates)]
    if spec.n_pairs:
        coords["pairs"] = [str(j) for j in range(spec.n_pairs)]
    return coords


def _random_walk(name: str, first, sd, n: int, dims="intervals"):
    """Non-centred Gaussian random walk: x_1 = first, x_{j+1} = x_j + sd z_j, z_j ~ N(0, 1)."""
    z = pm.Normal(f"{name}_rw_z", 0.0, 1.0, dims="steps")
    return pm.Deterministic(name, pt.concatenate([first[None], first + pt.cumsum(sd * z)]), dims=dims)


def _build(spec: ModelSpec, prior_set: PriorSet) -> pm.Model:
    """The PWE model graph for ``spec`` (data and prior parameters as ``pm.Data``)."""
    J = spec.n_intervals
    prior = _prior_rvs(spec, prior_set)
    arm = pt.as_tensor(np.array([0.0, 1.0]))
    with pm.Model(coords=_model_coords(spec)) as model:
        log_lambda = _baseline_log_lambda(spec, prior)
        # treatment log hazard ratio, constant or a random walk across intervals
        if spec.time_varying:
            log_hr_t = _random_walk("log_hr_t", prior("log_hr_first"), prior("log_hr_rw_sd"), J)
            pm.Deterministic("hr_t", pt.exp(log_hr_t), dims="intervals")
            share = pm.Data("event_share", np.full(J, 1.0 / J))
            log_hr = pm.Deterministic("log_hr", pt.sum(share * log_hr_t))
        else:
            log_hr = prior("log_hr")
            log_hr_t = pt.ones(J) * log_hr
        pm.Deterministic("hr", pt.exp(log_hr))
        eta_arm = log_lambda[None, :] + arm[:, None] * log_hr_t[None, :]
        pm.Deterministic("hazard", pt.exp(eta_arm), dims=("arm", "intervals"))
        if spec.layout == "collapsed":
            exposure = pm.Data("exposure", np.ones((2, J)), dims=("arm", "intervals"))
            mu = pm.Deterministic("expected_events", exposure * pt.exp(eta_arm), dims=("arm", "intervals"))
            if spec.weighted:
                events = pm.Data("events", np.zeros((2, J)), dims=("arm", "intervals"))
                pm.Potential("loglik", pt.sum(events * eta_arm - mu))
            else:
                counts = pm.Data("event_counts", np.zeros((2, J), dtype="int64"), dims=("arm", "intervals"))
                pm.Poisson("events", mu=mu, observed=counts, dims=("arm", "intervals"))
            return model
        if spec.weighted:
            raise ValueError("ModelSpec: the patient layout is unweighted.")
        if spec.layout == "pattern":
            _pattern_likelihood(spec, eta_arm, prior)
            return model
        event = pm.Data("event", np.zeros(1, dtype="int64"))
        index = pm.Data("interval_index", np.zeros(1, dtype="int64"))
        exposure = pm.Data("exposure", np.ones((1, J)))
        x = pm.Data("treatment", np.zeros(1, dtype="int64"))
        lp = pt.zeros(x.shape)
        if spec.n_covariates:
            Z = pm.Data("covariates", np.zeros((1, spec.n_covariates)))
            lp = lp + pt.dot(Z, prior("coef", dims="covariates"))
        if spec.n_pairs:
            pair = pm.Data("pair_index", np.zeros(1, dtype="int64"))
            z = pm.Normal("pair_z", 0.0, 1.0, dims="pairs")
            u = pm.Deterministic("pair_effect", prior("pair_sd") * z, dims="pairs")
            lp = lp + u[pair]
        # H_i = exp(lp_i) sum_j e_ij exp(eta_{x_i j}): one (n x J) by (J x 2) product, exp of n values
        own = eta_arm[x, index] + lp
        elp = pt.exp(lp)
        cum = pt.dot(exposure, pt.exp(eta_arm).T)[pt.arange(x.shape[0]), x] * elp
        pm.CustomDist("survival", own, cum, logp=_pwe_logp, random=_pwe_random, dtype="int64",
                      observed=event)
        xf = pt.cast(x, "float64")
        at_risk = pt.stack([pt.dot((1 - xf) * elp, exposure), pt.dot(xf * elp, exposure)])  # (arm, J)
        pm.Deterministic("expected_events", at_risk * pt.exp(eta_arm), dims=("arm", "intervals"))
    return model


def _pattern_likelihood(spec: ModelSpec, eta_arm, prior) -> None:
    """The patient-level likelihood on exact pattern statistics (:mod:`bayes_haic.patterns`):
    a ``pm.Potential`` ``loglik`` = sum_pj D_pj eta_pj - E_pj exp(eta_pj), which equals the sum
    of the patients' log densities ``d_i eta_i,j(i) - sum_j e_ij exp(eta_ij)`` exactly."""
    D = pm.Data("pattern_events", np.zeros((1, spec.n_intervals)))
    E = pm.Data("exposure", np.ones((1, spec.n_intervals)))
    x = pm.Data("treatment", np.zeros(1, dtype="int64"))
    Z = pm.Data("covariates", np.zeros((1, spec.n_covariates)))
    lp = pt.dot(Z, prior("coef", dims="covariates"))
    eta = eta_arm[x] + lp[:, None]
    pm.Potential("loglik", pt.sum(D * eta - E * pt.exp(eta)))
    xf = pt.cast(x, "float64")
    elp = pt.exp(lp)
    at_risk = pt.stack([pt.dot((1 - xf) * elp, E), pt.dot(xf * elp, E)])  # (arm, J)
    pm.Deterministic("expected_events", at_risk * pt.exp(eta_arm), dims=("arm", "intervals"))


def _pwe_logp(value, own, cum):
    """Log density of a patient's (time, event) under the PWE model: ``d log h(t) - H(t)``
    (``own`` = log h at the patient's time, ``cum`` = cumulative hazard H(t))."""
    return value * own - cum


def _pwe_random(own, cum, rng=None, size=None):
    """Predictive event indicator at the patient's observed follow-up: 1 with probability
    ``1 - exp(-H(t))`` (follow-up held fixed)."""
    cum = np.asarray(cum, float)
    return (rng.random(size=size if size is not None else cum.shape) < -np.expm1(-cum)).astype("int64")


def model_spec(attrs) -> ModelSpec:
    """The structure a PWE fit was built with, from the attrs :func:`fit_pwe` wrote (the inverse
    of how it labels its fits: layout, baseline, intervals, covariates, pairs, weighting)."""
    a = attrs
    return ModelSpec(
        n_intervals=len(a["cuts"]),
        baseline=a.get("baseline", "rw"),
        layout=a.get("layout", "collapsed"),
        time_varying=bool(int(a.get("time_varying", 0))),
        n_covariates=len(a.get("covariates", ()) or ()),
        covariate_prior="survival.ps_spline" if a.get("adjustment") == "ps_covariate" else "survival.covariate",
        n_pairs=int(a.get("n_pairs", 0)),
        weighted=a.get("adjustment") == "iptw",
        hr_prior=a.get("hr_prior", "survival.log_hr"),
    )


def _check_baseline(baseline: str) -> None:
    if baseline not in BASELINES:
        raise InputError(f"baseline: expected one of {', '.join(BASELINES)}; found {baseline!r}.")


def _collapsed_values(collapsed: xr.Dataset, weighted: bool = False) -> dict:
    """The ``pm.Data`` values of a collapsed model: weighted ``events`` or integer ``event_counts``."""
    D = collapsed["events"].values
    values = {"exposure": collapsed["exposure"].values.astype(float)}
    if weighted:
        values["events"] = D.astype(float)
    else:
        values["event_counts"] = np.rint(D).astype("int64")
    return values


def _event_share(collapsed: xr.Dataset) -> np.ndarray:
    d = collapsed["events"].values.sum(axis=0)
    return d / d.sum() if d.sum() > 0 else np.full(d.size, 1.0 / d.size)


def _values(spec: ModelSpec, data: dict, prior_set: PriorSet) -> dict:
    values = dict(data)
    for var, key in spec.prior_vars().items():
        values.update(prior_set.get(key).data_values(var))
    return values


def build_pwe_model(
    collapsed: xr.Dataset,
    prior_set: PriorSet | str | None = None,
    baseline: str = "rw",
    time_varying: bool = False,
) -> pm.Model:
    """A new collapsed PWE PyMC model for the statistics of :func:`collapse`.

    Free variables: ``log_hr`` (or ``log_hr_first``, ``log_hr_rw_sd``, ``log_hr_t_rw_z`` when
    ``time_varying``); ``log_lambda_first``, ``baseline_rw_sd``, ``log_lambda_rw_z`` (random walk)
    or ``log_lambda`` (independent). Deterministics: ``hr``, ``log_lambda`` (dims ``intervals``),
    ``hazard`` (per month, dims ``(arm, intervals)``), ``expected_events`` (arm, intervals) and,
    if time-varying, ``log_hr_t`` / ``hr_t`` (intervals) with ``log_hr`` their event-weighted
    mean. Likelihood: observed ``events`` ~ Poisson(``expected_events``) (unweighted), or for
    weighted statistics a Potential ``loglik`` (the weighted Poisson log-likelihood without its
    constant). :func:`fit_pwe` uses a cached copy of the same graph instead of building a new one.
    """
    _check_baseline(baseline)
    ps = as_prior_set(prior_set)
    weighted = bool(collapsed.attrs.get("weighted", 0))
    spec = ModelSpec(collapsed.sizes["intervals"], baseline, time_varying=time_varying, weighted=weighted)
    model = _build(spec, ps)
    data = _collapsed_values(collapsed, weighted)
    if time_varying:
        data["event_share"] = _event_share(collapsed)
    sampling.set_data(model, _values(spec, data, ps))
    return model


def build_pwe_rows_model(rows: pd.DataFrame, n_intervals: int, prior_set: PriorSet | str | None = None, baseline: str = "rw") -> pm.Model:
    """The naive PWE model: a Poisson likelihood per patient-interval row of
    :func:`expand_person_intervals` (``event ~ Poisson(exposure * hazard)``), with the same
    priors and parameter names as :func:`build_pwe_model`. Unweighted. Used to check the
    Poisson-likelihood identity and as the benchmark baseline."""
    _check_baseline(baseline)
    ps = as_prior_set(prior_set)
    spec = ModelSpec(n_intervals, baseline)
    prior = _prior_rvs(spec, ps)
    r = rows[rows["exposure"].to_numpy() > 0]
    with pm.Model(coords=_model_coords(spec)) as model:
        j = pm.Data("interval", r["interval"].to_numpy().astype("int64"))
        x = pm.Data("treatment", r["treatment"].to_numpy().astype(float))
        log_e = pm.Data("log_exposure", np.log(r["exposure"].to_numpy()))
        log_hr = prior("log_hr")
        pm.Deterministic("hr", pt.exp(log_hr))
        log_lambda = _baseline_log_lambda(spec, prior)
        pm.Poisson("event", mu=pt.exp(log_e + log_lambda[j] + log_hr * x), observed=r["event"].to_numpy())
    return model


@dataclass
class _CompiledPWE:
    """A cached model graph (its nutpie compilation is cached by :mod:`bayes_haic.sampling`)."""

    model: pm.Model
    fits: int = field(default=0)


_CACHE: dict[tuple, _CompiledPWE] = {}


def _cached(spec: ModelSpec, prior_set: PriorSet) -> _CompiledPWE:
    key = spec.key(prior_set)
    if key not in _CACHE:
        model = _build(spec, prior_set)
        sampling.register_structure(model, _structure(spec, prior_set))
        _CACHE[key] = _CompiledPWE(model)
    return _CACHE[key]


def _structure(spec: ModelSpec, prior_set: PriorSet) -> str:
    """What decides the graph :func:`_build` makes of ``spec`` (its structure fields and each
    prior's family and parameter names; not the data or the prior's values), as a string for
    :func:`bayes_haic.sampling.register_structure`."""
    return repr(("survival._build", replace(spec, hr_prior=""), prior_set.families(spec.prior_vars())))


def clear_model_cache() -> None:
    """Forget the cached model graphs and their compilations (e.g. to measure compile time)."""
    _CACHE.clear()
    sampling.clear_compiled()


def _run_sampler(entry: _CompiledPWE, values: dict, settings: sampling.SamplerSettings) -> az.InferenceData:
    """Sample the cached graph with new data/prior values (:func:`bayes_haic.sampling.set_data`), by
    :func:`bayes_haic.sampling.sample`; with the nutpie backends (the default) the graph is
    compiled once per structure (:mod:`bayes_haic.sampling` caches it per model object)."""
    entry.fits += 1
    sampling.set_data(entry.model, values)
    return sampling.sample(entry.model, settings)


# --------------------------------------------------------------------------- fitting


def sampler_for(sampler: sampling.SamplerSettings | None, *, baseline: str, n_intervals: int,
                time_varying: bool = False) -> sampling.SamplerSettings:
    """The sampler settings a PWE fit runs with: ``sampler`` (default settings if None), with
    ``target_accept`` raised to at least 0.99 when the model has a random-walk prior (a
    ``"rw"`` baseline over two or more intervals, or a time-varying HR).

    Why: the random-walk sd has a funnel near zero. On the synthetic default cohort, OS and PFS
    with 8 and 16 quantile intervals, seeds 0-3, the non-centred walk at target_accept 0.9 gave
    2-100 divergent transitions in every one of the 16 fits (a centred walk, or anchoring the
    walk at its event-weighted mean level, still gave some); at 0.99 it gave none in any, for
    about twice the leapfrog steps. The settings used are stored in the fit's attrs
    (``sampler_*``).
    """
    s = sampler or sampling.SamplerSettings()
    random_walk = time_varying or (baseline == "rw" and n_intervals > 1)
    if random_walk and s.target_accept < RANDOM_WALK_TARGET_ACCEPT:
        s = replace(s, target_accept=RANDOM_WALK_TARGET_ACCEPT)
    return s


_PATIENT_ADJUSTMENTS = ("covariates", "ps_covariate")
PATTERN_MAX_SHARE = 0.5  # sample on exact patterns when there are at most this many per patient


def fit_pwe(
    frame: pd.DataFrame,
    endpoint: str,
    *,
    adjust: str = "none",
    weights=None,
    cuts=None,
    prior_set: PriorSet | str | None = None,
    sampler: sampling.SamplerSettings | None = None,
    baseline: str = "rw",
    time_varying: bool = False,
    covariates=None,
    ps=None,
    spline_df: int = splines.DEFAULT_DF,
    pair=None,
    pair_effect: bool = False,
    weights_estimand: str = "ATE",
) -> az.InferenceData:
    """Fit the PWE model to ``endpoint`` (``"os"`` / ``"pfs"``) of a cohort by NUTS.

    ``adjust``:

    * ``"none"``: unweighted; the crude marginal HR in the cohort.
    * ``"iptw"``: ``weights`` (one per row of ``frame``, or a column name) enter a weighted
      pseudo-likelihood, rescaled to sum to their Kish effective sample size
      (:func:`kish_scaled`; the maximiser is unchanged). This is :data:`FIXED_WEIGHT_METHOD`; for
      propagated weight uncertainty use :mod:`bayes_haic.survival_bootstrap`. Marginal,
      for the population of the weights' estimand ``weights_estimand`` (``"ATE"``, ``"ATT"`` or
      ``"ATO"``, as ``design.weight_settings["estimand"]``): the ``estimand`` attr reads
      ``"marginal (ATE)"`` etc. Used for ``"iptw"`` only.
    * ``"ps_covariate"``: a natural cubic spline of the logit propensity score ``ps`` (a column
      name or array of probabilities) in the linear predictor, coefficients ~
      ``survival.ps_spline``. Conditional HR. ``spline_df`` counts its non-constant basis
      functions exactly as ``df`` in R's ``ns(qlogis(ps), df = spline_df)`` (knots at the range
      and at quantiles; :mod:`bayes_haic.splines`). Default 3: the same function space (the
      same estimates, up to knots moved by tied scores) as ``spline_df = 4`` meant before, when
      it counted the constant too (patsy ``cr(x, df = 4)``); on the Rotterdam cohort it
      reproduces R's ``ns(qlogis(ps), df = 3)`` fit. A score with too few distinct values for
      ``spline_df`` gets the functions it supports (``splines.supported_basis``; attrs
      ``spline_df`` and ``method`` say so). Above ``patterns.PS_BIN_MIN_N`` (20,000)
      patients each basis row is the mean of its quantile bin of the logit PS
      (``patterns.PS_BINS`` = 400 bins; an approximation, recorded in ``attrs["ps_spline_bins"]``
      and ``method``), so the likelihood collapses to at most 800 patterns.
    * ``"covariates"``: the named ``covariates`` columns, standardised (mean 0, SD 1),
      coefficients ~ ``survival.covariate``. Conditional HR.
    * ``"psm"``: ``frame`` is the matched subset. Without ``pair_effect``: the marginal HR in the
      matched sample (ATT when treated patients were matched). With ``pair_effect=True``: a random
      effect per matched pair (column ``pair``; non-centred, sd ~ ``survival.pair_sd``), giving a
      pair-conditional HR.

    ``time_varying=True``: the log-HR follows a random walk across intervals (first level
    ~ ``survival.log_hr``, step sd ~ ``survival.log_hr_rw_sd``); posterior ``log_hr_t``/``hr_t``,
    and ``log_hr`` becomes their mean weighted by the share of events per interval (a summary).
    ``cuts``: None (8 quantile intervals of the event times), or a list starting at 0.

    Returns an InferenceData with ``posterior`` (``log_hr``, ``hr``, ``log_lambda`` [intervals],
    ``hazard`` [arm, intervals] at covariates 0 / pair effect 0, ``expected_events`` [arm,
    intervals], model parameters), ``sample_stats``, ``log_likelihood`` (``survival``: the
    exact per-patient log-likelihood; unweighted fits only, see :func:`finish_idata`),
    ``posterior_predictive`` and ``observed_data`` (``events`` per arm-interval),
    ``constant_data`` (``exposure`` per arm-interval; the patients' ``time``, ``event``,
    ``treatment``, ``weight`` for IPTW, covariate values / pair index) and ``attrs``
    (endpoint, adjustment, estimand, estimand_detail, cuts, baseline, prior, method,
    ``inference``, n_treated, n_control, max_follow_up, layout, time_varying, ...).
    """
    if adjust not in ADJUSTMENTS:
        raise InputError(f"adjust: expected one of {', '.join(ADJUSTMENTS)}; found {adjust!r}.")
    _check_baseline(baseline)
    t, d, x = endpoint_columns(frame, endpoint)
    w = _resolve_weights(frame, adjust, weights)
    cuts = cut_points(t, d) if cuts is None else validate_cuts(cuts)
    if time_varying and len(cuts) < 2:
        raise InputError("time_varying: a time-varying HR needs at least two intervals.")
    prior = as_prior_set(prior_set)
    settings = sampler_for(sampler, baseline=baseline, n_intervals=len(cuts), time_varying=time_varying)
    coll = collapse(t, d, x, cuts, w)
    J = len(cuts)

    Z, names, cov_prior, pair_index, n_pairs, binned = None, [], "survival.covariate", None, 0, False
    spline_note = ""
    if adjust == "covariates":
        Z, names = covariates_mod.standardised(frame, covariates)
    elif adjust == "ps_covariate":
        p_hat = covariates_mod.propensity_scores(frame, ps)
        Z, names, spline_note = covariates_mod.ps_spline(p_hat, spline_df)
        cov_prior = "survival.ps_spline"
        if t.size > patterns_mod.PS_BIN_MIN_N:  # the binned spline: an approximation, recorded
            Z, _ = patterns_mod.binned_rows(special.logit(p_hat), Z, patterns_mod.PS_BINS)
            binned = True
    elif adjust == "psm" and pair_effect:
        pair_index, pair_labels = _pair_index(frame, pair)
        n_pairs = len(pair_labels)
    elif covariates is not None or ps is not None:
        raise InputError(f"covariates/ps: only used with adjust='covariates' / 'ps_covariate', not '{adjust}'.")
    patient_layout = Z is not None or n_pairs > 0
    spec = ModelSpec(
        J, baseline, "patient" if patient_layout else "collapsed", time_varying,
        0 if Z is None else Z.shape[1], cov_prior, n_pairs, weighted=w is not None,
        hr_prior=prior.log_hr_key(endpoint),
    )
    pat = None
    if Z is not None and n_pairs == 0:
        pat = patterns_mod.collapse_patterns(t, d, x, Z, cuts)
        if pat.n_patterns > PATTERN_MAX_SHARE * t.size:
            pat = None  # (nearly) every patient is a pattern of its own: the patient layout
    sample_spec = spec if pat is None else replace(spec, layout="pattern")
    patient = {"time": t, "event": d.astype("int64"), "treatment": x.astype("int64")}
    if w is not None:
        patient["weight"] = w
    if Z is not None:
        patient["covariates"] = Z
    if n_pairs:
        patient["pair_index"] = pair_index
    if pat is not None:
        data = {"pattern_events": pat.events.astype(float), "exposure": pat.exposure,
                "treatment": pat.treatment, "covariates": pat.covariates}
    elif patient_layout:
        data = {k: v for k, v in patient.items() if k != "time"}
        data["interval_index"] = interval_index(t, cuts).astype("int64")
        data["exposure"] = exposure_matrix(t, cuts)
    else:
        data = _collapsed_values(coll, w is not None)
    if time_varying:
        data["event_share"] = _event_share(coll)
    entry = _cached(sample_spec, prior)
    idata = _run_sampler(entry, _values(sample_spec, data, prior), settings)
    attrs = fit_attrs(endpoint, adjust, cuts, prior, coll, spec, pair_effect, weights_estimand=weights_estimand)
    if names:
        attrs["covariates"] = list(names)
    if adjust == "ps_covariate":
        attrs["spline_df"] = len(names)  # fewer than asked only for a score with few values
        attrs["method"] += spline_note
    if binned:
        attrs["ps_spline_bins"] = int(patterns_mod.PS_BINS)
        attrs["method"] += (f"; approximation for n > {patterns_mod.PS_BIN_MIN_N:,}: each patient's "
                            f"PS-spline basis is the mean basis of its quantile bin of the logit PS "
                            f"({patterns_mod.PS_BINS} bins)")
    if pat is not None:
        attrs["likelihood_patterns"] = pat.n_patterns
        attrs["method"] += (f"; likelihood on the exact sufficient statistics of {pat.n_patterns:,} "
                            "(treatment, covariate) patterns")
    attrs.update(standardisation_attrs(t.size, settings.draws * settings.chains))
    if "standardisation" in attrs and spec.layout == "patient":
        attrs["method"] += f"; {attrs['standardisation']}"
    if n_pairs:
        attrs["n_pairs"] = int(n_pairs)
    return finish_idata(idata, coll, attrs, seed=settings.seed, patient=patient, covariate_names=names)


def prior_predictive(frame: pd.DataFrame, endpoint: str, *, cuts=None, prior_set: PriorSet | str | None = None,
                     baseline: str = "rw", draws: int = 1000, seed: int = DEFAULT_SEED) -> az.InferenceData:
    """Prior predictive draws of the unadjusted PWE model of ``endpoint`` on this cohort's
    exposure: ``prior`` (``log_hr``, ``hr``, ``log_lambda``, ``hazard`` per month, ...) and
    ``prior_predictive.events`` (arm, intervals), the event counts the priors expect given each
    arm's observed months at risk per interval (``pm.sample_prior_predictive`` on the same graph
    as :func:`fit_pwe`). ``observed_data.events``: the observed counts, for comparison.
    """
    _check_baseline(baseline)
    t, d, x = endpoint_columns(frame, endpoint)
    cuts = cut_points(t, d) if cuts is None else validate_cuts(cuts)
    prior = as_prior_set(prior_set)
    coll = collapse(t, d, x, cuts)
    spec = ModelSpec(len(cuts), baseline, hr_prior=prior.log_hr_key(endpoint))
    entry = _cached(spec, prior)
    sampling.set_data(entry.model, _values(spec, _collapsed_values(coll), prior))
    with entry.model:
        idata = pm.sample_prior_predictive(draws=int(draws), random_seed=int(seed))
    labels = coll["intervals"].values
    idata.prior = idata.prior.assign_coords(intervals=labels)
    idata.prior = idata.prior.drop_vars([v for v in idata.prior.data_vars if "__" in v])
    idata.prior_predictive = idata.prior_predictive.assign_coords(intervals=labels)
    idata.observed_data = xr.Dataset({"events": coll["events"]})
    idata.attrs.update({"model": "pwe", "endpoint": endpoint, "adjustment": "none", "baseline": baseline,
                        "cuts": [float(c) for c in cuts], "prior": prior.label(), "time_unit": "months",
                        "method": "prior predictive (pm.sample_prior_predictive)"})
    return idata


def _resolve_weights(frame: pd.DataFrame, adjust: str, weights):
    if adjust != "iptw":
        if weights is not None:
            raise InputError(f"weights: given with adjust='{adjust}'; use adjust='iptw' for weighted fits.")
        return None
    if weights is None:
        raise InputError("weights: adjust='iptw' needs weights (an array or a column name).")
    w = covariates_mod.column_or_array(frame, weights, "weights")
    check_arrays(np.zeros(len(frame)), np.zeros(len(frame)), np.zeros(len(frame)), w)
    if w.sum() <= 0:
        raise InputError("weights: all weights are zero.")
    return kish_scaled(w)


def kish_scaled(w) -> np.ndarray:
    """Weights rescaled to sum to their Kish effective sample size ``(sum w)^2 / sum w^2``, the
    scale of a fixed-weight pseudo-likelihood: its curvature then reflects the information of
    the effective, not the nominal, number of patients (the maximiser is unchanged)."""
    w = np.asarray(w, float)
    return w * (w.sum() / np.sum(w**2))


def _pair_index(frame: pd.DataFrame, pair) -> tuple[np.ndarray, np.ndarray]:
    if pair is None:
        raise InputError("pair: adjust='psm' with pair_effect=True needs the matched-pair column name.")
    if pair not in frame.columns:
        raise InputError(f"pair: column '{pair}' not in the cohort.")
    codes, labels = pd.factorize(frame[pair])
    if np.any(codes < 0):
        raise InputError(f"pair: column '{pair}' has missing values; fit only matched patients.")
    return codes.astype("int64"), np.asarray(labels)


_ESTIMANDS = {
    "none": ("marginal", "crude marginal HR in the cohort (no confounding adjustment)"),
    "iptw": ("marginal ({e})", "marginal HR ({e}: {population}) in the IPT-weighted pseudo-population"),
    "psm": (MATCHED_SET, "marginal HR in the matched sample (ATT when treated patients were matched)"),
    "psm_pairs": ("conditional", "HR conditional on matched pair (random pair effects)"),
    "covariates": ("conditional", "HR conditional on the covariates"),
    "ps_covariate": ("conditional", "HR conditional on the propensity score (spline of logit PS)"),
}


# the population each weighting estimand of propensity.ipt_weights targets
WEIGHTS_POPULATIONS = {
    "ATE": "the whole cohort's population",
    "ATT": "the treated patients' population",
    "ATO": "the overlap population (overlap weights)",
}


def check_weights_estimand(weights_estimand: str) -> str:
    """``weights_estimand`` upper-cased; InputError unless ATE, ATT or ATO."""
    e = str(weights_estimand).upper()
    if e not in WEIGHTS_POPULATIONS:
        raise InputError(
            f"weights_estimand: expected one of {', '.join(WEIGHTS_POPULATIONS)}; found {weights_estimand!r}."
        )
    return e


def fit_attrs(endpoint, adjust, cuts, prior_set, coll, spec: ModelSpec, pair_effect: bool = False, method=None,
           weights_estimand: str = "ATE") -> dict:
    """The attrs of a PWE fit. ``weights_estimand`` (``"ATE"``, ``"ATT"``, ``"ATO"``): the IPT
    weights' estimand, written into ``estimand`` (``"marginal (ATT)"``) and ``estimand_detail``
    of IPTW fits (pass ``design.weight_settings["estimand"]``); not used otherwise."""
    e = check_weights_estimand(weights_estimand)
    estimand, detail = _ESTIMANDS["psm_pairs" if (adjust == "psm" and pair_effect) else adjust]
    estimand = estimand.format(e=e)
    detail = detail.format(e=e, population=WEIGHTS_POPULATIONS[e])
    if spec.time_varying:
        detail += "; time-varying HR(t): log_hr is the event-weighted mean of log_hr_t"
    if spec.layout == "patient":
        detail += "; arm-level curves standardised over the analysed cohort"
    if method is None:
        method = f"PWE Poisson ({spec.baseline} baseline"
        method += ", random-walk log HR(t)" if spec.time_varying else ""
        method += {
            "covariates": ", standardised covariates",
            "ps_covariate": ", spline of logit PS",
            "psm": ", matched sample" + (" with pair random effects" if pair_effect else ""),
        }.get(adjust, "")
        method += "), NUTS"
        if adjust == "iptw":
            method += f"; {FIXED_WEIGHT_METHOD}"
    return {
        "model": "pwe",
        "inference": fitinfo.NUTS,
        "endpoint": endpoint,
        "adjustment": adjust,
        "estimand": estimand,
        "estimand_detail": detail,
        "cuts": [float(c) for c in cuts],
        "time_unit": "months",
        "baseline": spec.baseline,
        "layout": spec.layout,
        "time_varying": int(spec.time_varying),
        "prior": prior_set.label(),
        "hr_prior": spec.hr_prior,
        "priors_used": priors_used(spec.prior_vars().values()),
        "method": method,
        "n_treated": int(coll.attrs["n_treated"]),
        "n_control": int(coll.attrs["n_control"]),
        "max_follow_up": float(coll.attrs["max_follow_up"]),
    }


def poisson_loglik(events, exposure, hazard) -> np.ndarray:
    """Pointwise (weighted) Poisson log-likelihood ``D log(E h) - E h - log Gamma(D + 1)``,
    broadcasting over leading draw dimensions. For weighted D it is the pseudo-likelihood."""
    mu = exposure * hazard
    return special.xlogy(events, mu) - mu - special.gammaln(events + 1.0)


def patient_linear_predictor(post: xr.Dataset, const: xr.Dataset) -> np.ndarray:
    """Per-patient linear predictor without treatment, z_i' coef + u_pair(i), of a patient-level
    fit (``idata.posterior``, ``idata.constant_data``): array (chain, draw, patient)."""
    z = const["covariate_values"].transpose("patient", "covariates").values \
        if "covariate_values" in const else None
    pair = const["pair_index"].values if "pair_index" in const else None
    return _linear_predictor(post, const.sizes["patient"], z, pair)


def _linear_predictor(post: xr.Dataset, n: int, z=None, pair=None) -> np.ndarray:
    """z_i' coef + u_pair(i) for n rows of covariate values ``z`` (n, covariates) and pair
    indices ``pair`` (n,), either of them absent: array (chain, draw, n)."""
    lp = np.zeros((post.sizes["chain"], post.sizes["draw"], n))
    if z is not None:
        lp += post["coef"].transpose("chain", "draw", "covariates").values @ z.T
    if pair is not None:
        lp += post["pair_effect"].transpose("chain", "draw", "pairs").values[..., pair]
    return lp


LOGLIK_MAX_VALUES = 25_000_000  # draws x patients above which log_likelihood is not stored (200 MB)


def patient_loglik(hazard, time, event, treatment, cuts, lp=None) -> np.ndarray:
    """Per-patient PWE log-likelihood ``d_i log h_i(t_i) - H_i(t_i)`` (the log density of each
    patient's observed (time, event), months), for every draw.

    ``hazard``: (..., 2, J) per-arm piecewise hazards per month (``posterior.hazard``, at linear
    predictor 0); ``time``, ``event``, ``treatment``: (n,); ``lp``: optional (..., n) linear
    predictor beyond treatment (covariate / pair-effect fits). Returns (..., n). Summed over
    patients it equals the collapsed Poisson log-likelihood minus the data constant
    ``sum_jk [D_jk log E_jk - log D_jk!]`` (Holford 1980). Works on one arm at a time, so its
    peak memory is about twice the output's.
    """
    h = np.asarray(hazard, float)
    t, d, x = np.asarray(time, float), np.asarray(event), np.asarray(treatment)
    idx = interval_index(t, cuts)
    out = np.empty(h.shape[:-2] + (t.size,))
    with np.errstate(divide="ignore"):
        logh = np.log(h)
    for k in (0, 1):
        m = np.flatnonzero(x == k)
        cum = h[..., k, :] @ exposure_matrix(t[m], cuts).T
        own = np.where(d[m] == 1, logh[..., k, :][..., idx[m]], 0.0)
        if lp is None:
            out[..., m] = own - cum
        else:
            lpm = np.asarray(lp)[..., m]
            out[..., m] = own + np.where(d[m] == 1, lpm, 0.0) - cum * np.exp(lpm)
    return out


def patient_data(idata: az.InferenceData) -> dict | None:
    """The per-patient data a PWE fit stored in ``constant_data`` (``time``, ``event``,
    ``treatment``, and ``weight`` for weighted fits, as arrays), or None if it stored none
    (pooled or bootstrap fits)."""
    const = idata.get("constant_data")
    if const is None or "time" not in const:
        return None
    out = {k: const[k].values for k in ("time", "event", "treatment") if k in const}
    if "weight" in const:
        out["weight"] = const["weight"].values
    return out


def finish_idata(
    idata: az.InferenceData, coll: xr.Dataset, attrs: dict, seed: int, patient: dict | None = None, covariate_names=(),
    loglik: bool = True,
) -> az.InferenceData:
    """Label the intervals, drop internal data, add log_likelihood / posterior_predictive /
    observed_data / constant_data, and set ``attrs``.

    ``observed_data.events`` and ``posterior_predictive.events`` are the (weighted) events per
    arm and interval (replicates are Poisson with the posterior expected counts; for weighted
    data an approximation). ``patient``: the fit's per-patient data (``time``, ``event``,
    ``treatment``; ``weight`` for weighted fits; ``covariates`` and ``pair_index`` for
    patient-level ones), stored in ``constant_data`` (dim ``patient``).

    ``log_likelihood.survival`` (chain, draw, patient): the exact per-patient log-likelihood
    (:func:`patient_loglik`), computed once, for unweighted fits with patient data and at most
    :data:`LOGLIK_MAX_VALUES` draws x patients (else ``attrs["log_likelihood"]`` says why it is
    absent; :func:`patient_loglik` computes it on demand). Weighted fits have no
    log-likelihood: a weighted pseudo-likelihood is not a density of the data; nor do fits
    whose caller passes ``loglik=False`` (a posterior pooled over fits to different patients,
    with ``attrs["log_likelihood"]`` saying why).
    """
    labels = coll["intervals"].values
    post = idata.posterior.assign_coords(intervals=labels)
    if "covariates" in post.dims and len(covariate_names):
        post = post.assign_coords(covariates=list(covariate_names))
    post = post.drop_vars([v for v in post.data_vars if "__" in v])
    post.attrs.update(attrs)
    hazard = post["hazard"].transpose("chain", "draw", "arm", "intervals")
    if "expected_events" in post:
        mu = post["expected_events"].transpose("chain", "draw", "arm", "intervals").values
    else:
        mu = coll["exposure"].values * hazard.values
    rng = np.random.default_rng(seed)
    pp = rng.poisson(mu).astype(float)
    dims4 = ("chain", "draw", "arm", "intervals")
    coords4 = {k: hazard[k].values for k in dims4}
    const = xr.Dataset({"exposure": coll["exposure"]})
    groups = {}
    attrs = dict(attrs)
    if patient is not None:
        n = len(patient["event"])
        pc = {"patient": np.arange(n)}
        pdata = {k: ("patient", np.asarray(patient[k])) for k in ("time", "event", "treatment", "weight", "pair_index")
                 if k in patient}
        if "covariates" in patient:
            pdata["covariate_values"] = (("patient", "covariates"), patient["covariates"])
            pc["covariates"] = list(covariate_names)
        pconst = xr.Dataset(pdata, coords=pc)
        const = xr.merge([const, pconst])
        n_values = n * post.sizes["chain"] * post.sizes["draw"]
        if not loglik:
            pass
        elif "weight" in patient:
            attrs["log_likelihood"] = "none: a weighted pseudo-likelihood is not a density of the data"
        elif n_values > LOGLIK_MAX_VALUES:
            attrs["log_likelihood"] = (f"not stored: {n} patients x {n_values // n} draws exceed "
                                       f"{LOGLIK_MAX_VALUES:,} values; survival.patient_loglik computes it on demand")
        else:
            lp = patient_linear_predictor(post, pconst) if {"covariate_values", "pair_index"} & set(pconst) else None
            lv = patient_loglik(hazard.values, patient["time"], patient["event"], patient["treatment"],
                                coll.attrs["cuts"], lp)
            groups["log_likelihood"] = xr.Dataset(
                {"survival": (("chain", "draw", "patient"), lv)},
                coords={"chain": post["chain"].values, "draw": post["draw"].values, "patient": pc["patient"]},
            )
    groups.update({
        "posterior": post,
        "posterior_predictive": xr.Dataset({"events": (dims4, pp)}, coords=coords4),
        "observed_data": xr.Dataset({"events": coll["events"]}),
        "constant_data": const,
    })
    return sampling.with_groups(idata, groups, attrs)


# --------------------------------------------------------------------------- estimands

DEFAULT_HORIZON = 36.0  # months: the time grid's end when a fit does not record its follow-up


def default_times(max_follow_up: float | None = None, n: int = 121) -> np.ndarray:
    """The time grid (months) of the survival curves: ``n`` points from 0 to the data's
    maximum follow-up rounded up to a whole month (36 months if unknown), so that the curves
    cover the data of any cohort, but are not extrapolated beyond it. The curves are only
    drawn (medians, landmarks and RMST are computed exactly, not from the grid); 121 points
    (0.3-month steps over 36 months, 0.43 over the default cohort's 52) draw them as smoothly
    as 241 did."""
    end = DEFAULT_HORIZON
    if max_follow_up is not None and np.isfinite(max_follow_up) and max_follow_up > 0:
        end = float(math.ceil(max_follow_up))
    return np.linspace(0.0, end, n)



def _hazard_draws(idata: az.InferenceData) -> xr.DataArray:
    """Per-arm piecewise hazard draws (per month), dims (chain, draw, arm, intervals)."""
    if "hazard" not in idata.posterior:
        raise InputError("survival estimands: the posterior has no 'hazard' (arm, intervals) variable.")
    return idata.posterior["hazard"].transpose("chain", "draw", "arm", "intervals")


def cumulative_hazard(hazard: np.ndarray, cuts, times) -> np.ndarray:
    """H(t) = sum_j h_j |(c_j, c_{j+1}] intersect (0, t]| for hazards ``(..., intervals)``;
    returns ``(..., times)``. The last interval's hazard continues beyond the last cut."""
    c = validate_cuts(cuts)
    return np.asarray(hazard) @ exposure_matrix(np.asarray(times, float), c).T


def median_survival(hazard: np.ndarray, cuts) -> np.ndarray:
    """Time (months) where S(t) = 0.5 under piecewise-constant ``hazard`` (..., intervals);
    inf if never reached (zero hazard in the open last interval)."""
    return time_at_cumulative_hazard(hazard, cuts, np.log(2.0))


#: a median is reported as extrapolated when more than this share of its draws lies beyond the
#: longest follow-up: its 95% interval's upper end (the 97.5% quantile) is then beyond it
EXTRAPOLATED_SHARE = 0.025


def extrapolated_share(median_draws, max_follow_up, weights=None) -> float:
    """The (weighted) share of draws of a median survival time (months) beyond the longest
    follow-up ``max_follow_up`` (months): what the model says there rests on extending the last
    interval's hazard as constant, not on observed time. 0 when ``max_follow_up`` is unknown."""
    x = np.asarray(median_draws, float).ravel()
    if max_follow_up is None or not np.isfinite(max_follow_up) or x.size == 0:
        return 0.0
    w = np.full(x.size, 1.0 / x.size) if weights is None else np.asarray(weights, float).ravel()
    return float(np.sum(w * (x > max_follow_up)) / np.sum(w))


def extrapolation_note(share: float, max_follow_up, *, short: bool = False) -> str:
    """The text that labels an extrapolated median (``share`` > :data:`EXTRAPOLATED_SHARE`,
    from :func:`extrapolated_share`), else ``""``: "median extrapolated: beyond the longest
    follow-up (108.7 months) in 63% of draws, where the last interval's hazard is held
    constant"; ``short``: only "beyond the longest follow-up (108.7 months) in 63% of draws"."""
    if not share > EXTRAPOLATED_SHARE:
        return ""
    pct = ">99%" if 0.99 < share < 1 else f"{100 * share:.0f}%"
    core = f"beyond the longest follow-up ({float(max_follow_up):.1f} months) in {pct} of draws"
    return core if short else (f"median extrapolated: {core}, where the last interval's hazard "
                               "is held constant")


def extrapolation_footnote(items) -> str:
    """The report's note under a table whose extrapolated medians are marked †: what the mark
    means, then ``items`` (e.g. "unadjusted, treated: beyond the longest follow-up (108.7
    months) in 71% of draws", from :func:`extrapolation_note` with ``short``)."""
    return ("† Extrapolated median: its 95% interval reaches beyond the longest follow-up, where "
            "the model holds the last interval's hazard constant and the data cannot check it. "
            + "; ".join(items) + ".")


def time_at_cumulative_hazard(hazard: np.ndarray, cuts, target) -> np.ndarray:
    """The time t (months) where H(t) = ``target`` under piecewise-constant ``hazard``
    (..., intervals); ``target`` is a scalar or broadcasts against ``hazard.shape[:-1]``. H is
    piecewise linear, so t is exact; inf if H never reaches it (zero hazard in the open last
    interval)."""
    c = validate_cuts(cuts)
    h = np.asarray(hazard, float)
    Hc = cumulative_hazard(h, c, c)  # H at each cut (..., J)
    target = np.broadcast_to(np.asarray(target, float), Hc.shape[:-1])
    j = np.sum(Hc <= target[..., None], axis=-1, keepdims=True) - 1
    Hj = np.take_along_axis(Hc, j, -1)[..., 0]
    hj = np.take_along_axis(h, j, -1)[..., 0]
    with np.errstate(divide="ignore"):
        return c[j[..., 0]] + np.where(hj > 0, (target - Hj) / np.where(hj > 0, hj, 1.0), np.inf)


def rmst(hazard: np.ndarray, cuts, tau: float) -> np.ndarray:
    """Restricted mean survival time to ``tau`` months, int_0^tau S(t) dt, exactly for
    piecewise-constant ``hazard`` (..., intervals)."""
    c = validate_cuts(cuts)
    h = np.asarray(hazard, float)
    return _rmst_sum(h, cumulative_hazard(h, c, c), _months_before(c, tau))


def _months_before(cuts: np.ndarray, tau: float) -> np.ndarray:
    """Months of each interval within (0, tau] (J,)."""
    return np.clip(np.minimum(np.append(cuts[1:], np.inf), tau) - cuts, 0.0, None)


def _rmst_sum(h: np.ndarray, Hc: np.ndarray, L: np.ndarray) -> np.ndarray:
    """sum_j exp(-H(c_j)) int_0^{L_j} exp(-h_j u) du over the last axis: the RMST of hazards
    ``h`` with cumulative hazard ``Hc`` at the cuts and ``L`` months of each interval counted
    (closed form; a Taylor term where h_j L_j <= 1e-12)."""
    hl = h * L
    small = hl <= 1e-12
    with np.errstate(divide="ignore", invalid="ignore"):
        part = np.where(small, L * (1 - hl / 2), -np.expm1(-hl) / np.where(small, 1.0, h))
    return np.sum(np.exp(-Hc) * part, axis=-1)


STANDARDISE_BLOCK = 4_000_000  # values (draws x arms x times x patients) per block: 32 MB
STANDARDISE_MIN_N = 20_000  # patients above which standardised quantities use thinned draws
STANDARDISE_DRAWS = 400  # the number of (evenly spaced) draws they then use


def standardisation_attrs(n_patients: int, n_draws: int) -> dict:
    """The attrs that make a patient-level fit's standardised (arm-level) curves, medians and
    RMST use :data:`STANDARDISE_DRAWS` evenly spaced posterior draws (``standardisation_draws``
    and the sentence ``standardisation``): for cohorts above :data:`STANDARDISE_MIN_N` patients
    with more draws than that; else ``{}`` (every draw). HR summaries always use every draw."""
    if n_patients <= STANDARDISE_MIN_N or n_draws <= STANDARDISE_DRAWS:
        return {}
    return {"standardisation_draws": STANDARDISE_DRAWS,
            "standardisation": (f"standardised survival curves, medians and RMST from {STANDARDISE_DRAWS} "
                                f"of the {n_draws} posterior draws (evenly spaced within each chain; "
                                f"cohorts over {STANDARDISE_MIN_N:,} patients)")}


def standardised_survival(hazard: np.ndarray, elp: np.ndarray, cuts, times, chunk: int | None = None,
                          weight=None) -> np.ndarray:
    """Standardised survival S(t) = sum_i w_i exp(-H(t) exp(lp_i)) (w_i = 1/n by default).

    ``hazard``: (draws, arm, intervals) at linear predictor 0; ``elp``: (draws, patients),
    exp of each patient's linear predictor; ``times``: (T,) months or (draws, arm) per-draw
    times; ``weight``: optional (patients,) weights summing to 1 (the share of patients of each
    distinct covariate pattern, so patients sharing a linear predictor share a term).
    Returns (draws, arm, T) or (draws, arm). Computed in blocks of ``chunk`` draws
    (default: as many as keep a block within :data:`STANDARDISE_BLOCK` values), so memory does
    not grow with draws x patients.

    A grid of times (T,) is walked in order (:func:`_standardised_curve`): within an interval
    each patient's survival is the previous time's times exp(-h_j e_i dt), so an evenly spaced
    grid costs one exponential per interval and patient instead of one per time and patient
    (~5x faster on the default cohort's 121-point curves; equal to the direct formula to
    ~1e-13, relative: tested to 1e-12)."""
    c = validate_cuts(cuts)
    times = np.asarray(times, float)
    m = elp.shape[-1]
    w = np.full(m, 1.0 / max(m, 1)) if weight is None else np.asarray(weight, float)
    walked = times.ndim == 1 and times.size > _WALK_MIN
    if chunk is None:  # values per draw held at once (arm = 2): 2 x (arm, m) walked, else (arm, T, m)
        per_time = 2 if walked else times.size if times.ndim == 1 else 1
        chunk = max(1, STANDARDISE_BLOCK // (2 * max(m, 1) * per_time))
    out = []
    for s in range(0, hazard.shape[0], chunk):
        h, e = hazard[s : s + chunk], elp[s : s + chunk]
        if walked:
            out.append(_standardised_curve(h, e, c, times, w))
        elif times.ndim == 1:
            H = cumulative_hazard(h, c, times)  # (d, arm, T)
            out.append(np.exp(-H[..., None] * e[:, None, None, :]) @ w)
        else:
            tt = times[s : s + chunk]
            H = np.sum(h * exposure_matrix(tt.ravel(), c).reshape(tt.shape + (c.size,)), axis=-1)
            out.append(np.exp(-H[..., None] * e[:, None, :]) @ w)
    return np.concatenate(out, axis=0)


_WALK_MIN = 8  # grids of more times than this are walked (:func:`_standardised_curve`)


def _standardised_curve(h: np.ndarray, e: np.ndarray, cuts: np.ndarray, times: np.ndarray,
                        w: np.ndarray) -> np.ndarray:
    """:func:`standardised_survival` on a grid of ``times`` (T,), months: ``h`` (d, arm, J)
    hazards, ``e`` (d, m) exp(linear predictor), ``w`` (m,) weights; returns (d, arm, T).

    Each patient's survival is carried from one time to the next: when t_k and t_{k-1} lie in
    the same interval j (and t_k >= t_{k-1}), S_i(t_k) = S_i(t_{k-1}) exp(-h_j e_i (t_k - t_{k-1})),
    and the factor is reused while the step stays the same (to 1e-12, relative: a float
    linspace's steps differ in the last bits). At an interval's first time, and after any
    other step, S_i(t) = exp(-H(t) e_i) is computed directly, so the product never spans more
    than one interval."""
    Hc = cumulative_hazard(h, cuts, cuts)  # (d, arm, J) at each cut
    j = np.searchsorted(cuts, times, side="right") - 1  # -1: before the first cut (H = 0)
    out = np.empty(h.shape[:2] + (times.size,))
    ee = e[:, None, :]  # (d, 1, m)
    S = factor = None
    step = math.nan
    for k, t in enumerate(times):
        jk = j[k]
        if k and jk == j[k - 1] >= 0 and t >= times[k - 1]:
            dt = t - times[k - 1]
            if factor is None or abs(dt - step) > 1e-12 * step:
                factor = np.exp(-(h[:, :, jk] * dt)[..., None] * ee)
                step = dt
            S *= factor
        else:
            H = Hc[:, :, jk] + h[:, :, jk] * (t - cuts[jk]) if jk >= 0 else np.zeros(h.shape[:2])
            S = np.exp(-H[..., None] * ee)
            factor = None
        out[:, :, k] = S @ w
    return out


def _standardised_median(hazard, elp, cuts, upper: float, weight=None) -> np.ndarray:
    """The standardised median (draws, arm), months: the t where S(t) = sum_i w_i
    exp(-H(t) e_i) = 1/2 (``e_i`` = ``elp``, ``H`` the cumulative hazard at linear predictor 0).

    S depends on t only through H(t), so the equation is solved on the cumulative-hazard scale:
    g(x) = sum_i w_i exp(-x e_i) - 1/2 is convex and decreasing in x, so Newton's method from
    x_0 = log 2 / max_i e_i (where g >= 0) rises monotonically to the root x*; then
    t = H^{-1}(x*) exactly (:func:`time_at_cumulative_hazard`). inf when t exceeds
    ``upper * 2**10`` months or H never reaches x* (zero hazard in the open last interval).
    Computed in blocks of draws like :func:`standardised_survival`."""
    c = validate_cuts(cuts)
    m = elp.shape[-1]
    w = np.full(m, 1.0 / max(m, 1)) if weight is None else np.asarray(weight, float)
    chunk = max(1, STANDARDISE_BLOCK // (2 * max(m, 1)))
    out = []
    for s in range(0, hazard.shape[0], chunk):
        e = elp[s : s + chunk][:, None, :]  # (d, 1, m)
        x = np.broadcast_to(np.log(2.0) / e.max(axis=-1), (e.shape[0], hazard.shape[1])).copy()
        for _ in range(200):
            ex = np.exp(-x[..., None] * e)  # (d, arm, m)
            g = ex @ w - 0.5
            step = g / ((ex * e) @ w)  # -g / g'(x)
            x += step
            if np.all(np.abs(step) <= 1e-13 * x):
                break
        out.append(x)
    t = time_at_cumulative_hazard(hazard, c, np.concatenate(out, axis=0))
    return np.where(t > float(upper) * 2.0**10, np.inf, t)


def grouped_linear_predictor(post: xr.Dataset, const: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """``(lp, weight)``: the linear predictor beyond treatment (chain, draw, U) of the U distinct
    (covariate values, pair) rows of a patient-level fit's patients, and each row's share of
    the patients (U,). Standardising over them with these weights equals standardising over
    every patient (patients with the same row share a linear predictor), at U/n the cost."""
    cols = []
    if "covariate_values" in const:
        cols.append(const["covariate_values"].transpose("patient", "covariates").values)
    if "pair_index" in const:
        cols.append(const["pair_index"].values[:, None].astype(float))
    rows, _, count = patterns_mod.unique_rows(np.column_stack(cols))
    k = const.sizes["covariates"] if "covariate_values" in const else 0
    lp = _linear_predictor(post, rows.shape[0], rows[:, :k] if k else None,
                           rows[:, k].astype(np.int64) if "pair_index" in const else None)
    return lp, count / count.sum()


def _thinned_draws(n_draws: int, keep: int) -> np.ndarray:
    """``keep`` evenly spaced indices into ``n_draws`` draws of a chain (all if fewer)."""
    if n_draws <= keep:
        return np.arange(n_draws)
    return np.unique(np.linspace(0, n_draws - 1, keep).round().astype(int))


def _standardised_rmst(hazard, elp, cuts, tau: float, weight=None) -> np.ndarray:
    """int_0^tau of the standardised survival (draws, arm), months, exactly: the integral of a
    mean is the mean of the patients' own RMSTs, each :func:`rmst` of the hazard ``h exp(lp_i)``
    (closed form per interval). With q_ij = expm1(-h_j e_i L_j) (L_j: the months of interval j
    before ``tau``), patient i's RMST is sum_j S_i(c_j) (-q_ij) / (h_j e_i), and its survival at
    the start of the next interval is S_i(c_j) (1 + q_ij) (every interval before the last one
    counted is whole): one transcendental function per patient and interval, summed interval
    by interval. Computed in blocks of draws like :func:`standardised_survival`."""
    c = validate_cuts(cuts)
    m = elp.shape[-1]
    w = np.full(m, 1.0 / max(m, 1)) if weight is None else np.asarray(weight, float)
    L = _months_before(c, tau)
    inside = L > 0  # the first intervals
    h, L = np.asarray(hazard, float)[..., inside], L[inside]
    chunk = max(1, STANDARDISE_BLOCK // (8 * max(m, 1)))  # ~4 arrays (draws, arm, m) at once
    out = []
    for s in range(0, h.shape[0], chunk):
        e = elp[s : s + chunk][:, None, :]  # (d, 1, m)
        total = np.zeros(h[s : s + chunk].shape[:2] + (m,))  # each patient's RMST so far
        start = np.ones_like(total)  # and survival at the interval's start (the first cut is 0)
        for j in range(L.size):
            he = h[s : s + chunk, :, j, None] * e  # each patient's hazard (d, arm, m)
            hl = he * L[j]
            q = np.expm1(-hl)
            small = hl <= 1e-12  # a Taylor term where the closed form would divide ~0 by ~0
            with np.errstate(divide="ignore", invalid="ignore"):
                part = np.where(small, L[j] * (1 - hl / 2), -q / he)
            total += start * part
            start *= 1.0 + q
        out.append(total @ w)
    return np.concatenate(out, axis=0)


def survival_estimands(
    idata: az.InferenceData,
    times=None,
    *,
    landmarks=(12.0, 24.0),
    rmst_tau: float = 24.0,
    hr_thresholds=(1.0, IMPORTANT_HR),
) -> tuple[pd.DataFrame, xr.Dataset]:
    """Arm-level survival estimands from posterior draws of the per-arm PWE hazard.

    ``times`` (months): the grid of the ``survival`` curves; default :func:`default_times` of
    the fit's maximum follow-up. For the unadjusted, IPTW and PSM (no pair effect) models, arm ``k``'s survival is
    ``S_k(t) = exp(-sum_j lambda_j exp(beta_j k) |interval j within (0, t]|)`` (months), the
    marginal survival in the cohort (unadjusted), the weighted pseudo-population (IPTW) or the
    matched sample. For patient-level models (covariates, PS spline, pair effects) the curves
    are standardised over the analysed cohort: ``S_k(t) = mean_i S(t | arm k, z_i, u_pair(i))``
    for every draw; medians then solve S_k(t) = 1/2 (Newton's method on the cumulative-hazard
    scale, :func:`_standardised_median`) and RMST is exact (closed form per patient and interval).
    Beyond the last cut the hazard of the open last interval is extrapolated; medians beyond
    the maximum follow-up are flagged (``extrapolated`` = share of draws beyond it).

    Returns ``(summary, draws)``. ``draws`` (xarray Dataset, dims chain, draw, ...):
    ``survival`` (arm, time), ``median`` (arm), ``survival_at`` (arm, landmark), ``rmst`` (arm),
    ``rmst_diff`` (treated - control), ``hr``. ``summary``: one row per quantity with columns
    ``quantity, arm, time, median, lower, upper, probability, extrapolated``; ``probability``
    is P(HR < 1) for ``hr``, P(HR < t) for the ``P(HR<t)`` rows (no median/interval) and
    P(difference > 0) for ``rmst_diff``.
    """
    times = default_times(idata.attrs.get("max_follow_up")) if times is None else np.asarray(times, float)
    cuts = validate_cuts(idata.attrs["cuts"])
    haz = _hazard_draws(idata)
    post = idata.posterior
    lm = np.asarray(landmarks, float)
    const = idata.get("constant_data")
    if const is not None and "patient" in const.dims and ("covariate_values" in const or "pair_index" in const):
        keep = idata.attrs.get("standardisation_draws")
        if keep:  # a large cohort: evenly spaced draws of each chain (attrs["standardisation"])
            per_chain = -(-int(keep) // post.sizes["chain"])
            post = post.isel(draw=_thinned_draws(post.sizes["draw"], per_chain))
            haz = haz.isel(draw=_thinned_draws(haz.sizes["draw"], per_chain))
        h = haz.values
        shape = h.shape[:2]
        hf = h.reshape((-1,) + h.shape[2:])
        lp, wt = grouped_linear_predictor(post, const)
        elp = np.exp(lp).reshape(hf.shape[0], -1)
        upper = 2.0 * max(float(cuts[-1]), float(idata.attrs.get("max_follow_up", 1.0)), 1.0)
        surv = standardised_survival(hf, elp, cuts, times, weight=wt).reshape(shape + (2, times.size))
        s_at = standardised_survival(hf, elp, cuts, lm, weight=wt).reshape(shape + (2, lm.size))
        med = _standardised_median(hf, elp, cuts, upper, weight=wt).reshape(shape + (2,))
        rm = _standardised_rmst(hf, elp, cuts, rmst_tau, weight=wt).reshape(shape + (2,))
    else:
        h = haz.values
        surv = np.exp(-cumulative_hazard(h, cuts, times))
        s_at = np.exp(-cumulative_hazard(h, cuts, lm))
        med = median_survival(h, cuts)
        rm = rmst(h, cuts, rmst_tau)
    cd = ("chain", "draw")
    coords = {"chain": haz["chain"].values, "draw": haz["draw"].values, "arm": haz["arm"].values}
    draws = xr.Dataset(
        {
            "survival": (cd + ("arm", "time"), surv),
            "survival_at": (cd + ("arm", "landmark"), s_at),
            "median": (cd + ("arm",), med),
            "rmst": (cd + ("arm",), rm),
            "rmst_diff": (cd, rm[..., 1] - rm[..., 0]),
            "hr": post["hr"].transpose(*cd),
        },
        coords={**coords, "time": times, "landmark": lm},
        attrs={"time_unit": "months", "rmst_tau": float(rmst_tau), **_summary_attrs(idata)},
    )
    fu = float(idata.attrs.get("max_follow_up", np.inf))
    rows = []

    def add(quantity, x, arm="", time=math.nan, probability=math.nan, extrapolated=math.nan):
        s = summarise_draws(x)
        rows.append(
            {"quantity": quantity, "arm": arm, "time": time, "median": s["median"], "lower": s["lower"],
             "upper": s["upper"], "probability": probability, "extrapolated": extrapolated}
        )

    hr = idata.posterior["hr"].values  # every draw, also when the standardisation is thinned
    add("hr", hr, probability=float(np.mean(hr < 1.0)))
    for thr in hr_thresholds:
        if thr != 1.0:  # P(HR < thr) only
            rows.append({"quantity": f"P(HR<{thr:g})", "arm": "", "time": math.nan, "median": math.nan,
                         "lower": math.nan, "upper": math.nan, "probability": float(np.mean(hr < thr)),
                         "extrapolated": math.nan})
    for a, arm in enumerate(draws["arm"].values):
        add("median", med[..., a], arm, extrapolated=extrapolated_share(med[..., a], fu))
        for i, t in enumerate(lm):
            add("survival", s_at[..., a, i], arm, time=float(t))
        add("rmst", rm[..., a], arm, time=float(rmst_tau))
    add("rmst_diff", draws["rmst_diff"].values, "treated - control", time=float(rmst_tau),
        probability=float(np.mean(draws["rmst_diff"].values > 0)))
    summary = pd.DataFrame(rows)
    return summary, draws


def _summary_attrs(idata) -> dict:
    keys = ("endpoint", "adjustment", "estimand", "prior", "method", "n_treated", "n_control",
            "standardisation", "standardisation_draws")
    return {k: idata.attrs[k] for k in keys if k in idata.attrs}


# --------------------------------------------------------------------------- results rows


def fit_diagnostics(idata: az.InferenceData) -> dict:
    """``rhat_max``, ``ess_bulk_min`` and ``divergences`` over ``log_hr``, ``log_lambda`` (and
    ``log_hr_t``) of an MCMC fit; NaN for Bayesian-bootstrap fits (not a Markov chain)."""
    if not fitinfo.FitInfo.of(idata).is_mcmc or "sample_stats" not in idata.groups():
        return {"rhat_max": math.nan, "ess_bulk_min": math.nan, "divergences": math.nan}
    names = [v for v in ("log_hr", "log_lambda", "log_hr_t") if v in idata.posterior]
    conv = sampling.convergence(idata, var_names=names)
    return {k: conv[k] for k in ("rhat_max", "ess_bulk_min", "divergences")}


def model_id(attrs) -> str:
    """The short model name of a PWE fit for the results table's ``model`` column: ``pwe``,
    ``pwe-bootstrap`` (IPTW Bayesian bootstrap) or ``pwe-pooled-design`` (PSM pooled over
    design draws)."""
    inference = fitinfo.FitInfo.from_attrs(attrs).inference
    return {fitinfo.BOOTSTRAP: "pwe-bootstrap", fitinfo.POOLED: "pwe-pooled-design"}.get(inference, "pwe")


def cut_set_label(cuts) -> str:
    """A label for PWE cut points when no named cut set is given: ``"8 intervals (0, 2.1, ...)"``."""
    c = np.asarray(cuts, float)
    return f"{c.size} intervals (" + ", ".join(f"{x:.3g}" for x in c) + ")"


def rmst_estimand(attrs) -> str:
    """The ``estimand`` of a fit's RMST difference: the fit's own when it is marginal (its
    HR's), else that of the arm-level curves, which patient-level models standardise over the
    analysed cohort (:func:`survival_estimands`; :func:`bayes_haic.labels.marginal_estimand`):
    covariates and PS covariate the whole cohort's (ATE), PS matching with pair effects the
    matched set's."""
    own = str(attrs["estimand"])
    return own if own.startswith("marginal") else marginal_estimand(attrs["adjustment"])


def result_rows(idata: az.InferenceData, data_tier: str, source: str, *, rmst_tau: float = 24.0,
                analysis: str = "main", cut_set: str | None = None, draws: xr.Dataset | None = None
                ) -> list[dict]:
    """Results-table rows of a PWE fit: ``hr`` (prob_benefit = P(HR < 1)), ``median_treated``,
    ``median_control`` (months, arm-level) and ``rmst_diff_<tau>`` (months, treated - control,
    prob_benefit = P(difference > 0)), with the fit's convergence diagnostics (NaN for the
    Bayesian bootstrap). ``cut_set``: the cut points' label (default :func:`cut_set_label`).
    ``draws``: the fit's :func:`survival_estimands` draws if already computed (their RMST must
    be to ``rmst_tau``); else they are computed here."""
    a = idata.attrs
    if draws is None:
        _, draws = survival_estimands(idata, times=[0.0], rmst_tau=rmst_tau)
    elif float(draws.attrs.get("rmst_tau", math.nan)) != float(rmst_tau):
        raise ValueError(f"result_rows: the estimands' RMST is to {draws.attrs.get('rmst_tau')} "
                         f"months; expected {rmst_tau:g}")
    common = {
        "data_tier": data_tier,
        "analysis": analysis,
        "endpoint": a["endpoint"],
        "adjustment": a["adjustment"],
        "model": model_id(a),
        "cut_set": cut_set if cut_set is not None else cut_set_label(a["cuts"]),
        "prior": a["prior"],
        "method": a["method"],
        "n_treated": a["n_treated"],
        "n_control": a["n_control"],
        "source": source,
        **fit_diagnostics(idata),
    }
    med = draws["median"]

    def median_row(arm):
        x = med.sel(arm=arm).values
        note = extrapolation_note(extrapolated_share(x, a.get("max_follow_up")), a.get("max_follow_up"))
        return result_row(measure=f"median_{arm}", estimand="arm-level", **summarise_draws(x),
                          **{**common, "method": f"{a['method']}; {note}" if note else a["method"]})

    return [
        result_row(measure="hr", estimand=a["estimand"], **summarise_draws(idata.posterior["hr"].values, "below1"),
                   **common),
        median_row("treated"),
        median_row("control"),
        result_row(
            measure=f"rmst_diff_{rmst_tau:g}",  # standardised where the HR is conditional
            estimand=rmst_estimand(a),
            **summarise_draws(draws["rmst_diff"].values, "above0"),
            **common,
        ),
    ]
