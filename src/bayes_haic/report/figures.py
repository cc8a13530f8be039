"""Figures of the patient-level analyses (matplotlib Figures, made without pyplot, so no
backend is selected; the report embeds them): Kaplan-Meier vs model, forest plot, HR(t),
posterior predictive checks, love plot and propensity-score overlap, ORR risk difference,
reconstruction overlay. Each takes results and draws them."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..errors import InputError
from ..labels import ARM_COLORS, ARM_LABELS, IMPORTANT_RD, STRATEGY_LABELS, STUDY_ARMS
from ..labels import arm_names as _arm_names
from ..labels import format_p_value as _fmt_p
from ..schema import endpoint_label
from .axes import finish_rd_axes, log_ratio_axis


def km_panels(panels, endpoint: str, ncol: int = 3, arm_names=None) -> Figure:
    """Small multiples of :func:`km_vs_model`: ``panels`` is a list of ``(km, draws, title)``,
    one panel each; ``arm_names`` = (treated, control) names in the legend."""
    n = len(panels)
    ncol = min(ncol, n)
    nrow = -(-n // ncol)
    fig = Figure(figsize=(4.2 * ncol, 3.3 * nrow), layout="constrained")
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    for ax, (km, draws, title) in zip(axes, panels):
        _km_vs_model(ax, km, endpoint, draws, title, arm_names)
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig


def km_vs_model(km, endpoint: str, draws, title: str = "", arm_names=None) -> Figure:
    """Kaplan-Meier curves per arm (steps; ``km``: arm -> :class:`bayes_haic.checks.KMCurve`,
    e.g. :func:`bayes_haic.checks.fit_km`) over the model's posterior survival (median line and
    95% band) from ``draws`` (the ``survival`` variable of
    :func:`bayes_haic.survival.survival_estimands`, dims chain, draw, arm, time; months).
    ``arm_names``: (treated, control) names in the legend (default the study's)."""
    fig = Figure(figsize=(6.5, 4), layout="constrained")
    _km_vs_model(fig.add_subplot(), km, endpoint, draws, title, arm_names)
    return fig


def _km_vs_model(ax, km, endpoint, draws, title, arm_names=None) -> None:
    names = _arm_names(arm_names)
    surv = draws["survival"]
    times = surv["time"].values
    for arm, code in (("treated", 1), ("control", 0)):
        s = surv.sel(arm=arm).stack(sample=("chain", "draw")).values  # time x sample
        lo, med, hi = np.quantile(s, [0.025, 0.5, 0.975], axis=1)
        color = ARM_COLORS[arm]
        ax.fill_between(times, lo, hi, color=color, alpha=0.18, lw=0)
        ax.plot(times, med, color=color, lw=1.2, ls="--")
        curve = km[arm]
        ax.step(curve.time, curve.survival, where="post", color=color, lw=1.6,
                label=f"{names[arm]} (n = {curve.n}): Kaplan-Meier")
    ax.plot([], [], color="grey", ls="--", label="model: posterior median, 95% band")
    ax.set_xlim(0, times.max())
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("months")
    ax.set_ylabel(f"{endpoint_label(endpoint)} probability")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=6.5, frameon=False)


HR_PANELS = {
    "marginal": "Marginal hazard ratios (population-average)",
    "conditional": "Conditional hazard ratios (given PS spline, covariates or matched pair)",
}


def _log_hr_axis(ax) -> None:
    ax.axvline(1, color="black", lw=0.8)
    log_ratio_axis(ax, "x")


def _interval_rows(ax, rows, diamonds=None) -> None:
    """One line per row (95% interval, median dot), diamonds (label -> value) on top."""
    labels = []
    for label, value in (diamonds or {}).items():
        ax.plot([value], [len(labels)], marker="D", color="black", ms=6, ls="none")
        labels.append(label)
    for i, r in enumerate(rows):
        y = len(labels)
        color = r.get("color", f"C{i}")
        ax.plot([r["lower"], r["upper"]], [y, y], color=color, lw=2)
        ax.plot([r["median"]], [y], "o", color=color)
        labels.append(r["label"])
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylim(len(labels) - 0.5, -0.5)


