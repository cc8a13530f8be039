"""Report pages of the validation study (:mod:`bayes_haic.validation`): the main report's
Validation page (read from the stored result in ``data/validation/``, never recomputed by the
main job) and the standalone report of ``bayes-haic validate``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure as MplFigure

from . import pages as rp
from ..validation import COVERAGE_BAND, load_result

STORED_RESULT = Path("data") / "validation"
MEASURE_LABELS = {"log_hr": "log HR", "rmst_diff_24": "RMST difference at 24 months (months)",
                  "rd": "ORR risk difference"}


def stored_result_path() -> Path:
    """``data/validation/`` of the checkout, or of the installed package's data."""
    from ..paths import data_dir

    return data_dir() / STORED_RESULT.name


def load_stored() -> dict | None:
    """The stored validation result shipped in ``data/validation/`` (None when absent)."""
    try:
        return load_result(stored_result_path())
    except Exception:  # a damaged stored result must not stop the main job: the page says so
        return None


def coverage_figure(summary: pd.DataFrame, measure: str = "log_hr") -> MplFigure | None:
    """Coverage of the 95% interval with +-2 MCSE bars, per strategy (rows) and scenario (colours)."""
    s = summary[(summary["measure"] == measure) & summary["coverage"].notna()]
    if s.empty:
        return None
    labels = list(dict.fromkeys(s["endpoint"] + " / " + s["strategy"]))
    scen = list(dict.fromkeys(s["scenario"]))
    fig = MplFigure(figsize=(7.5, 0.45 * len(labels) * max(1, len(scen)) ** 0.5 + 1.6), layout="constrained")
    ax = fig.add_subplot()
    ax.axvspan(*COVERAGE_BAND, color="#dfe9d8", label="93-97%")
    ax.axvline(0.95, color="0.3", lw=0.8)
    off = np.linspace(-0.25, 0.25, len(scen)) if len(scen) > 1 else [0.0]
    for k, sc in enumerate(scen):
        g = s[s["scenario"] == sc]
        y = [labels.index(a + " / " + b) + off[k] for a, b in zip(g["endpoint"], g["strategy"])]
        c, e = g["coverage"].to_numpy(float), 2 * g["coverage_mcse"].to_numpy(float)
        xerr = np.vstack([np.minimum(e, c), np.minimum(e, 1 - c)])  # bars clipped to [0, 1]
        ax.errorbar(c, y, xerr=xerr, fmt="o", ms=4, capsize=2, label=sc)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel(f"coverage of the 95% interval ({MEASURE_LABELS.get(measure, measure)}), +-2 MC SE")
    ax.legend(fontsize=7, loc="lower left")
    return fig


