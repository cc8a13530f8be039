r"""Prior sensitivity of the hazard ratio: prior sets, cut points, power-scaling, tipping point.

What is computed
----------------
For each endpoint (OS, PFS; months) and adjustment strategy, the piecewise-exponential model of
:mod:`bayes_haic.survival` is fitted under every prior set (``models/priors/*.toml``) and every
choice of cut points (default: 8, 4 and 12 quantile intervals of the event times and the fixed
grid 0, 3, 6, 9, 12, 18, 24 months). The estimand is the strategy's hazard ratio HAIC-LEN-P vs
LEN-P (``none``: the crude marginal HR in the cohort). Reported per posterior: median, 95%
equal-tailed credible interval, :math:`P(HR < 1)` and how it was obtained (``method``).

Reweighting instead of refitting
--------------------------------
A posterior under prior :math:`p_B` is the posterior under :math:`p_A` reweighted by
:math:`w_s \propto p_B(\theta_s) / p_A(\theta_s)` (only the priors that differ matter). The raw
ratios are Pareto-smoothed (PSIS; Vehtari et al. 2024, JMLR 25(72)) with ``az.psislw``; the
estimated Pareto shape :math:`\hat k` says whether this is reliable: below
:math:`\min(0.7,\, 1 - 1/\log_{10} S)` for :math:`S` draws, and with an effective sample size
:math:`r_{eff} / \sum_s w_s^2` of at least 400 (:data:`MIN_ESS`; a low k alone does not make a
tail probability such as P(HR < 1) well estimated), it is used (``method`` "PSIS reweighting
(k=0.23)"), otherwise the model is refitted (``method`` "refit"). Refits reuse the
model graph that :mod:`bayes_haic.survival` caches per structure (same number of intervals and
prior families; new data and prior values), and with the nutpie backends its compilation, so
a refit costs 0.4-2 s (see benchmarks/bench_sensitivity.py).

On the main cut set (the first) every prior set is refitted, because the power-scaling
diagnostics need unweighted draws; the reweighted estimate from the first prior's fit is
computed as well and compared with the refit (:attr:`SensitivityStudy.reweighting_check`), so
every run shows whether reweighting can be trusted where it is used (the other cut sets, the
tipping point).

Power-scaling sensitivity
-------------------------
Kallioinen, Paananen, Bürkner & Vehtari (2023, Stat Comput 34:57): the prior (or likelihood)
is raised to a power :math:`\alpha` near 1 by importance weighting and the change of the
posterior of log HR is measured by the cumulative Jensen-Shannon distance per unit of
:math:`\log_2\alpha` (``az.psens``). Above 0.05 a component is influential. Prior sensitivity
is computed for the log-HR prior alone and for every prior of the set (log HR, baseline
hazard, random-walk sd; the structural N(0, 1) innovations of the non-centred random walk are
not power-scaled); the log prior densities are added to the InferenceData
(:func:`add_log_prior`) from the prior objects and the posterior draws. Diagnosis as in the
``priorsense`` package: prior and likelihood both >= 0.05, "potential prior-data conflict";
prior >= 0.05 and likelihood < 0.05, "potential strong prior and weak likelihood".

Baseline-hazard prior
---------------------
The shipped sets differ only in the prior on the treatment effect, but the HR also depends on
the prior of the baseline hazard (a nuisance parameter): with few events per interval a
proper baseline prior adds information that the hazard ratio borrows (found on R's ``ovarian``
data, 12 deaths in 8 intervals: crude HR 0.43 under the reference baseline prior
Normal(-2.5, 2), 0.54 with its sd 5-fold wider, and 0.54 by maximum likelihood in R). On the main cut set every MCMC fit
that uses ``survival.log_baseline_hazard`` is therefore also computed with that prior's sd
multiplied by :data:`BASELINE_WIDEN` (PSIS reweighting where reliable, else a refit), and the
shift of the posterior median and 95% limits of log HR is reported in units of its posterior sd
(:attr:`SensitivityStudy.baseline_check`). It is flagged as influential above
:data:`BASELINE_SHIFT` sd when the shift also exceeds 3 Monte Carlo standard errors. (IPTW
replicates are maximum-likelihood fits: no baseline prior enters them.) The same happens with
plenty of events when the prior is centred far from the cohort's hazards (R's ``pbc`` trial,
125 deaths at ~0.006 per month: crude HR 0.97 under the reference prior, 1.05 widened, 1.06 by
maximum likelihood), so each row also gives the analysed control arm's crude log hazard and its
distance from the prior's mean in prior sds (:func:`crude_log_hazard`).

Tipping point
-------------
How skeptical must a prior be before the evidence of benefit falls below a threshold? The
skeptical family is :math:`\log HR \sim N(0, s^2)` with the other priors of the first set;
:math:`P(HR < 1 \mid s)` decreases as :math:`s` decreases (the prior pulls the estimate to
HR = 1). The tipping scale :math:`s^*` solves :math:`P(HR < 1 \mid s^*) = ` threshold (default
0.95).

* Patient level: :math:`P(HR < 1 \mid s)` on a grid of :math:`s` from the first prior's scale
  down, each by PSIS reweighting from the nearest fitted :math:`s` where :math:`\hat k` allows,
  else by a refit at that :math:`s` (which then serves the next values); the crossing is refined
  by bisection in :math:`\log s`. Its Monte Carlo uncertainty is propagated from the MCSE of
  :math:`P` through the slope of the curve.
* Published tier (the study's published IPTW HR, :mod:`bayes_haic.reanalysis`): with the normal
  likelihood :math:`\log\widehat{HR} \sim N(\theta, se^2)`, :math:`y = \log\widehat{HR} < 0`,
  :math:`P(HR < 1 \mid s) = \Phi\!\left(-y s / (se\sqrt{s^2 + se^2})\right)`, so exactly
  :math:`s^* = z\,se^2 / \sqrt{y^2 - z^2 se^2}` with :math:`z = \Phi^{-1}(\text{threshold})`;
  if :math:`|y|/se \le z` no prior of the family reaches the threshold.

Each tipping point is also said in words: the prior's :math:`P(HR < 0.5)` and 95% prior interval
at :math:`s^*`, next to the shipped skeptical prior (:math:`s = 0.421`, :math:`P(HR < 0.5) = 5\%`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr
from scipy import special, stats

from . import analysis, response, sampling, survival
from .errors import InputError
from .diagnostics import arviz_numpy
from .fitinfo import FitInfo
from .labels import IMPORTANT_HR, STUDY_ARMS
from .labels import format_small_probability as _fmt_p
from .importance import K_MAX, MIN_ESS, Reweighting, psis_weights, weighted_quantile
from .priors import Prior, PriorSet, load_prior_set, shipped_prior_names
from .results import result_row
from .sampling import SamplerSettings
from .schema import endpoint_label, require_endpoint

DEFAULT_THRESHOLD = 0.95
#: the baseline-hazard prior check: that prior's sd is multiplied by BASELINE_WIDEN, and a shift
#: of a posterior quantile of log HR (median, 2.5%, 97.5%) above BASELINE_SHIFT posterior sds
#: (and 3 Monte Carlo standard errors) is called influential
BASELINE_KEY = "survival.log_baseline_hazard"
BASELINE_WIDEN = 5.0
BASELINE_SHIFT = 0.1
# what the study reported (IPTW hazard ratios, PSM medians, ORR under PSM and IPTW) and the crude
# comparison
DEFAULT_STRATEGIES = ("none", "iptw", "psm")
DEFAULT_ORR_STRATEGIES = ("psm", "iptw")
PSENS_THRESHOLD = 0.05  # Kallioinen et al. (2023): power-scaling sensitivity worth attention
HR_KEY = "survival.log_hr"
SENSITIVITY_METHOD = "sensitivity study"


# --------------------------------------------------------------------------- cut sets


@dataclass(frozen=True)
class CutSet:
    """A choice of PWE cut points: ``n_intervals`` quantile intervals of the event times, or a
    fixed ``grid`` of months (starting at 0)."""

    label: str
    method: str = "quantile"  # "quantile" | "grid"
    n_intervals: int = 8
    grid: tuple = ()

    def cuts(self, cohort, endpoint: str) -> np.ndarray:
        """The cut points (months) for ``endpoint`` of ``cohort``."""
        spec = list(self.grid) if self.method == "grid" else "quantile"
        return analysis.endpoint_cuts(cohort, endpoint, spec, self.n_intervals)


def quantile_cuts(n_intervals: int) -> CutSet:
    return CutSet(f"{n_intervals} quantile intervals", "quantile", int(n_intervals))


def grid_cuts(grid) -> CutSet:
    g = tuple(float(x) for x in survival.validate_cuts(grid, "cut grid"))
    return CutSet("grid " + ", ".join(f"{x:g}" for x in g) + " months", "grid", len(g), g)


DEFAULT_CUT_SETS = (
    quantile_cuts(8),
    quantile_cuts(4),
    quantile_cuts(12),
    grid_cuts([0, 3, 6, 9, 12, 18, 24]),
)


def cut_sets_with_main(main) -> tuple:
    """``main`` (anything :func:`as_cut_set` reads) first, then the other default cut sets."""
    m = as_cut_set(main)
    return (m, *(c for c in DEFAULT_CUT_SETS if c != m))


def as_cut_set(value) -> CutSet:
    """A :class:`CutSet` from itself, an integer (quantile intervals), a string ``"quantile:8"``
    / ``"8"`` / ``"0,3,6,12"`` or a sequence of months (a grid)."""
    if isinstance(value, CutSet):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if value < 1:
            raise InputError(f"cut set: expected a positive number of intervals; found {value}.")
        return quantile_cuts(int(value))
    if isinstance(value, str):
        text = value.strip().removeprefix("quantile:").strip()
        try:
            if "," in text:
                return grid_cuts([float(x) for x in text.split(",")])
            return as_cut_set(int(text))
        except ValueError:
            raise InputError(
                f"cut set {value!r}: expected 'quantile:N' (N quantile intervals) or a "
                "comma-separated grid of months starting at 0, e.g. '0,3,6,9,12,18,24'."
            ) from None
    try:
        return grid_cuts(list(value))
    except TypeError:
        raise InputError(f"cut set: cannot read {value!r}.") from None


# --------------------------------------------------------------------------- log prior


def model_spec(idata: az.InferenceData) -> survival.ModelSpec:
    """The PWE model structure of a fit (:func:`bayes_haic.survival.model_spec`)."""
    return survival.model_spec(idata.attrs)


def prior_variables(idata: az.InferenceData, prior_set: PriorSet | None = None) -> dict[str, str]:
    """Posterior variable -> prior key (``"survival.log_hr"``, ...) for every free parameter
    whose prior comes from the prior set (structural N(0, 1) innovations excluded).

    The treatment log-HR's key depends on the set: with ``prior_set`` it is
    ``prior_set.log_hr_key(endpoint)`` (e.g. ``survival.log_hr_pfs`` where the set defines
    it); without, the key the fit was made with."""
    spec = model_spec(idata)
    endpoint = idata.attrs.get("endpoint", "")
    out = {}
    for var, key in spec.prior_vars().items():
        if var not in idata.posterior:
            continue
        if prior_set is not None and key == spec.hr_prior:
            key = prior_set.log_hr_key(endpoint)
        out[var] = key
    return out


def log_prior(idata: az.InferenceData, prior_set: PriorSet) -> xr.Dataset:
    """Log prior density of each prior-set parameter at every posterior draw (dims as in the
    posterior, e.g. ``(chain, draw)``)."""
    out = {}
    for var, key in prior_variables(idata, prior_set).items():
        da = idata.posterior[var]
        out[var] = xr.DataArray(prior_set.get(key).logpdf(da.values), dims=da.dims, coords=da.coords)
    return xr.Dataset(out)


def add_log_prior(idata: az.InferenceData, prior_set: PriorSet) -> az.InferenceData:
    """A copy of ``idata`` with a ``log_prior`` group (see :func:`log_prior`), as ``az.psens``
    needs; other groups are shared, not copied."""
    groups = {g: idata[g] for g in idata.groups() if g != "log_prior"}
    out = az.InferenceData(**groups, log_prior=log_prior(idata, prior_set))
    out.attrs.update(idata.attrs)
    return out


def log_prior_ratio(idata: az.InferenceData, from_set: PriorSet, to_set: PriorSet) -> np.ndarray:
    """log p_to(theta) - log p_from(theta) at every draw, ``(chain, draw)``, summed over the
    prior-set parameters whose priors differ (equal priors cancel)."""
    post = idata.posterior
    total = np.zeros((post.sizes["chain"], post.sizes["draw"]))
    to_keys = prior_variables(idata, to_set)
    for var, key in prior_variables(idata, from_set).items():
        pa, pb = from_set.get(key), to_set.get(to_keys[var])
        if pa == pb:
            continue
        da = post[var]
        x = da.transpose("chain", "draw", *[d for d in da.dims if d not in ("chain", "draw")]).values
        d = pb.logpdf(x) - pa.logpdf(x)
        total += d.reshape(d.shape[:2] + (-1,)).sum(axis=-1)
    return total


# --------------------------------------------------------------------------- weighted draws


def psis_reweight(idata: az.InferenceData, from_set: PriorSet, to_set: PriorSet, *, k_max: float = K_MAX,
                  min_ess: float = MIN_ESS) -> Reweighting:
    """PSIS weights from the posterior ``idata`` (fitted under ``from_set``) to the posterior
    under ``to_set`` (same model and data): log ratio = log p_to(theta) - log p_from(theta).

    A posterior pooled over design draws (PSM; attrs ``design_draws``,
    ``chains_per_design_draw``) is an equal mixture of one posterior per matched set; its
    reweighted form must stay an equal mixture, so the ratios are normalised within each design
    draw's chains (each fit's weights sum to 1 / draws) before smoothing."""
    lr = log_prior_ratio(idata, from_set, to_set)
    groups = int(idata.attrs.get("design_draws", 1) or 1)
    per = int(idata.attrs.get("chains_per_design_draw", 0) or 0)
    if groups > 1 and per > 0 and lr.shape[0] == groups * per:
        g = lr.reshape(groups, per * lr.shape[1])
        g = g - special.logsumexp(g, axis=1, keepdims=True)
        lr = g.reshape(lr.shape)
    return psis_weights(lr, k_max=k_max, min_ess=min_ess)


# --------------------------------------------------------------------------- one posterior


@dataclass
class HRPosterior:
    """The posterior of the hazard ratio for one endpoint, strategy, cut set and prior set.

    ``log_hr``: draws (chain, draw); ``weights``: normalised weights over the flattened draws
    (``None``: equal, i.e. MCMC or bootstrap draws). ``how``: ``"refit"``, ``"PSIS reweighting
    (k=0.23)"`` or ``"prior not used"``."""

    endpoint: str
    strategy: str
    cut_set: CutSet
    cuts: tuple
    prior_set: PriorSet
    log_hr: np.ndarray
    weights: np.ndarray | None
    how: str
    k: float = math.nan
    ess: float = math.nan
    mcse_median: float = math.nan  # of the posterior median of log HR
    base: str = ""  # label of the fit that was reweighted
    fit_method: str = ""  # the fitted model, from idata.attrs["method"]
    estimand: str = ""
    n_treated: int = -1
    n_control: int = -1
    diagnostics: dict = field(default_factory=dict)
    idata: az.InferenceData | None = None  # kept for refits on the main cut set
    # arm-level median survival draws (months), (draws, 2) [control, treated]; collapsed fits only
    medians: np.ndarray | None = None
    max_follow_up: float = math.inf  # months: the fit's longest follow-up (medians beyond it are extrapolated)
    model: str = "pwe"

    @property
    def prior_label(self) -> str:
        return self.prior_set.label()

    @property
    def prior_log_hr(self) -> Prior:
        return self.prior_set.get(self.prior_set.log_hr_key(self.endpoint))

    def draw_weights(self) -> np.ndarray:
        """The weight of each draw (summing to 1; equal weights for an unweighted sample)."""
        n = self.log_hr.size
        return np.full(n, 1.0 / n) if self.weights is None else self.weights

    def quantile(self, q) -> np.ndarray:
        """Quantiles of log HR."""
        return weighted_quantile(self.log_hr, self.draw_weights(), q)

    def prob_below(self, ratio: float) -> float:
        """Posterior P(HR < ratio)."""
        return float(np.sum(self.draw_weights() * (self.log_hr.ravel() < math.log(ratio))))

    def summary(self, important: float = IMPORTANT_HR) -> dict:
        """Median and 95% interval of the HR, P(HR < 1) and P(HR < ``important``) (the
        clinically important HR; key ``p_hr_below_<important>``)."""
        lo, med, hi = np.exp(self.quantile([0.025, 0.5, 0.975]))
        return {"median": float(med), "lower": float(lo), "upper": float(hi),
                "p_hr_below_1": self.prob_below(1.0),
                f"p_hr_below_{important:g}": self.prob_below(important)}

    def arm_medians(self, arm: str) -> np.ndarray | None:
        """The draws of ``arm``'s (``treated``/``control``) median survival (months), or None."""
        return None if self.medians is None else self.medians[:, 1 if arm == "treated" else 0]

    def median_summary(self, arm: str) -> dict | None:
        """Median, 2.5% and 97.5% quantiles of the arm's median survival (months), or None."""
        x = self.arm_medians(arm)
        if x is None:
            return None
        lo, med, hi = weighted_quantile(x, self.draw_weights(), [0.025, 0.5, 0.975])
        return {"median": float(med), "lower": float(lo), "upper": float(hi)}

    def median_note(self, arm: str, short: bool = False) -> str:
        """:func:`bayes_haic.survival.extrapolation_note` of the arm's median survival ("" if it
        is not extrapolated or there are no median draws)."""
        x = self.arm_medians(arm)
        if x is None:
            return ""
        share = survival.extrapolated_share(x, self.max_follow_up, self.draw_weights())
        return survival.extrapolation_note(share, self.max_follow_up, short=short)

    @property
    def method(self) -> str:
        """``method`` of the results row: how, cut set, fitted model."""
        return (f"{SENSITIVITY_METHOD}: {self.how}"
                + (f" of the '{self.base}' fit" if self.weights is not None else "")
                + f"; cuts: {self.cut_set.label}; {self.fit_method}")


