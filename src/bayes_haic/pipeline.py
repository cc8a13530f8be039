"""The main job: the full default analysis, from published evidence to patient-level models.

:func:`run_main` reads the configuration (``models/main.toml``), analyses

1. the study's **published** evidence (tier ``published``: the real numbers, reanalysed exactly),
2. the configured cohort (tier ``synthetic`` for the shipped default cohort, ``user`` otherwise):
   propensity design, PWE survival models for OS and PFS, and ORR models,

and writes ``results.csv`` and ``index.html`` to the output folder. Nothing is written until
everything has been computed, and each file is written atomically.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from . import report as rp  # noqa: E402
from .config import MainConfig, load_config  # noqa: E402
from .priors import load_prior_set  # noqa: E402
from .provenance import package_versions, run_info  # noqa: E402
from .results import atomic_write, summarise_draws, write_results  # noqa: E402
from .schema import Cohort, load_cohort, summarise_cohort  # noqa: E402
from . import reconstruct  # noqa: E402

SYNTHETIC_BANNER = (
    "SYNTHETIC DATA: the patient-level sections of this report analyse a simulated cohort "
    "calibrated to the published abstract, not the study's patients. Only the section "
    "'Published evidence' reanalyses the study's real numbers."
)


def tier_banner(cohort) -> str | None:
    """The banner of a page showing patient-level results of ``cohort`` (None for tier user)."""
    return {"synthetic": SYNTHETIC_BANNER,
            "reconstructed": reconstruct.RECONSTRUCTED_BANNER}.get(cohort.data_tier)


@dataclass
class Progress:
    """Prints which step runs and how many are left (to standard error)."""

    total: int
    echo: callable = print
    done: int = 0
    started: float = field(default_factory=time.perf_counter)

    def step(self, what: str) -> None:
        self.done += 1
        elapsed = time.perf_counter() - self.started
        self.echo(f"[{self.done}/{self.total}, {elapsed:5.1f} s] {what}")


@dataclass
class RunState:
    """Everything the main job produced: result rows, report sections, diagnostics alerts."""

    config: MainConfig
    cohort: Cohort | None = None
    design: object = None
    rows: list = field(default_factory=list)
    sections: dict = field(default_factory=dict)
    alerts: list = field(default_factory=list)
    fits: dict = field(default_factory=dict)
    hr_t: dict = field(default_factory=dict)  # endpoint -> time-varying fit
    reconstructed: dict = field(default_factory=dict)  # endpoint -> fit on [data] reconstructed


# ------------------------------------------------------------------------------ the main job


def _cut_sets(cfg: MainConfig, sensitivity) -> tuple:
    """The main cut points first, then the configured alternatives (duplicates dropped)."""
    main = cfg.survival.cuts if cfg.survival.cuts != "quantile" else cfg.survival.n_intervals
    sets = [sensitivity.as_cut_set(main)]
    for c in cfg.sensitivity.cut_sets:
        cs = sensitivity.as_cut_set(c)
        if cs not in sets:
            sets.append(cs)
    return tuple(sets)


def main_cut_label(cfg: MainConfig) -> str:
    """The label of the configured (main) cut points, as the sensitivity study names cut sets."""
    from .sensitivity import as_cut_set

    main = cfg.survival.cuts if cfg.survival.cuts != "quantile" else cfg.survival.n_intervals
    return as_cut_set(main).label


def time_varying_sampler(sampler):
    """Sampler settings for HR(t) fits: the random-walk sd of the log-HR mixes slowly (on the
    default cohort 1000 draws gave R-hat 1.03 and a divergence), so these fits use at least
    2000 tuning steps and draws (and, as every random-walk fit, target_accept 0.99:
    :func:`bayes_haic.survival.sampler_for`); 0 divergences, bulk ESS > 600."""
    return replace(sampler, tune=max(sampler.tune, 2000), draws=max(sampler.draws, 2000))


def run_main(config_path=None, out_dir="reports", *, argv=None, echo=print) -> RunState:
    """Run the full default analysis and write ``out_dir/results.csv`` and ``out_dir/index.html``.

    Returns the :class:`RunState` (rows, sections, fits). Nothing is written until all steps
    have succeeded; each output file is written atomically.
    """
    from . import analysis, checks, reanalysis, sensitivity  # heavy imports only when running

    cfg = load_config(config_path)
    out = Path(out_dir)
    state = RunState(cfg)
    prior_set = load_prior_set(cfg.priors.set, cfg.priors.overrides)
    sampler = cfg.sampler.settings()
    n_fits = (len(cfg.survival.endpoints) * (len(cfg.survival.strategies)
                                             + bool(cfg.survival.time_varying_strategy))
              + len(cfg.response.strategies))
    progress = Progress(total=4 + n_fits + cfg.sensitivity.enabled
                        + bool(cfg.data.reconstructed), echo=echo)

    # 1. the published evidence (tier "published")
    progress.step("published evidence: conjugate reanalysis under each prior set")
    published = reanalysis.run_published(cfg.priors.published_sets, seed=sampler.seed)
    state.rows.extend(published.rows())
    state.sections["published"] = published_section(published)

    # 2. the cohort and its propensity design
    progress.step("cohort: validation and propensity design")
    cohort = load_cohort(cfg.cohort_path(), cfg.data.covariates, **cfg.data.cohort_options())
    refuse_reconstructed_main(cfg, cohort)
    state.cohort = cohort
    design = analysis.make_design(cohort, cfg.design)
    state.design = design
    state.sections["cohort"] = cohort_section(cohort)
    state.sections["design"] = design_section(cohort, design)

    # 3. survival models
    for endpoint in cfg.survival.endpoints:
        cuts = analysis.endpoint_cuts(cohort, endpoint, cfg.survival.cuts, cfg.survival.n_intervals)
        for strategy in cfg.survival.strategies:
            progress.step(f"{endpoint.upper()}: PWE model, adjustment '{strategy}'")
            idata = analysis.fit_survival(
                cohort, endpoint, strategy, design=design, prior_set=prior_set, sampler=sampler,
                cuts=cuts, baseline=cfg.survival.baseline, n_boot=cfg.survival.bootstrap_draws,
                pair_effect=cfg.survival.psm_pair_effect,
                psm_design_draws=cfg.survival.psm_design_draws)
            state.fits[(endpoint, strategy)] = idata
            state.rows.extend(survival.result_rows(idata, cohort.data_tier, cohort.name,
                                                   cut_set=main_cut_label(cfg)))
        tv = cfg.survival.time_varying_strategy
        if tv:
            progress.step(f"{endpoint.upper()}: time-varying HR(t), adjustment '{tv}'")
            state.hr_t[endpoint] = analysis.fit_survival(
                cohort, endpoint, tv, design=design, prior_set=prior_set,
                sampler=time_varying_sampler(sampler),
                cuts=cuts, baseline=cfg.survival.baseline, time_varying=True,
                pair_effect=cfg.survival.psm_pair_effect)
        state.sections[endpoint] = survival_section(cohort, endpoint, state)

    # 4. response
    if not cohort.has_response and cfg.response.strategies:
        progress.total -= len(cfg.response.strategies) - 1
        progress.step("ORR: not fitted (the cohort has no response data)")
    for strategy in cfg.response.strategies if cohort.has_response else ():
        progress.step(f"ORR: response model, adjustment '{strategy}'")
        idata = analysis.fit_orr(cohort, strategy, design=design, prior_set=prior_set,
                                 sampler=sampler, n_boot=cfg.survival.bootstrap_draws)
        state.fits[("orr", strategy)] = idata
        state.rows.extend(response.response_rows(idata, cohort.data_tier, cohort.name))
    state.sections["response"] = response_section(cohort, state)

    # 4b. pseudo-patients reconstructed from the study's published figures ([data] reconstructed)
    if cfg.data.reconstructed:
        progress.step("reconstructed data: PWE model on the published figures' pseudo-patients")
        state.sections["reconstructed"] = run_reconstructed(cfg, state, prior_set, sampler)

    # 5. prior sensitivity
    if cfg.sensitivity.enabled:
        progress.step("prior sensitivity: every prior set and cut-point set, tipping points")
        study = sensitivity.run_sensitivity(
            cohort, endpoints=cfg.survival.endpoints, strategies=cfg.sensitivity.strategies,
            orr_strategies=cfg.sensitivity.orr_strategies if cohort.has_response else (),
            prior_names=cfg.priors.published_sets, overrides=cfg.priors.overrides,
            cut_sets=_cut_sets(cfg, sensitivity),
            sampler=sampler, design=design, threshold=cfg.sensitivity.threshold,
            baseline=cfg.survival.baseline, n_boot=cfg.survival.bootstrap_draws,
            psm_design_draws=cfg.survival.psm_design_draws)
        state.rows.extend(study.rows() + study.published_rows())
        state.sections["sensitivity"] = study.section()

    progress.step("model checks: posterior predictive checks, PSIS-LOO, convergence")
    chk = checks.run_checks(cohort, state.fits, design=design, time_varying_fits=state.hr_t,
                            prior_set=prior_set, sampler=sampler, seed=sampler.seed)
    state.sections["checks"] = chk.section
    state.alerts = chk.failures + state.alerts  # (+ the reconstructed-data fits' failures)

    progress.step("writing results.csv and the report")
    state.sections["methods"] = methods_section(cfg, prior_set, sampler, cohort)
    state.sections["provenance"] = provenance_section(cfg, cohort, argv)
    state.sections["limitations"] = limitations_section(cohort)
    state.sections["limitations"].add(rp.Text(
        reconstruct.LIMITATIONS if cfg.data.reconstructed else HOW_TO_RECONSTRUCT))
    from . import validation_report  # the stored validation study (not recomputed here)

    stored = validation_report.load_stored()
    state.sections["validation"] = validation_report.validation_sections(
        stored, where=validation_report.STORED_RESULT.as_posix())[0]
    state.sections["limitations"].add(rp.Text(validation_report.limitations_text(stored)))
    summary = summary_section(state, published)
    order = ["summary", "published", "cohort", "design", *cfg.survival.endpoints, "response",
             "reconstructed", "sensitivity", "checks", "validation", "methods", "provenance",
             "limitations"]
    state.sections["summary"] = summary
    sections = [state.sections[k] for k in order if k in state.sections]
    banner = SYNTHETIC_BANNER if cohort.data_tier == "synthetic" else None
    pages = rp.render_site(
        "Bayesian reanalysis: HAIC-LEN-P vs LEN-P in HCC with extrahepatic metastases",
        sections, banner=banner, alerts=state.alerts,
        footer=f"bayes-haic {package_versions()['bayes-haic']}; Int J Surg 2024, PMID 38549220.")
    out.mkdir(parents=True, exist_ok=True)
    write_results(state.rows, out / "results.csv")
    rp.write_site(out, pages)
    echo(f"wrote {out / 'index.html'} and {out / 'results.csv'} ({len(state.rows)} estimates) in "
         f"{time.perf_counter() - progress.started:.0f} s")
    return state


# ------------------------------------------------------------------------------ sections
# (imported lazily above; these functions build report sections from results)

from . import response, survival  # noqa: E402


def _fmt_ci(median, lower, upper, digits=2) -> str:
    return f"{median:.{digits}f} ({lower:.{digits}f} to {upper:.{digits}f})"


def published_section(published) -> rp.Section:
    from . import reanalysis

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
    show = hr[["endpoint", "prior", "prior_detail", "median", "lower", "upper", "p_benefit",
               "p_important"]].rename(columns={
                   "median": "posterior median HR", "lower": "2.5%", "upper": "97.5%",
                   "p_benefit": "P(HR < 1)", "p_important": "P(HR < 0.8)",
                   "prior_detail": "prior on log(HR)"})
    sec.add(rp.Table(show, "Hazard ratios (IPTW, as published) under each prior set"))
    for endpoint in ("os", "pfs"):
        sec.add(rp.Figure.from_matplotlib(
            reanalysis.plot_hr_family(published, endpoint),
            f"{endpoint.upper()}: prior (dashed), likelihood from the published HR (dotted) and "
            "posterior (solid), one panel per prior set."))
    orr = table[(table["endpoint"] == "orr") & (table["measure"] == "RD")]
    show = orr[["model", "prior", "prior_detail", "median", "lower", "upper", "p_benefit",
                "p_important"]].rename(columns={
                    "median": "posterior median RD", "lower": "2.5%", "upper": "97.5%",
                    "p_benefit": "P(RD > 0)", "p_important": "P(RD > 0.2)",
                    "prior_detail": "prior"})
    sec.add(rp.Table(show, "Objective response (PSM counts 37/55 vs 16/55): risk difference "
                     "HAIC-LEN-P minus LEN-P. The beta-binomial model puts the prior on each "
                     "arm's rate (uniform in every shipped set); the logistic model puts the "
                     "prior family on the log odds ratio. RR and OR are in results.csv."))
    sec.add(rp.Figure.from_matplotlib(reanalysis.plot_orr_difference(published),
                                      "Posterior of the ORR risk difference under each prior."))
    sens = published.sensitivity
    if len(sens):
        sec.add(rp.Table(sens, "Sensitivity of the published-HR reanalysis to the assumed "
                         "standard error of log(HR)"))
    return sec


def cohort_section(cohort: Cohort) -> rp.Section:
    tier = cohort.data_tier
    sec = rp.Section("cohort", "The cohort analysed", tier=tier, nav="Cohort")
    if tier == "synthetic":
        sec.add(rp.Text(
            f"{cohort.name} is a SYNTHETIC cohort: simulated patients generated by a documented, "
            "seeded process calibrated to the published abstract (see data/synthetic/"
            "DATA_CARD.md). Its numbers illustrate the methods; they are not the study's "
            "results.", "warning"))
    elif tier == "reconstructed":
        sec.add(rp.Text(f"{cohort.name}: pseudo-patients reconstructed from a published "
                        "Kaplan-Meier figure (tier 'reconstructed'), not the study's patient "
                        "data.", "warning"))
    else:
        sec.add(rp.Text(
            f"{cohort.name} is a user-supplied cohort (tier 'user'). The report names the arms "
            f"'{cohort.arms[0]}' (every patient with treatment = 1) and '{cohort.arms[1]}' "
            "(treatment = 0); set the names with [data.arms] or --arms.", "note"))
    table = summarise_cohort(cohort)
    sec.add(rp.Table(table, f"{cohort.name}: per-arm summary (Kaplan-Meier medians in months)",
                     index=True))
    return sec


def design_section(cohort: Cohort, design) -> rp.Section:
    from . import balance

    sec = rp.Section("design", "Design: propensity score, matching and weighting",
                     tier=cohort.data_tier, nav="Design")
    s = design.summary()
    sec.add(rp.Text(
        f"Propensity score: logistic regression (maximum likelihood) of treatment on "
        f"{', '.join(design.covariates)}. IPTW: {s['weights_estimand']} weights"
        f"{' (stabilised)' if s['weights_stabilized'] else ''}; Kish effective sample size "
        f"{s['ess_treated']:.1f} ({cohort.arms[0]}) and {s['ess_control']:.1f} ({cohort.arms[1]}). Matching: 1:1 "
        f"nearest neighbour on the logit PS without replacement, caliper {s['caliper_sd']:g} SD "
        f"({s['caliper_logit']:.3f} on the logit scale): {s['n_pairs']} pairs, "
        f"{s['n_unmatched_treated']} treated patients unmatched. The study's published PSM set "
        "had 55 pairs (derived from its ORR percentages, not stated)."))
    sec.add(rp.Table(design.ps_fit.summary(), "Propensity-score model coefficients (log-odds "
                     f"of {cohort.arms[0]})", index=True))
    sec.add(rp.Table(compact_balance(design.balance), "Balance: standardised mean differences "
                     "(* = |SMD| > 0.1) and variance ratios (continuous covariates), before "
                     "adjustment, in the matched set and under the IPT weights "
                     f"({s['weights_estimand']})"))
    sec.add(rp.Figure.from_matplotlib(balance.love_plot(design.balance),
                                      "Love plot: absolute SMD per covariate."))
    t = cohort.frame["treatment"].to_numpy()
    sec.add(rp.Figure.from_matplotlib(balance.overlap_plot(design.ps_fit.ps, t,
                                                           arm_labels=_arm_labels(cohort)),
                                      "Propensity-score overlap by arm."))
    return sec


def _arm_labels(cohort: Cohort):
    """``{1: treated name, 0: control name}`` for a cohort with its own arm names, else None."""
    from .schema import STUDY_ARMS

    return None if tuple(cohort.arms) == STUDY_ARMS else {1: cohort.arms[0], 0: cohort.arms[1]}


def compact_balance(bal: pd.DataFrame) -> pd.DataFrame:
    """The balance table in report form: one column per comparison, flags as '*'."""
    out = pd.DataFrame({"covariate": bal["covariate"], "kind": bal["kind"]})
    for key, label in (("before", "before"), ("matched", "matched"), ("weighted", "IPTW")):
        if f"smd_{key}" not in bal:
            continue
        flag = bal[f"flag_{key}"].fillna(False).astype(bool)
        out[f"SMD {label}"] = [f"{v:+.3f}{' *' if f else ''}" for v, f in zip(bal[f"smd_{key}"], flag)]
    for key, label in (("before", "before"), ("matched", "matched"), ("weighted", "IPTW")):
        if f"vr_{key}" in bal:
            out[f"VR {label}"] = bal[f"vr_{key}"]
    return out


STRATEGY_LABELS = {
    "none": "unadjusted",
    "iptw": "IPTW",
    "ps_covariate": "PS spline covariate",
    "psm": "PS matching",
    "covariates": "covariate adjustment",
}


def weights_estimand(design) -> str:
    """The estimand of the design's IPT weights (``"ATE"``, ``"ATT"`` or ``"ATO"``; the
    configuration's ``[design] estimand``); ATE when there is no design."""
    return str(design.weight_settings.get("estimand", "ATE")) if design is not None else "ATE"


