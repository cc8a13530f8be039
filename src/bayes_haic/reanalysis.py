r"""Bayesian reanalysis of the study's published numbers (data tier ``published``).

Hazard ratios (OS, PFS)
-----------------------
The published IPTW hazard ratio :math:`\widehat{HR}` enters as a normal likelihood for
:math:`\theta = \log HR`, :math:`\log\widehat{HR} \sim N(\theta, s^2)`. The standard error
:math:`s` comes from a published 95% CI when there is one (:func:`se_from_ci`), otherwise from
the P value (:func:`se_from_p`). The abstract gives no CI, only "P < 0.001"; for a two-sided Wald
test :math:`|\log\widehat{HR}|/s > z_{0.9995} = 3.29`, so :math:`s < 0.291` (OS) and
:math:`s < 0.206` (PFS). **Assumption:** we read "P < 0.001" as P = 0.001, which gives the
largest SE consistent with the statement, i.e. the widest likelihood (the most conservative
choice); :func:`hr_se_sensitivity` shows the posterior over a range of SEs. With a normal prior
:math:`\theta \sim N(m, v)` the posterior is closed-form (conjugate normal-normal),

.. math:: \theta \mid y \sim N\!\left(\frac{m/v + y/s^2}{1/v + 1/s^2},\;
          \frac{1}{1/v + 1/s^2}\right);

any other prior family is integrated numerically on a grid (:class:`GridPosterior`).

Objective response (ORR)
------------------------
From the PSM counts *derived* from the published percentages (37/55 vs 16/55; see
``data/published/README.md``): (i) per-arm exact beta-binomial posteriors
:math:`p_k \mid r_k \sim Beta(a + r_k, b + n_k - r_k)` with the ``published.arm_rate`` prior;
risk difference RD, risk ratio RR and odds ratio OR by seeded Monte Carlo from the exact
posteriors; :math:`P(p_1 > p_0)` and :math:`P(RD > 0.2)` by numerical integration (exact up to
quadrature error); (ii) a two-parameter logistic model on the same counts,
:math:`\mathrm{logit}\,p_0 = \alpha`, :math:`\mathrm{logit}\,p_1 = \alpha + \beta`, with priors
``response.intercept`` and ``response.log_or`` -- the route by which the reanalysis prior family
acts on the response contrast -- integrated on a 2-D grid (:func:`reanalyse_orr_contrast`).

Prior family
------------
After Spiegelhalter, Freedman & Parmar (1994, JRSS A 157:357) and Wijeysundera et al. (2009,
J Clin Epidemiol 62:13), each a normal prior on the log ratio fixed by a centre and one tail
probability (:func:`prior_from_probability`); see :data:`FAMILY_TEXT` and
``models/priors/<name>.toml``:

* ``reference``: vague, :math:`\log HR \sim N(0, 10^2)` (the shipped reference set).
* ``skeptical``: centred on no effect (HR = 1) with P(HR < 0.5) = 5%
  (so also P(HR < 0.7) = 20%): sd = log 2 / 1.645 = 0.421.
* ``enthusiastic``: centred on the clinically important benefit HR = 0.7 with P(HR > 1) = 5%:
  sd = -log 0.7 / 1.645 = 0.217.
* ``pessimistic``: centred on harm of the same size, HR = 1/0.7 = 1.43, with P(HR < 1) = 5%.
* ``evidence_based``: the pooled estimates of Zhao et al. (Front Oncol 2025;15:1513394), OS HR
  0.54 (0.45-0.64), PFS HR 0.64 (0.55-0.75), ORR RR 2.15 (1.84-2.50). The meta-analysis very
  likely includes this study, so its information is halved: a power prior with
  :math:`a_0 = 0.5` (Ibrahim & Chen 2000, Stat Sci 15:46), i.e. the variance of the pooled
  log HR is divided by :math:`a_0` (sd x 1.414). :func:`subtract_study` gives the alternative of
  removing this study's (approximate) contribution from a fixed-effect pool.

For the response contrast (log odds ratio; OR > 1 is benefit) the clinically important effect
is RD = +0.20 at a control ORR of 25% (45% vs 25%), i.e. OR = 2.45: skeptical centred on OR = 1
with P(OR > 2.45) = 5% (a 5% probability of a clinically important effect, Spiegelhalter's
original definition); enthusiastic centred on OR = 2.45 with P(OR < 1) = 5%; pessimistic
centred on OR = 1/2.45 with P(OR > 1) = 5%; evidence-based: the pooled RR read as an OR at a
control ORR of 25% (the spread over 15%-35% added to the variance), then power-prior
down-weighted (:func:`evidence_based_log_or`). ``published.arm_rate`` (per-arm Beta prior of the
beta-binomial model) stays uniform in every set: the family is about the contrast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import integrate, optimize, special, stats

from .errors import InputError
from .importance import weighted_quantile
from .labels import IMPORTANT_RD, format_range
from .paths import display_path
from .priors import Prior, PriorSet, as_prior_set, log_density
from .published import CONTROL, TREATED, PublishedEvidence, load_meta_analyses, load_published
from .results import result_row
from .sampler_settings import DEFAULT_SEED

# --------------------------------------------------------------------------- constants

CLINICAL_HR = 0.7  # clinically important benefit (enthusiastic centre; pessimistic mirror)
SKEPTICAL_HR = 0.5  # the skeptic gives 5% probability to a benefit at least this large
TAIL_PROB = 0.05
POWER_PRIOR_A0 = 0.5  # down-weighting of meta-analyses that likely include this study
IMPORTANT_HR = 0.8  # reported: P(HR < 0.8)
# control (LEN-P) response rate used to express ORR effects as odds ratios: a round value near the
# 28-29% this study reports for its LEN-P arm
REFERENCE_CONTROL_ORR = 0.25
EVIDENCE_CONTROL_ORR_RANGE = (0.15, 0.35)  # spread of that conversion in the evidence-based prior
# clinically important OR: RD = IMPORTANT_RD at REFERENCE_CONTROL_ORR (0.45 vs 0.25 -> OR 2.45)
CLINICAL_OR = (
    (REFERENCE_CONTROL_ORR + IMPORTANT_RD) / (1 - REFERENCE_CONTROL_ORR - IMPORTANT_RD)
) / (REFERENCE_CONTROL_ORR / (1 - REFERENCE_CONTROL_ORR))
PRIOR_NAMES = ("reference", "skeptical", "enthusiastic", "pessimistic", "evidence_based")
#: the priors of a set that the published tier's reanalysis uses (HRs, per-arm ORR, ORR contrast)
PUBLISHED_PRIORS = ("published.log_hr_os", "published.log_hr_pfs", "published.arm_rate",
                    "response.intercept", "response.log_or")
#: the family for any other published result (``bayes-haic reanalyse``): evidence_based is a
#: meta-analysis of this study's comparison (HAIC-LEN-P vs LEN-P) and belongs to it alone
GENERIC_PRIOR_NAMES = tuple(n for n in PRIOR_NAMES if n != "evidence_based")
HR_ESTIMAND = "as published (IPTW marginal HR)"
ORR_ESTIMAND = "as published (PSM arm-level ORR; counts derived)"


# --------------------------------------------------------------------------- standard errors


def se_from_ci(lower: float, upper: float, level: float = 0.95) -> float:
    """SE of log(ratio) from a symmetric-on-the-log-scale CI: ``(log U - log L) / (2 z)``."""
    if not (0 < lower < upper) or not math.isfinite(upper):
        raise InputError(
            f"confidence interval: expected 0 < lower < upper; found ({lower}, {upper})."
        )
    z = stats.norm.isf((1 - level) / 2)
    return (math.log(upper) - math.log(lower)) / (2 * z)


def se_from_p(hr: float, p: float, two_sided: bool = True) -> float:
    """SE of log(HR) implied by a Wald test with P value ``p``: ``|log HR| / z``.

    ``z = Phi^{-1}(1 - p/2)`` (two-sided) or ``Phi^{-1}(1 - p)``. For a published bound
    "P < p" the result is the *largest* SE consistent with it (the most conservative reading);
    smaller SEs are equally consistent (see :func:`hr_se_sensitivity`).
    """
    if not hr > 0 or hr == 1:
        raise InputError(f"hazard ratio: expected a positive number other than 1; found {hr}.")
    if not 0 < p < 1:
        raise InputError(f"P value: expected 0 < p < 1; found {p}.")
    z = stats.norm.isf(p / 2 if two_sided else p)
    return abs(math.log(hr)) / z


# --------------------------------------------------------------------------- prior derivation


def prior_from_probability(center: float, threshold: float, prob: float = TAIL_PROB) -> Prior:
    """Normal prior on log(ratio): median ``center`` (a ratio) and ``P(beyond threshold) = prob``.

    "Beyond" is the side of ``threshold`` away from ``center``: ``prior_from_probability(1, 0.5)``
    is the skeptical prior with P(HR < 0.5) = 5%; ``prior_from_probability(0.7, 1.0)`` the
    enthusiastic prior with P(HR > 1) = 5%. ``sigma = |log threshold - log center| / z_{1-prob}``.
    """
    if not (center > 0 and threshold > 0) or center == threshold:
        raise InputError(
            f"prior_from_probability: centre and threshold must be positive ratios that differ; "
            f"found {center}, {threshold}."
        )
    if not 0 < prob < 0.5:
        raise InputError(f"prior_from_probability: prob must be in (0, 0.5); found {prob}.")
    mu = math.log(center)
    sigma = abs(math.log(threshold) - mu) / stats.norm.isf(prob)
    return Prior("Normal", {"mu": mu, "sigma": sigma})


def prior_from_estimate(
    estimate: float, lower: float, upper: float, a0: float = 1.0, level: float = 0.95
) -> Prior:
    """Normal prior on log(ratio) from a published estimate and CI, raised to the power ``a0``.

    A power prior (Ibrahim & Chen 2000) with a normal likelihood: N(log estimate, se^2 / a0);
    ``a0 = 1`` uses the evidence in full, ``a0 = 0.5`` counts it as half as many patients.
    """
    if not 0 < a0 <= 1:
        raise InputError(f"a0: expected 0 < a0 <= 1; found {a0}.")
    se = se_from_ci(lower, upper, level)
    return Prior("Normal", {"mu": math.log(estimate), "sigma": se / math.sqrt(a0)})


def subtract_study(pooled: Prior, study_log_hr: float, study_se: float) -> Prior:
    """Remove one study from a fixed-effect (inverse-variance) pooled normal estimate.

    Precision and precision-weighted mean are additive in a fixed-effect pool, so the pool
    without the study is N((m/v - y/s^2) / (1/v - 1/s^2), 1/(1/v - 1/s^2)). Approximate for
    random-effects pools; fails if the study carries the whole pool's precision.
    """
    v = pooled.params["sigma"] ** 2
    prec = 1 / v - 1 / study_se**2
    if prec <= 0:
        raise InputError("subtract_study: the study is at least as precise as the pool.")
    mean = (pooled.params["mu"] / v - study_log_hr / study_se**2) / prec
    return Prior("Normal", {"mu": mean, "sigma": math.sqrt(1 / prec)})


def log_or_from_rr(rr: float, p0: float) -> float:
    """log OR equal to a risk ratio ``rr`` at control rate ``p0``: OR = RR (1 - p0)/(1 - RR p0)."""
    if not 0 < p0 < 1 or rr * p0 >= 1:
        raise InputError(f"log_or_from_rr: need 0 < p0 < 1 and RR * p0 < 1; found {rr}, {p0}.")
    return math.log(rr * (1 - p0) / (1 - rr * p0))


def evidence_based_log_or(
    rr: float,
    lower: float,
    upper: float,
    *,
    p0: float = REFERENCE_CONTROL_ORR,
    p0_range: tuple[float, float] = EVIDENCE_CONTROL_ORR_RANGE,
    a0: float = POWER_PRIOR_A0,
) -> Prior:
    """Normal prior on the log odds ratio of response from a pooled risk ratio and its CI.

    Centre: the RR read as an OR at control rate ``p0``. Variance: the pooled log-RR variance
    divided by ``a0`` plus the conversion uncertainty, ((log OR at p0_hi - log OR at p0_lo) /
    (2 x 1.96))^2, so that the 95% prior interval spans the conversions over ``p0_range``.
    """
    se_rr = se_from_ci(lower, upper)
    conv = (log_or_from_rr(rr, p0_range[1]) - log_or_from_rr(rr, p0_range[0])) / (
        2 * stats.norm.isf(0.025)
    )
    return Prior(
        "Normal",
        {"mu": log_or_from_rr(rr, p0), "sigma": math.sqrt(se_rr**2 / a0 + conv**2)},
    )


@dataclass(frozen=True)
class Statement:
    """A probability a prior file states, e.g. P(HR < 0.5) = 0.05 for ``published.log_hr_os``."""

    key: str  # "section.key" of a Normal prior on a log ratio
    ratio: str  # "HR" or "OR"
    side: str  # "<" or ">"
    threshold: float  # on the ratio scale
    prob: float

    def __str__(self) -> str:
        return f"P({self.ratio} {self.side} {self.threshold:g}) = {self.prob:g}"

    def evaluate(self, prior: Prior) -> float:
        """The probability the prior actually gives to the event."""
        cdf = float(prior.to_scipy().cdf(math.log(self.threshold)))
        return cdf if self.side == "<" else 1 - cdf


@dataclass(frozen=True)
class FamilyMember:
    """One prior of the reanalysis family: its priors on the effect parameters and statements."""

    name: str
    description: str
    priors: dict  # "section.key" -> Prior (the effect parameters only)
    statements: tuple = ()
    comments: dict = field(default_factory=dict)  # "section.key" -> comment line(s)


_EFFECT_KEYS = ("survival.log_hr", "response.log_or", "published.log_hr_os", "published.log_hr_pfs")


def _symmetric_member(name, description, hr_center, hr_threshold, or_center, or_threshold):
    hr = prior_from_probability(hr_center, hr_threshold)
    lor = prior_from_probability(or_center, or_threshold)
    hs = "<" if hr_threshold < hr_center else ">"
    os_ = "<" if or_threshold < or_center else ">"
    st = [Statement(k, "HR", hs, hr_threshold, TAIL_PROB) for k in _EFFECT_KEYS if "hr" in k]
    st.append(Statement("response.log_or", "OR", os_, or_threshold, TAIL_PROB))
    hr_text = f"log HR: median HR {hr_center:.3g}, P(HR {hs} {hr_threshold:.3g}) = {TAIL_PROB:g}"
    or_text = f"log OR: median OR {or_center:.3g}, P(OR {os_} {or_threshold:.3g}) = {TAIL_PROB:g}"
    priors = {k: (lor if k == "response.log_or" else hr) for k in _EFFECT_KEYS}
    comments = {k: (or_text if k == "response.log_or" else hr_text) for k in _EFFECT_KEYS}
    return FamilyMember(name, description, priors, tuple(st), comments)


def family_members(meta: pd.DataFrame | None = None) -> dict[str, FamilyMember]:
    """The skeptical, enthusiastic, pessimistic and evidence-based priors, derived from their
    stated probabilities (and, for evidence-based, from ``data/published/meta_analyses.csv``)."""
    meta = load_meta_analyses() if meta is None else meta
    z = stats.norm.isf(TAIL_PROB)
    ior, p0, rd = CLINICAL_OR, REFERENCE_CONTROL_ORR, IMPORTANT_RD
    or_note = (
        f"The clinically important response effect is RD = +{rd:g} at a control (LEN-P)\n"
        f"ORR of {p0:.0%} ({p0 + rd:.0%} vs {p0:.0%}), i.e. OR = {ior:.3g}."
    )
    out = {}
    out["skeptical"] = _symmetric_member(
        "skeptical",
        f"""Skeptical prior (Spiegelhalter, Freedman & Parmar 1994; Wijeysundera et al. 2009):