def _mcse_median_weighted(log_hr, weights, ess) -> float:
    """MCSE of a weighted median: half the distance between the quantiles at
    0.5 -+ sqrt(0.25 / ESS) (the normal approximation of the median's binomial count)."""
    if not ess > 1:
        return math.nan
    d = math.sqrt(0.25 / ess)
    lo, hi = weighted_quantile(log_hr, weights, [0.5 - d, 0.5 + d])
    return float(hi - lo) / 2


def _median_draws(idata) -> np.ndarray | None:
    """Arm-level median survival draws (draws, 2) of a collapsed PWE fit (months), else None
    (patient-level fits standardise over patients: costly, and not asked of the study)."""
    if idata.attrs.get("layout") == "patient":
        return None
    h = idata.posterior["hazard"].transpose("chain", "draw", "arm", "intervals").values
    med = survival.median_survival(h.reshape((-1,) + h.shape[2:]), idata.attrs["cuts"])
    return med


def _is_mcmc(idata) -> bool:
    return "sample_stats" in idata.groups() and FitInfo.of(idata).is_mcmc


def _diagnostics(idata) -> dict:
    """R-hat, bulk ESS and divergences over log HR and the baseline (NaN without MCMC)."""
    if not _is_mcmc(idata):
        return {"rhat_max": math.nan, "ess_bulk_min": math.nan, "divergences": math.nan}
    names = [v for v in ("log_hr", "log_lambda", "log_hr_t") if v in idata.posterior]
    conv = sampling.convergence(idata, var_names=names)
    return {k: conv[k] for k in ("rhat_max", "ess_bulk_min", "divergences")}