def strategy_label(strategy: str, estimand: str = "ATE") -> str:
    """The report's name of an adjustment strategy; IPTW names its weights' estimand, e.g.
    ``"IPTW (ATT weights)"`` (the method column says how the weights' uncertainty is handled)."""
    label = STRATEGY_LABELS.get(strategy, strategy)
    return f"{label} ({estimand} weights)" if strategy == "iptw" else label


def published_hr(endpoint: str) -> float:
    """The study's published (IPTW) hazard ratio for ``endpoint``, from data/published/."""
    from .published import load_published

    return load_published().value(f"hr_{endpoint}", analysis_set="IPTW")


def survival_section(cohort: Cohort, endpoint: str, state: RunState) -> rp.Section:
    from . import plots

    name = {"os": "Overall survival", "pfs": "Progression-free survival"}[endpoint]
    sec = rp.Section(endpoint, f"{name}: piecewise-exponential models", tier=cohort.data_tier,
                     nav=endpoint.upper())
    fits = {k[1]: v for k, v in state.fits.items() if k[0] == endpoint}
    est = weights_estimand(state.design)
    label = lambda strategy: strategy_label(strategy, est)  # noqa: E731
    rows, forest_rows, rmst_rows, notes, panels = [], [], [], [], []
    for strategy, idata in fits.items():
        summ, draws = survival.survival_estimands(idata)
        hr = summ[summ["quantity"] == "hr"].iloc[0]
        med = summ[summ["quantity"] == "median"].set_index("arm")
        rd = summ[summ["quantity"] == "rmst_diff"].iloc[0]
        p07 = summ[summ["quantity"] == "P(HR<0.7)"]["probability"]
        rows.append({
            "adjustment": label(strategy),
            "HR estimand": idata.attrs.get("estimand", ""),
            "HR (95% CrI)": _fmt_ci(hr["median"], hr["lower"], hr["upper"], 3),
            "P(HR < 1)": rp.format_probability(hr["probability"]),
            "P(HR < 0.7)": rp.format_probability(float(p07.iloc[0]) if len(p07) else np.nan),
            f"median {cohort.arms[0]}": _fmt_ci(*med.loc["treated", ["median", "lower", "upper"]], 1),
            f"median {cohort.arms[1]}": _fmt_ci(*med.loc["control", ["median", "lower", "upper"]], 1),
            "RMST difference at 24 mo": _fmt_ci(rd["median"], rd["lower"], rd["upper"], 1),
        })
        notes.append(f"{label(strategy)}: "
                     f"{idata.attrs.get('estimand_detail', idata.attrs.get('estimand'))}; "
                     f"{idata.attrs.get('method', '')}.")
        scale = "conditional" if str(idata.attrs.get("estimand", "")).startswith("conditional") else "marginal"
        forest_rows.append({"label": label(strategy), "scale": scale,
                            "median": hr["median"], "lower": hr["lower"], "upper": hr["upper"]})
        rmst_rows.append({"label": label(strategy),
                          "median": rd["median"], "lower": rd["lower"], "upper": rd["upper"]})
        if strategy == "psm":  # the matched set the model was fitted to
            km_frame, km_weights = state.design.matched_frame(cohort.frame), None
        elif strategy == "iptw":
            km_frame, km_weights = cohort.frame, state.design.weights
        else:
            km_frame, km_weights = cohort.frame, None
        panels.append((km_frame, draws, label(strategy), km_weights))
    if panels:
        sec.add(rp.Figure.from_matplotlib(
            plots.km_panels(panels, endpoint, arm_names=cohort.arms),
            f"{name}: Kaplan-Meier estimate per arm (steps; IPT-weighted ({est}) for IPTW, the "
            "matched set for PS matching, else the whole cohort) and the model's posterior "
            "survival (dashed line, 95% band), one panel per adjustment strategy."))
    sec.blocks.insert(0, rp.Table(pd.DataFrame(rows), f"{name}: posterior median hazard ratio "
                                  f"({cohort.arms[0]} vs {cohort.arms[1]}) with 95% credible interval, medians "
                                  "(months) and restricted mean survival difference"))
    for i, note in enumerate(notes):
        sec.blocks.insert(1 + i, rp.Text(note, "note"))
    tv = state.hr_t.get(endpoint)
    if tv is not None:
        strategy = tv.attrs.get("adjustment", "")
        sec.add(rp.Figure.from_matplotlib(
            plots.hr_over_time(tv, f"{endpoint.upper()}: HR(t), {label(strategy)}"),
            f"Non-proportional hazards check: interval-specific hazard ratio HR(t) (random walk "
            f"of the log-HR across intervals, prior set '{tv.attrs.get('prior', '')}'), "
            f"adjustment '{strategy}'. "
            "A flat band around one level supports the proportional-hazards summary."))
    pub, pub_note = {}, ""
    if cohort.data_tier == "synthetic":  # the study's own (synthetic) cohort: its published HR
        hr_pub = published_hr(endpoint)
        pub = {f"study, published IPTW HR {hr_pub:g}": hr_pub}
        pub_note = (" The diamond in the marginal panel is the study's published IPTW hazard "
                    "ratio (from its real patients); this cohort is synthetic, calibrated to the "
                    "published abstract.")
    sec.blocks.insert(1 + len(notes), rp.Figure.from_matplotlib(
        plots.forest(forest_rows, pub, f"{name}: HR and RMST difference by adjustment strategy",
                     rmst_rows=rmst_rows, rmst_tau=24.0),
        "Posterior median and 95% credible interval per adjustment strategy. Marginal hazard "
        "ratios (population-average: unadjusted, IPTW, PS matching) and conditional ones (given "
        "the PS spline, the covariates or the matched pair) are shown in separate panels: they "
        "are different estimands, which differ even without confounding because the hazard ratio "
        "is not collapsible. The last panel is the standardised difference in restricted mean "
        "survival to 24 months (HAIC-LEN-P minus LEN-P, months), a measure comparable across "
        "strategies; each is in its strategy's population (the whole cohort, the "
        f"IPT-weighted ({est}) pseudo-population, the matched set)." + pub_note))
    return sec


