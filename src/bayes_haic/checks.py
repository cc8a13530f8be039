r"""Model checks: posterior predictive checks (PPC), pointwise log-likelihood with PSIS-LOO,
and MCMC convergence diagnostics, for the fits of the main job (time unit: months).

Survival PPC (:func:`survival_ppc`)
-----------------------------------
For :math:`S` thinned posterior draws (default 200, evenly spaced over chains and draws) a
replicate data set is simulated under the fitted piecewise-exponential (PWE) model *with the
observed censoring*: patient :math:`i` of arm :math:`k` gets an event time :math:`T_i` from the
piecewise-constant hazard :math:`h_{kj}` of the draw (inverse cumulative hazard of a unit
exponential), and a censoring time :math:`C_i`:

* censored patients: :math:`C_i` = their observed censoring time;
* patients with an event at :math:`t_i`: :math:`C_i` is unobserved; it is drawn from the arm's
  reverse Kaplan-Meier censoring distribution :math:`\hat G_k` conditional on
  :math:`C_i > t_i` (Schemper & Smith 1996, Control Clin Trials 17:343). Mass that
  :math:`\hat G_k` leaves beyond its last censoring time is put at the administrative end of
  follow-up, :math:`\tau` = the largest observed time of the endpoint (both arms).

The replicate observes :math:`(\min(T_i, C_i), 1[T_i \le C_i])`. Each replicate's Kaplan-Meier
curve per arm is computed on a time grid; the figure shows the 95% pointwise band of the replicate
curves with the observed Kaplan-Meier curve on top. The discrepancy per arm is the standardised
squared distance :math:`D = \sum_t (\hat S(t) - m(t))^2 / v(t)` over grid times up to the arm's
90th percentile of follow-up, with :math:`m, v` the pointwise mean and variance of the replicate
curves; the posterior predictive p-value is the share of replicates with a larger :math:`D`
(Gelman, Meng & Stern 1996, Stat Sinica 6:733). "both arms" adds the two distances. Covariate,
PS-spline and pair-effect fits simulate each patient from their own hazard
:math:`h_{kj} e^{z_i'\gamma + u_{pair(i)}}` of the draw. The data are used twice (to fit and to
check), so the p-values are conservative: values near 0 flag misfit, values near 1 are common.

Events per interval and arm, conditional on the observed exposure: observed :math:`D_{kj}`
against replicates :math:`D^{rep}_{kj}`, with a two-sided mid-p-value per cell,
:math:`2\min(p, 1 - p)`, :math:`p = P(D^{rep} > D) + \tfrac12 P(D^{rep} = D)`, and an overall
realised Pearson discrepancy :math:`X^2(D, \theta) = \sum_{kj} (D_{kj} - \mu_{kj})^2 / V_{kj}`
with p-value :math:`P(X^2(D^{rep}, \theta) \ge X^2(D, \theta))`. Unweighted fits: the model's
own ``posterior_predictive.events`` (Poisson, mean ``expected_events`` :math:`\mu = E h`,
:math:`V = \mu`), all draws.

IPTW fits (weighted analogues)
------------------------------
The observed curve is the IPT-weighted Kaplan-Meier curve (the fit's full-sample weights,
rescaled to sum to n); each replicate keeps every patient's weight and censoring and its
weighted Kaplan-Meier curve is compared. Weighted events per cell are checked against
replicates :math:`\sum_i w_i d^{rep}_{ij}`, :math:`d^{rep}_{ij} \sim Poisson(e_{ij} h_{kj})` per
patient and interval at risk (the model's own Poisson replicates of weighted counts understate
their variance, :math:`V = \sum_i w_i^2 e_{ij} h_{kj}`, and are not used). This checks the
marginal (pseudo-population) piecewise hazards and their proportionality; it does not check the
propensity model (see the balance table), and because replicate event times ignore covariates
the band approximates the weighted curve's sampling variability.

Response PPC (:func:`response_ppc`)
-----------------------------------
The (weighted, for IPTW) proportion of responders per arm against the model's
``posterior_predictive.y`` replicates, with two-sided mid-p-values. The crude and IPTW models
have one parameter per arm and so reproduce the arm totals by construction: the check can only
reveal gross errors there; it has power for covariate models.

Pointwise log-likelihood and PSIS-LOO (:func:`pointwise_loglik`, :func:`loo_table`)
------------------------------------------------------------------------------------
For patient :math:`i` with time :math:`t_i`, event indicator :math:`d_i` (in interval
:math:`j(i)`), arm :math:`x_i`, time at risk :math:`e_{ij}` in interval :math:`j`:

.. math:: \ell_i = \sum_j \left[d_{ij} \log(\lambda_j e^{\beta_j x_i})
                               - \lambda_j e^{\beta_j x_i} e_{ij}\right]
          = d_i \log h_{x_i j(i)} - \sum_j h_{x_i j} e_{ij},

the log density of the observed (time, event) under the PWE model (plus the linear predictor of
covariate or pair-effect models). Summed over patients it equals the collapsed Poisson
log-likelihood :math:`\sum_{kj} [D_{kj}\log(E_{kj} h_{kj}) - E_{kj} h_{kj} - \log D_{kj}!]`
minus the constant :math:`\sum_{kj} [D_{kj}\log E_{kj} - \log D_{kj}!]` (Holford 1980), which
depends on the cut points: only the per-patient form compares models with different cuts.
PSIS-LOO (Vehtari, Gelman & Gabry 2017, Stat Comput 27:1413) via ``az.loo``/``az.compare``;
Pareto :math:`\hat k > 0.7` marks unreliable estimates. Not defined for IPTW fits (a weighted
pseudo-likelihood or a Bayesian bootstrap has no predictive density of the data). Comparisons
of fits that exist anyway (the main job's time-varying-HR fit against the proportional-hazards
fit of the same strategy) cost nothing; other structures (cut-point sets, baselines) need one
NUTS refit each (:func:`fit_loo_candidates`).

Convergence (:func:`diagnostics_table`, :func:`failures`)
---------------------------------------------------------
Per NUTS fit over every posterior variable except the derived ones in :data:`DERIVED`
(monotone transforms such as ``hr = exp(log_hr)`` have the same rank-based diagnostics, and
``hazard`` / ``expected_events`` are functions of ``log_lambda`` and ``log_hr``), with
:func:`bayes_haic.sampling.convergence`:
rank-normalised split R-hat <= 1.01, bulk and tail ESS >= 400, no divergent transitions, energy
BFMI >= 0.3 and at least 2 chains (:data:`THRESHOLDS`; Vehtari et al. 2021, Bayesian Anal
16:667). Bayesian-bootstrap fits are independent replicates, not a Markov chain: not applicable.
"""