def forest(rows, published: dict | None = None, title: str = "", xlabel: str = "hazard ratio "
           "(log scale)", rmst_rows=None, rmst_tau: float = 24.0, arm_names=None) -> Figure:
    """Forest plot that compares like with like, one panel per kind of estimate.

    ``rows``: hazard ratios, dicts with ``label``, ``median``, ``lower``, ``upper`` and
    ``scale``: ``"marginal"`` (population-average HR: unadjusted, IPTW, PSM; the default) or
    ``"conditional"`` (HR given the PS spline, the covariates or the matched pair). Marginal and
    conditional HRs are different estimands (the HR is not collapsible), so each kind gets its
    own panel (titles :data:`HR_PANELS`), on a common log axis. ``published``: label ->
    published marginal HR, drawn as a diamond in the marginal panel only. ``rmst_rows``: the
    same dicts (no ``scale``) for the standardised difference in restricted mean survival to
    ``rmst_tau`` months (treated - control, months), a measure comparable across strategies,
    in a last panel, whose axis names the arms ``arm_names`` (treated, control; default the
    study's). The same label keeps its colour in every panel. Empty panels are left out.
    """
    treated, control = arm_names or STUDY_ARMS
    rows = list(rows)
    published = dict(published or {})
    rmst_rows = list(rmst_rows or [])
    bad = {r.get("scale", "marginal") for r in rows} - set(HR_PANELS)
    if bad:
        raise ValueError(f"forest: scale must be one of {', '.join(HR_PANELS)}; found {sorted(bad)}.")
    colours = {}
    for r in rows + rmst_rows:
        colours.setdefault(r["label"], f"C{len(colours)}")
    panels = []
    for scale in HR_PANELS:
        sel = [r for r in rows if r.get("scale", "marginal") == scale]
        dia = published if scale == "marginal" else {}
        if sel or dia:
            panels.append((scale, sel, dia))
    if rmst_rows:
        panels.append(("rmst", rmst_rows, {}))
    if not panels:
        panels.append(("marginal", [], {}))
    heights = [len(sel) + len(dia) + 1.6 for _, sel, dia in panels]
    fig = Figure(figsize=(6.5, 0.42 * sum(heights) + 0.6), layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    hr_values = [v for r in rows for v in (r["lower"], r["upper"])] + list(published.values())
    for ax, (kind, sel, dia) in zip(axes, panels):
        _interval_rows(ax, [{**r, "color": colours[r["label"]]} for r in sel], dia)
        if kind == "rmst":
            ax.axvline(0, color="black", lw=0.8)
            ax.set_xlabel(f"standardised RMST difference at {rmst_tau:g} months, {treated} - {control} "
                          "(months)", fontsize=8)
            ax.set_title(f"RMST difference to {rmst_tau:g} months (comparable across strategies)",
                         fontsize=9)
        else:
            _log_hr_axis(ax)
            if hr_values:
                lo, hi = min(min(hr_values), 1.0), max(max(hr_values), 1.0)
                ax.set_xlim(lo / 1.15, hi * 1.15)
            ax.set_xlabel(xlabel, fontsize=8)
            ax.set_title(HR_PANELS[kind], fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def hr_over_time(idata, title: str = "") -> Figure:
    """HR(t): posterior median and 95% interval of the interval-specific hazard ratio
    (``hr_t``, a time-varying PWE fit) as steps over the cut points (months), with the
    proportional-hazards summary for reference."""
    cuts = np.asarray(idata.attrs["cuts"], float)
    hr_t = idata.posterior["hr_t"].stack(sample=("chain", "draw")).values  # intervals x sample
    lo, med, hi = np.quantile(hr_t, [0.025, 0.5, 0.975], axis=1)
    end = float(idata.attrs.get("max_follow_up", cuts[-1] + 6))
    edges = np.append(cuts, max(end, cuts[-1] + 1))
    fig = Figure(figsize=(6.5, 3.6), layout="constrained")
    ax = fig.add_subplot()
    ax.fill_between(edges, np.append(lo, lo[-1]), np.append(hi, hi[-1]), step="post",
                    color="#7d3c98", alpha=0.2, lw=0, label="95% credible interval")
    ax.step(edges, np.append(med, med[-1]), where="post", color="#7d3c98", lw=1.8,
            label="posterior median HR(t)")
    ax.axhline(1, color="black", lw=0.8)
    log_ratio_axis(ax, "y")
    ax.set_xlim(0, edges[-1])
    ax.set_xlabel("months")
    ax.set_ylabel("hazard ratio (log scale)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7.5, frameon=False)
    return fig


# ------------------------------------------------------------------------------ ORR


def plot_rd(fits, labels=None, arm_names=None, important: float = IMPORTANT_RD):
    """Posterior density of the response risk difference for one fit or several (dict label ->
    idata, or a list with ``labels``); lines at 0 and at the clinically important difference
    ``important`` (default the study's 0.2). ``arm_names``: (treated, control) names on the
    axis (default the study's)."""
    import arviz as az
    from scipy.stats import gaussian_kde

    if isinstance(fits, az.InferenceData):
        fits = {labels or fits.attrs.get("adjustment", "fit"): fits}
    elif not isinstance(fits, dict):
        fits = dict(zip(labels or [f.attrs.get("adjustment", "fit") for f in fits], fits))
    fig = Figure(figsize=(6.5, 4), layout="constrained")
    ax = fig.add_subplot()
    allx = np.concatenate([f.posterior["rd"].values.ravel() for f in fits.values()])
    grid = np.linspace(min(allx.min(), -0.05), max(allx.max(), important + 0.05), 400)
    for i, (label, f) in enumerate(fits.items()):
        x = f.posterior["rd"].values.ravel()
        ax.plot(
            grid,
            gaussian_kde(x)(grid),
            color=f"C{i}",
            label=f"{label}: median {np.median(x):.2f}, P(RD>0) = {np.mean(x > 0):.3f}, "
            f"P(RD>{important:g}) = {np.mean(x > important):.2f}",
        )
    treated, control = arm_names or STUDY_ARMS
    finish_rd_axes(ax, f"{endpoint_label('orr')} risk difference, {treated} - {control} (marginal)",
                   important)
    return fig


# ------------------------------------------------------------------------------ design


def love_plot(balance: pd.DataFrame, threshold: float | None = None, absolute: bool = True) -> Figure:
    """Love plot: SMD per covariate before adjustment, after matching and after weighting.

    ``balance`` is a :func:`bayes_haic.balance.balance_table`; adjustments with all-NaN SMDs are left out. Points
    are ``|SMD|`` when ``absolute`` (default), else signed; a dashed line marks ``threshold``
    (default: the table's). Covariates are ordered by their SMD before adjustment, largest on top.
    The weighted points are labelled with the weights' estimand when the table's ``attrs`` name
    it (``weights_estimand``, set by :func:`bayes_haic.propensity.design`).
    """
    need = {"covariate", "smd_before"}
    if not need.issubset(balance.columns):
        raise InputError("love_plot: expected a table from balance_table() (columns covariate, smd_*).")
    if threshold is None:
        threshold = balance.attrs.get("threshold", 0.1)
    order = balance["smd_before"].abs().sort_values(kind="stable").index
    tab = balance.loc[order]
    y = np.arange(len(tab))
    styles = {
        "before": dict(marker="o", facecolors="none", edgecolors="0.3", label="before adjustment"),
        "matched": dict(marker="^", color="tab:blue", label="after PS matching"),
        "weighted": dict(marker="s", color="tab:orange", label="after IPT weighting"
                         + (f" ({balance.attrs['weights_estimand']})" if balance.attrs.get("weights_estimand") else "")),
    }
    fig = Figure(figsize=(6.0, 1.2 + 0.32 * len(tab)))
    ax = fig.add_subplot()
    for name, style in styles.items():
        col = f"smd_{name}"
        if col not in tab.columns or tab[col].isna().all():
            continue
        vals = tab[col].to_numpy(dtype=float)
        ax.scatter(np.abs(vals) if absolute else vals, y, s=36, zorder=3, **style)
    ax.axvline(threshold, ls="--", color="0.5", lw=1)
    if not absolute:
        ax.axvline(-threshold, ls="--", color="0.5", lw=1)
        ax.axvline(0, color="0.8", lw=1)
    ax.set_yticks(y, tab["covariate"].tolist())
    ax.set_xlabel("absolute standardized mean difference" if absolute else "standardized mean difference")
    denom = balance.attrs.get("denominator", "pooled")
    ax.set_title(f"Covariate balance (SMD denominator: {denom} SD, unadjusted cohort)", fontsize=9)
    ax.grid(axis="x", color="0.9")
    ax.legend(loc="lower right", fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def overlap_plot(ps, treatment, weights=None, bins: int = 25, arm_labels=None) -> Figure:
    """Propensity-score overlap: histograms per arm, treated above the axis and controls below.

    Counts of patients per bin of the PS on [0, 1]; with ``weights`` a weighted histogram
    (sum of weights per bin) is drawn as an outline over each arm. ``arm_labels`` maps 1 and 0
    to names (default HAIC-LEN-P and LEN-P).
    """
    ps = np.asarray(ps, dtype=float)
    t = np.asarray(treatment)
    if ps.ndim != 1 or t.shape != ps.shape:
        raise InputError("overlap_plot: ps and treatment must be 1-D arrays of equal length.")
    if np.any(~np.isfinite(ps) | (ps < 0) | (ps > 1)):
        raise InputError("overlap_plot: propensity scores must lie in [0, 1].")
    labels = {**ARM_LABELS, **(arm_labels or {})}
    edges = np.linspace(0.0, 1.0, int(bins) + 1)
    fig = Figure(figsize=(6.0, 3.8))
    ax = fig.add_subplot()
    for arm, sign, color in ((1, 1.0, "tab:red"), (0, -1.0, "tab:blue")):
        sel = t == arm
        counts, _ = np.histogram(ps[sel], bins=edges)
        ax.bar(edges[:-1], sign * counts, width=np.diff(edges), align="edge", color=color,
               alpha=0.45, edgecolor="white", label=f"{labels[arm]} (n = {int(sel.sum())})")
        if weights is not None:
            w = np.asarray(weights, dtype=float)
            wc, _ = np.histogram(ps[sel], bins=edges, weights=w[sel])
            ax.stairs(sign * wc, edges, color=color, lw=1.5,
                      label=f"{labels[arm]}, weighted")
    ax.axhline(0, color="0.3", lw=0.8)
    ax.set_xlim(0, 1)
    ax.set_xlabel("propensity score (probability of HAIC-LEN-P)" if not arm_labels else "propensity score")
    ax.set_ylabel("patients (controls below the axis)" if weights is None
                  else "patients; outline: sum of weights")
    ticks = ax.get_yticks()
    ax.set_yticks(ticks, [f"{abs(v):g}" for v in ticks])
    ax.legend(fontsize=8, frameon=False)
    ax.set_title("Propensity-score overlap by arm", fontsize=9)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------ model checks


def plot_survival_ppc(ppcs: list, title: str = "", arm_names=None) -> Figure:
    """One row per fit: left, the 95% band of replicate Kaplan-Meier curves per arm with the
    observed (IPTW: weighted) Kaplan-Meier curve; right, events per interval and arm, observed
    (dots) against the predictive median (dash) and 95% interval (bar). ``arm_names``:
    (treated, control) names in the legends."""
    names = _arm_names(arm_names)
    n = len(ppcs)
    fig = Figure(figsize=(8.6, 2.7 * n + 0.5), layout="constrained")
    axes = fig.subplots(n, 2, squeeze=False)
    for r, ppc in enumerate(ppcs):
        name = STRATEGY_LABELS.get(ppc.adjustment, ppc.adjustment)
        ax = axes[r, 0]
        for arm in ("treated", "control"):
            cv, col = ppc.curves[arm], ARM_COLORS[arm]
            ax.fill_between(cv["grid"], cv["lower"], cv["upper"], color=col, alpha=0.2, lw=0)
            ax.step(cv["km_time"], cv["km_surv"], where="post", color=col, lw=1.4,
                    label=f"{names[arm]} (p = {_fmt_p(ppc.p_km[arm])})")
        ax.set_ylim(0, 1.02)
        ax.set_xlim(0, None)
        ax.set_xlabel("months", fontsize=8)
        ax.set_ylabel("survival probability", fontsize=8)
        ax.set_title(f"{name}: {'weighted ' if ppc.weighted else ''}KM vs {ppc.n_draws} replicates",
                     fontsize=9)
        ax.legend(fontsize=7, frameon=False, loc="upper right")
        ax.tick_params(labelsize=7)
        ax = axes[r, 1]
        ev = ppc.events
        labels = ev[ev["arm"] == "control"]["interval"].tolist()
        x = np.arange(len(labels))
        for arm, shift in (("control", -0.17), ("treated", 0.17)):
            e, col = ev[ev["arm"] == arm], ARM_COLORS[arm]
            ax.vlines(x + shift, e["predicted_lower"], e["predicted_upper"], color=col, lw=2, alpha=0.35)
            ax.plot(x + shift, e["predicted_median"], "_", color=col, ms=8)
            ax.plot(x + shift, e["observed"], "o", color=col, ms=4, label=names[arm])
        ax.set_xticks(x, labels, rotation=45, fontsize=7)
        ax.set_xlabel("interval (months)", fontsize=8)
        ax.set_ylabel(("weighted " if ppc.weighted else "") + "events", fontsize=8)
        ax.set_title(f"{name}: events per interval (X² p = {_fmt_p(ppc.p_events)})", fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
        if r == 0:
            ax.legend(fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_response_ppc(ppcs: list, arm_names=None) -> Figure:
    """One panel per fit (three per row): replicate (weighted) responder proportions per arm
    (histograms) with the observed proportion (vertical line)."""
    names = _arm_names(arm_names)
    n = len(ppcs)
    ncol = min(n, 3)
    nrow = -(-n // ncol)
    fig = Figure(figsize=(3.0 * ncol + 0.4, 2.5 * nrow), layout="constrained")
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_axis_off()
    for ax, ppc in zip(axes, ppcs):
        tab = ppc.table.set_index("arm")
        for arm in ("control", "treated"):
            col = ARM_COLORS[arm]
            n_arm = int(tab.loc[arm, "n"])
            bins = 30 if tab.loc[arm, "weighted"] else (np.arange(n_arm + 2) - 0.5) / n_arm
            ax.hist(ppc.replicates[arm], bins=bins, color=col, alpha=0.35, density=True,
                    histtype="stepfilled", lw=0)  # one polygon, not a rectangle per bin
            ax.axvline(tab.loc[arm, "observed"], color=col, lw=1.6,
                       label=f"{names[arm]} (p = {_fmt_p(tab.loc[arm, 'p_value'])})")
        weighted = bool(tab["weighted"].any())
        ax.set_xlabel(("IPT-weighted " if weighted else "") + "proportion of responders", fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_yticks([])
        ax.set_title(STRATEGY_LABELS.get(ppc.adjustment, ppc.adjustment), fontsize=9)
        ax.legend(fontsize=7, frameon=False, loc="upper center")
        ax.tick_params(labelsize=7)
    return fig


# ------------------------------------------------------------------------------ reconstruction


def overlay_figure(rec) -> Figure:
    """Per arm: the digitised points and the KM estimate of the reconstructed data (months);
    ``rec`` is a :class:`bayes_haic.reconstruct.Reconstruction`."""
    fig = Figure(figsize=(9, 3.6), layout="constrained")
    axes = fig.subplots(1, len(rec.arms), squeeze=False, sharey=True).ravel()
    for ax, (arm, r) in zip(axes, rec.arms.items()):
        color = ARM_COLORS["treated" if rec.codes[arm] else "control"]
        ax.plot(r.time, r.survival, "o", ms=2.4, color="black", alpha=0.45,
                label="digitised points (cleaned)")
        km = r.km_curve()
        ax.step(km.time, km.survival, where="post", color=color, lw=1.4,
                label=f"KM of reconstructed data (n = {km.n})")
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("months")
        ax.set_title(f"{arm} (treatment = {rec.codes[arm]})", fontsize=9)
        ax.legend(fontsize=7, loc="lower left")
    axes[0].set_ylabel(f"{endpoint_label(rec.endpoint)} probability")
    return fig
