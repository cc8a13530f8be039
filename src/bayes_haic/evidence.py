r"""Bayesian reanalysis of any published result (``bayes-haic reanalyse``, ``bh.reanalyse``).

The study's own published tier (:mod:`bayes_haic.reanalysis`) reads this study's evidence file;
this module applies the same machinery to any paper's number:

* a **ratio** (``hr``, ``or``, ``rr``) with its confidence interval, or a P value when no
  interval was published, or an SE: a normal likelihood for the log ratio,
  :math:`\log\widehat{R} \sim N(\theta, s^2)` with :math:`s` from the CI
  (:func:`~bayes_haic.reanalysis.se_from_ci`) or from the P value
  (:func:`~bayes_haic.reanalysis.se_from_p`; a bound "P < p" is read as P = p, the largest SE
  consistent with it, i.e. the most conservative reading). With a normal prior the posterior is
  the conjugate normal-normal closed form; other families are integrated on a grid
  (:func:`~bayes_haic.reanalysis.normal_posterior`). The prior on the log ratio is the prior
  set's ``published.log_hr_<endpoint>`` for an HR and ``response.log_or`` for an OR or RR.
* a **response contrast from counts** (``rd``, ``rr``, ``or`` with ``counts = (r1, n1, r0,
  n0)``): the exact per-arm beta-binomial posteriors with ``published.arm_rate`` and the
  logistic contrast model with ``response.intercept`` and ``response.log_or``
  (:func:`~bayes_haic.reanalysis.reanalyse_orr`,
  :func:`~bayes_haic.reanalysis.reanalyse_orr_contrast`).

Each result is given under the chosen prior set and, side by side, under the generic family
(reference, skeptical, enthusiastic, pessimistic; :data:`~bayes_haic.reanalysis.GENERIC_PRIOR_NAMES`:
the shipped evidence-based set is a meta-analysis of this package's study's comparison, named
explicitly when wanted), with P(effect < threshold)
for a set of thresholds. :func:`reanalyse_file` does the same for every HR and every pair of
arm counts in a published-evidence file in the format of ``data/published/study.csv``
(any study's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import reanalysis as ra
from .errors import InputError
from .priors import as_prior_set
from .published import (
    CONTROL,
    TREATED,
    PublishedEvidence,
    PublishedNumber,
    load_published,
    parse_p_value,
)
from .results import result_row, results_frame

RATIOS = ("hr", "or", "rr")
COUNT_MEASURES = ("rd", "rr", "or")
DEFAULT_THRESHOLDS = {"hr": (1.0, 0.8, 0.7), "or": (1.0, 1.5, 2.0), "rr": (1.0, 1.25, 1.5),
                      "rd": (0.0, 0.1, 0.2)}
MEASURE_NAMES = {"hr": "hazard ratio", "or": "odds ratio", "rr": "risk ratio",
                 "rd": "risk difference"}


def _p(p_value) -> tuple[str, float]:
    if isinstance(p_value, str):
        try:
            return parse_p_value(p_value)
        except ValueError:
            raise InputError(f"--p-value {p_value!r}: expected a P value like 0.03 or '< 0.001'."
                             ) from None
    try:
        return "=", float(p_value)
    except (TypeError, ValueError):
        raise InputError(f"--p-value {p_value!r}: expected a number between 0 and 1.") from None


def standard_error(estimate: float, *, ci=None, p_value=None, se=None,
                   level: float = 0.95) -> tuple[float, str]:
    """SE of the log ratio and how it was obtained (from ``se``, ``ci`` or ``p_value``)."""
    if not (isinstance(estimate, (int, float)) and math.isfinite(estimate) and estimate > 0):
        raise InputError(f"--estimate {estimate!r}: expected a positive ratio (HR, OR, RR).")
    given = [n for n, v in (("--se", se), ("--ci", ci), ("--p-value", p_value)) if v is not None]
    if len(given) != 1:
        raise InputError("give exactly one of --ci LOWER UPPER, --p-value P or --se SE "
                         f"(found {', '.join(given) or 'none'}).")
    if se is not None:
        if not (float(se) > 0 and math.isfinite(float(se))):
            raise InputError(f"--se {se!r}: expected a positive standard error of the log ratio.")
        return float(se), f"SE {float(se):.3g} of the log ratio as given"
    if ci is not None:
        lo, hi = (float(x) for x in ci)
        if not 0 < level < 1:
            raise InputError(f"--level {level!r}: expected a confidence level between 0 and 1.")
        if not (0 < lo <= estimate <= hi):
            raise InputError(f"--ci {lo:g} {hi:g}: expected 0 < lower <= estimate ({estimate:g}) "
                             "<= upper.")
        s = ra.se_from_ci(lo, hi, level)
        return s, f"SE {s:.3f} from the published {level:.0%} CI {lo:g}-{hi:g}"
    rel, pv = _p(p_value)
    if rel in (">", ">="):
        raise InputError(f"--p-value '{rel} {pv:g}': a lower bound on P gives no usable SE; give "
                         "the interval or the SE.")
    s = ra.se_from_p(estimate, pv)
    if rel in ("<", "<="):
        return s, (f"SE {s:.3f} from P {rel} {pv:g} read as P = {pv:g} (two-sided Wald): the "
                   "largest SE consistent with it, i.e. the most conservative")
    return s, f"SE {s:.3f} from P = {pv:g} (two-sided Wald)"


@dataclass(frozen=True)
class RatioPosterior:
    """Prior, likelihood and posterior of one log ratio under one prior set."""

    measure: str
    endpoint: str
    estimate: float
    se: float
    se_method: str
    prior: object
    prior_label: str
    posterior: object  # NormalPosterior | GridPosterior

    def prob_below(self, ratio: float) -> float:
        return float(self.posterior.cdf(math.log(ratio)))

    def summary(self) -> dict:
        lo, med, hi = np.exp(self.posterior.quantile([0.025, 0.5, 0.975]))
        return {"median": float(med), "lower": float(lo), "upper": float(hi)}

    @property
    def method(self) -> str:
        kind = "conjugate normal-normal" if self.posterior.closed_form else "grid quadrature"
        return f"{kind} on log({self.measure.upper()}); {self.se_method}"


@dataclass
class EvidenceReanalysis:
    """One published result reanalysed under a main prior set and the prior family."""

    measure: str
    endpoint: str
    main: str  # label of the main prior set
    ratios: dict = field(default_factory=dict)  # label -> RatioPosterior
    counts: dict = field(default_factory=dict)  # label -> (ORRReanalysis, ORRContrastReanalysis)
    thresholds: tuple = ()
    source: str = "command line"
    n: tuple = (math.nan, math.nan)
    prior_sets: dict = field(default_factory=dict)  # label -> PriorSet

    @property
    def benefit_below(self) -> bool:
        """Whether benefit is a ratio below 1 (HR) rather than above 1 / a difference above 0."""
        return self.measure == "hr"

    def rows(self) -> list[dict]:
        """Results-table rows (tier ``published``), the main prior set first."""
        out = []
        closed = {"rhat_max": math.nan, "ess_bulk_min": math.nan, "divergences": math.nan}
        common = dict(data_tier="published", analysis="main", adjustment="published",
                      cut_set="", n_treated=self.n[0], n_control=self.n[1], source=self.source,
                      **closed)
        for label, r in self.ratios.items():
            p1 = r.prob_below(1.0)
            out.append(result_row(endpoint=self.endpoint, measure=self.measure,
                                  model="normal-normal" if r.posterior.closed_form else "normal-grid",
                                  estimand="as published", prior=label, **r.summary(),
                                  prob_benefit=p1 if self.benefit_below else 1 - p1,
                                  method=r.method, **common))
        # the beta-binomial model's prior is the per-arm rate: a result that no prior set
        # changes is reported once, labelled with that prior (as in reanalysis.py)
        fits = {}
        for label, (beta, logit) in self.counts.items():
            fits.setdefault(("beta-binomial", str(beta.prior)), beta)
            fits[("logistic", label)] = logit
        for (model, label), res in fits.items():
            method = res.method.replace("derived PSM counts", "published counts")
            for m in COUNT_MEASURES:
                out.append(result_row(endpoint=self.endpoint, measure=m, model=model,
                                      estimand="as published (arm-level counts)",
                                      prior=label, **res.summary(m),
                                      prob_benefit=res.p_rd_above_0, method=method,
                                      **common))
        return out

    def summary(self) -> pd.DataFrame:
        """The results as a DataFrame with exactly the columns of ``results.csv``."""
        return results_frame(self.rows())

    def table(self) -> pd.DataFrame:
        """Report table: per prior set the prior, the posterior median and 95% CrI, and
        P(effect < t) for every threshold t."""
        recs = []
        for label, r in self.ratios.items():
            s = r.summary()
            rec = {"prior set": label, "prior on log " + self.measure.upper(): str(r.prior),
                   "posterior median": s["median"], "2.5%": s["lower"], "97.5%": s["upper"]}
            for t in self.thresholds:
                rec[f"P({self.measure.upper()} < {t:g})"] = r.prob_below(t)
            recs.append(rec)
        for label, (beta, logit) in self.counts.items():
            for model, res in (("beta-binomial per arm", beta), ("logistic (log OR prior)", logit)):
                s = res.summary(self.measure)
                rec = {"prior set": label, "model": model, "posterior median": s["median"],
                       "2.5%": s["lower"], "97.5%": s["upper"]}
                for t in self.thresholds:
                    rec[f"P({self.measure.upper()} < {t:g})"] = _prob_below(res, self.measure, t)
                recs.append(rec)
        return pd.DataFrame(recs)

    def plot(self):
        """Prior (dashed), likelihood (dotted) and posterior (solid), one panel per prior set
        (ratios); posterior densities per prior set (counts). A Figure, drawn by
        :func:`bayes_haic.report.published.plot_evidence`."""
        from .report.published import plot_evidence

        return plot_evidence(self)

    def __repr__(self) -> str:
        s = self.summary()
        main = s[(s["prior"] == self.main) & (s["measure"] == self.measure)].iloc[0]
        return (f"EvidenceReanalysis({MEASURE_NAMES[self.measure]}, prior '{self.main}': "
                f"{main['median']:.3f} (95% CrI {main['lower']:.3f} to {main['upper']:.3f}), "
                f"P(benefit) = {main['prob_benefit']:.3f}; {len(s)} rows)")


def _prob_below(res, measure: str, t: float) -> float:
    values = res.draws[measure] if hasattr(res, "draws") else res.values[measure]
    if hasattr(res, "weights"):
        return float(res.weights[values < t].sum())
    return float(np.mean(values < t))


def _family(prior, family, overrides):
    names = [prior] + [n for n in (ra.GENERIC_PRIOR_NAMES if family is None else family) if n != prior]
    sets = {}
    for name in names:
        ps = as_prior_set(name, tuple(overrides))
        sets.setdefault(ps.label(), ps)
    return sets


def _counts_evidence(counts, source: str) -> PublishedEvidence:
    try:
        r1, n1, r0, n0 = (int(c) for c in counts)
    except (TypeError, ValueError):
        raise InputError(f"--counts {counts!r}: expected four whole numbers: responders and "
                         "patients in the treated arm, then in the control arm.") from None
    if not (0 <= r1 <= n1 and 0 <= r0 <= n0 and n1 > 0 and n0 > 0):
        raise InputError(f"--counts {r1} {n1} {r0} {n0}: expected 0 <= events <= patients in "
                         "each arm (treated first), with at least one patient per arm.")

    def num(id_, measure, arm, value):
        return PublishedNumber(id_, measure, "orr", "PSM", arm, float(value), math.nan, math.nan,
                               "patients", "", "verbatim", source)

    return PublishedEvidence((num("r1", "responders", TREATED, r1), num("n1", "n_patients", TREATED, n1),
                              num("r0", "responders", CONTROL, r0), num("n0", "n_patients", CONTROL, n0)),
                             source)


def reanalyse_result(measure: str = "hr", estimate=None, ci=None, *, p_value=None, se=None,
                     counts=None, prior="reference", overrides=(), family=None,
                     endpoint: str = "os", level: float = 0.95, thresholds=None, label: str = "",
                     n=None, seed: int = ra.DEFAULT_SEED, se_method: str = "") -> EvidenceReanalysis:
    """Reanalyse one published result (see the module docstring and :func:`bayes_haic.reanalyse`).
    ``se_method`` replaces the description of where the SE came from."""
    measure = str(measure).lower()
    if measure not in RATIOS + ("rd",):
        raise InputError(f"--measure {measure!r}: expected hr, or, rr (a ratio with --estimate) or "
                         "rd, rr, or (a response contrast with --counts).")
    source = label or "command line"
    thresholds = tuple(float(t) for t in (thresholds or DEFAULT_THRESHOLDS[measure]))
    sets = _family(prior, family, overrides)
    main = next(iter(sets))
    if counts is not None:
        if estimate is not None or ci is not None or p_value is not None or se is not None:
            raise InputError("--counts: give either the counts or an --estimate with its "
                             "interval / P value, not both.")
        if measure == "hr":
            raise InputError("--measure hr: a hazard ratio needs --estimate with --ci, "
                             "--p-value or --se (counts give rd, rr or or).")
        ev = _counts_evidence(counts, source)
        out = EvidenceReanalysis(measure, "orr", main, thresholds=thresholds, source=source,
                                 n=(int(counts[1]), int(counts[3])), prior_sets=sets)
        for lab, ps in sets.items():
            out.counts[lab] = (ra.reanalyse_orr(ps, evidence=ev, seed=seed),
                               ra.reanalyse_orr_contrast(ps, evidence=ev))
        return out
    if measure == "rd":
        raise InputError("--measure rd: a risk difference is reanalysed from the arm counts; "
                         "give --counts R1 N1 R0 N0.")
    if estimate is None:
        raise InputError(f"--measure {measure}: give the published --estimate (and --ci, "
                         "--p-value or --se), or --counts for a response contrast.")
    s, how = standard_error(float(estimate), ci=ci, p_value=p_value, se=se, level=level)
    how = se_method or how
    if measure == "hr" and endpoint not in ("os", "pfs"):
        raise InputError(f"--endpoint {endpoint!r}: expected os or pfs (which HR prior of the "
                         "set: published.log_hr_os or published.log_hr_pfs).")
    key = f"published.log_hr_{endpoint}" if measure == "hr" else "response.log_or"
    n = tuple(n) if n is not None else (math.nan, math.nan)
    out = EvidenceReanalysis(measure, endpoint if measure == "hr" else "orr", main,
                             thresholds=thresholds, source=source, n=n, prior_sets=sets)
    y = math.log(float(estimate))
    for lab, ps in sets.items():
        p = ps.get(key)
        out.ratios[lab] = RatioPosterior(measure, out.endpoint, float(estimate), s, how, p, lab,
                                         ra.normal_posterior(p, y, s))
    return out


def _arm_sizes(ev: PublishedEvidence) -> tuple:
    """(treated, control) patients of the whole cohort (analysis set ``all``), if given."""
    for arms in ((TREATED, CONTROL), ("treated", "control")):
        found = [ev.find("n_patients", analysis_set="all", arm=a) for a in arms]
        if all(len(f) == 1 for f in found):
            return tuple(int(f[0].value) for f in found)
    return (math.nan, math.nan)


def reanalyse_file(path, prior="reference", *, overrides=(), family=None,
                   seed: int = ra.DEFAULT_SEED) -> list[EvidenceReanalysis]:
    """Every hazard ratio and every pair of arm counts (responders and patients per arm in one
    analysis set) of a published-evidence file in the format of ``data/published/study.csv``."""
    ev = load_published(path)
    out = []
    for number in ev.numbers:
        if number.measure not in ("hr_os", "hr_pfs"):
            continue
        endpoint = number.measure.split("_")[1]
        s, how = ra.hr_se(number, None)
        out.append(reanalyse_result("hr", number.value, se=s, prior=prior, overrides=overrides,
                                    family=family, endpoint=endpoint, n=_arm_sizes(ev),
                                    label=f"{Path(path).name}: {number.id}", seed=seed,
                                    se_method=how))
    sets = {n.analysis_set for n in ev.numbers if n.measure == "responders"}
    for aset in sorted(sets):
        counts = None
        for arms in ((TREATED, CONTROL), ("treated", "control")):
            try:
                counts = [ev.value(m, analysis_set=aset, arm=arm)
                          for arm in arms for m in ("responders", "n_patients")]
                break
            except InputError:
                continue  # not a complete pair of arms in this set
        if counts is None:
            continue
        out.append(reanalyse_result("rd", counts=counts, prior=prior, overrides=overrides,
                                    family=family, label=f"{Path(path).name}: {aset} counts",
                                    seed=seed))
    if not out:
        raise InputError(f"{path}: no hazard ratio (measure hr_os / hr_pfs) and no pair of arm "
                         "counts (responders and n_patients per arm) to reanalyse.")
    return out


