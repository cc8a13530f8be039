"""Figures and the report section of the prior-sensitivity study
(:class:`bayes_haic.sensitivity.SensitivityStudy`)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats

from .. import survival
from ..importance import K_MAX, MIN_ESS
from ..labels import format_ci_dash
from ..schema import endpoint_label, endpoint_title
from ..sensitivity import SensitivityStudy
from . import pages as rp
from .axes import DENSE_TICKS, log_ratio_axis


def _hr_axis(ax, lo, hi):
    log_ratio_axis(ax, "x", DENSE_TICKS, within=(lo, hi))
    ax.set_xlim(lo, hi)


def plot_overlay(study: SensitivityStudy, endpoint: str, strategy: str = "none"):
    """Posterior densities of the HR (log scale) under each prior set on the main cut set, one
    curve per prior (solid), with each prior's density on log HR (dashed, same colour)."""
    posts = [p for p in study.posteriors if p.endpoint == endpoint and p.strategy == strategy
             and p.cut_set == study.main_cut_set]
    fig = Figure(figsize=(6.8, 4.2), layout="constrained")
    ax = fig.add_subplot()
    qs = np.array([p.quantile([0.001, 0.999]) for p in posts])
    lo, hi = float(qs[:, 0].min()) - 0.3, float(max(qs[:, 1].max(), 0.0)) + 0.3
    x = np.linspace(lo, hi, 600)
    for i, p in enumerate(posts):
        color = f"C{i}"
        kde = stats.gaussian_kde(p.log_hr.ravel(), weights=p.draw_weights())
        s = p.summary()
        ax.plot(np.exp(x), kde(x), color=color, lw=1.6,
                label=f"{p.prior_label}: {s['median']:.2f} ({s['lower']:.2f}-{s['upper']:.2f}), "
                      f"P(HR<1) = {s['p_hr_below_1']:.3f}")
        ax.plot(np.exp(x), p.prior_log_hr.to_scipy().pdf(x), color=color, lw=0.8, ls="--")
    ax.plot([], [], color="grey", lw=0.8, ls="--", label="prior on log(HR) (dashed)")
    ax.axvline(1.0, color="black", lw=0.8)
    _hr_axis(ax, math.exp(lo), math.exp(hi))
    ax.set_ylim(0, None)
    top = ax.get_ylim()[1]
    ax.set_ylim(0, top * 1.45)
    ax.set_xlabel(f"hazard ratio {study.arms[0]} vs {study.arms[1]} (log scale)")
    ax.set_ylabel("density per unit log(HR)")
    ax.set_title(f"{endpoint_label(endpoint)} ({strategy}): posterior of the HR under each prior set, "
                 f"{study.main_cut_set.label}", fontsize=9)
    ax.legend(fontsize=6.8, frameon=False, loc="upper left")
    return fig


def plot_tipping(points: dict, title: str, threshold: float):
    """P(HR < 1) against the sd s of a Normal(0, s) prior on log HR (log axis), one curve per
    endpoint; the threshold (horizontal) and each tipping s (vertical); refits marked."""
    fig = Figure(figsize=(6.8, 4.0), layout="constrained")
    ax = fig.add_subplot()
    for i, t in enumerate(points.values()):
        color = f"C{i}"
        order = np.argsort(t.scales)
        label = t.endpoint_name + (f" ({t.strategy})" if t.strategy else "")
        if t.status == "tips":
            label += f": tipping s = {t.scale:.3g}"
        ax.plot(t.scales[order], t.p_benefit[order], color=color, lw=1.5, label=label)
        if np.any(t.mcse > 0):
            ax.fill_between(t.scales[order], (t.p_benefit - 2 * t.mcse)[order],
                            (t.p_benefit + 2 * t.mcse)[order], color=color, alpha=0.15, lw=0)
        refit = np.array([h == "refit" for h in t.how])
        if refit.any():
            ax.plot(t.scales[refit], t.p_benefit[refit], "o", color=color, ms=3.5, mfc="white")
        if t.status == "tips":
            ax.axvline(t.scale, color=color, lw=0.8, ls="--")
    if any(np.any(np.array(t.how) == "refit") for t in points.values()):
        ax.plot([], [], "o", color="grey", ms=3.5, mfc="white", label="refitted (others: PSIS reweighting)")
    ax.axhline(threshold, color="black", lw=0.8, ls=":", label=f"threshold P(HR < 1) = {threshold:g}")
    ax.axvline(0.421404, color="grey", lw=0.8, ls="-.", label="shipped skeptical prior (s = 0.421)")
    ax.set_xscale("log")
    ax.set_xlabel("s, sd of the Normal(0, s) prior on log HR (smaller = more skeptical)")
    ax.set_ylabel("posterior P(HR < 1)")
    ax.set_ylim(0.45, 1.01)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, frameon=False, loc="lower right")
    return fig