def response_section(cohort: Cohort, state: RunState) -> rp.Section:
    sec = rp.Section("response", "Objective response", tier=cohort.data_tier, nav="Response")
    fits = {k[1]: v for k, v in state.fits.items() if k[0] == "orr"}
    if not cohort.has_response:
        sec.add(rp.Text(f"{cohort.name} has no response data (the response column is empty in "
                        "every row): the response models were not fitted."))
        return sec
    est = weights_estimand(state.design)
    label = lambda strategy: strategy_label(strategy, est)  # noqa: E731
    rows, notes = [], []
    for strategy, idata in fits.items():
        s = response.response_summary(idata)
        rows.append({
            "adjustment": label(strategy),
            f"ORR {cohort.arms[0]}": _fmt_ci(s["p_treated_median"], s["p_treated_lower"], s["p_treated_upper"]),
            f"ORR {cohort.arms[1]}": _fmt_ci(s["p_control_median"], s["p_control_lower"], s["p_control_upper"]),
            "risk difference": _fmt_ci(s["rd_median"], s["rd_lower"], s["rd_upper"]),
            "risk ratio": _fmt_ci(s["rr_median"], s["rr_lower"], s["rr_upper"]),
            "P(RD > 0)": rp.format_probability(s["p_rd_above_0"]),
            "P(RD > 0.2)": rp.format_probability(s[f"p_rd_above_{response.IMPORTANT_RD:g}"]),
            "not evaluable (excluded)": f"{s['n_missing_treated']} / {s['n_missing_control']}",
        })
        notes.append(f"{label(strategy)}: {idata.attrs.get('estimand_detail', '')}; "
                     f"{idata.attrs.get('method', '')}.")
    sec.add(rp.Table(pd.DataFrame(rows), "Marginal response probabilities and contrasts "
                     f"(posterior median, 95% CrI); not evaluable: {cohort.arms[0]} / {cohort.arms[1]}"))
    sec.add(*(rp.Text(n, "note") for n in notes))
    if fits:
        sec.add(rp.Figure.from_matplotlib(
            response.plot_rd({label(k): v for k, v in fits.items()}, arm_names=cohort.arms),
            "Posterior of the ORR risk difference by adjustment strategy."))
    return sec