def sbc_figure(sbc: pd.DataFrame) -> MplFigure | None:
    """Rank histograms, one panel per model x parameter, with the 99% band of a uniform count."""
    if sbc.empty:
        return None
    from scipy import stats

    groups = list(sbc.groupby(["model", "parameter"], sort=False))
    n = len(groups)
    ncol = min(3, n)
    nrow = -(-n // ncol)
    fig = MplFigure(figsize=(3.4 * ncol, 2.6 * nrow), layout="constrained")
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    bins = 10
    for ax, ((model, par), g) in zip(axes, groups):
        L = int(g["thin_to"].iloc[0])
        counts = np.bincount(g["rank"].to_numpy(int) * bins // (L + 1), minlength=bins)
        m = len(g)
        lo, hi = stats.binom.ppf([0.005, 0.995], m, 1 / bins)
        ax.axhspan(lo, hi, color="0.88")
        ax.axhline(m / bins, color="0.4", lw=0.8)
        ax.bar(np.arange(bins), counts, width=0.9, color="#2471a3")
        ax.set_title(f"{model}: {par} ({m} draws)", fontsize=8)
        ax.set_xticks([])
        ax.set_xlabel(f"rank bin (0..{L})", fontsize=7)
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig


def _table(summary: pd.DataFrame) -> pd.DataFrame:
    cols = {"scenario": "scenario", "endpoint": "endpoint", "strategy": "strategy", "measure": "measure",
            "estimand": "compared with", "truth": "truth", "replicates": "R"}
    out = summary[list(cols)].rename(columns=cols)
    f = lambda v, e, d=3: "–" if pd.isna(v) else f"{v:.{d}f} ({e:.{d}f})"
    out["bias (MCSE)"] = [f(a, b) for a, b in zip(summary["bias"], summary["bias_mcse"])]
    out["RMSE (MCSE)"] = [f(a, b) for a, b in zip(summary["rmse"], summary["rmse_mcse"])]
    out["coverage (MCSE)"] = [f(a, b) for a, b in zip(summary["coverage"], summary["coverage_mcse"])]
    out["mean width"] = summary["mean_width"]
    out["P(benefit)>0.975 rate (MCSE)"] = [f(a, b) for a, b in zip(summary["success_rate"], summary["success_rate_mcse"])]
    out["convergence failures"] = summary["failure_rate"]
    out["s per fit"] = summary["mean_seconds"]
    return out


def outside_band(summary: pd.DataFrame) -> list[str]:
    """Sentences naming every scenario x strategy whose log-HR coverage lies outside 93-97%."""
    out = []
    s = summary[summary["coverage"].notna()]
    for _, r in s.iterrows():
        if not (COVERAGE_BAND[0] <= r["coverage"] <= COVERAGE_BAND[1]):
            out.append(f"{r['scenario']} / {r['endpoint']} / {r['strategy']} ({MEASURE_LABELS.get(r['measure'], r['measure'])}): "
                       f"coverage {r['coverage']:.3f} (MC SE {r['coverage_mcse']:.3f}, {int(r['replicates'])} replicates), "
                       f"bias {r['bias']:+.3f} against the {r['estimand']} {r['truth']:.3f}")
    return out


def not_about(cohort_name: str) -> str:
    """What the stored validation study says of another study's cohort (``cohort_name``)."""
    return (f"This is the package's validation study, not one of {cohort_name}: its cohorts are "
            "simulated like the package's study (HAIC-LEN-P vs LEN-P in hepatocellular carcinoma; "
            "the generator calibrated to it, data/synthetic/generator.toml, in the scenarios of "
            "models/validation/). It shows how the estimators behave there; with another cohort's "
            "size, events and confounding they may behave otherwise. To check them in a setting "
            "like yours, write a scenario file (settings overriding "
            "data/synthetic/generator.toml: your cohort's size, event rates and confounding), "
            "list it under [study] scenarios in a validation TOML of your own and run "
            "`bayes-haic validate --config yours.toml`.")


def validation_sections(result: dict | None, *, where: str = "",
                        cohort_name: str | None = None) -> list[rp.Section]:
    """The Validation page from a stored result (:func:`bayes_haic.validation.load_result`).
    ``cohort_name``: the cohort of a run that is not about the package's study, which the page
    then says it does not concern (:func:`not_about`)."""
    sec = rp.Section("validation", "Validation: operating characteristics and simulation-based calibration",
                     tier="synthetic", nav="Validation")
    if cohort_name:
        sec.add(rp.Text(not_about(cohort_name), "note"))
    if result is None:
        sec.add(rp.Text(f"No stored validation result{' in ' + where if where else ''}: run "
                        "`bayes-haic validate --out data/validation` to make one.", "warning"))
        return [sec]
    meta, summary = result["meta"], result["summary"]
    cfg = meta.get("config", {})
    reps = meta.get("replicates_per_scenario", {})
    sam = cfg.get("sampler", {})
    sec.add(rp.Text(
        f"Stored result{' (' + where + ')' if where else ''}: made {meta.get('date')}, study seed "
        f"{meta.get('seed')}, replicates per scenario: "
        + ", ".join(f"{k} {v}" for k, v in reps.items())
        + "; SBC draws: " + (", ".join(f"{k} {v}" for k, v in meta.get("sbc_draws", {}).items()) or "none")
        + f". Sampler per fit: {sam.get('chains')} chains x {sam.get('draws')} draws after {sam.get('tune')} "
          f"tuning ({sam.get('backend')}); IPTW Bayesian bootstrap with {cfg.get('n_boot')} replicates; "
          f"PSM pooled over {cfg.get('psm_design_draws')} rematched design draws; {cfg.get('n_intervals')} "
          "quantile intervals. This page is read from the stored result, not recomputed by the main job."))
    fail = cfg.get("failure", {})
    if fail:
        sec.add(rp.Text(
            f"Convergence failure: R-hat (two decimals) above {fail.get('rhat_max')}, bulk ESS below "
            f"{fail.get('ess_bulk_min')} or more than {fail.get('divergences_max')} divergent transitions "
            "(PSM: any of its design-draw fits; the IPTW bootstrap has no MCMC). With these short chains an "
            "R-hat of 1.02 is often sampling noise, so the rate is a conservative flag; every replicate "
            "counts in the other measures, converged or not.", "note"))
    small = [k for k, v in reps.items() if v < 500]
    if small:
        sec.add(rp.Text("Fewer than the 500 replicates per scenario the validation plan asks for: "
                        + ", ".join(f"{k} ({reps[k]})" for k in small)
                        + ". Monte Carlo standard errors are shown beside every rate; read them.", "warning"))
    sec.add(rp.Text(
        "How the truth is known: cohorts are simulated by the calibrated generator with a scenario's "
        "settings; its true estimands come from a counterfactual population of "
        f"{cfg.get('truth_n')} patients each with BOTH potential outcomes (death times under each "
        "treatment from the same random draws). Marginal log-HR = Cox log-HR of that pooled "
        "population censored at 36 months (ATE: the source pool; ATT: its assigned-treated). "
        "Conditional log-HR = the generator's treatment coefficient. Each strategy is scored against "
        "the estimand it targets: IPTW (both) against the marginal ATE, PSM against the ATT, covariates "
        "and PS-covariate against the conditional log-HR (PS-covariate strictly conditions on the "
        "score only: by non-collapsibility its estimand is a little smaller in size), and the crude "
        "contrast 'none', which targets no causal estimand under confounding, against the marginal "
        "ATE (its bias is the confounding bias). Estimates are posterior medians; intervals central "
        "95%; MC SE of coverage sqrt(p(1-p)/R)."))
    if not summary.empty:
        fig = coverage_figure(summary, "log_hr")
        if fig is not None:
            sec.add(rp.Figure.from_matplotlib(fig, "Coverage of the 95% interval for the log HR, per "
                                              "strategy and scenario, with +-2 Monte Carlo SE"))
        fig = coverage_figure(summary, "rmst_diff_24")
        if fig is not None:
            sec.add(rp.Figure.from_matplotlib(fig, "Coverage for the standardised RMST difference at 24 months"))
        sec.add(rp.Table(_table(summary), "Performance per scenario, endpoint, strategy and measure "
                         "(MC standard errors in brackets). 'P(benefit)>0.975 rate' under the null "
                         "scenario is the false-positive rate of that decision rule.", digits=3))
        bad = outside_band(summary)
        if bad:
            sec.add(rp.Text("Coverage outside 93-97%: " + "; ".join(bad) + ".", "warning"))
        else:
            sec.add(rp.Text("Every coverage lies within 93-97%."))
    sbc, sbcs = result.get("sbc", pd.DataFrame()), result.get("sbc_summary", pd.DataFrame())
    if not sbc.empty:
        sec.add(rp.Text(
            "Simulation-based calibration (Talts et al. 2018): parameters drawn from the reference "
            "prior, data from the model, the model refitted; the rank of the true value among 99 "
            "thinned posterior draws is uniform on 0..99 when inference is calibrated. Bars: counts "
            "in 10 bins; grey band: 99% range of a bin count under uniformity; chi-square test below."))
        fig = sbc_figure(sbc)
        if fig is not None:
            sec.add(rp.Figure.from_matplotlib(fig, "SBC rank histograms"))
        if not sbcs.empty:
            sec.add(rp.Table(sbcs[["model", "parameter", "draws", "chi2", "df", "p_value", "divergent_fits",
                                   "counts"]], "SBC uniformity tests (Pearson chi-square on 10 bins)"))
    return [sec]


def limitations_text(result: dict | None, cohort_name: str | None = None) -> str:
    """One paragraph for the Limitations page: where coverage falls outside 93-97%.
    ``cohort_name`` as in :func:`validation_sections`."""
    if result is None or result["summary"].empty:
        return "No stored validation result: the coverage of the intervals is not shown."
    bad = outside_band(result["summary"])
    reps = result["meta"].get("replicates_per_scenario", {})
    size = ", ".join(f"{k} {v}" for k, v in reps.items())
    what = "Validation study" if not cohort_name else (
        f"The package's validation study (cohorts simulated like its study, not like {cohort_name})")
    if not bad:
        return f"{what} ({size} replicates): every coverage lies within 93-97%."
    return (f"{what} ({size} replicates): coverage of the 95% intervals falls outside 93-97% for "
            + "; ".join(bad) + ". See the Validation page.")


def standalone_report(result: dict, out: Path) -> Path:
    """``validation.html`` in ``out``: the Validation page on its own."""
    html = rp.render("Validation study: bayes-haic", validation_sections(result, where=str(out)),
                     banner="SYNTHETIC DATA: every cohort here is simulated by the calibrated generator.")
    return rp.write_report(Path(out) / "validation.html", html)
