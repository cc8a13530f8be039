"""The "Model checks" report section: posterior predictive checks, PSIS-LOO comparisons and
convergence, laid out from :class:`bayes_haic.checks.Checks`."""

from __future__ import annotations

import pandas as pd

from ..checks import PARETO_K, THRESHOLDS, Checks
from ..labels import STRATEGY_LABELS, arm_names as _arm_names
from ..schema import endpoint_title
from . import figures
from . import pages as rp

# column names of the response PPC table in the report
RESPONSE_PPC_COLUMNS = {"observed": "observed proportion", "predicted_median": "predicted",
                        "predicted_lower": "2.5%", "predicted_upper": "97.5%", "p_value": "p"}


def flagged_cells(ppcs: list, arm_names=None) -> pd.DataFrame:
    """The arm-interval cells of survival PPCs whose observed events have two-sided p < 0.05."""
    names = _arm_names(arm_names)
    rows = []
    for ppc in ppcs:
        e = ppc.events[ppc.events["p_value"] < 0.05]
        for r in e.itertuples():
            rows.append({"adjustment": STRATEGY_LABELS.get(ppc.adjustment, ppc.adjustment),
                         "arm": names[r.arm], "interval (months)": r.interval,
                         "observed": r.observed, "predicted": r.predicted_median,
                         "2.5%": r.predicted_lower, "97.5%": r.predicted_upper, "p": r.p_value})
    return pd.DataFrame(rows)


def _survival_ppc_figure(endpoint: str, ppcs: list, arms) -> rp.Figure:
    name = endpoint_title(endpoint)
    return rp.Figure.from_matplotlib(
        figures.plot_survival_ppc(ppcs, arm_names=arms),
        f"{name}: observed Kaplan-Meier curves (steps) over the 95% band of replicate curves "
        "(left) and events per interval and arm, observed (dots) vs predictive median and "
        "95% interval (right); one row per adjustment strategy.")


def _response_ppc_figure(ppcs: list, arms) -> rp.Figure:
    return rp.Figure.from_matplotlib(figures.plot_response_ppc(ppcs, arm_names=arms),
                                     f"{endpoint_title('orr')}: replicate proportions per arm "
                                     "(histograms) and the observed proportion (lines).")


def ppc_figures(checks: Checks, cohort) -> dict:
    """The posterior predictive figures of :func:`checks_section` for ``checks``: key
    ``("survival", endpoint)`` per endpoint with survival PPCs (one row per strategy) and
    ``("response",)`` when there are response PPCs. The main job draws each block's as the
    block ends and hands them to :func:`checks_section`."""
    arms = getattr(cohort, "arms", None)
    out = {}
    for endpoint in dict.fromkeys(k[0] for k in checks.survival):
        out[("survival", endpoint)] = _survival_ppc_figure(
            endpoint, [p for k, p in checks.survival.items() if k[0] == endpoint], arms)
    if checks.response:
        out[("response",)] = _response_ppc_figure(list(checks.response.values()), arms)
    return out