def published_comparison(state: RunState) -> pd.DataFrame:
    """The study's published numbers next to this analysis's estimate of the same quantity
    under the same adjustment (PSM medians and ORR, IPTW hazard ratios and ORR)."""
    from .published import load_published

    ev = load_published()
    frame = pd.DataFrame(state.rows)
    frame = frame[(frame["data_tier"] != "published") & (frame["analysis"] == "main")]
    out = []

    def ours(endpoint, measure, adjustment):
        r = frame[(frame["endpoint"] == endpoint) & (frame["measure"] == measure)
                  & (frame["adjustment"] == adjustment)]
        return "not fitted" if r.empty else _fmt_ci(*r.iloc[0][["median", "lower", "upper"]], 2)

    def orr(adjustment, arm):
        idata = state.fits.get(("orr", adjustment))
        if idata is None:
            return "not fitted"
        k = 1 if arm == "treated" else 0
        s = summarise_draws(100 * idata.posterior["p_arm"].values[..., k])
        return _fmt_ci(s["median"], s["lower"], s["upper"], 1)

    arms = (("treated", "HAIC-LEN-P"), ("control", "LEN-P"))
    for endpoint in ("os", "pfs"):
        for arm, label in arms:
            out.append({"quantity": f"median {endpoint.upper()} (months), {label}",
                        "analysis set": "PSM",
                        "study (published)": ev.value(f"median_{endpoint}", analysis_set="PSM", arm=label),
                        "this analysis": ours(endpoint, f"median_{arm}", "psm")})
        out.append({"quantity": f"{endpoint.upper()} hazard ratio", "analysis set": "IPTW",
                    "study (published)": ev.value(f"hr_{endpoint}", analysis_set="IPTW"),
                    "this analysis": ours(endpoint, "hr", "iptw")})
    for aset, adjustment in (("PSM", "psm"), ("IPTW", "iptw")):
        for arm, label in arms:
            out.append({"quantity": f"ORR (%), {label}", "analysis set": aset,
                        "study (published)": ev.value("orr", analysis_set=aset, arm=label),
                        "this analysis": orr(adjustment, arm)})
    out = pd.DataFrame(out)
    if state.reconstructed:
        out["reconstructed from the figures (tier 'reconstructed')"] = reconstructed_column(
            state, out)
    return out