from __future__ import annotations

import inspect
import math
import warnings
import zlib
from dataclasses import dataclass, field, replace

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from . import sampling
from . import survival as sv
from .errors import InputError
from .fitinfo import FitInfo
from .labels import STRATEGY_LABELS
from .sampler_settings import DEFAULT_SEED
from .schema import endpoint_label

THRESHOLDS = {"rhat_max": 1.01, "ess_bulk_min": 400.0, "ess_tail_min": 400.0, "divergences": 0,
              "bfmi_min": 0.3, "chains": 2}
PPC_DRAWS = 200
PPC_MAX_VALUES = 2_000_000  # replicates x patients x intervals of one PPC (large cohorts use fewer replicates)
KM_UPPER_QUANTILE = 0.9  # KM discrepancy: grid up to this quantile of each arm's follow-up
PARETO_K = 0.7
# posterior variables left out of the convergence diagnostics (functions of the parameters)
DERIVED = ("hazard", "expected_events", "hr", "hr_t")
ARM_CODES = {"control": 0, "treated": 1}
# LOO candidates refitted next to each unweighted main fit (keys are fit_pwe options;
# "n_intervals" means quantile cut points of the event times): one coarser cut-point set and a
# time-varying HR (the proportional-hazards check); FULL_CANDIDATES adds a finer cut-point set
# and an independent baseline (about twice the sampling time)
DEFAULT_CANDIDATES = ({"n_intervals": 4}, {"time_varying": True})
FULL_CANDIDATES = ({"n_intervals": 4}, {"n_intervals": 12}, {"time_varying": True},
                   {"baseline": "independent"})


def candidate_settings(sampler: sampling.SamplerSettings | None = None) -> sampling.SamplerSettings:
    """Sampler settings of the LOO candidate fits: ``sampler``'s draws, chains and seed, at
    most 500 tuning steps and target_accept >= 0.95 (fewer divergences in the random-walk
    funnels of the time-varying HR and baseline)."""
    s = sampler or sampling.SamplerSettings()
    return replace(s, tune=min(s.tune, 500), target_accept=max(s.target_accept, 0.95))


def _rng(seed: int, label: str) -> np.random.Generator:
    """A generator per (seed, fit label): fits do not share random streams, and a fit's
    replicates do not depend on which other fits were checked."""
    return np.random.default_rng([int(seed), zlib.crc32(label.encode())])


def is_bootstrap(idata: az.InferenceData) -> bool:
    """A Bayesian-bootstrap fit (independent replicates, no Markov chain)."""
    return FitInfo.of(idata).is_bootstrap


def _label(key) -> str:
    """A fit's label in tables and notes: ``"RFS iptw"`` for ``("pfs", "iptw")`` (the endpoint as
    the cohort names it, :func:`~bayes_haic.schema.endpoint_label`)."""
    if isinstance(key, tuple):
        return " ".join([endpoint_label(str(key[0])), *(str(k) for k in key[1:])])
    return str(key)


def _seed_label(key) -> str:
    """What seeds a fit's replicates with the seed: ``"PFS iptw"``, the schema's key whatever the
    endpoint is called, so renaming an endpoint changes no number."""
    return " ".join([str(key[0]).upper(), *(str(k) for k in key[1:])])


# --------------------------------------------------------------------------- the data of a fit


@dataclass
class SurvivalData:
    """The patient-level data a PWE fit was made on (months).

    ``weight`` is None for unweighted fits, else the fit's IPT weights rescaled to sum to n.
    ``lp``: per-draw linear predictor beyond treatment (chain, draw, patient) for covariate or
    pair-effect models, else None; a fit's data (:func:`fit_data`) compute it on first use
    from ``lp_source`` (the fit's posterior and constant data), and :meth:`lp_draws` computes
    it for some draws only, so a large cohort never holds draws x patients values it does not
    need.
    """

    time: np.ndarray
    event: np.ndarray
    treatment: np.ndarray
    cuts: np.ndarray
    weight: np.ndarray | None = None
    lp_values: np.ndarray | None = None
    lp_source: tuple | None = field(default=None, repr=False)

    @property
    def n(self) -> int:
        return self.time.size

    @property
    def lp(self) -> np.ndarray | None:
        """The linear predictor beyond treatment for every draw (chain, draw, patient), or None."""
        if self.lp_values is None and self.lp_source is not None:
            self.lp_values = sv.patient_linear_predictor(*self.lp_source)
        return self.lp_values

    def lp_draws(self, idx) -> np.ndarray | None:
        """The linear predictor of the stacked (chain, draw) samples ``idx``: (len(idx), n)."""
        if self.lp_values is not None:
            return self.lp_values.reshape(-1, self.n)[idx]
        if self.lp_source is None:
            return None
        post, const = self.lp_source
        post = post[[v for v in ("coef", "pair_effect") if v in post]]
        stacked = post.stack(sample=("chain", "draw")).isel(sample=np.asarray(idx))
        sub = stacked.drop_vars(["sample", "chain", "draw"]).expand_dims(chain=1).rename(sample="draw")
        return sv.patient_linear_predictor(sub, const)[0]

    def exposure(self) -> np.ndarray:
        """Months at risk of each patient (rows) in each interval (columns)."""
        return sv.exposure_matrix(self.time, self.cuts)

    def interval_index(self) -> np.ndarray:
        """Interval of each patient's event/censoring time ((c_j, c_{j+1}], t = 0 in the first)."""
        return sv.interval_index(self.time, self.cuts)


def _patient_lp(idata: az.InferenceData) -> tuple | None:
    """What z_i' coef + u_pair(i) per draw is computed from (posterior, constant data) for
    patient-layout fits, else None."""
    if idata.attrs.get("layout") != "patient":
        return None
    return (idata.posterior, idata.constant_data)