def _from_fit(idata, endpoint, strategy, cut_set, prior_set, how="refit", keep=False) -> HRPosterior:
    lh = idata.posterior["log_hr"].transpose("chain", "draw").values
    mcse = math.nan
    ess = math.nan
    groups = int(idata.attrs.get("design_draws", 1) or 1)
    per = int(idata.attrs.get("chains_per_design_draw", 0) or 0)
    if _is_mcmc(idata) and groups > 1 and per > 1 and lh.shape[0] == groups * per:
        # pooled over matched sets: chains of different targets, so each fit's ESS, summed
        # (as sampling.convergence does); the MCSE of the pooled median from that ESS
        with arviz_numpy():
            ess = float(sum(az.ess(lh[m * per:(m + 1) * per], method="bulk") for m in range(groups)))
        mcse = _mcse_median_weighted(lh, np.full(lh.size, 1.0 / lh.size), ess)
    elif _is_mcmc(idata):
        with arviz_numpy():  # (ArviZ's numba path: the same values after a ~0.2-0.4 s compile)
            mcse = float(az.mcse(lh, method="median")) if lh.shape[0] > 1 else math.nan
            ess = float(az.ess(lh, method="bulk")) if lh.shape[0] > 1 else math.nan
    else:
        n = lh.size
        ess = float(n)
        mcse = _mcse_median_weighted(lh, np.full(n, 1.0 / n), n)
    a = idata.attrs
    return HRPosterior(
        endpoint, strategy, cut_set, tuple(float(c) for c in a["cuts"]), prior_set, lh, None, how,
        ess=ess, mcse_median=mcse, fit_method=a.get("method", ""), estimand=a.get("estimand", ""),
        n_treated=int(a.get("n_treated", -1)), n_control=int(a.get("n_control", -1)),
        diagnostics=_diagnostics(idata), idata=idata if keep else None,
        medians=_median_draws(idata), max_follow_up=float(a.get("max_follow_up", math.inf)),
        model=survival.model_id(a))


def _from_weights(base: HRPosterior, prior_set, rw: Reweighting) -> HRPosterior:
    lh = base.log_hr
    d = dict(base.diagnostics)
    if "ess_bulk_min" in d and np.isfinite(d["ess_bulk_min"]):
        d["ess_bulk_min"] = min(d["ess_bulk_min"], rw.ess)
    return replace(
        base, prior_set=prior_set, weights=rw.weights, how=f"PSIS reweighting (k={rw.k:.2f})",
        k=rw.k, ess=rw.ess, mcse_median=_mcse_median_weighted(lh, rw.weights, rw.ess),
        base=base.prior_label, diagnostics=d, idata=None)


# --------------------------------------------------------------------------- power scaling


def _psens_value(res) -> float:
    if isinstance(res, xr.Dataset):
        res = res[next(iter(res.data_vars))]
    return float(np.asarray(res))


def power_scaling(idata: az.InferenceData, prior_set: PriorSet, var: str = "log_hr") -> dict:
    """Power-scaling sensitivity (``az.psens``, Kallioinen et al. 2023) of the posterior of
    ``var`` to the log-HR prior alone, to every prior of the set, and to the likelihood, with
    the ``priorsense`` diagnosis. ``idata`` needs a ``log_likelihood`` group (MCMC fits of
    :func:`bayes_haic.survival.fit_pwe` have one)."""
    data = add_log_prior(idata, prior_set)
    pv = prior_variables(idata, prior_set)
    hr_key = prior_set.log_hr_key(idata.attrs.get("endpoint", ""))
    hr_vars = [v for v, k in pv.items() if k == hr_key]
    prior_hr = _psens_value(az.psens(data, component="prior", component_var_names=hr_vars, var_names=[var]))
    prior_all = _psens_value(az.psens(data, component="prior", var_names=[var]))
    lik = _psens_value(az.psens(data, component="likelihood", var_names=[var]))
    prior = max(prior_hr, prior_all)
    if prior >= PSENS_THRESHOLD and lik >= PSENS_THRESHOLD:
        diagnosis = "potential prior-data conflict"
    elif prior >= PSENS_THRESHOLD:
        diagnosis = "potential strong prior and weak likelihood"
    else:
        diagnosis = "-"
    return {"variable": var, "prior_log_hr": prior_hr, "prior_all": prior_all,
            "likelihood": lik, "diagnosis": diagnosis,
            "priors_scaled": ", ".join(pv)}


