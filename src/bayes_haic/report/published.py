"""Figures and report sections of the published evidence: the study's published numbers
reanalysed under each prior set (:mod:`bayes_haic.reanalysis`), and any published result
(:mod:`bayes_haic.evidence`)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats
from scipy.ndimage import gaussian_filter1d

from .. import reanalysis as ra
from ..evidence import MEASURE_NAMES, EvidenceReanalysis, RatioPosterior
from . import pages as rp
from .axes import WIDE_TICKS, finish_rd_axes, log_ratio_axis


# ------------------------------------------------------------------------------ the study's published evidence

COLORS = {"prior": "#7f7f7f", "likelihood": "#1f77b4", "posterior": "#d62728"}


def _prior_text(prior: ra.Prior) -> str:
    inner = ", ".join(f"{k} {v:.3g}" for k, v in prior.params.items())
    return f"{prior.dist}({inner})"


def _draw_hr(ax, r: ra.HRReanalysis, legend: bool = True) -> None:
    prior = r.prior.to_scipy()
    post = r.posterior
    span = [r.log_hr - 4.5 * r.se, r.log_hr + 4.5 * r.se, 0.2]
    span += [float(post.quantile(1e-4)), float(post.quantile(1 - 1e-4))]
    lo_p, hi_p = float(prior.ppf(0.002)), float(prior.ppf(0.998))
    if hi_p - lo_p < 6:  # informative prior: show it whole
        span += [lo_p, hi_p]
    x = np.linspace(max(min(span), math.log(0.02)), min(max(span), math.log(20)), 800)
    ax.plot(np.exp(x), prior.pdf(x), color=COLORS["prior"], ls="--",
            label=f"prior {_prior_text(r.prior)} on log(HR)")
    ax.plot(
        np.exp(x),
        stats.norm.pdf(x, r.log_hr, r.se),
        color=COLORS["likelihood"],
        ls=":",
        label=f"likelihood: HR {r.hr:g}, SE(log HR) {r.se:.3f}",
    )
    s = r.summary()
    ax.plot(
        np.exp(x),
        post.pdf(x),
        color=COLORS["posterior"],
        label=f"posterior: {s['median']:.2f} ({s['lower']:.2f}-{s['upper']:.2f}), "
        f"P(HR<1) = {s['p_hr_below_1']:.3f}",
    )
    ax.axvline(1.0, color="black", lw=0.8)
    ax.axvline(ra.IMPORTANT_HR, color="black", lw=0.5, ls="--")
    log_ratio_axis(ax, "x", WIDE_TICKS, within=(math.exp(x[0]), math.exp(x[-1])))
    ax.set_ylim(0, None)
    ax.set_xlabel("hazard ratio (log scale)")
    ax.set_ylabel("density per unit log(HR)")
    ax.set_title(f"{r.endpoint.upper()} HR, prior '{r.prior_label}'", fontsize=10)
    if legend:
        ax.legend(fontsize=6.5, loc="upper left", frameon=False)
        top = ax.get_ylim()[1]
        ax.set_ylim(0, top * 1.35)  # room for the legend


def plot_hr_reanalysis(result: ra.HRReanalysis):
    """Prior, likelihood and posterior densities of log(HR) on one axis (HR on a log scale)."""
    fig = Figure(figsize=(6.5, 4), layout="constrained")
    _draw_hr(fig.add_subplot(), result)
    return fig


def plot_hr_family(reanalysis: ra.PublishedReanalysis, endpoint: str = "os"):
    """One panel per prior set: prior, likelihood and posterior of the ``endpoint`` HR."""
    items = [r for (e, _), r in reanalysis.hr.items() if e == endpoint]
    ncol = min(3, len(items))
    nrow = math.ceil(len(items) / ncol)
    fig = Figure(figsize=(4.6 * ncol, 3.4 * nrow), layout="constrained")
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    for ax, r in zip(axes, items):
        _draw_hr(ax, r)
    for ax in axes[len(items):]:
        ax.set_visible(False)
    return fig


def plot_orr_difference(reanalysis: ra.PublishedReanalysis):
    """Posterior density of the ORR risk difference (treated - control) under each prior
    (logistic contrast model; the beta-binomial posterior dashed). Densities are histograms of
    the grid / Monte Carlo posteriors, lightly smoothed."""
    fig = Figure(figsize=(6.5, 4), layout="constrained")
    ax = fig.add_subplot()
    bins = np.linspace(-0.3, 0.8, 221)
    mids = 0.5 * (bins[1:] + bins[:-1])
    for i, (label, res) in enumerate(reanalysis.orr_contrast.items()):
        h, _ = np.histogram(res.values["rd"], bins=bins, weights=res.weights, density=True)
        ax.plot(mids, gaussian_filter1d(h, 2.0), color=f"C{i}",
                label=f"{label}: P(RD > {ra.IMPORTANT_RD:g}) = {res.p_rd_above_important:.2f}")
    first = next(iter(reanalysis.orr.values()), None)
    if first is not None:
        h, _ = np.histogram(first.draws["rd"], bins=bins, density=True)
        ax.plot(mids, gaussian_filter1d(h, 2.0), color="black", ls="--",
                label=f"beta-binomial, {_prior_text(first.prior)} per arm")
    finish_rd_axes(ax, "ORR risk difference, HAIC-LEN-P - LEN-P (PSM, derived counts)", ra.IMPORTANT_RD)
    return fig


def _posterior_table(rows: pd.DataFrame, first: str, measure: str, benefit: str, important: str,
                     prior: str) -> pd.DataFrame:
    """Rows of :meth:`bayes_haic.reanalysis.PublishedReanalysis.table` as the report shows
    them: ``first`` column, prior, posterior median and interval, the two probabilities."""
    cols = [first, "prior", "prior_detail", "median", "lower", "upper", "p_benefit", "p_important"]
    return rows[cols].rename(columns={
        "median": f"posterior median {measure}", "lower": "2.5%", "upper": "97.5%",
        "p_benefit": benefit, "p_important": important, "prior_detail": prior})


def published_section(published) -> rp.Section:
    sec = rp.Section("published", "Published evidence: Bayesian reanalysis of the study's "
                     "reported numbers", tier="published",
                     nav="Published evidence")
    sec.add(rp.Text(
        "This section uses only the numbers the study published (abstract of Int J Surg 2024, "
        "PMID 38549220; data/published/study.csv). The hazard ratios are IPTW estimates; the "
        "abstract gives no confidence intervals, so the standard error of log(HR) is taken from "
        "'P < 0.001' read as P = 0.001 (the largest SE consistent with it; a sensitivity "
        "analysis over the SE follows). ORR uses the PSM counts 37/55 vs 16/55, derived from "
        "the published percentages (67.3%, 29.1%)."))
    table = published.table()
    hr = table[table["measure"] == "HR"]
    show = _posterior_table(hr, "endpoint", "HR", "P(HR < 1)", "P(HR < 0.8)", "prior on log(HR)")
    sec.add(rp.Table(show, "Hazard ratios (IPTW, as published) under each prior set"))
    for endpoint in ("os", "pfs"):
        sec.add(rp.Figure.from_matplotlib(
            plot_hr_family(published, endpoint),
            f"{endpoint.upper()}: prior (dashed), likelihood from the published HR (dotted) and "
            "posterior (solid), one panel per prior set."))
    orr = table[(table["endpoint"] == "orr") & (table["measure"] == "RD")]
    show = _posterior_table(orr, "model", "RD", "P(RD > 0)", "P(RD > 0.2)", "prior")
    sec.add(rp.Table(show, "Objective response (PSM counts 37/55 vs 16/55): risk difference "
                     "HAIC-LEN-P minus LEN-P. The beta-binomial model puts the prior on each "
                     "arm's rate (uniform in every shipped set); the logistic model puts the "
                     "prior family on the log odds ratio. RR and OR are in results.csv."))
    sec.add(rp.Figure.from_matplotlib(plot_orr_difference(published),
                                      "Posterior of the ORR risk difference under each prior."))
    sens = published.sensitivity
    if len(sens):
        sec.add(rp.Table(sens, "Sensitivity of the published-HR reanalysis to the assumed "
                         "standard error of log(HR)"))
    return sec


# ------------------------------------------------------------------------------ any published result


def plot_evidence(res: EvidenceReanalysis) -> Figure:
    """Prior (dashed), likelihood (dotted) and posterior (solid), one panel per prior set
    (ratios); posterior densities per prior set (counts). A matplotlib Figure."""
    from matplotlib.figure import Figure

    items = list(res.ratios.values()) or list(res.counts.items())
    ncol = min(3, len(items))
    nrow = math.ceil(len(items) / ncol)
    fig = Figure(figsize=(4.6 * ncol, 3.4 * nrow), layout="constrained")
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    for ax, item in zip(axes, items):
        if isinstance(item, RatioPosterior):
            _draw_ratio(ax, item)
        else:
            _draw_counts(ax, res.measure, *item)
    for ax in axes[len(items):]:
        ax.set_visible(False)
    return fig


def _draw_ratio(ax, r: RatioPosterior) -> None:
    y = math.log(r.estimate)
    prior = r.prior.to_scipy()
    span = [y - 4.5 * r.se, y + 4.5 * r.se, float(r.posterior.quantile(1e-4)),
            float(r.posterior.quantile(1 - 1e-4))]
    lo_p, hi_p = float(prior.ppf(0.002)), float(prior.ppf(0.998))
    if hi_p - lo_p < 6:
        span += [lo_p, hi_p]
    x = np.linspace(max(min(span), math.log(0.02)), min(max(span), math.log(50)), 800)
    name = r.measure.upper()
    ax.plot(np.exp(x), prior.pdf(x), color="#7f7f7f", ls="--", label=f"prior {r.prior}")
    ax.plot(np.exp(x), stats.norm.pdf(x, y, r.se), color="#1f77b4", ls=":",
            label=f"likelihood: {name} {r.estimate:g}, SE {r.se:.3f}")
    s = r.summary()
    ax.plot(np.exp(x), r.posterior.pdf(x), color="#d62728",
            label=f"posterior {s['median']:.2f} ({s['lower']:.2f}-{s['upper']:.2f})")
    ax.axvline(1.0, color="black", lw=0.8)
    ax.set_xscale("log")
    ax.set_ylim(0, None)
    ax.set_xlabel(f"{MEASURE_NAMES[r.measure]} (log scale)")
    ax.set_ylabel(f"density per unit log({name})")
    ax.set_title(f"{name}, prior '{r.prior_label}'", fontsize=10)
    ax.legend(fontsize=6.5, loc="upper left", frameon=False)
    ax.set_ylim(0, ax.get_ylim()[1] * 1.35)


def _draw_counts(ax, measure, label, pair) -> None:
    beta, logit = pair
    lo = min(np.quantile(beta.draws[measure], 0.0005), logit.summary(measure)["lower"])
    hi = max(np.quantile(beta.draws[measure], 0.9995), logit.summary(measure)["upper"])
    bins = np.linspace(lo, hi, 121)
    ax.hist(beta.draws[measure], bins=bins, density=True, histtype="step", color="black",
            ls="--", label="beta-binomial per arm")
    ax.hist(logit.values[measure], bins=bins, weights=logit.weights, density=True,
            histtype="step", color="#d62728", label="logistic, log-OR prior")
    ax.axvline(0.0 if measure == "rd" else 1.0, color="black", lw=0.8)
    ax.set_xlabel(MEASURE_NAMES[measure])
    ax.set_title(f"{measure.upper()}, prior '{label}'", fontsize=10)
    ax.legend(fontsize=6.5, frameon=False)


def evidence_section(results: list[EvidenceReanalysis], title: str) -> rp.Section:
    """A report section: inputs, tables and figures of each reanalysed result."""
    sec = rp.Section("reanalyse", title, tier="published", nav="Reanalysis")
    sec.add(rp.Text(
        "Bayesian reanalysis of published results: the published estimate enters as a normal "
        "likelihood for the log ratio (SE from the confidence interval, or from the P value read "
        "as the largest SE consistent with it), combined with each prior set's prior on the "
        "effect; with a normal prior the posterior is the conjugate normal-normal closed form. "
        "Arm counts are reanalysed with exact beta-binomial posteriors per arm and a logistic "
        "model with the prior family on the log odds ratio."))
    for res in results:
        first = next(iter(res.ratios.values()), None)
        what = (f"{res.source}: {MEASURE_NAMES[res.measure]}"
                + (f" {first.estimate:g}; {first.se_method}" if first else
                   f" from counts {next(iter(res.counts.values()))[0].responders[0]}/"
                   f"{res.n[0]} vs {next(iter(res.counts.values()))[0].responders[1]}/{res.n[1]}"))
        sec.add(rp.Text(what, "note"))
        sec.add(rp.Table(res.table(), f"{res.source}: posterior under each prior set (main: "
                         f"'{res.main}'), with P(effect < threshold)"))
        sec.add(rp.Figure.from_matplotlib(plot_evidence(res), f"{res.source}: prior, likelihood and "
                                          "posterior under each prior set."))
    sets = {}
    for res in results:
        sets.update(res.prior_sets)
    for label, ps in sets.items():
        sec.add(rp.Table(pd.DataFrame(ps.table()), f"Prior set '{label}' ({ps.source})"))
    return sec