def checks_section(checks: Checks, cohort, fits: dict, drawn: dict | None = None) -> rp.Section:
    """The "Checks" report section (id ``checks``) of :func:`bayes_haic.checks.run_checks`'s
    result for ``cohort`` (its tier and arm names) and the checked ``fits``. ``drawn``: figures
    of :func:`ppc_figures` already drawn (for the same PPCs); the others are drawn here."""
    drawn = drawn or {}
    surv, resp, loo = checks.survival, checks.response, checks.loo
    diag, fails, notes = checks.diagnostics, checks.failures, checks.notes
    n_draws, seed = checks.n_draws, checks.seed
    sec = rp.Section("checks", "Model checks: posterior predictive checks, LOO and convergence",
                     tier=getattr(cohort, "data_tier", None), nav="Checks")
    arms = getattr(cohort, "arms", None)
    names = _arm_names(arms)
    sec.add(rp.Text(
        "Posterior predictive checks ask whether data simulated from each fitted model look like "
        "the observed data; p-values near 0 flag misfit (they are conservative: a model can fit "
        "badly without an extreme p-value, so the figures matter more than the numbers). "
        "PSIS-LOO compares the expected predictive accuracy of alternative survival model "
        "structures; the convergence table checks every MCMC fit."))
    # convergence
    show = diag.drop(columns=["endpoint", "adjustment"]).rename(columns={
        "rhat_max": "max R-hat", "ess_bulk_min": "min bulk ESS", "ess_tail_min": "min tail ESS",
        "bfmi_min": "min BFMI"})
    T = THRESHOLDS
    sec.add(rp.Table(show, f"Convergence of every fit over all posterior variables (pass: R-hat <= "
                     f"{T['rhat_max']:g}, bulk and tail ESS >= {T['ess_bulk_min']:g}, no divergent "
                     f"transitions, BFMI >= {T['bfmi_min']:g}, >= {T['chains']} chains). Bayesian-"
                     "bootstrap fits draw independent replicates: MCMC diagnostics do not apply."))
    if fails:
        sec.add(*(rp.Text(f, "warning") for f in fails))
    else:
        sec.add(rp.Text("Every MCMC fit passed the convergence checks.", "note"))
    # survival PPC
    if surv:
        sec.add(rp.Text(
            f"Survival: {n_draws} thinned posterior draws per fit, each simulating one replicate "
            "cohort with the observed censoring (censored patients keep their censoring time; "
            "for patients with an event, a censoring time is drawn from their arm's reverse "
            "Kaplan-Meier censoring distribution beyond their event time, residual mass at the "
            "last follow-up). Bands: 95% of replicate Kaplan-Meier curves; KM p: standardised "
            "squared distance of the observed curve from the replicates' mean, up to the 90th "
            "percentile of follow-up. Events per interval are checked given the observed time at "
            "risk (Pearson X² discrepancy and per-cell two-sided mid-p). Covariate and PS-spline "
            "models simulate each patient from their own hazard. IPTW fits: the IPT-weighted "
            "Kaplan-Meier curve and weighted events against replicates that keep each patient's "
            "weight — a check of the marginal (pseudo-population) hazards, not of the propensity "
            f"model. PSM fits: the matched set. Replicates are seeded ({seed})."))
        sec.add(rp.Table(pd.DataFrame([p.summary() for p in surv.values()]).rename(columns={
                             f"KM p ({a})": f"KM p ({names[a]})" for a in names}),
                         "Survival posterior predictive p-values per fit", digits=2))
        for endpoint in dict.fromkeys(k[0] for k in surv):
            ppcs = [p for k, p in surv.items() if k[0] == endpoint]
            name = endpoint_title(endpoint)
            sec.add(drawn.get(("survival", endpoint)) or _survival_ppc_figure(endpoint, ppcs, arms))
            flagged = flagged_cells(ppcs, arm_names=arms)
            if len(flagged):
                sec.add(rp.Table(flagged, f"{name}: arm-interval cells whose observed events fall "
                                 "outside the central 95% of the replicates (two-sided p < 0.05; "
                                 f"about 1 in 20 cells by chance, {sum(len(p.events) for p in ppcs)} "
                                 "cells checked)", digits=3))
            else:
                sec.add(rp.Text(f"{name}: no arm-interval cell with two-sided p < 0.05.", "note"))
    # response PPC
    if resp:
        ppcs = list(resp.values())
        tab = pd.concat([p.table for p in ppcs], ignore_index=True)
        tab["adjustment"] = [STRATEGY_LABELS.get(a, a) for a in tab["adjustment"]]
        tab["arm"] = [names[a] for a in tab["arm"]]
        tab = tab.rename(columns=RESPONSE_PPC_COLUMNS)
        sec.add(rp.Table(tab, f"{endpoint_title('orr')}: observed proportion of responders (IPT-weighted "
                         "for IPTW) vs posterior predictive replicates. Models with one parameter "
                         "per arm reproduce the arm totals by construction; p-values near 1 are "
                         "expected there."))
        sec.add(drawn.get(("response",)) or _response_ppc_figure(ppcs, arms))
    # LOO
    k_col = f"k > {PARETO_K:g}"
    for (endpoint, title), tab in loo.items():
        sec.add(rp.Table(tab, f"{title}: PSIS-LOO (per-patient log-likelihood; best first; "
                         "elpd_diff and dse relative to the best; a difference within about 2 dse "
                         f"is not a clear preference; '{k_col}': patients with an unreliable PSIS "
                         "estimate)", digits=3))
        if int(tab[k_col].sum()):
            sec.add(rp.Text(f"{title}: {int(tab[k_col].sum())} Pareto k value(s) > "
                            f"{PARETO_K:g}: those models' LOO estimates are unreliable.", "warning"))
    if not loo:
        sec.add(rp.Text("PSIS-LOO: no model comparison in this run (no time-varying-HR fit was "
                        "given and refits of alternative structures were not requested).", "note"))
    if any(v.attrs.get("adjustment") == "iptw" for k, v in fits.items() if k[0] != "orr"):
        sec.add(rp.Text("IPTW survival fits are not in the LOO comparisons: a weighted pseudo-"
                        "likelihood or Bayesian bootstrap has no predictive density of the data.",
                        "note"))
    for n in notes:
        sec.add(rp.Text(n, "note"))
    return sec