# --------------------------------------------------------------------------- tipping point


def normal_scale_prior(scale: float) -> Prior:
    return Prior("Normal", {"mu": 0.0, "sigma": float(scale)})


def prior_prob_below(scale: float, ratio: float = 0.5) -> float:
    """P(HR < ratio) under the Normal(0, scale) prior on log HR."""
    return float(stats.norm.cdf(math.log(ratio) / scale))


def describe_scale(scale: float) -> str:
    """A Normal(0, scale) prior on log HR in words."""
    z = stats.norm.isf(0.025)
    lo, hi = math.exp(-z * scale), math.exp(z * scale)
    return (f"Normal(0, {scale:.3g}) on log HR: 95% prior probability that HR lies between "
            f"{lo:.2f} and {hi:.2f}, P(HR < 0.5) = {_fmt_p(prior_prob_below(scale))}, "
            f"P(HR < 0.7) = {_fmt_p(prior_prob_below(scale, 0.7))}")


def conjugate_prob_benefit(log_hr: float, se: float, scale) -> np.ndarray:
    """P(HR < 1) for log HR-hat ~ N(theta, se^2) and theta ~ N(0, scale^2), exactly:
    Phi(-y s / (se sqrt(s^2 + se^2)))."""
    s = np.asarray(scale, float)
    return stats.norm.cdf(-log_hr * s / (se * np.sqrt(s**2 + se**2)))


def conjugate_tipping_scale(log_hr: float, se: float, threshold: float = DEFAULT_THRESHOLD) -> float:
    """The s at which P(HR < 1) = ``threshold`` under a Normal(0, s) prior on log HR and a normal
    likelihood (exact). ``inf`` if even a flat prior gives P(HR < 1) <= threshold (no prior of
    the family reaches it)."""
    _check_threshold(threshold)
    if not se > 0:
        raise InputError(f"tipping point: the SE of log HR must be positive; found {se}.")
    z = stats.norm.ppf(threshold)
    gap = log_hr**2 - (z * se) ** 2
    if log_hr >= 0 or gap <= 0:
        return math.inf
    return float(z * se**2 / math.sqrt(gap))


def _check_threshold(threshold: float) -> None:
    if not 0.5 < threshold < 1:
        raise InputError(
            f"threshold: expected a probability between 0.5 and 1 (P(HR < 1) under a prior "
            f"centred on HR = 1 is at least 0.5); found {threshold!r}.")


@dataclass
class TippingPoint:
    """P(HR < 1) against the scale s of a Normal(0, s) prior on log HR, and the tipping s.

    ``status``: ``"tips"`` (crossing found, ``scale`` = s*), ``"never"`` (P(HR < 1) stays at or
    above the threshold down to the smallest s tried; or, with ``scale`` = inf, never reaches
    it under any s), ``"already"`` (below the threshold even at the widest s)."""

    data_tier: str
    endpoint: str
    strategy: str
    threshold: float
    scales: np.ndarray
    p_benefit: np.ndarray
    mcse: np.ndarray
    how: list
    scale: float
    scale_range: tuple = (math.nan, math.nan)
    status: str = "tips"
    n_refits: int = 0
    base_label: str = ""
    detail: str = ""  # e.g. the published HR and SE

    @property
    def endpoint_name(self) -> str:
        """The endpoint's short name: the study's (OS, PFS) for the published tier, else as the
        cohort names it."""
        return self.endpoint.upper() if self.data_tier == "published" else endpoint_label(self.endpoint)

    def text(self) -> str:
        """The tipping point in plain words."""
        who = self.endpoint_name + (f" ({self.strategy})" if self.strategy else "")
        thr = f"{self.threshold:g}"
        if self.status == "already":
            return (f"{who}: P(HR < 1) is already below {thr} under the widest prior tried "
                    f"(Normal(0, {self.scales.max():.3g}) on log HR); there is no tipping point.")
        if self.status == "never":
            if math.isinf(self.scale):
                return (f"{who}: P(HR < 1) does not reach {thr} under any Normal(0, s) prior on "
                        "log HR (not even a flat one), so there is no tipping point.")
            return (f"{who}: P(HR < 1) stays at or above {thr} for every prior tried, down to "
                    f"{describe_scale(self.scales.min())}.")
        rng = ""
        if np.all(np.isfinite(self.scale_range)) and self.scale_range[0] != self.scale_range[1]:
            rng = f" (Monte Carlo range {self.scale_range[0]:.3g} to {self.scale_range[1]:.3g})"
        sk = 0.421404
        compare = ("more skeptical than" if self.scale < sk else "less skeptical than")
        return (
            f"{who}: P(HR < 1) stays at or above {thr} unless the prior on log HR is Normal(0, s) "
            f"with s below {self.scale:.3g}{rng}. At that point the prior is "
            f"{describe_scale(self.scale)}; it is {compare} the shipped skeptical prior "
            f"(s = 0.421, P(HR < 0.5) = 0.05)."
            + (f" {self.detail}" if self.detail else ""))

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({"data_tier": self.data_tier, "endpoint": self.endpoint,
                             "strategy": self.strategy, "scale": self.scales,
                             "p_hr_below_1": self.p_benefit, "mcse": self.mcse, "how": self.how})


def _bisect_log(f, lo: float, hi: float, target: float, steps: int = 40) -> float:
    """s in [lo, hi] with f(s) = target, f increasing in s (bisection on log s)."""
    a, b = math.log(lo), math.log(hi)
    for _ in range(steps):
        m = (a + b) / 2
        if f(math.exp(m)) >= target:
            b = m
        else:
            a = m
        if b - a < 1e-4:
            break
    return math.exp((a + b) / 2)


def published_tipping(threshold: float = DEFAULT_THRESHOLD, *, evidence=None,
                      endpoints=("os", "pfs"), scales=None, se_factors=(1.0, 0.75, 0.5)) -> dict:
    """Tipping points of the published IPTW hazard ratios (data tier ``published``), exact.

    Returns ``{endpoint: TippingPoint}``; each point's ``detail`` says which SE was assumed and
    how the tipping scale changes if the true SE is smaller (``se_factors`` x the SE bound, all
    consistent with the published "P < 0.001")."""
    from . import reanalysis

    _check_threshold(threshold)
    scales = np.geomspace(3.0, 0.01, 121) if scales is None else np.sort(np.asarray(scales, float))[::-1]
    out = {}
    for endpoint in endpoints:
        r = reanalysis.reanalyse_hr(endpoint, "reference", evidence=evidence)
        s_star = conjugate_tipping_scale(r.log_hr, r.se, threshold)
        p = conjugate_prob_benefit(r.log_hr, r.se, scales)
        others = [(f, conjugate_tipping_scale(r.log_hr, f * r.se, threshold)) for f in se_factors if f != 1]
        detail = (f"Published IPTW HR {r.hr:g}; {r.se_method}."
                  + ("" if not others else " If the true SE were smaller (equally consistent with "
                     "the published P value), the tipping scale would be smaller still: "
                     + ", ".join(f"s = {s:.3g} at {f:g} x SE" for f, s in others) + "."))
        status = "never" if math.isinf(s_star) else "tips"
        out[endpoint] = TippingPoint(
            "published", endpoint, "", threshold, scales, p, np.zeros_like(p),
            ["closed form"] * len(scales), s_star, (s_star, s_star), status, 0,
            "", detail)
    return out


def _indicator_mcse(ind: np.ndarray, w: np.ndarray, r_eff: float) -> tuple[float, float]:
    """Self-normalised importance-sampling estimate of P = E[ind] and its Monte Carlo SE,
    sqrt(sum w^2 (ind - P)^2 / r_eff) (equal weights: the usual binomial SE over ESS)."""
    p = float(np.sum(w * ind))
    return p, float(math.sqrt(np.sum(w**2 * (ind - p) ** 2) / max(r_eff, 1e-3)))