def fit_data(idata: az.InferenceData, frame: pd.DataFrame | None = None, weights=None) -> SurvivalData:
    """The patient-level data of a PWE fit.

    Without ``frame``: the patients the fit stored in ``constant_data``
    (:func:`bayes_haic.survival.patient_data`; every fit of this package stores them; IPT
    weights rescaled to sum to n). With ``frame`` (the analysed rows: the matched subset for
    PSM) and, for IPTW, ``weights`` (one per row of ``frame`` or a column name): those data,
    which must reproduce the fit's events and exposure per arm and interval (else
    :class:`~bayes_haic.errors.InputError`).
    """
    cuts = sv.validate_cuts(idata.attrs["cuts"], "fit attrs 'cuts'")
    endpoint = idata.attrs.get("endpoint", "?")
    stored = sv.patient_data(idata) if frame is None else None
    if stored is not None:
        t, d, x, w = stored["time"], stored["event"], stored["treatment"], stored.get("weight")
    elif frame is None:
        raise InputError(f"checks: the {endpoint_label(endpoint)} fit stored no patient data; pass the "
                         "analysed cohort rows (frame) to reconstruct it.")
    else:
        t, d, x = sv.endpoint_columns(frame, endpoint)
        w = None
        if idata.attrs.get("adjustment") == "iptw":
            if weights is None:
                raise InputError(f"checks: the {endpoint_label(endpoint)} IPTW fit needs its IPT weights "
                                 "(design.weights) to reconstruct the weighted data.")
            w = frame[weights].to_numpy(float) if isinstance(weights, str) else np.asarray(weights, float).ravel()
            if w.size != t.size or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
                raise InputError(f"checks: weights: expected {t.size} finite non-negative IPT weights.")
    if w is not None:
        w = w * (w.size / w.sum())
    if frame is not None:
        _check_reproduces(idata, frame, endpoint, cuts, w)
    return SurvivalData(np.asarray(t, float), np.asarray(d).astype(int), np.asarray(x).astype(int), cuts, w,
                        lp_source=_patient_lp(idata))


def _check_reproduces(idata, frame, endpoint, cuts, w) -> None:
    """InputError unless ``frame`` (with weights ``w``, summing to n) gives the fit's events and
    exposure per arm and interval, up to the scale of the fit's weights."""
    t, d, x = sv.endpoint_columns(frame, endpoint)
    ok = w is None or w.size == t.size
    if ok:
        coll = sv.collapse(t, d, x, cuts, w)
        D_fit = idata.observed_data["events"].values
        scale = 1.0 if w is None else D_fit.sum() / max(coll["events"].values.sum(), 1e-300)
        ok = coll.sizes["intervals"] == D_fit.shape[-1] and np.allclose(
            coll["events"].values * scale, D_fit, rtol=1e-8, atol=1e-8)
        const = idata.get("constant_data")
        if ok and const is not None and "exposure" in const:
            ok = np.allclose(coll["exposure"].values * scale, const["exposure"].values, rtol=1e-8, atol=1e-8)
    if not ok:
        raise InputError(
            f"checks: the data given do not reproduce the {endpoint_label(endpoint)} fit "
            f"(adjustment '{idata.attrs.get('adjustment')}'): its events/exposure per arm and "
            "interval differ (another cohort, subset, weights or cut points?).")


# --------------------------------------------------------------------------- Kaplan-Meier