def overlay_figures(study: SensitivityStudy) -> dict:
    """The report's overlay figure (:func:`plot_overlay`) of each (endpoint, strategy) of
    ``study``, in the order of its posteriors. A figure needs only its own endpoint's fits, so the
    main job draws each where that endpoint's part of the study ran (a worker process) and
    passes them to :func:`sensitivity_section`."""
    return {(endpoint, strategy): rp.Figure.from_matplotlib(
                plot_overlay(study, endpoint, strategy),
                f"{endpoint_label(endpoint)} ({strategy}): posterior of the HR under each prior set (solid) "
                "and the prior on log(HR) (dashed).")
            for endpoint, strategy in dict.fromkeys((p.endpoint, p.strategy) for p in study.posteriors)}


def sensitivity_section(study: SensitivityStudy, overlays: dict | None = None) -> rp.Section:
    """Report section: prior sets table and overlay figures, cut-point table, power scaling,
    reweighting check, patient-level tipping point (tier of the cohort) and the published-tier
    tipping point, labelled as such. ``overlays``: the overlay figures if already drawn
    (:func:`overlay_figures` of the study or of its parts); else they are drawn here."""
    tier = study.data_tier
    sec = rp.Section("sensitivity", "Sensitivity to the priors and the cut points", tier=tier,
                     nav="Sensitivity")
    main = study.main_cut_set
    sec.add(rp.Text(
        f"Patient-level PWE models of {study.source} (data tier '{tier}') refitted under each prior "
        f"set ({', '.join(study.prior_labels)}) and each choice of cut points "
        f"({'; '.join(c.label for c in study.cut_sets)}), for the adjustment strategies "
        f"{', '.join(study.settings.get('strategies', []))}. Only the prior on the treatment "
        "effect differs between the shipped sets; the prior on the baseline hazard, a nuisance "
        f"parameter, {baseline_check_where(study)}. IPTW posteriors are recombined from their "
        "Bayesian-bootstrap replicates under each prior (no MCMC); PSM posteriors pool fits to "
        "rematched sets. Where Pareto-smoothed importance "
        "reweighting of the first set's posterior is reliable (Pareto k below "
        f"{study.settings.get('k_max', K_MAX):g} and an effective sample size of at least "
        f"{study.settings.get('min_ess', MIN_ESS):g}) it replaces a refit; the method column says "
        "which."))
    for note in study.notes:
        sec.add(rp.Text(note, "note"))
    if tier == "synthetic":
        sec.add(rp.Text("The patient-level rows analyse a SYNTHETIC cohort; they show how the "
                        "conclusions would depend on the priors, not what the study found.", "warning"))
    table = study.table()
    show = table[table["cut_set"] == main.label].copy()
    show["endpoint"] = show["endpoint"].map(endpoint_label)
    show["HR (95% CrI)"] = [format_ci_dash(r) for r in show.to_dict("records")]
    important = f"p_hr_below_{study.important_hr:g}"
    for col in ("p_hr_below_1", important):
        show[col] = show[col].map(rp.format_probability)
    show = show[["endpoint", "strategy", "prior", "prior_log_hr", "HR (95% CrI)", "p_hr_below_1",
                 important, "method"]].rename(columns={
                     "prior_log_hr": "prior on log(HR)", "p_hr_below_1": "P(HR < 1)",
                     important: f"P(HR < {study.important_hr:g})"})
    sec.add(rp.Table(show, f"Posterior HR under each prior set ({main.label})"))
    meds, beyond = [], []
    for p in study.posteriors:
        if p.strategy != "psm" or p.cut_set != main:
            continue

        def cell(arm):  # a dagger where the median is extrapolated (survival.extrapolation_note)
            note = p.median_note(arm, short=True)
            if note:
                beyond.append(f"{endpoint_label(p.endpoint)}, {arm}, {p.prior_label}: {note}")
            return format_ci_dash(p.median_summary(arm)) + (" †" if note else "")

        if p.medians is not None:
            meds.append({"endpoint": endpoint_label(p.endpoint), "prior": p.prior_label,
                         "median, treated (months)": cell("treated"),
                         "median, control (months)": cell("control"), "method": p.how})
    if meds:
        why = " (the study's analysis set for its medians)" if tier == "synthetic" else ""
        sec.add(rp.Table(pd.DataFrame(meds), f"PS matching{why}: "
                         f"posterior median survival per arm under each prior set ({main.label}; "
                         "design uncertainty propagated over rematched sets)"))
    if beyond:
        sec.add(rp.Text(survival.extrapolation_footnote(beyond), "note"))
    if study.orr:
        orr = [{"strategy": r.strategy, "prior": r.prior_set.label(),
                "prior on log OR": str(r.prior_set.get("response.log_or")),
                f"{endpoint_label('orr')} difference (95% CrI)": format_ci_dash(r.summary()),
                "P(RD > 0)": rp.format_probability(r.summary()["p_rd_above_0"]),
                "method": r.method} for r in study.orr]
        sec.add(rp.Table(pd.DataFrame(orr), f"{endpoint_title('orr')}: risk difference (treated "
                         "minus control) under each prior set and adjustment strategy"))
    sec.add(*(overlay_figures(study) if overlays is None else overlays).values())
    if len(study.cut_sets) > 1:
        wide = []
        for (endpoint, strategy, cut), g in table.groupby(["endpoint", "strategy", "cut_set"], sort=False):
            row = {"endpoint": endpoint_label(endpoint), "strategy": strategy, "cut points": cut}
            for r in g.to_dict("records"):
                row[r["prior"]] = f"{format_ci_dash(r)}; P(HR<1) {rp.format_probability(r['p_hr_below_1'])}; " + (
                    r["method"].replace("PSIS reweighting", "PSIS"))
            wide.append(row)
        sec.add(rp.Table(pd.DataFrame(wide), "HR (95% CrI), P(HR < 1) and method for every cut-point "
                         "choice and prior set (PSIS: reweighted from the first prior's fit, with its "
                         "Pareto k)"))
    if len(study.psens):
        ps = study.psens.rename(columns={
            "prior_log_hr": "prior sensitivity (log-HR prior)",
            "prior_all": "prior sensitivity (all priors)", "likelihood": "likelihood sensitivity"})
        ps = ps.assign(endpoint=ps["endpoint"].map(endpoint_label)) if "endpoint" in ps else ps
        sec.add(rp.Table(ps.drop(columns=["variable", "priors_scaled"]),
                         f"Power-scaling sensitivity of the posterior of log HR ({main.label}; "
                         "Kallioinen et al. 2023, az.psens). Values >= 0.05 mean the component "
                         "influences the posterior."))
        sec.add(rp.Text(
            "Power scaling raises the prior (or the likelihood) to a power near 1 and measures how "
            "much the posterior of log HR moves (cumulative Jensen-Shannon distance per unit "
            f"log2 power). 'All priors' scales {study.psens['priors_scaled'].iloc[0]}. A prior-data "
            "conflict is flagged when both the prior and the likelihood are influential; a strong "
            "prior with a weak likelihood when only the prior is.", "note"))
    if len(study.reweighting_check):
        rc = study.reweighting_check[["endpoint", "strategy", "prior", "pareto_k", "psis_ess",
                                      "reliable", "median_hr_reweighted", "median_hr_refit", "z"]].rename(
            columns={"z": "difference / MCSE", "reliable": "reliable (k, ESS)", "pareto_k": "Pareto k",
                     "psis_ess": "PSIS ESS", "median_hr_reweighted": "median HR reweighted",
                     "median_hr_refit": "median HR refit"})
        rc["endpoint"] = rc["endpoint"].map(endpoint_label)
        sec.add(rp.Table(rc, "Check of the reweighting on the main cut set: median HR by PSIS "
                         "reweighting of the first prior's fit against a refit (difference in "
                         "units of its Monte Carlo standard error)"))
    if len(study.baseline_check):
        sec.add(*baseline_check_blocks(study.baseline_check, main.label))
    if study.tipping:
        sec.add(rp.Text(
            f"Tipping point ({tier} cohort, {main.label}): how skeptical must a prior centred on "
            f"HR = 1, Normal(0, s) on log HR, be before P(HR < 1) drops below {study.threshold:g}?"))
        for t in study.tipping.values():
            sec.add(rp.Text(t.text()))
        sec.add(rp.Figure.from_matplotlib(
            plot_tipping(study.tipping, f"Tipping point, {tier} cohort ({main.label})", study.threshold),
            f"{tier} cohort: posterior P(HR < 1) against the sd s of a Normal(0, s) prior on log HR "
            "(band: +-2 Monte Carlo standard errors); dashed: the tipping s."))
    if study.published_tipping:
        sec.add(rp.Text(
            "PUBLISHED TIER (the study's real published IPTW hazard ratios, not the cohort above): "
            "the same question answered exactly, with the normal likelihood of the published "
            "log HR (conjugate normal, closed form).", "note"))
        for t in study.published_tipping.values():
            sec.add(rp.Text("Published: " + t.text()))
        sec.add(rp.Figure.from_matplotlib(
            plot_tipping(study.published_tipping, "Tipping point, PUBLISHED tier (closed form)",
                         study.threshold),
            "Published tier: P(HR < 1) of the published IPTW HR against the sd s of a Normal(0, s) "
            "prior on log HR, exact."))
    return sec