def patient_tipping(base_idata: az.InferenceData, base_set: PriorSet, fit_at: Callable, *,
                    threshold: float = DEFAULT_THRESHOLD, scales=None, k_max: float = K_MAX,
                    min_ess: float = MIN_ESS, max_verify: int = 4, data_tier: str = "synthetic", endpoint: str = "",
                    strategy: str = "") -> TippingPoint:
    """Tipping point of a patient-level fit: P(HR < 1) under ``base_set`` with the fit's log-HR
    prior (``survival.log_hr``, or the endpoint's own key) replaced by Normal(0, s).

    ``scales`` (default: 40 values from the base prior's sd, or 2.5, down to 0.005, log-spaced)
    are evaluated from widest to narrowest. Each value is PSIS-reweighted from the fitted anchor
    (the base fit and the refits nearest in log s, :func:`_nearest_anchors`) with the largest
    effective sample size among those with Pareto k below the threshold; if there is none, ``fit_at(prior_set) -> InferenceData``
    refits there and the refit becomes an anchor. The crossing of ``threshold`` is found by
    bisection in log s, then verified by a refit at the crossing and bisected again from it
    (at most ``max_verify`` times, until an anchor lies within 2% of the crossing), so that the
    tipping value rests on draws from a posterior near it. The Monte Carlo range is s* times
    exp(-+ 2 MCSE(P) / (dP / d log s)). ``base_idata`` is the fit under ``base_set``.
    """
    _check_threshold(threshold)
    hr_key = base_set.log_hr_key(base_idata.attrs.get("endpoint", ""))  # the endpoint's log-HR prior
    bp = base_set.get(hr_key)
    s_base = bp.params["sigma"] if bp.dist == "Normal" and bp.params.get("mu") == 0 else None
    top = s_base or 2.5
    scales = np.geomspace(top, 0.005, 40) if scales is None else np.sort(np.asarray(scales, float))[::-1]
    # fitted anchors: (s, or None if the base prior is not in the family; prior set; fit)
    anchors = [(s_base, base_set, base_idata)]
    refits = [0]

    def family(s):
        return base_set.with_prior(hr_key, normal_scale_prior(s))

    def draws(aid):
        return aid.posterior["log_hr"].transpose("chain", "draw").values

    def refit(s: float):
        target = family(s)
        aid = fit_at(target)
        refits[0] += 1
        anchors.append((s, target, aid))

    def evaluate(s: float, allow_refit: bool = True):
        exact = [a for a in anchors if a[0] is not None and abs(math.log(a[0] / s)) < 1e-9]
        if exact:
            lh = draws(exact[0][2])
            ind = (lh < 0).astype(float)
            r_eff = 1.0
            if ind.min() != ind.max() and lh.shape[0] > 1:  # ESS of the indicator of HR < 1
                r_eff = min(1.0, float(az.ess(ind, method="mean")) / lh.size)
            p, mcse = _indicator_mcse(ind.ravel(), np.full(lh.size, 1.0 / lh.size), r_eff)
            return p, mcse, "refit"
        target = family(s)
        best = None
        for _, aset, aid in _nearest_anchors(anchors, s):
            rw = psis_reweight(aid, aset, target, k_max=k_max, min_ess=min_ess)
            if rw.reliable and (best is None or rw.ess > best[0].ess):
                best = (rw, aid)
        if best is None:
            if not allow_refit:
                return math.nan, math.nan, "not evaluated"
            refit(s)
            return evaluate(s)
        rw, aid = best
        p, mcse = _indicator_mcse((draws(aid).ravel() < 0).astype(float), rw.weights, rw.r_eff)
        return p, mcse, f"PSIS reweighting (k={rw.k:.2f})"

    p = np.array([evaluate(float(s))[0] for s in scales])
    below = np.flatnonzero(p < threshold)
    status, s_star, rng = "tips", math.nan, (math.nan, math.nan)
    points = [float(s) for s in scales]
    if below.size == 0:
        status = "never"
    elif below[0] == 0:
        status = "already"
    else:
        i = below[0]
        lo, hi = float(scales[i]), float(scales[i - 1])
        for _ in range(max_verify + 1):
            s_star = _bisect_log(lambda s: evaluate(s)[0], lo, hi, threshold)
            near = [abs(math.log(a[0] / s_star)) for a in anchors if a[0] is not None]
            if (near and min(near) < 0.02) or refits[0] >= 50:
                break
            refit(s_star)
            lo, hi = s_star * 0.8, min(s_star * 1.25, float(scales[0]))
            while evaluate(lo)[0] >= threshold and lo > 1e-6:
                lo *= 0.8
            while evaluate(hi)[0] < threshold and hi < float(scales[0]):
                hi = min(hi * 1.25, float(scales[0]))
        _, mcse_star, _ = evaluate(s_star)
        h = 0.05
        slope = (evaluate(s_star * math.exp(h))[0] - evaluate(s_star * math.exp(-h))[0]) / (2 * h)
        d = 2 * mcse_star / slope if slope > 0 else 0.0
        rng = (s_star * math.exp(-d), s_star * math.exp(d))
        points += [s_star] + [a[0] for a in anchors if a[0] is not None]
    # the curve, every value from the final set of anchors (so it is one consistent estimate)
    points = sorted(set(points), reverse=True)
    final = [evaluate(s, allow_refit=False) for s in points]
    return TippingPoint(
        data_tier, endpoint, strategy, threshold, np.array(points),
        np.array([v[0] for v in final]), np.array([v[1] for v in final]),
        [v[2] for v in final], s_star, rng, status, refits[0], base_set.label())


NEAREST_ANCHORS = 3  # fitted anchors tried per tipping-curve value (besides the base fit)


def _nearest_anchors(anchors: list, s: float) -> list:
    """The anchors a tipping-curve value at prior sd ``s`` is reweighted from: the base fit
    (first) and the :data:`NEAREST_ANCHORS` refits nearest to ``s`` in log scale (the largest
    effective sample size is almost always at the nearest; trying every anchor at every value
    cost ~5,000 PSIS fits per main job)."""
    refits = sorted((a for a in anchors[1:] if a[0] is not None), key=lambda a: abs(math.log(a[0] / s)))
    return [anchors[0], *refits[:NEAREST_ANCHORS]]


# --------------------------------------------------------------------------- the study


@dataclass
class RDPosterior:
    """The posterior of the ORR risk difference (treated - control) of one response fit."""

    strategy: str
    prior_set: PriorSet
    rd: np.ndarray
    method: str
    estimand: str
    model: str
    n_treated: int
    n_control: int
    diagnostics: dict

    @classmethod
    def from_fit(cls, idata, strategy: str, prior_set: PriorSet) -> RDPosterior:
        a = idata.attrs
        rows = response.response_rows(idata, "synthetic", "")  # diagnostics and model name
        d = {k: rows[0][k] for k in ("rhat_max", "ess_bulk_min", "divergences")}
        return cls(strategy, prior_set, idata.posterior["rd"].values.ravel(), a.get("method", ""),
                   a.get("estimand", "marginal"), rows[0]["model"], int(a.get("n_treated", -1)),
                   int(a.get("n_control", -1)), d)

    def summary(self) -> dict:
        lo, med, hi = np.quantile(self.rd, [0.025, 0.5, 0.975])
        return {"median": float(med), "lower": float(lo), "upper": float(hi),
                "p_rd_above_0": float(np.mean(self.rd > 0))}


