"""The shared vocabulary: names of the adjustment strategies, the arms and their colours, and
the formatters of intervals and probabilities that tables and figures use.

One definition each, imported by the statistics (labels in result tables), the report and the
command line. Nothing here computes a statistic.
"""

from __future__ import annotations

import math

# --------------------------------------------------------------------------- adjustment strategies

STRATEGY_LABELS = {
    "none": "unadjusted",
    "iptw": "IPTW",
    "ps_covariate": "PS spline covariate",
    "psm": "PS matching",
    "covariates": "covariate adjustment",
}


def strategy_label(strategy: str, estimand: str | None = "ATE") -> str:
    """The report's name of an adjustment strategy (:data:`STRATEGY_LABELS`; unknown names as
    given). IPTW names its weights' ``estimand``, e.g. ``"IPTW (ATT weights)"`` (the method
    column says how the weights' uncertainty is handled); ``estimand=None`` gives the bare label."""
    label = STRATEGY_LABELS.get(strategy, strategy)
    return f"{label} ({estimand} weights)" if strategy == "iptw" and estimand else label


# --------------------------------------------------------------------------- estimands

#: the ``estimand`` of a contrast in the PS-matched set (or a published matched set's curves)
MATCHED_SET = "marginal (matched set)"


def marginal_estimand(strategy: str, weights_estimand: str = "ATE") -> str:
    """The results' ``estimand`` of a population-average (marginal) contrast of a fit under
    ``strategy``, naming its population: ``"marginal"`` for the unadjusted comparison (the
    cohort as it is, confounding included); ``"marginal (ATE)"`` (ATT, ATO) for IPTW, the
    weights' population; ``"marginal (ATE)"`` for the contrasts that covariate and PS-covariate
    models standardise over the whole analysed cohort (RMST difference, response risk
    difference, ratio and odds ratio); :data:`MATCHED_SET` for PS matching. Their hazard ratios
    are conditional instead (the fits' own ``estimand``)."""
    if strategy == "iptw":
        return f"marginal ({weights_estimand})"
    if strategy in ("covariates", "ps_covariate"):
        return "marginal (ATE)"
    return MATCHED_SET if strategy == "psm" else "marginal"


# --------------------------------------------------------------------------- arms

# the study's own arm names, used only for its own (synthetic) cohort and its published evidence;
# any other cohort names its arms ("treated"/"control" unless the user names them)
STUDY_ARMS = ("HAIC-LEN-P", "LEN-P")  # (treated, control)
ARM_NAMES = {"treated": STUDY_ARMS[0], "control": STUDY_ARMS[1]}
ARM_LABELS = {1: STUDY_ARMS[0], 0: STUDY_ARMS[1]}  # by treatment code
ARM_COLORS = {"treated": "#c0392b", "control": "#2471a3"}


def arm_names(names=None) -> dict:
    """``{"treated": ..., "control": ...}`` from a (treated, control) pair; the study's names
    when ``names`` is None."""
    return dict(zip(("treated", "control"), names)) if names else dict(ARM_NAMES)


# --------------------------------------------------------------------------- reported thresholds

#: the clinically important response risk difference (default of ``[response]
#: important_difference``): every response result reports P(RD > 0.2)
IMPORTANT_RD = 0.2
#: the clinically important hazard ratio (default of ``[survival] important_hr``): every
#: patient-level HR result reports P(HR < 0.7) beside P(HR < 1)
IMPORTANT_HR = 0.7


# --------------------------------------------------------------------------- formatters


def format_ci(median: float, lower: float, upper: float, digits: int = 2) -> str:
    """``"0.62 (0.48 to 0.80)"``: a posterior median with its interval."""
    return f"{median:.{digits}f} ({lower:.{digits}f} to {upper:.{digits}f})"


def format_ci_dash(s: dict, digits: int = 2) -> str:
    """``"0.62 (0.48-0.80)"`` from a dict with ``median``, ``lower``, ``upper``."""
    return f"{s['median']:.{digits}f} ({s['lower']:.{digits}f}-{s['upper']:.{digits}f})"


def format_range(lower: float, upper: float, digits: int = 2) -> str:
    """``"0.48-0.80"``: an interval alone."""
    return f"{lower:.{digits}f}-{upper:.{digits}f}"


def format_probability(p: float) -> str:
    """A posterior probability for display: '> 0.999' and '< 0.001' at the extremes, where
    Monte Carlo draws cannot resolve more digits; NaN as an en dash."""
    if p != p:
        return "–"
    if p > 0.999:
        return "> 0.999"
    if p < 0.001:
        return "< 0.001"
    return f"{p:.3f}"


def format_p_value(p: float) -> str:
    """A predictive p-value in a figure legend: two decimals, '< 0.005' below, NaN as a dash."""
    return "–" if not math.isfinite(p) else ("< 0.005" if p < 0.005 else f"{p:.2f}")


def format_small_probability(p: float) -> str:
    """A prior tail probability in words: scientific notation below 1e-4, else 3-4 decimals."""
    if p < 1e-4:
        return f"{p:.1e}"
    return f"{p:.4f}" if p < 0.01 else f"{p:.3f}"