def summary_section(state: RunState, published) -> rp.Section:
    sec = rp.Section("summary", "Summary")
    frame = pd.DataFrame(state.rows)
    pub = frame[(frame["data_tier"] == "published") & (frame["prior"] == "reference")
                & frame["measure"].isin(["hr", "rd"])]
    pub = pub.drop_duplicates(["endpoint", "measure"])
    tier = state.cohort.data_tier if state.cohort else "user"
    pat = frame[frame["data_tier"].isin([tier, "reconstructed"]) & frame["measure"].isin(["hr", "rd"])
                & (frame["analysis"] == "main")]
    keep = ["data_tier", "endpoint", "measure", "adjustment", "estimand", "prior", "median",
            "lower", "upper", "prob_benefit"]
    sec.add(rp.Text(
        "Key posteriors. Rows with data tier 'published' reanalyse the study's real published "
        "numbers (reference prior; other priors in the next section). Rows with tier "
        f"'{tier}' come from patient-level models on {state.cohort.name if state.cohort else ''}"
        + (" — a SYNTHETIC cohort, so they illustrate the method and are not evidence about "
           "the treatments." if tier == "synthetic" else ".")
        + (" Rows with tier 'reconstructed' come from pseudo-patients rebuilt from the "
           "study's published Kaplan-Meier figures (not its patient data)."
           if state.reconstructed else "")
        + " prob_benefit is P(HR < 1) for hazard ratios and P(RD > 0) for the ORR difference."))
    key = pd.concat([pub[keep], pat[keep]])
    key["prob_benefit"] = key["prob_benefit"].map(rp.format_probability)
    sec.add(rp.Table(key, "Key posteriors (median, 95% credible interval)"))
    comparison = published_comparison(state)
    if len(comparison):
        sec.add(rp.Table(comparison, f"Side by side: the study's published numbers and this "
                         f"analysis of {state.cohort.name} (tier '{tier}') under the same "
                         "adjustment (posterior median, 95% CrI; reference prior)"))
    if state.alerts:
        sec.add(rp.Text(f"{len(state.alerts)} convergence problem(s): see the alerts at the "
                        "top.", "warning"))
    else:
        sec.add(rp.Text("All MCMC fits passed the convergence checks (R-hat <= 1.01, bulk and "
                        "tail ESS >= 400, no divergent transitions, BFMI >= 0.3); see Checks.",
                        "note"))
    return sec