@dataclass
class SensitivityStudy:
    """Everything :func:`run_sensitivity` computed, with rows and a tidy table (the report
    section is :func:`bayes_haic.report.sensitivity.sensitivity_section`). ``arms``: the
    cohort's (treated, control) names."""

    data_tier: str
    source: str
    threshold: float
    cut_sets: tuple
    prior_labels: list
    posteriors: list  # HRPosterior
    psens: pd.DataFrame
    reweighting_check: pd.DataFrame
    tipping: dict  # (endpoint, strategy) -> TippingPoint (patient level)
    published_tipping: dict  # endpoint -> TippingPoint (published tier)
    orr: list = field(default_factory=list)  # RDPosterior per ORR strategy and prior set
    notes: list = field(default_factory=list)  # analyses left out (e.g. not estimable), and why
    # the baseline-hazard prior check (module docstring), one row per endpoint and strategy
    baseline_check: pd.DataFrame = field(default_factory=pd.DataFrame)
    timings: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)

    @property
    def important_hr(self) -> float:
        """The clinically important HR of the study's P(HR < it) (its ``settings``)."""
        return float(self.settings.get("important_hr", IMPORTANT_HR))
    arms: tuple = STUDY_ARMS

    @property
    def main_cut_set(self) -> CutSet:
        return self.cut_sets[0]

    def table(self) -> pd.DataFrame:
        """Tidy table: one row per endpoint, strategy, cut set and prior set."""
        recs = []
        imp = self.important_hr
        for p in self.posteriors:
            s = p.summary(imp)
            recs.append({
                "data_tier": self.data_tier, "endpoint": p.endpoint, "strategy": p.strategy,
                "cut_set": p.cut_set.label, "n_intervals": len(p.cuts), "prior": p.prior_label,
                "prior_log_hr": str(p.prior_log_hr), "median": s["median"], "lower": s["lower"],
                "upper": s["upper"], "p_hr_below_1": s["p_hr_below_1"],
                f"p_hr_below_{imp:g}": s[f"p_hr_below_{imp:g}"], "method": p.how,
                "pareto_k": p.k, "ess": p.ess, "mcse_median_log_hr": p.mcse_median,
            })
        return pd.DataFrame(recs)

    def rows(self, data_tier: str | None = None, source: str | None = None, *, tipping: bool = True) -> list[dict]:
        """Results-table rows (``results.result_row``, ``analysis`` = ``sensitivity``): per
        posterior measure ``hr`` and, for collapsed fits (none, IPTW, PSM), ``median_treated`` /
        ``median_control`` (months; ``prior`` = the prior set's label, ``cut_set`` its label,
        ``method`` says reweighted/refit); ``rd`` per ORR posterior; and, with ``tipping``,
        measure ``tipping_sd_log_hr`` per patient-level tipping point (``analysis`` =
        ``tipping point``; median = s*, lower/upper = its Monte Carlo range)."""
        tier = data_tier or self.data_tier
        src = source or self.source
        out = []
        for p in self.posteriors:
            s = p.summary()
            d = p.diagnostics
            common = dict(
                data_tier=tier, analysis="sensitivity", endpoint=p.endpoint, adjustment=p.strategy,
                model=p.model, prior=p.prior_label, cut_set=p.cut_set.label,
                rhat_max=d.get("rhat_max", math.nan), ess_bulk_min=d.get("ess_bulk_min", math.nan),
                divergences=d.get("divergences", math.nan), method=p.method,
                n_treated=p.n_treated, n_control=p.n_control, source=src)
            out.append(result_row(measure="hr", estimand=p.estimand, median=s["median"],
                                  lower=s["lower"], upper=s["upper"],
                                  prob_benefit=s["p_hr_below_1"], **common))
            for arm in ("treated", "control"):
                m = p.median_summary(arm)
                if m is not None:
                    note = p.median_note(arm)
                    out.append(result_row(measure=f"median_{arm}", estimand="arm-level", **m,
                                          **{**common, "method": f"{p.method}; {note}" if note
                                             else p.method}))
        for r in self.orr:
            s = r.summary()
            out.append(result_row(
                data_tier=tier, analysis="sensitivity", endpoint="orr", measure="rd",
                adjustment=r.strategy, model=r.model, estimand=r.estimand,
                prior=r.prior_set.label(), cut_set="", median=s["median"], lower=s["lower"],
                upper=s["upper"], prob_benefit=s["p_rd_above_0"], method=f"{SENSITIVITY_METHOD}: "
                f"refit; {r.method}", n_treated=r.n_treated, n_control=r.n_control, source=src,
                **r.diagnostics))
        if tipping:
            n = {(p.endpoint, p.strategy): (p.n_treated, p.n_control) for p in self.posteriors}
            cut = self.main_cut_set.label
            for (endpoint, strategy), t in self.tipping.items():
                out.append(_tipping_row(t, tier, src, *n.get((endpoint, strategy), (-1, -1)),
                                        cut_set=cut))
        return out

    def published_rows(self) -> list[dict]:
        """Rows of the published-tier tipping points (data tier ``published``)."""
        from .published import load_published
        from .reanalysis import source_label

        src = source_label(load_published())
        return [_tipping_row(t, "published", src, -1, -1) for t in self.published_tipping.values()]



def _tipping_row(t: TippingPoint, tier, source, n1, n0, cut_set: str = "") -> dict:
    lo, hi = t.scale_range
    return result_row(
        data_tier=tier, analysis="tipping point", endpoint=t.endpoint, measure="tipping_sd_log_hr",
        adjustment=t.strategy or "published", cut_set=cut_set,
        model="normal-normal" if tier == "published" else ("pwe-bootstrap" if t.strategy == "iptw" else "pwe"),
        prior="Normal(0, s) on log HR" + (f"; other priors {t.base_label}" if t.base_label else ""),
        estimand=f"sd s of a Normal(0, s) prior on log HR below which P(HR < 1) < {t.threshold:g}",
        median=t.scale, lower=lo, upper=hi, prob_benefit=math.nan,
        method=(f"{SENSITIVITY_METHOD}: tipping point, "
                + ("closed form (conjugate normal)" if tier == "published"
                   else f"the bootstrap replicates recombined with the prior at each s "
                        f"({t.n_refits} evaluations), bisection" if t.strategy == "iptw"
                   else f"PSIS reweighting with {t.n_refits} refit(s), bisection")
                + f"; status {t.status}"),
        n_treated=n1, n_control=n0, source=source)


def _load_sets(prior_names, overrides) -> list[PriorSet]:
    names = shipped_prior_names() if prior_names is None else list(prior_names)
    if not names:
        raise InputError("prior sets: give at least one prior set name or path.")
    sets = [p if isinstance(p, PriorSet) else load_prior_set(p, overrides) for p in names]
    labels = [s.label() for s in sets]
    if len(set(labels)) != len(labels):
        raise InputError(f"prior sets: each set must appear once; found {', '.join(labels)}.")
    return sets