the treatment effect is centred on no effect and a large benefit is thought unlikely.
OS and PFS: median HR = 1 with P(HR < {SKEPTICAL_HR:g}) = {TAIL_PROB:g} (so P(HR < \
{CLINICAL_HR:g}) = \
{stats.norm.cdf(math.log(CLINICAL_HR) / (math.log(1 / SKEPTICAL_HR) / z)):.2f});
normal on log(HR) with sd = log(2)/{z:.3f} = {math.log(2) / z:.3f}.
Objective response: median OR = 1 with P(OR > {ior:.3g}) = {TAIL_PROB:g}, a 5% \
probability of a clinically
important effect; sd = {math.log(ior) / z:.3f} on log(OR).
{or_note}
Nuisance parameters as in the reference set.""",
        1.0,
        SKEPTICAL_HR,
        1.0,
        ior,
    )
    out["enthusiastic"] = _symmetric_member(
        "enthusiastic",
        f"""Enthusiastic prior (Spiegelhalter, Freedman & Parmar 1994): centred on a clinically
important benefit, with only a 5% probability of no benefit or harm.
OS and PFS: median HR = {CLINICAL_HR:g} with P(HR > 1) = {TAIL_PROB:g}; normal on log(HR) with
sd = -log({CLINICAL_HR:g})/{z:.3f} = {-math.log(CLINICAL_HR) / z:.3f}.
Objective response: median OR = {ior:.3g} with P(OR < 1) = {TAIL_PROB:g}; sd = \
{math.log(ior) / z:.3f} on log(OR).
{or_note}
Nuisance parameters as in the reference set.""",
        CLINICAL_HR,
        1.0,
        ior,
        1.0,
    )
    out["pessimistic"] = _symmetric_member(
        "pessimistic",
        f"""Pessimistic prior: the mirror image of the enthusiastic prior, centred on harm of the