def methods_section(cfg: MainConfig, prior_set, sampler, cohort: Cohort) -> rp.Section:
    sec = rp.Section("methods", "Methods (from the effective configuration)", nav="Methods")
    sec.add(rp.Text(f"Data: {cohort.name} (tier '{cohort.data_tier}'), {cohort.n_treated} "
                    f"{cohort.arms[0]} and {cohort.n_control} {cohort.arms[1]} patients; covariates for the "
                    f"propensity score and covariate adjustment: "
                    f"{', '.join(cohort.covariates) or '(none)'}."))
    sec.add(rp.Text(
        "Survival: piecewise-exponential proportional-hazards models with baseline hazards "
        f"constant within {cfg.survival.n_intervals} intervals ({cfg.survival.cuts} cut points "
        "of the event times), fitted through the Poisson-likelihood identity on exact "
        "sufficient statistics (events and exposure per interval and arm; weighted sums for "
        f"IPTW); log baseline hazards follow a {'Gaussian random walk' if cfg.survival.baseline == 'rw' else 'independent priors'} "
        f"across intervals. IPTW estimates are marginal ({cfg.design.estimand.upper()}) hazard "
        "ratios whose uncertainty "
        "includes the propensity model's: a Bayesian bootstrap over patients refits the "
        f"propensity model in each of {cfg.survival.bootstrap_draws} replicates (Saarela et al., "
        "Biometrics 2015), and the prior set enters by importance weighting of the replicates "
        "with Pareto-smoothed weights and resampling (Newton & Raftery, JRSS B 1994), or, where "
        "the weights degenerate (Pareto k >= 0.7 or an effective sample size below a quarter "
        "of the replicates), by combining the prior with a normal approximation of the "
        "bootstrap distribution (the sandwich posterior of Müller, Econometrica 2013); each "
        "row's method says which. PS matching propagates the design uncertainty too: "
        f"{cfg.survival.psm_design_draws} Bayesian-bootstrap refits of the propensity model, each "
        "rematched and fitted with the prior set by NUTS, the draws pooled (two-step approach: "
        "Kaplan & Chen, Psychometrika 2012; Liao & Zigler, Stat Med 2020); convergence is "
        "checked per fit. The PS-spline covariate models condition on the one estimated score. "
        "Response: logistic models with marginal probabilities by "
        "standardisation; not-evaluable patients are excluded and counted."))
    sec.add(rp.Table(pd.DataFrame(prior_set.table()), f"Prior set '{prior_set.label()}' "
                     f"({prior_set.source})"))
    sec.add(rp.Table(pd.DataFrame([sampler.as_dict()]), "Sampler settings"))
    sec.add(rp.Text("Fits with a random-walk prior (a random-walk baseline, or the time-varying "
                    "HR(t)) run with target_accept of at least "
                    f"{survival.RANDOM_WALK_TARGET_ACCEPT} (smaller steps through the funnel of "
                    "the walk's sd); HR(t) fits also with at least 2000 tuning steps and draws. "
                    "Each fit's own settings are stored in its posterior file's attributes.",
                    "note"))
    sec.add(rp.Text(f"Configuration file: {cfg.source}.", "note"))
    return sec


def provenance_section(cfg: MainConfig, cohort: Cohort, argv) -> rp.Section:
    sec = rp.Section("provenance", "Provenance")
    info = run_info(argv)
    rows = [
        {"item": "cohort file", "value": cohort.path},
        {"item": "cohort SHA-256", "value": cohort.sha256},
        {"item": "data tier", "value": cohort.data_tier},
        {"item": "seed", "value": str(cfg.sampler.seed)},
        {"item": "configuration", "value": cfg.source},
        *({"item": k, "value": v} for k, v in info.items()),
        *({"item": f"package {k}", "value": v} for k, v in package_versions().items()),
    ]
    sec.add(rp.Table(pd.DataFrame(rows), "What produced this report"))
    return sec


def limitations_section(cohort: Cohort) -> rp.Section:
    sec = rp.Section("limitations", "Limitations")
    items = [
        "Only the study's abstract is available: no baseline table, confidence intervals, "
        "numbers at risk or Kaplan-Meier curves. The published-tier reanalysis therefore rests "
        "on an assumed standard error of log(HR) derived from 'P < 0.001'.",
        "The PSM responder counts (37/55, 16/55) are derived from the published percentages, "
        "not stated by the authors.",
        "Non-randomised comparison: all adjusted estimates assume no unmeasured confounding "
        "and correct propensity-score models.",
    ]
    if cohort.data_tier == "synthetic":
        items.insert(0, "The patient-level sections analyse a SYNTHETIC cohort; their estimates "
                     "describe the simulation, not the study's patients.")
    if cohort.data_tier == "reconstructed":
        items.insert(0, reconstruct.LIMITATIONS)
    for item in items:
        sec.add(rp.Text(item))
    return sec


# ------------------------------------------------------------------------------ reconstructed data

HOW_TO_RECONSTRUCT = (
    "No reconstructed data: the study's Kaplan-Meier figures (e.g. its PSM OS and PFS curves with "
    "their numbers at risk, in the full text) were not used. To add them, digitise each figure "
    "(e.g. with WebPlotDigitizer) into a CSV arm,time,survival and type its numbers-at-risk "
    "table into a CSV arm,time,n_risk, run `bayes-haic reconstruct --points os.csv --at-risk "
    "os_risk.csv --endpoint os --points pfs.csv --at-risk pfs_risk.csv --endpoint pfs "
    "--population psm-matched --figure '...' --out data/reconstructed/psm.csv` (Guyot et al. "
    "2012; it writes an accuracy report beside the file), and set `reconstructed = "
    "\"data/reconstructed/psm.csv\"` under [data] in the configuration. The pseudo-patients "
    "reproduce the published curves, not the study's patients (tier 'reconstructed').")