def kaplan_meier(time, event, weights=None):
    """(Weighted) Kaplan-Meier estimate, row-wise.

    ``time``, ``event`` (and ``weights``): arrays (..., n). Returns ``(t_sorted, surv)`` of the
    same shape: the sorted times and S just after each (events before censorings at ties;
    tied events give the usual product-limit factor 1 - sum w d / at-risk weight).
    """
    t = np.asarray(time, float)
    d = np.asarray(event, float)
    w = np.ones_like(t) if weights is None else np.broadcast_to(np.asarray(weights, float), t.shape)
    order = np.lexsort((1.0 - d, t), axis=-1)
    ts = np.take_along_axis(t, order, -1)
    ds = np.take_along_axis(d, order, -1)
    ws = np.take_along_axis(w, order, -1)
    at_risk = np.flip(np.cumsum(np.flip(ws, -1), -1), -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(at_risk > 0, 1.0 - ws * ds / np.where(at_risk > 0, at_risk, 1.0), 1.0)
    return ts, np.cumprod(factor, axis=-1)


@dataclass(frozen=True)
class KMCurve:
    """The (weighted) Kaplan-Meier step function of one arm: ``time`` (months, starting at 0),
    ``survival`` (starting at 1; the value from each time on) and the arm's ``n`` patients."""

    time: np.ndarray
    survival: np.ndarray
    n: int


def km_by_arm(time, event, treatment, weights=None) -> dict[str, KMCurve]:
    """The Kaplan-Meier curve of each arm (``"treated"``, ``"control"``), IPT-weighted if
    ``weights`` are given (:func:`kaplan_meier`)."""
    time, event, treatment = np.asarray(time, float), np.asarray(event), np.asarray(treatment)
    out = {}
    for arm, code in (("treated", 1), ("control", 0)):
        m = treatment == code
        ts, s = kaplan_meier(time[m], event[m], None if weights is None else np.asarray(weights, float)[m])
        out[arm] = KMCurve(np.r_[0.0, ts], np.r_[1.0, s], int(m.sum()))
    return out


def fit_km(idata: az.InferenceData, frame: pd.DataFrame | None = None, weights=None) -> dict[str, KMCurve]:
    """The observed Kaplan-Meier curves per arm of the data a PWE fit was made on (its stored
    patients: the matched set for PSM, IPT-weighted for IPTW; see :func:`fit_data`)."""
    d = fit_data(idata, frame, weights)
    return km_by_arm(d.time, d.event, d.treatment, d.weight)


def km_on_grid(time, event, grid, weights=None) -> np.ndarray:
    """Kaplan-Meier S(t) (right-continuous) at ``grid`` times, row-wise: (..., n) -> (..., G)."""
    ts, s = kaplan_meier(time, event, weights)
    grid = np.asarray(grid, float)
    flat_t = ts.reshape(-1, ts.shape[-1])
    flat_s = s.reshape(-1, s.shape[-1])
    out = np.empty((flat_t.shape[0], grid.size))
    for r in range(flat_t.shape[0]):
        k = np.searchsorted(flat_t[r], grid, side="right")
        out[r] = np.where(k > 0, flat_s[r][np.maximum(k - 1, 0)], 1.0)
    return out.reshape(ts.shape[:-1] + (grid.size,))


# --------------------------------------------------------------------------- replicate data


def thin_indices(n_total: int, n: int) -> np.ndarray:
    """``n`` evenly spaced indices into ``n_total`` stacked (chain, draw) samples (all if fewer)."""
    if n_total <= n:
        return np.arange(n_total)
    return np.unique(np.linspace(0, n_total - 1, n).round().astype(int))


def _stacked(da: xr.DataArray, *dims) -> np.ndarray:
    return da.transpose("chain", "draw", *dims).values.reshape((-1,) + tuple(da.sizes[d] for d in dims))


def simulate_event_times(hazard: np.ndarray, cuts, rng: np.random.Generator, lp=None) -> np.ndarray:
    """Event times (months) from piecewise-constant hazards, one per row and patient.

    ``hazard``: (S, n, J) per-patient hazards per month on ``cuts``; ``lp``: optional (S, n)
    linear predictor (hazard multiplied by exp(lp)). Inverts the cumulative hazard of a unit
    exponential draw; the last interval's hazard continues for ever (inf if it is 0).
    """
    c = np.asarray(cuts, float)
    h = np.asarray(hazard, float)
    if lp is not None:
        h = h * np.exp(lp)[..., None]
    target = rng.exponential(size=h.shape[:-1])
    Hc = np.concatenate([np.zeros(h.shape[:-1] + (1,)), np.cumsum(h[..., :-1] * np.diff(c), -1)], -1)
    j = np.sum(target[..., None] >= Hc, axis=-1) - 1
    hj = np.take_along_axis(h, j[..., None], -1)[..., 0]
    Hj = np.take_along_axis(Hc, j[..., None], -1)[..., 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(hj > 0, c[j] + (target - Hj) / np.where(hj > 0, hj, 1.0), np.inf)


def simulate_censoring(data: SurvivalData, n_rep: int, rng: np.random.Generator) -> np.ndarray:
    """Censoring times (n_rep, n): observed for censored patients; for patients with an event,
    from the arm's reverse Kaplan-Meier censoring distribution given C > t_i, with its residual
    mass at the administrative end of follow-up (largest observed time, both arms)."""
    t, d, x = data.time, data.event, data.treatment
    tau = float(t.max())
    C = np.broadcast_to(t, (n_rep, t.size)).copy()
    for k in (0, 1):
        arm = x == k
        ev = np.flatnonzero(arm & (d == 1))
        if ev.size == 0:
            continue
        ts, G = kaplan_meier(t[arm], 1 - d[arm])  # P(C > t) after each sorted time
        # G at each event patient's own time (right-continuous step function)
        pos = np.searchsorted(ts, t[ev], side="right")
        G_t = np.where(pos > 0, G[np.maximum(pos - 1, 0)], 1.0)
        u = rng.random((n_rep, ev.size)) * G_t
        # first sorted time with G <= u (G is non-increasing): a censoring time after t_i
        idx = np.searchsorted(-G, -u, side="left")
        draw = np.where(idx < ts.size, ts[np.minimum(idx, ts.size - 1)], tau)
        C[:, ev] = np.maximum(draw, t[ev])
    return C


def simulate_replicates(data: SurvivalData, hazard: np.ndarray, rng: np.random.Generator, lp=None):
    """Replicate (time, event) arrays (S, n) under draws ``hazard`` (S, arm, intervals) with
    the observed censoring (see the module docstring)."""
    h = np.asarray(hazard)[:, data.treatment, :]  # (S, n, J)
    T = simulate_event_times(h, data.cuts, rng, lp)
    C = simulate_censoring(data, h.shape[0], rng)
    return np.minimum(T, C), (T <= C).astype(int)


# --------------------------------------------------------------------------- survival PPC


def _two_sided_mid_p(rep: np.ndarray, obs, axis=0) -> np.ndarray:
    upper = np.mean(rep > obs, axis=axis) + 0.5 * np.mean(rep == obs, axis=axis)
    return 2.0 * np.minimum(upper, 1.0 - upper)


@dataclass
class SurvivalPPC:
    """A survival posterior predictive check of one fit (see the module docstring).

    ``curves``: per arm a dict with ``grid`` (months), ``lower``, ``median``, ``upper`` (95%
    band of replicate Kaplan-Meier curves), ``km_time`` and ``km_surv`` (the observed, for
    IPTW weighted, Kaplan-Meier step function). ``p_km``: p-values per arm and ``"both"``.
    ``events``: one row per arm and interval (observed, predictive median and 95% interval,
    two-sided mid-p). ``p_events``: the Pearson-discrepancy p-value. ``replicates``: the
    replicate (time, event) arrays (S, n), for reproducibility checks.
    """

    endpoint: str
    adjustment: str
    weighted: bool
    n_draws: int
    curves: dict
    p_km: dict
    events: pd.DataFrame
    p_events: float
    events_source: str
    replicates: tuple = field(repr=False, default=())

    def summary(self) -> dict:
        ev = self.events
        return {
            "endpoint": endpoint_label(self.endpoint),
            "adjustment": STRATEGY_LABELS.get(self.adjustment, self.adjustment),
            "checked": "IPT-weighted KM and weighted events" if self.weighted else "KM and events",
            "replicates": self.n_draws,
            "KM p (control)": self.p_km["control"],
            "KM p (treated)": self.p_km["treated"],
            "KM p (both)": self.p_km["both"],
            "events X² p": self.p_events,
            "cells p < 0.05": f"{int(np.sum(ev['p_value'] < 0.05))} of {len(ev)}",
        }


def _km_check(data: SurvivalData, y_rep, d_rep, n_grid: int):
    curves, dist_obs, dist_rep = {}, {}, {}
    for arm, k in ARM_CODES.items():
        m = data.treatment == k
        w = None if data.weight is None else data.weight[m]
        grid = np.linspace(0.0, float(data.time[m].max()), n_grid)
        km_obs = km_on_grid(data.time[m], data.event[m], grid, w)
        km_rep = km_on_grid(y_rep[:, m], d_rep[:, m], grid, w)
        mean, var = km_rep.mean(0), km_rep.var(0, ddof=1)
        use = (grid <= np.quantile(data.time[m], KM_UPPER_QUANTILE)) & (var > 1e-12)
        dist_obs[arm] = np.sum((km_obs[use] - mean[use]) ** 2 / var[use])
        dist_rep[arm] = np.sum((km_rep[:, use] - mean[use]) ** 2 / var[use], axis=1)
        ts, s = kaplan_meier(data.time[m], data.event[m], w)
        lo, med, hi = np.quantile(km_rep, [0.025, 0.5, 0.975], axis=0)
        curves[arm] = {"grid": grid, "lower": lo, "median": med, "upper": hi,
                       "km_time": np.concatenate([[0.0], ts]), "km_surv": np.concatenate([[1.0], s])}
    p = {arm: float(np.mean(dist_rep[arm] >= dist_obs[arm])) for arm in ARM_CODES}
    p["both"] = float(np.mean(sum(dist_rep.values()) >= sum(dist_obs.values())))
    return curves, p


def _events_replicates(idata, data: SurvivalData, hazard, lp, rng):
    """(D_obs (2, J), D_rep (S, 2, J), mu (S, 2, J), V (S, 2, J), source text)."""
    D = idata.observed_data["events"].transpose("arm", "intervals").values.astype(float)
    pp = idata.get("posterior_predictive")
    post = idata.posterior
    if data.weight is None and pp is not None and "events" in pp and "expected_events" in post:
        rep = _stacked(pp["events"], "arm", "intervals")
        mu = _stacked(post["expected_events"], "arm", "intervals")
        return D, rep, mu, mu, "the model's posterior_predictive events (Poisson, all draws)"
    # per-patient Poisson replicates conditional on each patient's exposure, weighted sums
    w = np.ones(data.n) if data.weight is None else data.weight
    expo = data.exposure()  # (n, J)
    mu_i = hazard[:, data.treatment, :] * expo[None]  # (S, n, J)
    if lp is not None:
        mu_i = mu_i * np.exp(lp)[..., None]
    rep_i = rng.poisson(mu_i)
    X = np.stack([data.treatment == 0, data.treatment == 1]).astype(float)  # (2, n)
    rep = np.einsum("kn,snj->skj", X * w, rep_i)
    mu = np.einsum("kn,snj->skj", X * w, mu_i)
    V = np.einsum("kn,snj->skj", X * w**2, mu_i)
    src = ("weighted per-patient Poisson replicates given each patient's exposure"
           if data.weight is not None else "per-patient Poisson replicates given exposure")
    return D, rep, mu, V, src


def survival_ppc(idata: az.InferenceData, frame: pd.DataFrame | None = None, *, weights=None,
                 n_draws: int = PPC_DRAWS, seed: int = DEFAULT_SEED, n_grid: int = 120,
                 label: str | None = None) -> SurvivalPPC:
    """Posterior predictive check of a PWE fit (:func:`bayes_haic.survival.fit_pwe` or the
    IPTW Bayesian bootstrap): replicate Kaplan-Meier band and events per interval.

    ``frame``/``weights``: the fit's data (see :func:`fit_data`). ``n_draws`` thinned posterior
    draws (evenly spaced; fewer, but at least 20, when replicates x patients x intervals would
    exceed :data:`PPC_MAX_VALUES`); ``seed`` with ``label`` (default ``"<ENDPOINT> <adjustment>"``)
    seeds the replicates, so the same arguments give identical replicates.
    """
    data = fit_data(idata, frame, weights)
    # a large cohort gets fewer replicates (at least 20), so memory stays bounded
    n_draws = min(int(n_draws), max(20, PPC_MAX_VALUES // max(data.n * data.cuts.size, 1)))
    endpoint, adjustment = idata.attrs.get("endpoint", "?"), idata.attrs.get("adjustment", "?")
    rng = _rng(seed, label or f"{endpoint.upper()} {adjustment}")
    haz_all = _stacked(idata.posterior["hazard"], "arm", "intervals")
    idx = thin_indices(haz_all.shape[0], n_draws)
    hazard = haz_all[idx]
    lp = data.lp_draws(idx)
    y_rep, d_rep = simulate_replicates(data, hazard, rng, lp)
    curves, p_km = _km_check(data, y_rep, d_rep, n_grid)

    D, rep, mu, V, source = _events_replicates(idata, data, hazard, lp, rng)
    lo, med, hi = np.quantile(rep, [0.025, 0.5, 0.975], axis=0)
    p_cell = _two_sided_mid_p(rep, D[None], axis=0)
    ok = V > 0
    x2_obs = np.sum(np.where(ok, (D[None] - mu) ** 2 / np.where(ok, V, 1.0), 0.0), axis=(1, 2))
    x2_rep = np.sum(np.where(ok, (rep - mu) ** 2 / np.where(ok, V, 1.0), 0.0), axis=(1, 2))
    labels = sv.interval_labels(data.cuts)
    rows = []
    for k, arm in enumerate(sv.ARMS):
        for j, lab in enumerate(labels):
            rows.append({"endpoint": endpoint, "adjustment": adjustment, "arm": arm, "interval": lab,
                         "observed": D[k, j], "predicted_median": med[k, j],
                         "predicted_lower": lo[k, j], "predicted_upper": hi[k, j], "p_value": p_cell[k, j]})
    return SurvivalPPC(endpoint, adjustment, data.weight is not None, int(idx.size), curves, p_km,
                       pd.DataFrame(rows), float(np.mean(x2_rep >= x2_obs)), source, (y_rep, d_rep))


# --------------------------------------------------------------------------- response PPC


@dataclass
class ResponsePPC:
    """A response posterior predictive check: ``table`` (one row per arm) and ``replicates``
    (per arm, the replicate proportions)."""

    adjustment: str
    table: pd.DataFrame
    replicates: dict


def response_ppc(idata: az.InferenceData) -> ResponsePPC:
    """Observed vs posterior predictive responders per arm of a response fit.

    One row per arm: ``n``, ``responders`` (observed count), ``observed`` (proportion, IPT-
    weighted for IPTW fits), predictive median and 95% interval of the same proportion over the
    model's ``posterior_predictive.y`` replicates (all draws), and the two-sided mid-p-value.
    """
    y = idata.observed_data["y"].values.astype(float)
    rep = _stacked(idata.posterior_predictive["y"], "patient")
    const = idata.constant_data
    x = const["treatment"].values.astype(int)
    w = const["weights"].values.astype(float) if "weights" in const else np.ones_like(y)
    adjustment = idata.attrs.get("adjustment", "?")
    rows, reps = [], {}
    for arm, k in ARM_CODES.items():
        m = x == k
        obs = np.sum(w[m] * y[m]) / np.sum(w[m])
        r = rep[:, m] @ w[m] / np.sum(w[m])
        lo, med, hi = np.quantile(r, [0.025, 0.5, 0.975])
        reps[arm] = r
        rows.append({"adjustment": adjustment, "arm": arm, "n": int(m.sum()),
                     "responders": int(y[m].sum()), "weighted": bool(np.any(w[m] != 1.0)),
                     "observed": float(obs), "predicted_median": float(med),
                     "predicted_lower": float(lo), "predicted_upper": float(hi),
                     "p_value": float(_two_sided_mid_p(r, obs))})
    return ResponsePPC(adjustment, pd.DataFrame(rows), reps)


# --------------------------------------------------------------------------- log-likelihood, LOO


def pointwise_loglik(idata: az.InferenceData, frame: pd.DataFrame | None = None) -> xr.DataArray:
    """Per-patient PWE log-likelihood (chain, draw, patient), exactly
    :math:`d_i \\log h_{x_i j(i)} - \\sum_j h_{x_i j} e_{ij}` (plus the linear predictor of
    patient-level fits), from the posterior ``hazard`` (arm, intervals), so it covers
    proportional and time-varying HRs and both baselines. ``frame``: the fit's rows (see
    :func:`fit_data`). Not defined for IPTW / weighted fits (:class:`InputError`)."""
    if idata.attrs.get("adjustment") == "iptw" or is_bootstrap(idata):
        raise InputError("pointwise log-likelihood: not defined for IPTW fits (weighted "
                         "pseudo-likelihood or Bayesian bootstrap); LOO compares unweighted fits.")
    data = fit_data(idata, frame)
    if data.weight is not None:
        raise InputError("pointwise log-likelihood: the fit is weighted (a pseudo-likelihood).")
    post = idata.posterior
    h = post["hazard"].transpose("chain", "draw", "arm", "intervals").values
    out = sv.patient_loglik(h, data.time, data.event, data.treatment, data.cuts, data.lp)
    return xr.DataArray(out, dims=("chain", "draw", "patient"),
                        coords={"chain": post["chain"].values, "draw": post["draw"].values,
                                "patient": np.arange(data.n)}, name="survival")


def with_pointwise_loglik(idata: az.InferenceData, frame: pd.DataFrame | None = None) -> az.InferenceData:
    """A new InferenceData with the fit's posterior (without the :data:`DERIVED` variables:
    ``az.loo``'s relative efficiency averages the ESS of every posterior variable), its
    sample_stats and ``log_likelihood`` = :func:`pointwise_loglik` (variable ``survival``)."""
    stored = idata.get("log_likelihood")
    ll = stored["survival"] if stored is not None and "survival" in stored else pointwise_loglik(idata, frame)
    groups = {"posterior": idata.posterior[_checked_vars(idata)],
              "log_likelihood": xr.Dataset({"survival": ll})}
    if "sample_stats" in idata.groups():
        groups["sample_stats"] = idata.sample_stats
    out = az.InferenceData(**groups)
    out.attrs.update(idata.attrs)
    return out


def model_label(idata: az.InferenceData) -> str:
    """Short description of a PWE fit's structure, e.g. ``"8 intervals, rw baseline, PH"``."""
    a = idata.attrs
    tv = bool(int(a.get("time_varying", 0)))
    return (f"{len(a['cuts'])} intervals, {a.get('baseline', 'rw')} baseline, "
            f"{'time-varying HR' if tv else 'PH'}")


def loo_table(models: dict, frame: pd.DataFrame | None = None) -> pd.DataFrame:
    """PSIS-LOO comparison of PWE fits to the same patients (``az.compare``).

    ``models``: label -> InferenceData (unweighted fits of one endpoint to ``frame``). One row
    per model, best first: ``elpd_loo``, ``se``, ``p_loo``, ``elpd_diff`` (vs the best),
    ``dse`` (SE of the difference), ``weight`` (stacking), ``k > 0.7`` (patients with an
    unreliable PSIS estimate), ``max k``.
    """
    if len(models) < 2:
        raise InputError("LOO comparison: needs at least two models.")
    loos, ks, n = {}, {}, set()
    for label, idata in models.items():
        ll = with_pointwise_loglik(idata, frame)
        n.add(ll.log_likelihood.sizes["patient"])
        with warnings.catch_warnings():  # the k > 0.7 warning is reported in the table
            warnings.simplefilter("ignore")
            loos[label] = az.loo(ll, pointwise=True, var_name="survival")
        k = np.asarray(loos[label].pareto_k)
        ks[label] = (int(np.sum(k > PARETO_K)), float(np.max(k)))
    if len(n) > 1:
        raise InputError(f"LOO comparison: the models were fitted to different patients ({sorted(n)}).")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cmp = az.compare(loos, ic="loo")
    out = cmp[["elpd_loo", "se", "p_loo", "elpd_diff", "dse", "weight"]].astype(float).copy()
    out.insert(0, "model", cmp.index)
    out[f"k > {PARETO_K:g}"] = [ks[m][0] for m in cmp.index]
    out["max k"] = [ks[m][1] for m in cmp.index]
    return out.reset_index(drop=True)


def fit_loo_candidates(frame: pd.DataFrame, endpoint: str, base: az.InferenceData, *,
                       candidates=DEFAULT_CANDIDATES, prior_set=None,
                       sampler: sampling.SamplerSettings | None = None) -> tuple[dict, list]:
    """Refit the unweighted PWE model of ``endpoint`` under alternative structures.

    Each candidate is a dict of changes to ``base``'s structure: ``n_intervals`` (quantile cut
    points of the event times), ``baseline`` (``"rw"`` / ``"independent"``), ``time_varying``
    (only if :func:`bayes_haic.survival.fit_pwe` offers it). Returns ``(models, notes)``:
    label -> InferenceData with ``base`` first (label ``"main: ..."``), and notes on skipped
    candidates (unsupported option, or cut points identical to another model's).
    """
    t, d, _ = sv.endpoint_columns(frame, endpoint)
    supported = inspect.signature(sv.fit_pwe).parameters
    models = {f"main: {model_label(base)}": base}
    seen = {(tuple(base.attrs["cuts"]), base.attrs.get("baseline", "rw"),
             bool(int(base.attrs.get("time_varying", 0))))}
    notes = []
    for cand in candidates:
        opts = dict(cand)
        unknown = set(opts) - {"n_intervals", "baseline", "time_varying"}
        if unknown:
            raise InputError(f"LOO candidates: unknown option(s) {sorted(unknown)}.")
        if opts.get("time_varying") and "time_varying" not in supported:
            notes.append("time-varying HR: not offered by survival.fit_pwe; not compared.")
            continue
        cuts = (sv.cut_points(t, d, n_intervals=int(opts["n_intervals"])) if "n_intervals" in opts
                else np.asarray(base.attrs["cuts"], float))
        baseline = opts.get("baseline", base.attrs.get("baseline", "rw"))
        tv = bool(opts.get("time_varying", int(base.attrs.get("time_varying", 0))))
        key = (tuple(float(c) for c in cuts), baseline, tv)
        if key in seen:
            notes.append(f"candidate {cand}: same structure as another model; skipped.")
            continue
        seen.add(key)
        kwargs = {"cuts": cuts, "baseline": baseline, "prior_set": prior_set, "sampler": sampler}
        if tv:
            kwargs["time_varying"] = True
        fit = sv.fit_pwe(frame, endpoint, **kwargs)
        models[model_label(fit)] = fit
    return models, notes


# --------------------------------------------------------------------------- convergence


def diagnostics_table(fits: dict) -> pd.DataFrame:
    """Convergence diagnostics of every fit, one row each, with pass/fail.

    ``fits``: key -> InferenceData; keys ``(endpoint, strategy)`` or text. Columns: ``fit``,
    ``endpoint``, ``adjustment``, ``sampler`` (NUTS / Bayesian bootstrap), ``chains``,
    ``draws``, ``rhat_max``, ``ess_bulk_min``, ``ess_tail_min``, ``divergences``, ``bfmi_min``
    (over the posterior variables not in :data:`DERIVED`;
    :func:`bayes_haic.sampling.convergence`), ``status``
    (``pass`` / ``fail`` / ``not applicable``) and ``problems``. Thresholds: :data:`THRESHOLDS`.
    """
    rows = []
    for key, idata in fits.items():
        post = idata.posterior
        row = {"fit": _label(key), "endpoint": endpoint_label(str(idata.attrs.get("endpoint", ""))),
               "adjustment": idata.attrs.get("adjustment", ""),
               "sampler": "Bayesian bootstrap" if is_bootstrap(idata) else "NUTS",
               "chains": int(post.sizes["chain"]), "draws": int(post.sizes["draw"])}
        nan = {k: math.nan for k in ("rhat_max", "ess_bulk_min", "ess_tail_min", "divergences", "bfmi_min")}
        if is_bootstrap(idata):
            rows.append({**row, **nan, "status": "not applicable",
                         "problems": "Bayesian bootstrap: independent replicates, not a Markov chain"})
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            conv = sampling.convergence(idata, var_names=_checked_vars(idata))
        stats = idata.get("sample_stats")
        notes = []
        if stats is None or "diverging" not in stats:
            conv["divergences"] = math.nan
            notes.append("no divergence information")
        if stats is None or "energy" not in stats:
            notes.append("no energy (BFMI) information")
        bad = _problems(conv, row["chains"])
        rows.append({**row, **{k: conv[k] for k in nan}, "status": "fail" if bad else "pass",
                     "problems": "; ".join(bad + notes)})
    return pd.DataFrame(rows, columns=["fit", "endpoint", "adjustment", "sampler", "chains", "draws",
                                       "rhat_max", "ess_bulk_min", "ess_tail_min", "divergences",
                                       "bfmi_min", "status", "problems"])


def _checked_vars(idata) -> list[str]:
    names = [v for v in idata.posterior.data_vars if v not in DERIVED]
    return names or list(idata.posterior.data_vars)


def _problems(conv: dict, chains: int) -> list[str]:
    T = THRESHOLDS
    bad = []
    if chains < T["chains"]:
        bad.append(f"{chains} chain (R-hat needs >= {T['chains']})")
    r = conv["rhat_max"]
    if not np.isfinite(r):
        bad.append("R-hat not computable")
    elif r > T["rhat_max"]:
        bad.append(f"R-hat {r:.3f} > {T['rhat_max']:g}")
    for k, name in (("ess_bulk_min", "bulk ESS"), ("ess_tail_min", "tail ESS")):
        v = conv[k]
        if not np.isfinite(v) or v < T[k]:
            bad.append(f"{name} {v:.0f} < {T[k]:g}")
    dv = conv["divergences"]
    if np.isfinite(dv) and dv > T["divergences"]:
        bad.append(f"{int(dv)} divergent transition{'s' if dv != 1 else ''}")
    b = conv["bfmi_min"]
    if np.isfinite(b) and b < T["bfmi_min"]:
        bad.append(f"BFMI {b:.2f} < {T['bfmi_min']:g}")
    return bad


def failures(table: pd.DataFrame) -> list[str]:
    """One message per failing fit of :func:`diagnostics_table`, for the top of the report."""
    return [f"Convergence problem: {r.fit}: {r.problems}." for r in table.itertuples()
            if r.status == "fail"]


# --------------------------------------------------------------------------- figures


# --------------------------------------------------------------------------- all checks of a run


@dataclass
class Checks:
    """Everything :func:`run_checks` computed: the convergence ``diagnostics`` table (main
    fits, time-varying fits and LOO candidates) and its ``failures``; the PPCs (``survival``,
    ``response``: fit key -> check); ``loo``: (endpoint, comparison title) -> :func:`loo_table`;
    the ``candidate_fits``; ``notes``; ``seconds`` elapsed; the PPC settings ``n_draws`` and
    ``seed``. The report section is :func:`bayes_haic.report.checks.checks_section`."""

    diagnostics: pd.DataFrame
    failures: list
    survival: dict
    response: dict
    loo: dict
    candidate_fits: dict
    notes: list
    seconds: float
    n_draws: int = PPC_DRAWS
    seed: int = DEFAULT_SEED

    def events_table(self) -> pd.DataFrame:
        """Observed vs predictive events of every survival fit, one row per arm and interval."""
        return pd.concat([p.events for p in self.survival.values()], ignore_index=True)


def _survival_frame(cohort, strategy: str, design):
    """(frame, weights) of a collapsed fit of ``strategy`` to ``cohort``."""
    if strategy == "iptw":
        if design is None:
            raise InputError("IPTW fit: the propensity design (its weights) was not given.")
        return cohort.frame, design.weights
    if strategy == "psm":
        if design is None:
            raise InputError("PSM fit: the propensity design (its matched set) was not given.")
        return design.matched_frame(cohort.frame), None
    return cohort.frame, None


def _is_patient_level(idata) -> bool:
    """The fit stored its patients' data (so the PPC needs no frame)."""
    return sv.patient_data(idata) is not None


def _loo_models(fits: dict, time_varying_fits: dict, cohort, design):
    """Comparisons that need no new fit: each endpoint's time-varying fit against the
    proportional-hazards fit of the same strategy -> {(endpoint, title): (models, frame)}."""
    out = {}
    for endpoint, tv in (time_varying_fits or {}).items():
        strategy = tv.attrs.get("adjustment", "")
        ph = fits.get((endpoint, strategy))
        if ph is None or is_bootstrap(ph) or is_bootstrap(tv):
            continue
        frame = None if _is_patient_level(ph) else _survival_frame(cohort, strategy, design)[0]
        title = (f"{endpoint_label(endpoint)}: proportional vs time-varying HR "
                 f"({STRATEGY_LABELS.get(strategy, strategy)})")
        out[(endpoint, title)] = ({f"main: {model_label(ph)}": ph, model_label(tv): tv}, frame)
    return out


def run_checks(cohort, fits: dict, *, design=None, time_varying_fits: dict | None = None,
               prior_set=None, sampler: sampling.SamplerSettings | None = None,
               seed: int = DEFAULT_SEED, n_draws: int = PPC_DRAWS, compare_models: bool = False,
               candidates=DEFAULT_CANDIDATES,
               candidate_sampler: sampling.SamplerSettings | None = None, echo=None) -> Checks:
    """All checks of the main job's fits (the "Checks" report section is
    :func:`bayes_haic.report.checks.checks_section` of the result).

    ``fits``: ``(endpoint, strategy) -> InferenceData`` as in ``RunState.fits`` (endpoints
    ``os``/``pfs`` are PWE fits, ``orr`` response fits). ``design``: the propensity design (IPT
    weights and matched set of the IPTW/PSM fits). ``time_varying_fits``: endpoint ->
    time-varying-HR fit (``RunState.hr_t``); each is compared by PSIS-LOO with the
    proportional-hazards fit of its strategy at no extra cost. ``compare_models=True``: also
    refit each endpoint's unadjusted model under ``candidates`` (:func:`fit_loo_candidates`,
    with ``prior_set`` and ``candidate_sampler``, default :func:`candidate_settings` of
    ``sampler``; a time-varying candidate is skipped when ``time_varying_fits`` already covers
    the endpoint) and compare them by PSIS-LOO. That is one NUTS fit per candidate and
    endpoint (about 10 s each on the project machines), so it is off by default; everything
    else works on the existing draws (seconds). The candidates' and the time-varying fits'
    convergence is part of ``diagnostics``. ``seed``/``n_draws``: the PPC replicates.
    ``echo``: progress messages.
    """
    import time

    started = time.perf_counter()
    say = echo or (lambda *_: None)
    notes, surv, resp, loo, cand_fits = [], {}, {}, {}, {}
    for key, idata in fits.items():
        endpoint, strategy = key
        try:
            if endpoint == "orr":
                resp[key] = response_ppc(idata)
            else:
                frame, weights = (None, None) if _is_patient_level(idata) else \
                    _survival_frame(cohort, strategy, design)
                surv[key] = survival_ppc(idata, frame, weights=weights, n_draws=n_draws, seed=seed,
                                         label=_seed_label(key))
        except InputError as err:
            notes.append(f"{_label(key)}: posterior predictive check not computed: {err}")
    free = _loo_models(fits, time_varying_fits, cohort, design)
    for (endpoint, title), (models, frame) in free.items():
        try:
            loo[(endpoint, title)] = loo_table(models, frame)
        except InputError as err:
            notes.append(f"{title}: LOO not computed: {err}")
    if compare_models:
        covered = {ep for ep, _ in free}
        for (endpoint, strategy), idata in fits.items():
            if endpoint == "orr" or strategy != "none" or is_bootstrap(idata):
                continue
            cands = list(candidates)
            if endpoint in covered and any(c.get("time_varying") for c in cands):
                cands = [c for c in cands if not c.get("time_varying")]
                notes.append(f"{endpoint_label(endpoint)} LOO: the time-varying HR is compared under the "
                             "strategy of the main job's time-varying fit; not refitted unadjusted.")
            if not cands:
                continue
            say(f"checks: {endpoint_label(endpoint)} PSIS-LOO candidate fits ({len(cands)})")
            models, cnotes = fit_loo_candidates(cohort.frame, endpoint, idata, candidates=cands,
                                                prior_set=prior_set,
                                                sampler=candidate_sampler or candidate_settings(sampler))
            notes.extend(f"{endpoint_label(endpoint)} LOO: {n}" for n in cnotes)
            if len(models) > 1:
                title = f"{endpoint_label(endpoint)}: model structures (unadjusted)"
                loo[(endpoint, title)] = loo_table(models, cohort.frame)
            for label, fit in models.items():
                if not label.startswith("main: "):
                    cand_fits[f"{endpoint_label(endpoint)} LOO candidate: {label}"] = fit
    tv_fits = {time_varying_label(ep, v): v for ep, v in (time_varying_fits or {}).items()}
    diag = diagnostics_table({**fits, **tv_fits, **cand_fits})
    fails = failures(diag)
    return Checks(diag, fails, surv, resp, loo, cand_fits, notes,
                  time.perf_counter() - started, n_draws, seed)


def time_varying_label(endpoint: str, idata) -> str:
    """The diagnostics table's label of ``endpoint``'s time-varying-HR fit."""
    return f"{endpoint_label(endpoint)} {idata.attrs.get('adjustment', '')} time-varying HR"


def diagnostics_order(fits: dict, time_varying_fits: dict | None = None) -> list[str]:
    """The ``fit`` labels of :func:`run_checks`'s diagnostics table, in its order: ``fits``,
    then the time-varying fits (then any LOO candidates)."""
    return [_label(k) for k in fits] + [time_varying_label(ep, v)
                                        for ep, v in (time_varying_fits or {}).items()]


def merge_checks(parts: list, order: list | None = None) -> Checks:
    """One :class:`Checks` of several :func:`run_checks` results on disjoint sets of fits (the
    main job checks each block's fits as the block ends). Every check is per fit or per
    endpoint (the PPC replicates are seeded per fit label), so this equals one
    :func:`run_checks` of all the fits. ``order``: the ``fit`` labels in the order the
    diagnostics table lists them (others after, in the order given)."""
    if not parts:
        raise ValueError("merge_checks: no checks to merge")
    diag = pd.concat([p.diagnostics for p in parts], ignore_index=True)
    if order:
        rank = {f: i for i, f in enumerate(order)}
        pos = sorted(range(len(diag)), key=lambda i: rank.get(diag["fit"].iat[i], len(rank)))
        diag = diag.iloc[pos].reset_index(drop=True)

    def union(name):
        return {k: v for p in parts for k, v in getattr(p, name).items()}

    return Checks(diag, failures(diag), union("survival"), union("response"), union("loo"),
                  union("candidate_fits"), [n for p in parts for n in p.notes],
                  sum(p.seconds for p in parts), parts[0].n_draws, parts[0].seed)