def baseline_check_where(study: SensitivityStudy) -> str:
    """Where the page's reader finds the baseline-hazard prior check of these analyses."""
    if len(study.baseline_check):
        return "is checked separately below"
    if not study.settings.get("baseline_check", True):
        return "is checked with each main fit, on its endpoint's page"
    return "enters none of the MCMC fits here (IPTW replicates are maximum-likelihood fits)"


def baseline_cause(hit: pd.DataFrame) -> str:
    """Why the baseline-hazard prior moves the flagged HRs (``hit``: influential rows of the
    check): a prior mean more than one prior sd from the analysed control arm's crude hazard
    (``prior_mean_distance_sd``), named with both hazards per month; else few events per
    interval."""
    far = hit[hit["prior_mean_distance_sd"].abs() > 1] if "prior_mean_distance_sd" in hit \
        else hit.iloc[:0]
    if not len(far):
        return ("This happens with few events per interval, where a proper prior on each "
                "interval's baseline hazard adds information that the HR borrows.")
    parts = []
    for r in far.drop_duplicates(["endpoint", "baseline_prior"]).to_dict("records"):
        crude = r["crude_log_hazard_control"]
        parts.append(
            f"for {endpoint_label(r['endpoint'])} the prior {r['baseline_prior']} centres the "
            f"log hazard per month {abs(r['prior_mean_distance_sd']):.1f} prior sd "
            f"{'above' if r['prior_mean_distance_sd'] > 0 else 'below'} the analysed control "
            f"arm's crude log hazard, {crude:.2f} ({math.exp(crude):.2g} per month)")
    return ("The prior sits far from this cohort's hazards: " + "; ".join(parts) + ". It pulls "
            "every interval's baseline hazard towards its mean, and the HR moves to fit the "
            "treated arm.")