def refuse_reconstructed_main(cfg: MainConfig, cohort: Cohort) -> None:
    """The main job's cohort needs covariates (design, adjusted fits): a reconstructed cohort
    belongs under ``[data] reconstructed``."""
    from .errors import InputError

    if cohort.data_tier == "reconstructed":
        raise InputError(
            f"{cfg.source}: key 'data.cohort': {cohort.path} is a cohort reconstructed from a "
            "Kaplan-Meier figure (tier 'reconstructed'), which has no covariates for the main "
            "job's propensity design and adjusted models; expected a patient-level cohort there, "
            "and the reconstructed file under [data] as reconstructed = \"...\" (a "
            "reconstructed-data section, unadjusted or matched-set comparison), or "
            "`bayes-haic fit --cohort FILE --adjust none`.")


def run_reconstructed(cfg: MainConfig, state: RunState, prior_set, sampler) -> rp.Section:
    """Fit the unadjusted PWE model (for curves of a matched set: the matched-set comparison)
    to each configured endpoint of the ``[data] reconstructed`` cohort; adds its result rows
    (tier ``reconstructed``) and convergence failures to ``state``; returns its section."""
    from . import analysis, checks, plots
    from .errors import InputError

    path = cfg.reconstructed_path()
    rc = load_cohort(path)
    if rc.data_tier != "reconstructed":
        raise InputError(f"{cfg.source}: key 'data.reconstructed': expected a cohort written by "
                         "`bayes-haic reconstruct` (sidecar data tier 'reconstructed'); "
                         f"{path} has tier {rc.data_tier!r}.")
    endpoints = [e for e in cfg.survival.endpoints if e in rc.meta.get("endpoints", [])]
    fig = rc.meta.get("source_figure") or "published Kaplan-Meier figure(s)"
    matched = reconstruct.is_matched_set(rc)
    label = "matched-set comparison" if matched else "unadjusted"
    sec = rp.Section("reconstructed", "Reconstructed data: the study's published Kaplan-Meier "
                     "curves", tier="reconstructed", nav="Reconstructed")
    sec.add(rp.Text(
        f"{rc.name}: pseudo-patients reconstructed from {fig} by {reconstruct.METHOD}. They "
        "reproduce the published curves and numbers at risk, not the study's patients; only "
        "arm, time and event are known, so the only comparison is between the curves"
        + (" — here those of the propensity-matched set, so the unadjusted model estimates "
           "the matched-set (marginal) hazard ratio." if matched else "."), "warning"))
    rows, panels = [], []
    for e in endpoints:
        cuts = analysis.endpoint_cuts(rc, e, cfg.survival.cuts, cfg.survival.n_intervals)
        idata = analysis.fit_survival(rc, e, "none", prior_set=prior_set, sampler=sampler,
                                      cuts=cuts, baseline=cfg.survival.baseline)
        state.reconstructed[e] = idata
        state.rows.extend(survival.result_rows(idata, "reconstructed", rc.name))
        summ, draws = survival.survival_estimands(idata)
        hr = summ[summ["quantity"] == "hr"].iloc[0]
        med = summ[summ["quantity"] == "median"].set_index("arm")
        rows.append({
            "endpoint": e.upper(), "comparison": label,
            "HR (95% CrI)": _fmt_ci(hr["median"], hr["lower"], hr["upper"], 3),
            "P(HR < 1)": rp.format_probability(hr["probability"]),
            "median HAIC-LEN-P": _fmt_ci(*med.loc["treated", ["median", "lower", "upper"]], 1),
            "median LEN-P": _fmt_ci(*med.loc["control", ["median", "lower", "upper"]], 1),
            "study (published IPTW HR)": published_hr(e)})
        frame = reconstruct.for_endpoint(rc, e).frame
        panels.append((frame, draws, f"{e.upper()}: {label}", None))
    if rows:
        sec.add(rp.Table(pd.DataFrame(rows), "Posterior HR (HAIC-LEN-P vs LEN-P) and medians "
                         "(months) on the reconstructed pseudo-patients; the study's HR is the "
                         "IPTW estimate of all patients, a different analysis set"))
        sec.add(rp.Figure.from_matplotlib(
            plots.km_panels(panels, endpoints[0] if len(endpoints) == 1 else "os"),
            "Kaplan-Meier estimate of the reconstructed pseudo-patients per arm and the model's "
            "posterior survival (dashed, 95% band)."))
    else:
        sec.add(rp.Text(f"{rc.name} has none of the configured endpoints "
                        f"({', '.join(cfg.survival.endpoints)}): nothing was fitted."))
    acc = reconstruct.output_paths(rc.path)["csv"]
    if acc.is_file():
        table = pd.read_csv(acc)
        keep = table[table["quantity"].isin(["max_abs_diff_survival", "mean_abs_diff_survival",
                                             "median_months", "total_events"])]
        sec.add(rp.Table(keep.drop(columns=["time"]), f"Reconstruction accuracy ({acc.name}; "
                         f"numbers at risk and figures in {acc.with_suffix('.html').name})"))
    if state.reconstructed:
        diag = checks.diagnostics_table({f"{e.upper()}, reconstructed, {label}": v
                                         for e, v in state.reconstructed.items()})
        state.alerts.extend(checks.failures(diag))
        sec.add(rp.Table(diag.drop(columns=["problems"]), "Convergence of these fits"))
    return sec


def reconstructed_column(state: RunState, comparison: pd.DataFrame) -> list[str]:
    """The side-by-side table's column for the reconstructed fits: medians per arm and HRs
    (labelled with the population the curves show), 'no response data' for ORR."""
    frame = pd.DataFrame(state.rows)
    frame = frame[frame["data_tier"] == "reconstructed"]
    fits = next(iter(state.reconstructed.values()))
    matched = "matched-set comparison" in str(fits.attrs.get("estimand_detail", ""))
    where = "matched set" if matched else "crude, all reconstructed"
    out = []
    for q in comparison["quantity"]:
        endpoint = "os" if " OS" in q or q.startswith("OS") else "pfs" if "PFS" in q else "orr"
        if endpoint == "orr":
            out.append("no response data")
            continue
        measure = ("hr" if "hazard ratio" in q else
                   "median_treated" if q.endswith("HAIC-LEN-P") else "median_control")
        r = frame[(frame["endpoint"] == endpoint) & (frame["measure"] == measure)]
        out.append("not reconstructed" if r.empty else
                   _fmt_ci(*r.iloc[0][["median", "lower", "upper"]], 2) + f" ({where})")
    return out


