"""Figures of the patient-level analyses (matplotlib Figures; the report embeds them)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

ARM_COLORS = {"treated": "#c0392b", "control": "#2471a3"}
ARM_NAMES = {"treated": "HAIC-LEN-P", "control": "LEN-P"}


def km_panels(panels, endpoint: str, ncol: int = 3, arm_names=None) -> Figure:
    """Small multiples of :func:`km_vs_model`: ``panels`` is a list of ``(frame, draws, title,
    weights)``, one panel each; ``arm_names`` = (treated, control) names in the legend."""
    n = len(panels)
    ncol = min(ncol, n)
    nrow = -(-n // ncol)
    fig = Figure(figsize=(4.2 * ncol, 3.3 * nrow), layout="constrained")
    axes = fig.subplots(nrow, ncol, squeeze=False).ravel()
    for ax, (frame, draws, title, weights) in zip(axes, panels):
        _km_vs_model(ax, frame, endpoint, draws, title, weights, arm_names)
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig


def km_vs_model(frame, endpoint: str, draws, title: str = "", weights=None,
                arm_names=None) -> Figure:
    """Kaplan-Meier curves per arm (steps) over the model's posterior survival (median line and
    95% band) from ``draws`` (the ``survival`` variable of
    :func:`bayes_haic.survival.survival_estimands`, dims chain, draw, arm, time; months).
    ``weights`` (one per row of ``frame``) give weighted Kaplan-Meier curves, e.g. for IPTW.
    ``arm_names``: (treated, control) names in the legend (default HAIC-LEN-P, LEN-P)."""
    fig = Figure(figsize=(6.5, 4), layout="constrained")
    _km_vs_model(fig.add_subplot(), frame, endpoint, draws, title, weights, arm_names)
    return fig


def _km_vs_model(ax, frame, endpoint, draws, title, weights, arm_names=None) -> None:
    from .checks import kaplan_meier

    names = dict(zip(("treated", "control"), arm_names)) if arm_names else ARM_NAMES
    surv = draws["survival"]
    times = surv["time"].values
    for arm, code in (("treated", 1), ("control", 0)):
        s = surv.sel(arm=arm).stack(sample=("chain", "draw")).values  # time x sample
        lo, med, hi = np.quantile(s, [0.025, 0.5, 0.975], axis=1)
        color = ARM_COLORS[arm]
        ax.fill_between(times, lo, hi, color=color, alpha=0.18, lw=0)
        ax.plot(times, med, color=color, lw=1.2, ls="--")
        mask = (frame["treatment"] == code).to_numpy()
        g = frame[mask]
        w = None if weights is None else np.asarray(weights, float)[mask]
        # the package's (weighted) product-limit estimator, checked against lifelines in tests
        ts, sf = kaplan_meier(g[f"{endpoint}_time"].to_numpy(), g[f"{endpoint}_event"].to_numpy(), w)
        ax.step(np.r_[0.0, ts], np.r_[1.0, sf], where="post", color=color, lw=1.6,
                label=f"{names[arm]} (n = {len(g)}): Kaplan-Meier")
    ax.plot([], [], color="grey", ls="--", label="model: posterior median, 95% band")
    ax.set_xlim(0, times.max())
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("months")
    ax.set_ylabel(f"{endpoint.upper()} probability")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=6.5, frameon=False)


HR_PANELS = {
    "marginal": "Marginal hazard ratios (population-average)",
    "conditional": "Conditional hazard ratios (given PS spline, covariates or matched pair)",
}


def _log_hr_axis(ax) -> None:
    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

    ax.axvline(1, color="black", lw=0.8)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator([0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3]))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())


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
           "(log scale)", rmst_rows=None, rmst_tau: float = 24.0) -> Figure:
    """Forest plot that compares like with like, one panel per kind of estimate.

    ``rows``: hazard ratios, dicts with ``label``, ``median``, ``lower``, ``upper`` and
    ``scale``: ``"marginal"`` (population-average HR: unadjusted, IPTW, PSM; the default) or
    ``"conditional"`` (HR given the PS spline, the covariates or the matched pair). Marginal and
    conditional HRs are different estimands (the HR is not collapsible), so each kind gets its
    own panel (titles :data:`HR_PANELS`), on a common log axis. ``published``: label ->
    published marginal HR, drawn as a diamond in the marginal panel only. ``rmst_rows``: the
    same dicts (no ``scale``) for the standardised difference in restricted mean survival to
    ``rmst_tau`` months (treated - control, months), a measure comparable across strategies,
    in a last panel. The same label keeps its colour in every panel. Empty panels are left out.
    """
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
            ax.set_xlabel(f"standardised RMST difference at {rmst_tau:g} months, HAIC-LEN-P - LEN-P "
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
    ax.set_yscale("log")
    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

    ax.yaxis.set_major_locator(FixedLocator([0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3]))
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(0, edges[-1])
    ax.set_xlabel("months")
    ax.set_ylabel("hazard ratio (log scale)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7.5, frameon=False)
    return fig


def finish_rd_axes(ax, xlabel: str, important: float) -> None:
    """Common styling of an ORR risk-difference density plot: reference lines at 0 and at the
    clinically important difference, labels and legend."""
    ax.axvline(0, color="black", lw=0.8)
    ax.axvline(important, color="black", lw=0.5, ls="--")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("posterior density")
    ax.set_ylim(0, None)
    ax.legend(fontsize=7, frameon=False)