def run_sensitivity(
    cohort,
    *,
    endpoints=None,
    strategies=DEFAULT_STRATEGIES,
    orr_strategies=DEFAULT_ORR_STRATEGIES,
    prior_names=None,
    cut_sets=DEFAULT_CUT_SETS,
    sampler: SamplerSettings | None = None,
    design=None,
    threshold: float = DEFAULT_THRESHOLD,
    overrides=(),
    k_max: float = K_MAX,
    min_ess: float = MIN_ESS,
    reweight: bool = True,
    tipping: bool = True,
    tipping_scales=None,
    baseline: str = "rw",
    n_boot: int = 400,
    psm_design_draws: int = analysis.PSM_DESIGN_DRAWS,
    evidence=None,
    published: bool = True,
    important_hr: float = IMPORTANT_HR,
    baseline_check: bool = True,
    echo: Callable | None = None,
) -> SensitivityStudy:
    """Fit every endpoint and strategy of ``cohort`` under every prior set and cut set.

    ``endpoints``: the survival endpoints (default: each the cohort has data for).

    ``prior_names``: names in ``models/priors/`` or paths or PriorSet objects (default: every
    shipped set, ``reference`` first); the first is the base that others are reweighted from
    and the tipping family's nuisance priors. ``cut_sets``: :class:`CutSet` objects or what
    :func:`as_cut_set` reads; the first is the main set (every prior refitted there, power
    scaling, tipping point). ``sampler``: default :class:`~bayes_haic.sampling.SamplerSettings`
    (nutpie: the compiled model is reused across refits; with the PyMC backend every refit
    recompiles).
    ``reweight=False`` refits everywhere; ``k_max`` and ``min_ess`` say when reweighting is
    trusted. ``threshold``: P(HR < 1) of the tipping point; ``tipping=False`` skips both tipping
    points; ``tipping_scales``: the grid of s (default 40 values, 2.5 down to 0.005).
    ``design``, ``baseline``, ``n_boot``: as in :func:`bayes_haic.analysis.fit_survival`.
    ``strategies``: the survival strategies (default: the crude comparison and the study's own
    analyses, IPTW hazard ratios and PSM medians); ``orr_strategies``: response models refitted
    under every prior set (default PSM and IPTW; skipped for a cohort without response data).
    Tipping points: for the MCMC fits of one data set (``none``, ``ps_covariate``,
    ``covariates``) and for IPTW (recombined from its bootstrap replicates at every s).
    ``important_hr``: the clinically important HR of the table's P(HR < it) (``[survival]
    important_hr``). ``baseline_check=False`` leaves out the baseline-hazard prior check (the
    main job checks its own fits instead: :func:`baseline_check_fit`). ``echo``: progress
    messages. Every fit uses ``sampler.seed``, so a study is reproducible.

    Returns a :class:`SensitivityStudy` labelled with ``cohort.data_tier``; its
    ``published_tipping`` (tier ``published``) uses only the study's published HRs
    (``evidence``, default the package's study), and is empty with ``published=False`` (an
    analysis of another study) or ``tipping=False``.
    """
    _check_threshold(threshold)
    if endpoints is None:  # every survival endpoint the cohort has data for
        endpoints = cohort.endpoints
    endpoints = (endpoints,) if isinstance(endpoints, str) else tuple(endpoints)
    for e in endpoints:
        require_endpoint(cohort, e)
    strategies = (strategies,) if isinstance(strategies, str) else tuple(strategies)
    if isinstance(prior_names, (str, PriorSet)):
        prior_names = (prior_names,)
    t_start = time.perf_counter()
    say = echo or (lambda _m: None)
    sampler = sampler or SamplerSettings()
    if isinstance(cut_sets, (str, int, CutSet)):
        cut_sets = (cut_sets,)
    cut_sets = tuple(as_cut_set(c) for c in cut_sets)
    if not cut_sets:
        raise InputError("cut sets: give at least one.")
    sets = _load_sets(prior_names, overrides)
    base_set = sets[0]
    needs_design = {"iptw", "psm", "ps_covariate"} & set(strategies + tuple(orr_strategies or ()))
    if needs_design and design is None:
        design = analysis.make_design(cohort)  # once, not in every fit
    posteriors, psens_rows, check_rows, tips, notes, baseline_rows = [], [], [], {}, [], []
    n_fits = [0]
    timings = {}

    def fit(endpoint, strategy, cuts, prior_set):
        n_fits[0] += 1
        return analysis.fit_survival(cohort, endpoint, strategy, design=design, prior_set=prior_set,
                                     sampler=sampler, cuts=cuts, baseline=baseline, n_boot=n_boot,
                                     psm_design_draws=psm_design_draws)

    for endpoint in endpoints:
        for strategy in strategies:
            t0 = time.perf_counter()
            for ci, cs in enumerate(cut_sets):
                main = ci == 0
                cuts = cs.cuts(cohort, endpoint)
                say(f"sensitivity: {endpoint_label(endpoint)} '{strategy}', {cs.label}: fit under "
                    f"'{base_set.label()}'")
                try:
                    base_idata = fit(endpoint, strategy, cuts, base_set)
                except InputError as err:
                    if main:
                        raise
                    # e.g. an IPTW bootstrap on a grid with an interval without events: the
                    # other cut sets still inform the study; say what was left out and why
                    notes.append(f"{endpoint_label(endpoint)} '{strategy}', {cs.label}: not estimable "
                                 f"({err})")
                    say(f"sensitivity: {notes[-1]}")
                    continue
                base = _from_fit(base_idata, endpoint, strategy, cs, base_set, how="fit", keep=main)
                posteriors.append(base)
                mcmc = _is_mcmc(base_idata)
                # power scaling needs the per-observation log-likelihood (MCMC fits to one data
                # set); a pooled PSM fit has none, and is reweighted on every cut set
                psens_ok = mcmc and "log_likelihood" in base_idata.groups()
                if main and psens_ok:
                    psens_rows.append(_psens_row(base, base_idata, base_set))
                for ps in sets[1:]:
                    rw = (psis_reweight(base_idata, base_set, ps, k_max=k_max, min_ess=min_ess)
                          if (mcmc and reweight) else None)
                    if (main and psens_ok) or rw is None or not rw.reliable:
                        idata = fit(endpoint, strategy, cuts, ps)
                        post = _from_fit(idata, endpoint, strategy, cs, ps, keep=main)
                        posteriors.append(post)
                        if main and psens_ok and _is_mcmc(idata):
                            psens_rows.append(_psens_row(post, idata, ps))
                            if rw is not None:
                                check_rows.append(_check_row(post, _from_weights(base, ps, rw), rw))
                    else:
                        posteriors.append(_from_weights(base, ps, rw))
                if main and baseline_check and uses_baseline_prior(base_idata, base_set):
                    say(f"sensitivity: {endpoint_label(endpoint)} '{strategy}': baseline-hazard prior "
                        f"widened {BASELINE_WIDEN:g}-fold")
                    baseline_rows.append(baseline_check_fit(
                        base_idata, base, lambda ps, e=endpoint, s=strategy, c=cuts: fit(e, s, c, ps),
                        reweight=reweight, k_max=k_max, min_ess=min_ess))
                tippable = (mcmc and not int(base_idata.attrs.get("design_draws", 1) or 1) > 1) \
                    or strategy == "iptw"
                if main and tipping and tippable:
                    say(f"sensitivity: {endpoint_label(endpoint)} '{strategy}': tipping point")
                    # the IPTW posterior is recombined from its cached bootstrap replicates at
                    # every s (a few ms), never reweighted from resampled draws
                    tips[(endpoint, strategy)] = patient_tipping(
                        base_idata, base_set, lambda ps_, e=endpoint, s=strategy, c=cuts: fit(e, s, c, ps_),
                        threshold=threshold, scales=tipping_scales,
                        k_max=-math.inf if strategy == "iptw" else k_max, min_ess=min_ess,
                        data_tier=cohort.data_tier, endpoint=endpoint, strategy=strategy)
            timings[f"{endpoint}/{strategy}"] = time.perf_counter() - t0
    orr = []
    if orr_strategies and getattr(cohort, "has_response", True):
        for strategy in orr_strategies:
            t0 = time.perf_counter()
            for ps in sets:
                say(f"sensitivity: {endpoint_label('orr')} '{strategy}' under '{ps.label()}'")
                n_fits[0] += 1
                idata = analysis.fit_orr(cohort, strategy, design=design, prior_set=ps,
                                         sampler=sampler, n_boot=n_boot)
                orr.append(RDPosterior.from_fit(idata, strategy, ps))
            timings[f"orr/{strategy}"] = time.perf_counter() - t0
    pub = published_tipping(threshold, evidence=evidence) if tipping and published else {}
    timings["total"] = time.perf_counter() - t_start
    timings["fits"] = n_fits[0]
    return SensitivityStudy(
        data_tier=cohort.data_tier, source=cohort.name, threshold=threshold, cut_sets=cut_sets,
        prior_labels=[s.label() for s in sets], posteriors=posteriors,
        psens=pd.DataFrame(psens_rows), reweighting_check=pd.DataFrame(check_rows), tipping=tips,
        published_tipping=pub, orr=orr, notes=notes, timings=timings,
        baseline_check=pd.DataFrame(baseline_rows),
        settings={"sampler": sampler.as_dict(), "k_max": k_max, "min_ess": min_ess, "reweight": reweight,
                  "baseline_check": baseline_check,
                  "baseline": baseline, "endpoints": list(endpoints), "strategies": list(strategies),
                  "important_hr": float(important_hr)},
        arms=tuple(getattr(cohort, "arms", STUDY_ARMS)))


def merge_studies(parts: list[SensitivityStudy]) -> SensitivityStudy:
    """One study from the parts of a study run separately (e.g. one endpoint per process, and
    ORR) with the same cohort, prior sets, cut sets and settings: posteriors, power-scaling and
    reweighting-check rows, tipping points, ORR posteriors and notes concatenated in the order of
    ``parts`` (so the same as one :func:`run_sensitivity` over all endpoints); timings add up
    (seconds of work, not elapsed time when the parts ran side by side)."""
    if not parts:
        raise ValueError("merge_studies: no parts.")
    first = parts[0]
    for p in parts[1:]:
        if (p.data_tier, p.source, p.threshold, p.cut_sets, p.prior_labels) != (
                first.data_tier, first.source, first.threshold, first.cut_sets, first.prior_labels):
            raise ValueError("merge_studies: the parts differ in cohort, threshold, cut sets or prior sets.")
    timings = {}
    for p in parts:
        for k, v in p.timings.items():
            timings[k] = timings.get(k, 0) + v
    settings = dict(first.settings)
    settings["endpoints"] = [e for p in parts for e in p.settings.get("endpoints", [])]
    frames = lambda attr: pd.concat([getattr(p, attr) for p in parts], ignore_index=True)  # noqa: E731
    return replace(
        first, posteriors=[x for p in parts for x in p.posteriors], psens=frames("psens"),
        reweighting_check=frames("reweighting_check"),
        tipping={k: v for p in parts for k, v in p.tipping.items()},
        orr=[x for p in parts for x in p.orr], notes=[x for p in parts for x in p.notes],
        baseline_check=frames("baseline_check"),
        timings=timings, settings=settings)