def baseline_check_blocks(check: pd.DataFrame, cut_label: str,
                          base: str = "the first prior set") -> list:
    """The baseline-hazard prior check (:attr:`~bayes_haic.sensitivity.SensitivityStudy.baseline_check`):
    a table, and a warning naming the analyses whose HR the nuisance prior moves, or a note that
    it moves none."""
    from ..sensitivity import BASELINE_SHIFT, BASELINE_WIDEN

    def ci(r, suffix=""):
        return (f"{r['median_hr' + suffix]:.2f} ({r['lower_hr' + suffix]:.2f}-"
                f"{r['upper_hr' + suffix]:.2f})")

    rows = [{"endpoint": endpoint_label(r["endpoint"]), "strategy": r["strategy"], "prior set": r["prior"],
             "baseline prior": r["baseline_prior"], "HR (95% CrI)": ci(r),
             "widened baseline prior": r["baseline_prior_widened"], "HR (95% CrI), widened": ci(r, "_widened"),
             "P(HR < 1)": f"{rp.format_probability(r['p_hr_below_1'])} -> "
                          f"{rp.format_probability(r['p_hr_below_1_widened'])}",
             "shift of 2.5% / median / 97.5% (sd)": f"{r['shift_lower_sd']:+.2f} / "
                                                    f"{r['shift_median_sd']:+.2f} / {r['shift_upper_sd']:+.2f}",
             "method": r["method"].replace("PSIS reweighting", "PSIS"),
             "influential": "yes" if r["influential"] else "no"} for r in check.to_dict("records")]
    blocks = [rp.Table(pd.DataFrame(rows), f"Baseline-hazard prior ({cut_label}): the HR under "
                       f"{base} and with its baseline-hazard prior's sd {BASELINE_WIDEN:g} "
                       "times wider; shifts of the posterior quantiles of log HR in posterior sds")]
    hit = check[check["influential"]]
    if len(hit):
        which = "; ".join(f"{endpoint_label(r['endpoint'])} '{r['strategy']}' ({ci(r)} -> {ci(r, '_widened')})"
                          for r in hit.to_dict("records"))
        blocks.append(rp.Text(
            f"The baseline-hazard prior informs the hazard ratio of: {which}. Widening it "
            f"{BASELINE_WIDEN:g}-fold moves the posterior median or a 95% limit of log HR by more "
            f"than {BASELINE_SHIFT:g} posterior sd (and 3 Monte Carlo standard errors). "
            + baseline_cause(hit) + " Fewer intervals ([survival] n_intervals), a smoothed "
            "baseline ([survival] baseline = \"rw\"), a prior centred on this cohort's hazard "
            "(--set survival.log_baseline_hazard.mu=...) or a wider one "
            "(--set survival.log_baseline_hazard.sigma=...) let the data speak; report the "
            "analysis with the prior you can defend.", "warning"))
    else:
        blocks.append(rp.Text(
            f"Widening the baseline-hazard prior {BASELINE_WIDEN:g}-fold moves no posterior "
            f"quantile of log HR (2.5%, median, 97.5%) by more than {BASELINE_SHIFT:g} posterior sd "
            "beyond Monte Carlo error: this nuisance prior does not drive the hazard ratios.", "note"))
    return blocks