# ------------------------------------------------------------------------------ one fit


def run_fit(cohort_path, endpoint: str, adjust: str, out_dir, *, covariates=None,
            prior="reference", overrides=(), seed=None, argv=None, echo=print,
            config_path=None) -> pd.DataFrame:
    """Fit one endpoint (``os``, ``pfs`` or ``orr``) under one adjustment strategy and write
    ``out_dir/results.csv``, ``out_dir/posterior.nc`` (ArviZ netCDF) and ``out_dir/report.html``.

    Model settings other than those given (cut points, baseline smoothing, sampler, design)
    come from the configuration file (default ``models/main.toml``).
    """
    from . import analysis, checks

    cfg = load_config(config_path)
    sampler = cfg.sampler.settings()
    if seed is not None:
        sampler = type(sampler)(**{**sampler.as_dict(), "seed": int(seed)})
    prior_set = load_prior_set(prior, overrides)
    cohort = load_cohort(cohort_path, covariates, **cfg.data.cohort_options())
    reconstruct.check_strategy(cohort, adjust, endpoint)  # tier 'reconstructed': none only
    cohort = reconstruct.for_endpoint(cohort, endpoint)
    t0 = time.perf_counter()
    needs_design = adjust in ("iptw", "psm", "ps_covariate")
    design = analysis.make_design(cohort, cfg.design) if needs_design else None
    state = RunState(cfg, cohort=cohort, design=design)
    if endpoint == "orr":
        idata = analysis.fit_orr(cohort, adjust, design=design, prior_set=prior_set,
                                 sampler=sampler, n_boot=cfg.survival.bootstrap_draws)
        rows = response.response_rows(idata, cohort.data_tier, cohort.name)
        state.fits[("orr", adjust)] = idata
        section = response_section(cohort, state)
    else:
        cuts = analysis.endpoint_cuts(cohort, endpoint, cfg.survival.cuts, cfg.survival.n_intervals)
        idata = analysis.fit_survival(cohort, endpoint, adjust, design=design, prior_set=prior_set,
                                      sampler=sampler, cuts=cuts, baseline=cfg.survival.baseline,
                                      n_boot=cfg.survival.bootstrap_draws,
                                      time_varying=cfg.survival.time_varying,
                                      pair_effect=cfg.survival.psm_pair_effect,
                                      psm_design_draws=cfg.survival.psm_design_draws)
        rows = survival.result_rows(idata, cohort.data_tier, cohort.name,
                                    cut_set=main_cut_label(cfg))
        state.fits[(endpoint, adjust)] = idata
        section = survival_section(cohort, endpoint, state)
    echo(f"fitted {endpoint.upper()} ({adjust}) in {time.perf_counter() - t0:.1f} s")
    state.rows = rows
    chk = checks.run_checks(cohort, state.fits, design=design, prior_set=prior_set,
                            sampler=sampler, seed=sampler.seed)
    alerts = chk.failures
    sections = [section, chk.section, methods_section(cfg, prior_set, sampler, cohort),
                provenance_section(cfg, cohort, argv), limitations_section(cohort)]
    html = rp.render(f"bayes-haic fit: {endpoint.upper()}, adjustment '{adjust}', {cohort.name}",
                     sections, alerts=alerts, banner=tier_banner(cohort))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_netcdf(idata, out / "posterior.nc")
    frame = write_results(rows, out / "results.csv")
    rp.write_report(out / "report.html", html)
    echo(f"wrote {out / 'results.csv'}, {out / 'posterior.nc'} and {out / 'report.html'}")
    return frame


def _write_netcdf(idata, path: Path) -> None:
    """Save an InferenceData atomically; attrs that netCDF cannot hold are stored as text."""
    for group in idata.groups():
        ds = idata[group]
        ds.attrs = {k: (v if isinstance(v, (str, int, float)) else repr(v))
                    for k, v in ds.attrs.items()}
    atomic_write(path, lambda tmp: idata.to_netcdf(tmp, engine="h5netcdf"))


# ------------------------------------------------------------------------------ design only


def run_balance(cohort_path, out_dir, *, covariates=None, config_path=None,
                echo=print) -> pd.DataFrame:
    """The design stage alone: fit the propensity model, match and weight, and write
    ``out_dir/balance.csv`` (the full balance table), ``love_plot.png``, ``ps_overlap.png`` and
    ``design.html``. Returns the balance table; the outcome columns are never looked at."""
    from . import analysis, balance

    cfg = load_config(config_path)
    cohort = load_cohort(cohort_path, covariates, **cfg.data.cohort_options())
    design = analysis.make_design(cohort, cfg.design)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figures = {
        "love_plot.png": balance.love_plot(design.balance),
        "ps_overlap.png": balance.overlap_plot(design.ps_fit.ps, cohort.frame["treatment"].to_numpy(),
                                               arm_labels=_arm_labels(cohort)),
    }
    for name, fig in figures.items():
        atomic_write(out / name, lambda tmp, fig=fig: fig.savefig(tmp, format="png", dpi=160,
                                                                  bbox_inches="tight"))
    section = design_section(cohort, design)
    html = rp.render(f"bayes-haic balance: {cohort.name}", [section], banner=tier_banner(cohort))
    rp.write_report(out / "design.html", html)
    atomic_write(out / "balance.csv",
                 lambda tmp: design.balance.to_csv(tmp, index=False, float_format="%.6g"))
    s = design.summary()
    echo(f"{cohort.name} (tier '{cohort.data_tier}'): {s['n_pairs']} matched pairs "
         f"({s['n_unmatched_treated']} treated unmatched; the study's PSM set had 55 pairs, "
         f"derived); IPTW {s['weights_estimand']} weights, Kish ESS {s['ess_treated']:.1f} / "
         f"{s['ess_control']:.1f}")
    echo(compact_balance(design.balance).to_string(index=False))
    echo(f"wrote {out / 'balance.csv'}, {out / 'love_plot.png'}, {out / 'ps_overlap.png'} and "
         f"{out / 'design.html'}")
    return design.balance