def _psens_row(post: HRPosterior, idata, prior_set) -> dict:
    return {"endpoint": post.endpoint, "strategy": post.strategy, "prior": prior_set.label(),
            **power_scaling(idata, prior_set)}


def _check_row(refit: HRPosterior, rw_post: HRPosterior, rw: Reweighting) -> dict:
    a = float(refit.quantile(0.5))
    b = float(rw_post.quantile(0.5))
    se = math.hypot(refit.mcse_median, rw_post.mcse_median)
    return {"endpoint": refit.endpoint, "strategy": refit.strategy, "prior": refit.prior_label,
            "pareto_k": rw.k, "k_threshold": rw.k_threshold, "reliable": rw.reliable,
            "psis_ess": rw.ess, "median_hr_reweighted": math.exp(b), "median_hr_refit": math.exp(a),
            "diff_log_hr": b - a, "mcse_diff": se, "z": (b - a) / se if se > 0 else math.nan,
            "p_below_1_reweighted": rw_post.prob_below(1.0), "p_below_1_refit": refit.prob_below(1.0)}


def widened_baseline(prior_set: PriorSet) -> PriorSet | None:
    """``prior_set`` with the baseline-hazard prior's sd multiplied by :data:`BASELINE_WIDEN`
    (None when the set has no such prior, or it has no ``sigma``)."""
    if BASELINE_KEY.partition(".")[2] not in prior_set.sections.get("survival", {}):
        return None
    prior = prior_set.get(BASELINE_KEY)
    if "sigma" not in prior.params:
        return None
    params = {**prior.params, "sigma": float(prior.params["sigma"]) * BASELINE_WIDEN}
    return prior_set.with_prior(BASELINE_KEY, Prior(prior.dist, params))


def _mcse_quantile(post: HRPosterior, q: float) -> float:
    """MCSE of the ``q`` quantile of log HR: half the distance between the quantiles at
    q -+ sqrt(q (1 - q) / ESS) (the normal approximation of the binomial count below it; ESS:
    the bulk ESS of an MCMC fit, the PSIS ESS of a reweighted one)."""
    if not post.ess > 1:
        return math.nan
    d = math.sqrt(q * (1 - q) / post.ess)
    lo, hi = post.quantile([max(q - d, 0.0), min(q + d, 1.0)])
    return float(hi - lo) / 2


def uses_baseline_prior(idata, prior_set) -> bool:
    """Whether :func:`baseline_check_fit` applies to a fit: MCMC, with the set's
    baseline-hazard prior among the priors it used, which has an sd to widen."""
    return (_is_mcmc(idata) and widened_baseline(prior_set) is not None
            and BASELINE_KEY in str(idata.attrs.get("priors_used", "")))


def baseline_check_fit(idata, base: HRPosterior | dict, refit, *, reweight: bool = True,
                       k_max: float = K_MAX, min_ess: float = MIN_ESS) -> dict:
    """The baseline-hazard prior check of one MCMC fit (:func:`uses_baseline_prior`): its HR
    with the baseline prior's sd :data:`BASELINE_WIDEN` times wider, by PSIS reweighting of its
    draws where reliable, else by ``refit(widened_prior_set)`` (an InferenceData); returns a
    :func:`baseline_row`. ``base``: the fit's :class:`HRPosterior`, or a dict of ``endpoint``,
    ``strategy``, ``cut_set`` (a :class:`CutSet`) and ``prior_set`` to make it from."""
    if isinstance(base, dict):
        base = _from_fit(idata, base["endpoint"], base["strategy"], base["cut_set"],
                         base["prior_set"], how="fit", keep=True)
    wide_set = widened_baseline(base.prior_set)
    rw = (psis_reweight(idata, base.prior_set, wide_set, k_max=k_max, min_ess=min_ess)
          if reweight else None)
    wide = (_from_weights(base, wide_set, rw) if rw is not None and rw.reliable
            else _from_fit(refit(wide_set), base.endpoint, base.strategy, base.cut_set, wide_set))
    return baseline_row(base, wide, crude_log_hazard(idata))


def crude_log_hazard(idata) -> float:
    """log(events / months at risk) of the control arm among the patients a fit analysed (its
    ``constant_data``; NaN without events or without those data): where the data put the
    baseline hazard, to compare with the baseline-hazard prior's location (per month)."""
    const = idata.get("constant_data") if hasattr(idata, "get") else None
    if const is None or not {"time", "event", "treatment"} <= set(const.data_vars):
        return math.nan
    control = const["treatment"].values == 0
    events = float(const["event"].values[control].sum())
    months = float(const["time"].values[control].sum())
    return math.log(events / months) if events > 0 and months > 0 else math.nan


def baseline_row(base: HRPosterior, wide: HRPosterior, crude: float = math.nan) -> dict:
    """One row of :attr:`SensitivityStudy.baseline_check`: the HR under the base set and with its
    baseline-hazard prior widened, and the shift of each quantile of log HR (2.5%, 50%, 97.5%)
    in posterior sds of log HR. ``influential``: some shift exceeds :data:`BASELINE_SHIFT` sd
    and 3 Monte Carlo standard errors (of the two estimates combined). ``crude``: the analysed
    control arm's :func:`crude_log_hazard`, reported with its distance from the prior's mean in
    prior sds (``prior_mean_distance_sd``; NaN unless the prior is a Normal)."""
    qs = (0.025, 0.5, 0.975)
    a, b = base.quantile(qs), wide.quantile(qs)
    w = base.draw_weights()
    x = base.log_hr.ravel()
    sd = float(np.sqrt(np.sum(w * (x - np.sum(w * x)) ** 2)))
    mc = np.array([math.hypot(_mcse_quantile(base, q), _mcse_quantile(wide, q)) for q in qs])
    shift = (b - a) / sd
    influential = bool(np.any((np.abs(shift) > BASELINE_SHIFT) & (np.abs(b - a) > 3 * mc)))
    return {"endpoint": base.endpoint, "strategy": base.strategy, "cut_set": base.cut_set.label,
            "prior": base.prior_label, "baseline_prior": str(base.prior_set.get(BASELINE_KEY)),
            "baseline_prior_widened": str(wide.prior_set.get(BASELINE_KEY)),
            **{f"{k}_hr": float(v) for k, v in zip(("lower", "median", "upper"), np.exp(a))},
            **{f"{k}_hr_widened": float(v) for k, v in zip(("lower", "median", "upper"), np.exp(b))},
            "p_hr_below_1": base.prob_below(1.0), "p_hr_below_1_widened": wide.prob_below(1.0),
            "shift_lower_sd": float(shift[0]), "shift_median_sd": float(shift[1]),
            "shift_upper_sd": float(shift[2]), "max_mcse_log_hr": float(np.nanmax(mc)),
            "crude_log_hazard_control": crude,
            "prior_mean_distance_sd": _distance_sd(base.prior_set.get(BASELINE_KEY), crude),
            "method": wide.how, "influential": influential}


def _distance_sd(prior, x: float) -> float:
    """(mu - x) / sigma of a Normal prior (NaN for another distribution or a NaN ``x``)."""
    if getattr(prior, "dist", None) != "Normal" or not math.isfinite(x):
        return math.nan
    return (float(prior.params["mu"]) - x) / float(prior.params["sigma"])


# --------------------------------------------------------------------------- figures


# --------------------------------------------------------------------------- report section


# --------------------------------------------------------------------------- command line job