same size, with only a 5% probability of any benefit.
OS and PFS: median HR = 1/{CLINICAL_HR:g} = {1 / CLINICAL_HR:.3g} with P(HR < 1) = \
{TAIL_PROB:g}; sd = \
{-math.log(CLINICAL_HR) / z:.3f} on log(HR).
Objective response: median OR = 1/{ior:.3g} = {1 / ior:.3g} with P(OR > 1) = {TAIL_PROB:g}; sd = \
{math.log(ior) / z:.3f} on log(OR).
Nuisance parameters as in the reference set.""",
        1 / CLINICAL_HR,
        1.0,
        1 / ior,
        1.0,
    )
    os_ = meta.loc["zhao2025_hr_os"]
    pfs = meta.loc["zhao2025_hr_pfs"]
    orr = meta.loc["zhao2025_rr_orr"]
    a0 = POWER_PRIOR_A0
    p_os = prior_from_estimate(os_.value, os_.lower, os_.upper, a0)
    p_pfs = prior_from_estimate(pfs.value, pfs.lower, pfs.upper, a0)
    p_or = evidence_based_log_or(orr.value, orr.lower, orr.upper)
    lo, hi = EVIDENCE_CONTROL_ORR_RANGE

    def interval(p: Prior) -> str:
        m, sd = p.params["mu"], p.params["sigma"]
        return format_range(math.exp(m - 1.96 * sd), math.exp(m + 1.96 * sd))

    out["evidence_based"] = FamilyMember(
        "evidence_based",
        f"""Evidence-based prior from the meta-analysis of Zhao, Xu, Deng & Ni, Front Oncol
2025;15:1513394 (eight retrospective cohorts, HAIC + lenvatinib + PD-1 inhibitor vs lenvatinib +
PD-1 inhibitor): pooled OS HR {os_.value:.2f} ({format_range(os_.lower, os_.upper)}), PFS HR \
{pfs.value:.2f} \
({format_range(pfs.lower, pfs.upper)}), ORR RR {orr.value:.2f} ({format_range(orr.lower, orr.upper)}).
The meta-analysis very likely includes this study, so using it in full would count this study's
patients twice. Its information is halved: a power prior with a0 = {a0:g}, i.e. the variance of
each pooled log ratio (SE from its 95% CI) is divided by {a0:g} (sd multiplied by \
{1 / math.sqrt(a0):.3f}).
What the priors say: median HR {os_.value:.2f} for OS (95% prior interval {interval(p_os)}) and
{pfs.value:.2f} for PFS ({interval(p_pfs)}). Objective response: the pooled RR is read as an OR at a
control (LEN-P) ORR of {p0:.0%} (OR {math.exp(p_or.params["mu"]):.2f}); the spread of \
that conversion over control
ORRs {lo:.0%}-{hi:.0%} is added to the variance: 95% prior interval of OR {interval(p_or)}.
The patient-level models use the OS estimate for OS (survival.log_hr) and the PFS estimate
for PFS (survival.log_hr_pfs). Nuisance parameters as in the reference set.""",
        {
            "survival.log_hr": p_os,
            "survival.log_hr_pfs": p_pfs,
            "response.log_or": p_or,
            "published.log_hr_os": p_os,
            "published.log_hr_pfs": p_pfs,
        },
        (
            Statement("published.log_hr_os", "HR", "<", os_.value, 0.5),
            Statement("published.log_hr_pfs", "HR", "<", pfs.value, 0.5),
            Statement("survival.log_hr", "HR", "<", os_.value, 0.5),
            Statement("survival.log_hr_pfs", "HR", "<", pfs.value, 0.5),
            Statement("response.log_or", "OR", "<", math.exp(p_or.params["mu"]), 0.5),
        ),
        {
            "survival.log_hr": (
                f"log HR (OS; any endpoint without its own key): OS pooled HR {os_.value:.2f} "
                f"({format_range(os_.lower, os_.upper)}), power prior a0 = {a0:g}"
            ),
            "survival.log_hr_pfs": (
                f"log HR (PFS): PFS pooled HR {pfs.value:.2f} ({format_range(pfs.lower, pfs.upper)}), "
                f"power prior a0 = {a0:g}"
            ),
            "published.log_hr_os": (
                f"log HR (OS): pooled HR {os_.value:.2f} ({format_range(os_.lower, os_.upper)}), "
                f"power prior a0 = {a0:g}"
            ),
            "published.log_hr_pfs": (
                f"log HR (PFS): pooled HR {pfs.value:.2f} ({format_range(pfs.lower, pfs.upper)}), "
                f"power prior a0 = {a0:g}"
            ),
            "response.log_or": (
                f"log OR: pooled RR {orr.value:.2f} ({format_range(orr.lower, orr.upper)}) read as an OR at "
                f"control ORR {p0:.0%} (+ spread over {lo:.0%}-{hi:.0%}), a0 = {a0:g}"
            ),
        },
    )
    return out


# --------------------------------------------------------------------------- 1-D posteriors


@dataclass(frozen=True)
class NormalPosterior:
    """Closed-form posterior of a log ratio: N(mean, sd^2)."""

    mean: float
    sd: float
    closed_form: bool = True

    def quantile(self, q):
        return stats.norm.ppf(q, self.mean, self.sd)

    def cdf(self, x):
        return stats.norm.cdf(x, self.mean, self.sd)

    def pdf(self, x):
        return stats.norm.pdf(x, self.mean, self.sd)


@dataclass(frozen=True)
class GridPosterior:
    """Posterior of a log ratio by quadrature on a fine grid (any prior family)."""

    x: np.ndarray
    density: np.ndarray  # normalised on x
    closed_form: bool = False

    @property
    def _cdf(self):
        c = integrate.cumulative_trapezoid(self.density, self.x, initial=0.0)
        return c / c[-1]

    @property
    def mean(self) -> float:
        return float(integrate.trapezoid(self.x * self.density, self.x))

    @property
    def sd(self) -> float:
        m = self.mean
        return float(np.sqrt(integrate.trapezoid((self.x - m) ** 2 * self.density, self.x)))

    def quantile(self, q):
        return np.interp(q, self._cdf, self.x)

    def cdf(self, x):
        return np.interp(x, self.x, self._cdf)

    def pdf(self, x):
        return np.interp(x, self.x, self.density, left=0.0, right=0.0)


def normal_posterior(prior: Prior, y: float, se: float, n_grid: int = 20001):
    """Posterior of theta given y ~ N(theta, se^2) and ``prior`` on theta.

    Normal prior: the conjugate closed form. Other families: quadrature over theta in
    y +- 12 se (and the prior's central 99.9999%), with ``n_grid`` points.
    """
    if prior.dist == "Normal":
        m, v = prior.params["mu"], prior.params["sigma"] ** 2
        prec = 1 / v + 1 / se**2
        return NormalPosterior((m / v + y / se**2) / prec, math.sqrt(1 / prec))
    dist = prior.to_scipy()
    lo = min(y - 12 * se, float(dist.ppf(1e-6)))
    hi = max(y + 12 * se, float(dist.ppf(1 - 1e-6)))
    x = np.linspace(lo, hi, n_grid)
    with np.errstate(divide="ignore"):
        logpost = np.log(dist.pdf(x)) + stats.norm.logpdf(y, x, se)
    dens = np.exp(logpost - logpost.max())
    dens /= integrate.trapezoid(dens, x)
    return GridPosterior(x, dens)


def hr_model(y: float, se: float, prior: Prior):
    """The same model in PyMC (to check the closed form by MCMC): ``log_hr ~ prior``,
    ``y ~ N(log_hr, se)``; deterministic ``hr``."""
    import pymc as pm

    with pm.Model() as model:
        log_hr = prior.to_pymc("log_hr")
        pm.Deterministic("hr", pm.math.exp(log_hr))
        pm.Normal("log_hr_hat", mu=log_hr, sigma=se, observed=y)
    return model


# --------------------------------------------------------------------------- HR reanalysis


def source_label(evidence: PublishedEvidence) -> str:
    """The evidence file's path as results name their source (relative to the checkout)."""
    return display_path(evidence.source)


@dataclass(frozen=True)
class HRReanalysis:
    """Prior, likelihood and posterior of log(HR) for one endpoint and one prior set."""

    endpoint: str  # "os" | "pfs"
    hr: float  # published point estimate
    se: float  # SE of log(HR) used
    se_method: str
    prior: Prior
    prior_label: str
    posterior: object  # NormalPosterior | GridPosterior
    n_treated: int
    n_control: int
    source: str

    @property
    def log_hr(self) -> float:
        return math.log(self.hr)

    def prob_below(self, ratio: float) -> float:
        """Posterior P(HR < ratio)."""
        return float(self.posterior.cdf(math.log(ratio)))

    def summary(self) -> dict:
        """Posterior median and 95% CrI of HR, P(HR < 1), P(HR < 0.8)."""
        lo, med, hi = np.exp(self.posterior.quantile([0.025, 0.5, 0.975]))
        return {
            "median": float(med),
            "lower": float(lo),
            "upper": float(hi),
            "p_hr_below_1": self.prob_below(1.0),
            f"p_hr_below_{IMPORTANT_HR:g}": self.prob_below(IMPORTANT_HR),
        }

    @property
    def method(self) -> str:
        kind = "conjugate normal-normal" if self.posterior.closed_form else "grid quadrature"
        return f"{kind} on log(HR); {self.se_method}"


def hr_se(number, se) -> tuple[float, str]:
    """The SE of log(HR) of a published hazard ratio ``number`` and how it was obtained: ``se``
    if given, else from its confidence interval, else from its P value."""
    if se is not None:
        if not se > 0:
            raise InputError(f"se: expected a positive standard error; found {se}.")
        return float(se), f"SE {se:.3g} given by the caller"
    if number.has_ci:
        s = se_from_ci(number.lower, number.upper)
        return s, f"SE {s:.3f} from the published 95% CI"
    p = number.p()
    if p is None or p[0] in (">", ">="):
        raise InputError(
            f"{number.id}: no confidence interval and no usable P value ({number.p_value!r}); "
            "give the SE explicitly."
        )
    rel, pv = p
    s = se_from_p(number.value, pv)
    if rel in ("<", "<="):
        return s, (
            f"SE {s:.3f} from P {rel} {pv:g} read as P = {pv:g} (two-sided Wald): the largest SE "
            "consistent with the published P, i.e. the most conservative"
        )
    return s, f"SE {s:.3f} from P = {pv:g} (two-sided Wald)"


def reanalyse_hr(
    endpoint: str,
    prior_set: PriorSet | str = "reference",
    *,
    evidence: PublishedEvidence | None = None,
    analysis_set: str = "IPTW",
    se: float | None = None,
) -> HRReanalysis:
    """Posterior of the published ``endpoint`` (``"os"``/``"pfs"``) HR under ``prior_set``'s
    ``published.log_hr_<endpoint>`` prior. ``se`` overrides the SE derived from the evidence."""
    if endpoint not in ("os", "pfs"):
        raise InputError(f"endpoint: expected 'os' or 'pfs'; found {endpoint!r}.")
    ev = evidence or load_published()
    ps = as_prior_set(prior_set)
    number = ev.get(f"hr_{endpoint}", analysis_set=analysis_set)
    s, how = hr_se(number, se)
    prior = ps.get(f"published.log_hr_{endpoint}")
    nset = "all" if analysis_set == "IPTW" else analysis_set
    n1 = ev.find("n_patients", analysis_set=nset, arm=TREATED)
    n0 = ev.find("n_patients", analysis_set=nset, arm=CONTROL)
    return HRReanalysis(
        endpoint=endpoint,
        hr=number.value,
        se=s,
        se_method=how,
        prior=prior,
        prior_label=ps.label(),
        posterior=normal_posterior(prior, math.log(number.value), s),
        n_treated=int(n1[0].value) if n1 else -1,
        n_control=int(n0[0].value) if n0 else -1,
        source=source_label(ev),
    )


def hr_se_sensitivity(
    endpoint: str,
    prior_set: PriorSet | str = "reference",
    *,
    factors=(0.5, 0.75, 1.0, 1.25, 1.5),
    evidence: PublishedEvidence | None = None,
) -> pd.DataFrame:
    """Posterior summaries over SEs ``factor x`` the SE derived from the published evidence.

    Factors <= 1 are consistent with "P < 0.001" (smaller SE, smaller P); factors > 1 are not
    and show how much the conclusions lean on the P value (column ``consistent_with_p``).
    """
    base = reanalyse_hr(endpoint, prior_set, evidence=evidence)
    rows = []
    for f in factors:
        r = reanalyse_hr(endpoint, prior_set, evidence=evidence, se=f * base.se)
        rows.append(
            {
                "endpoint": endpoint,
                "prior": r.prior_label,
                "se_factor": f,
                "se": r.se,
                "consistent_with_p": bool(f <= 1 + 1e-12),
                **r.summary(),
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- ORR, exact


def prob_rd_greater(a1: float, b1: float, a0: float, b0: float, d: float = 0.0) -> float:
    """P(p1 - p0 > d) for independent p1 ~ Beta(a1, b1), p0 ~ Beta(a0, b0), by quadrature:
    the integral over y of f0(y) (1 - F1(y + d)). The Beta density and survival function are
    scipy.special's (``betaln``, ``betaincc``), not frozen ``scipy.stats`` objects: the same
    values, without ~0.2 ms of argument checking in each of quad's ~170 evaluations."""
    lo, hi = max(0.0, -d), min(1.0, 1.0 - d)
    if lo >= hi:
        return 0.0 if d >= 1 else 1.0
    log_norm0 = special.betaln(a0, b0)

    def integrand(y):
        f0 = math.exp(special.xlogy(a0 - 1, y) + special.xlog1py(b0 - 1, -y) - log_norm0)
        return f0 * special.betaincc(a1, b1, min(max(y + d, 0.0), 1.0))

    val, _ = integrate.quad(integrand, lo, hi, limit=200, epsabs=1e-11, epsrel=1e-10)
    # mass of p0 below -d (where p1 - p0 > d surely) when d < 0
    return float(val + (special.betainc(a0, b0, -d) if d < 0 else 0.0))


@dataclass(frozen=True)
class ORRReanalysis:
    """Exact per-arm Beta posteriors of the ORR and Monte Carlo draws of RD, RR and OR."""

    responders: tuple  # (treated, control)
    n: tuple
    prior: Prior
    prior_label: str
    post_treated: tuple  # Beta (alpha, beta)
    post_control: tuple
    draws: dict  # "rd", "rr", "or" -> arrays
    p_rd_above_0: float  # exact (quadrature)
    p_rd_above_important: float  # P(RD > IMPORTANT_RD), exact
    seed: int
    source: str

    @property
    def method(self) -> str:
        a, b = self.prior.params["alpha"], self.prior.params["beta"]
        n = len(self.draws["rd"])
        return (
            f"exact beta-binomial per arm, Beta({a:g}, {b:g}) prior, on derived PSM counts "
            f"{self.responders[0]}/{self.n[0]} vs {self.responders[1]}/{self.n[1]}; RD/RR/OR by "
            f"{n} seeded Monte Carlo draws; P(RD > 0) by quadrature"
        )

    def summary(self, measure: str) -> dict:
        lo, med, hi = np.quantile(self.draws[measure], [0.025, 0.5, 0.975])
        return {"median": float(med), "lower": float(lo), "upper": float(hi)}



def _arm_contrasts(p1, p0, odds_ratio=None) -> dict:
    """Risk difference, risk ratio and odds ratio of response probabilities ``p1`` (treated)
    and ``p0`` (control), with the probabilities themselves (arrays of draws or grid points);
    ``odds_ratio``: given when exact on another scale (exp of a log-OR grid)."""
    return {
        "rd": p1 - p0,
        "rr": p1 / p0,
        "or": (p1 / (1 - p1)) / (p0 / (1 - p0)) if odds_ratio is None else odds_ratio,
        "p_treated": p1,
        "p_control": p0,
    }

def reanalyse_orr(
    prior_set: PriorSet | str = "reference",
    *,
    evidence: PublishedEvidence | None = None,
    n_draws: int = 200_000,
    seed: int = DEFAULT_SEED,
) -> ORRReanalysis:
    """Exact per-arm Beta posteriors of the PSM ORR (derived counts); prior published.arm_rate."""
    ev = evidence or load_published()
    ps = as_prior_set(prior_set)
    prior = ps.get("published.arm_rate")
    if prior.dist != "Beta":
        raise InputError(
            f"{ps.source}: published.arm_rate must be a Beta prior for the exact beta-binomial "
            f"posterior; found {prior}."
        )
    r1 = int(ev.value("responders", analysis_set="PSM", arm=TREATED))
    r0 = int(ev.value("responders", analysis_set="PSM", arm=CONTROL))
    n1 = int(ev.value("n_patients", analysis_set="PSM", arm=TREATED))
    n0 = int(ev.value("n_patients", analysis_set="PSM", arm=CONTROL))
    a, b = prior.params["alpha"], prior.params["beta"]
    post1, post0 = (a + r1, b + n1 - r1), (a + r0, b + n0 - r0)
    rng = np.random.default_rng(seed)
    p1 = rng.beta(*post1, size=n_draws)
    p0 = rng.beta(*post0, size=n_draws)
    draws = _arm_contrasts(p1, p0)
    return ORRReanalysis(
        responders=(r1, r0),
        n=(n1, n0),
        prior=prior,
        prior_label=ps.label(),
        post_treated=post1,
        post_control=post0,
        draws=draws,
        p_rd_above_0=prob_rd_greater(*post1, *post0, 0.0),
        p_rd_above_important=prob_rd_greater(*post1, *post0, IMPORTANT_RD),
        seed=seed,
        source=source_label(ev),
    )


# --------------------------------------------------------------------------- ORR, contrast prior


@dataclass(frozen=True)
class ORRContrastReanalysis:
    """Logistic model on the derived PSM counts with priors on the intercept and log OR,
    integrated on a 2-D grid; summaries of RD, RR, OR are weighted over grid cells."""

    responders: tuple
    n: tuple
    prior_intercept: Prior
    prior_log_or: Prior
    prior_label: str
    values: dict  # "rd", "rr", "or", "log_or", "p_treated", "p_control" -> arrays over cells
    weights: np.ndarray
    grid_size: int
    source: str

    def prob(self, measure: str, above: float) -> float:
        return float(self.weights[self.values[measure] > above].sum())

    @property
    def p_rd_above_0(self) -> float:
        return self.prob("rd", 0.0)

    @property
    def p_rd_above_important(self) -> float:
        return self.prob("rd", IMPORTANT_RD)

    def summary(self, measure: str) -> dict:
        lo, med, hi = weighted_quantile(self.values[measure], self.weights, [0.025, 0.5, 0.975])
        return {"median": float(med), "lower": float(lo), "upper": float(hi)}

    def mean(self, measure: str) -> float:
        return float(np.sum(self.values[measure] * self.weights))

    @property
    def method(self) -> str:
        return (
            f"logistic on derived PSM counts {self.responders[0]}/{self.n[0]} vs "
            f"{self.responders[1]}/{self.n[1]}, priors intercept {self.prior_intercept}, "
            f"log OR {self.prior_log_or}; 2-D grid quadrature ({self.grid_size}^2 points)"
        )


def reanalyse_orr_contrast(
    prior_set: PriorSet | str = "reference",
    *,
    evidence: PublishedEvidence | None = None,
    grid_size: int = 401,
    width: float = 10.0,
) -> ORRContrastReanalysis:
    """Posterior of the ORR contrast with the prior set's ``response.intercept`` and
    ``response.log_or`` priors, by quadrature on a ``grid_size`` x ``grid_size`` grid spanning
    the posterior mode +- ``width`` Laplace sds in each direction."""
    ev = evidence or load_published()
    ps = as_prior_set(prior_set)
    pa, pb = ps.get("response.intercept"), ps.get("response.log_or")
    r1 = int(ev.value("responders", analysis_set="PSM", arm=TREATED))
    r0 = int(ev.value("responders", analysis_set="PSM", arm=CONTROL))
    n1 = int(ev.value("n_patients", analysis_set="PSM", arm=TREATED))
    n0 = int(ev.value("n_patients", analysis_set="PSM", arm=CONTROL))
    da, db = pa.to_scipy(), pb.to_scipy()  # frozen once (the optimiser evaluates ~200 times)

    def logpost(a, b):
        ll = (
            r0 * special.log_expit(a)
            + (n0 - r0) * special.log_expit(-a)
            + r1 * special.log_expit(a + b)
            + (n1 - r1) * special.log_expit(-(a + b))
        )
        return ll + log_density(da, a) + log_density(db, b)

    start = np.array([special.logit((r0 + 0.5) / (n0 + 1)), 0.0])
    start[1] = special.logit((r1 + 0.5) / (n1 + 1)) - start[0]
    opt = optimize.minimize(lambda t: -logpost(t[0], t[1]), start, method="BFGS")
    mode = opt.x
    h = 1e-4
    hess = np.empty((2, 2))
    for i in range(2):
        for j in range(2):
            e_i, e_j = np.eye(2)[i] * h, np.eye(2)[j] * h
            hess[i, j] = -(
                logpost(*(mode + e_i + e_j))
                - logpost(*(mode + e_i - e_j))
                - logpost(*(mode - e_i + e_j))
                + logpost(*(mode - e_i - e_j))
            ) / (4 * h * h)
    sd = np.sqrt(np.diag(np.linalg.inv(hess)))
    ga = np.linspace(mode[0] - width * sd[0], mode[0] + width * sd[0], grid_size)
    gb = np.linspace(mode[1] - width * sd[1], mode[1] + width * sd[1], grid_size)
    A, B = np.meshgrid(ga, gb, indexing="ij")
    lp = logpost(A, B)
    w = np.exp(lp - lp.max()).ravel()
    w /= w.sum()
    edge = np.exp(lp - lp.max())
    if max(edge[0].max(), edge[-1].max(), edge[:, 0].max(), edge[:, -1].max()) > 1e-8:
        raise RuntimeError("ORR grid does not cover the posterior; increase width")
    p0 = special.expit(A).ravel()
    p1 = special.expit(A + B).ravel()
    values = {**_arm_contrasts(p1, p0, np.exp(B).ravel()), "log_or": B.ravel()}
    return ORRContrastReanalysis(
        responders=(r1, r0),
        n=(n1, n0),
        prior_intercept=pa,
        prior_log_or=pb,
        prior_label=ps.label(),
        values=values,
        weights=w,
        grid_size=grid_size,
        source=source_label(ev),
    )


# --------------------------------------------------------------------------- all priors


@dataclass
class PublishedReanalysis:
    """Every reanalysis of the published numbers, per prior set."""

    hr: dict  # (endpoint, prior label) -> HRReanalysis
    orr: dict  # prior label -> ORRReanalysis
    orr_contrast: dict  # prior label -> ORRContrastReanalysis
    sensitivity: pd.DataFrame

    def rows(self) -> list[dict]:
        """Rows of the results table (tier ``published``, adjustment ``published``)."""
        out = []
        closed = {"rhat_max": math.nan, "ess_bulk_min": math.nan, "divergences": math.nan}
        for (endpoint, label), r in self.hr.items():
            s = r.summary()
            out.append(
                result_row(
                    data_tier="published",
                    analysis="main",
                    endpoint=endpoint,
                    measure="hr",
                    adjustment="published",
                    model="normal-normal",
                    cut_set="",
                    estimand=HR_ESTIMAND,
                    prior=label,
                    median=s["median"],
                    lower=s["lower"],
                    upper=s["upper"],
                    prob_benefit=s["p_hr_below_1"],
                    method=r.method,
                    n_treated=r.n_treated,
                    n_control=r.n_control,
                    source=r.source,
                    **closed,
                )
            )
        fits = [(label, "beta-binomial", res) for label, res in self.distinct_orr().items()]
        fits += [(label, "logistic", res) for label, res in self.orr_contrast.items()]
        for label, model, res in fits:
            for measure in ("rd", "rr", "or"):
                s = res.summary(measure)
                out.append(
                    result_row(
                        data_tier="published",
                        analysis="main",
                        endpoint="orr",
                        measure=measure,
                        adjustment="published",
                        model=model,
                        cut_set="",
                        estimand=ORR_ESTIMAND,
                        prior=label,
                        prob_benefit=res.p_rd_above_0,
                        method=res.method,
                        n_treated=res.n[0],
                        n_control=res.n[1],
                        source=res.source,
                        **s,
                        **closed,
                    )
                )
        return out

    def distinct_orr(self) -> dict:
        """The beta-binomial ORR reanalyses, one per distinct per-arm prior (``published.arm_rate``),
        keyed by that prior (e.g. ``"Beta(alpha: 1, beta: 1)"``): a result that no prior set
        changes is reported once, with the prior that produced it, not once per set."""
        out = {}
        for res in self.orr.values():
            out.setdefault(str(res.prior), res)
        return out

    def orr_sets(self, prior) -> list[str]:
        """Labels of the prior sets whose per-arm ORR prior is ``prior`` (its string form)."""
        return [label for label, res in self.orr.items() if str(res.prior) == str(prior)]

    def table(self) -> pd.DataFrame:
        """Tidy table for the report: one row per endpoint, measure, prior and model."""
        recs = []
        for (endpoint, label), r in self.hr.items():
            s = r.summary()
            recs.append(
                {
                    "endpoint": endpoint,
                    "measure": "HR",
                    "model": "normal likelihood for log(HR)",
                    "prior": label,
                    "prior_detail": str(r.prior),
                    "median": s["median"],
                    "lower": s["lower"],
                    "upper": s["upper"],
                    "p_benefit": s["p_hr_below_1"],
                    "benefit": "P(HR < 1)",
                    "p_important": s[f"p_hr_below_{IMPORTANT_HR:g}"],
                    "important": f"P(HR < {IMPORTANT_HR:g})",
                    "se_log_hr": r.se,
                }
            )
        fits = [("beta-binomial per arm", prior, res,
                 "per-arm rate; the same in prior sets " + ", ".join(self.orr_sets(prior)))
                for prior, res in self.distinct_orr().items()]
        fits += [("logistic (intercept + log OR)", label, res, f"log OR {res.prior_log_or}")
                 for label, res in self.orr_contrast.items()]
        for model, label, res, pd_ in fits:
            for measure in ("rd", "rr", "or"):
                s = res.summary(measure)
                recs.append(
                    {
                        "endpoint": "orr",
                        "measure": measure.upper(),
                        "model": model,
                        "prior": label,
                        "prior_detail": pd_,
                        **s,
                        "p_benefit": res.p_rd_above_0,
                        "benefit": "P(RD > 0)",
                        "p_important": res.p_rd_above_important,
                        "important": f"P(RD > {IMPORTANT_RD:g})",
                        "se_log_hr": math.nan,
                    }
                )
        return pd.DataFrame(recs)


def run_published(
    prior_names=PRIOR_NAMES,
    *,
    evidence: PublishedEvidence | None = None,
    overrides=(),
    n_draws: int = 200_000,
    seed: int = DEFAULT_SEED,
) -> PublishedReanalysis:
    """Reanalyse HR OS, HR PFS and the ORR under each prior set in ``prior_names`` (names of
    files in ``models/priors/``, paths, or PriorSet objects); ``overrides`` apply to each."""
    ev = evidence or load_published()
    hr, orr, orr_c, sens = {}, {}, {}, []
    for name in prior_names:
        ps = as_prior_set(name, overrides)
        for endpoint in ("os", "pfs"):
            hr[(endpoint, ps.label())] = reanalyse_hr(endpoint, ps, evidence=ev)
            sens.append(hr_se_sensitivity(endpoint, ps, evidence=ev))
        orr[ps.label()] = reanalyse_orr(ps, evidence=ev, n_draws=n_draws, seed=seed)
        orr_c[ps.label()] = reanalyse_orr_contrast(ps, evidence=ev)
    return PublishedReanalysis(hr, orr, orr_c, pd.concat(sens, ignore_index=True))


def published_results(prior_names=PRIOR_NAMES, **kwargs) -> list[dict]:
    """Results rows: HR OS, HR PFS, ORR RD/RR/OR per prior (see :func:`run_published`)."""
    return run_published(prior_names, **kwargs).rows()


def published_table(prior_names=PRIOR_NAMES, **kwargs) -> pd.DataFrame:
    """The tidy report table (see :meth:`PublishedReanalysis.table`)."""
    return run_published(prior_names, **kwargs).table()


# --------------------------------------------------------------------------- figures


