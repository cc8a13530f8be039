"""The synthetic default cohort: a seeded data-generating process calibrated to the publication.

The study's patient data are not public, so the package ships a SYNTHETIC cohort of 127 HAIC-LEN-P
(``treatment = 1``) and 103 LEN-P (``treatment = 0``) patients. Every parameter of the generator is
data, in ``data/synthetic/generator.toml``; this module only implements the process. Time is in
months throughout (1 month = 30.4375 days); hazards are per month.

Model
-----
Covariates ``x`` (see :data:`COVARIATES`) come from a Gaussian copula with one latent tumour
aggressiveness factor ``Z``: each covariate's latent normal is ``U = l Z + sqrt(1 - l^2) e``.

Assignment (confounding): ``logit P(A = 1 | x) = alpha_0 + alpha' x``. Exact arm sizes come from a
source pool: ``pool_factor * (n_treated + n_control)`` patients are drawn and assigned by this model;
``n_treated`` are then sampled without replacement from the assigned-treated and ``n_control`` from
the assigned-controls. So the treated have the covariate law ``P(x | A = 1)`` and the controls
``P(x | A = 0)``; ``alpha_0`` is calibrated so that ``P(A = 1) = 127/230`` and the pooled cohort has
the pool's covariate law (the ATE population).

Outcomes: death time ``D`` and progression time ``P`` are independent given ``(x, a)`` with
conditional proportional hazards

    h_k(t | x, a) = h0_k(t) exp(gamma_k a + beta_k' x),   k in {death, progression},

``h0_k`` piecewise constant between cut points (months). Optionally (validation scenarios; not
used by the shipped settings) ``log_hr_treatment_by_interval`` gives one treatment log-HR per
baseline interval, a non-proportional treatment effect (``gamma_k`` then varies with t). ``OS = D``; ``PFS = min(P, D)``, so PFS never
exceeds OS. Administrative censoring: entry uniform over the accrual window, follow-up until the data
cut-off, plus exponential loss to follow-up. Response: ``logit P(R = 1 | x, a) = r_0 + r_a a + r' x``,
with a fraction missing completely at random.

Estimands (:func:`true_estimands`) are computed in a large counterfactual population in which every
patient has both potential outcomes. ATE population: the source pool's covariate law. ATT
population: the covariate law of the assigned-treated, ``P(x | A = 1)``.

Public API: :func:`load_settings`, :func:`simulate_cohort`, :func:`simulate_population`,
:func:`true_estimands`, :func:`write_cohort`, :func:`calibrate`, :func:`cox_hr`.
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import math
import os
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from . import paths
from .errors import InputError
from .results import atomic_write_text

#: Covariates of the synthetic cohort, in column order (the default adjustment set).
COVARIATES = (
    "age",
    "male",
    "hbv",
    "ecog_1",
    "child_pugh_b",
    "afp_400",
    "tumor_size_cm",
    "tumor_multiple",
    "mvi",
    "mets_multi",
)

#: Outcome columns of the cohort, in column order (before the covariates).
OUTCOME_COLUMNS = ("id", "treatment", "os_time", "os_event", "pfs_time", "pfs_event", "response")

SETTINGS_RELPATH = Path("data") / "synthetic" / "generator.toml"

_TIME_DECIMALS = 2
_MIN_TIME = 0.01


# ----------------------------------------------------------------------------------------- settings
def load_settings(path: str | os.PathLike | None = None) -> dict:
    """Read and validate generator settings from a TOML file (default: the shipped generator.toml).

    Returns a nested dict (the TOML tables) with the file path under ``"_path"``. Raises
    :class:`InputError` naming the file, the key and the expected form when the file is unreadable
    or a parameter is missing or malformed.
    """
    p = Path(path) if path is not None else paths.shipped(SETTINGS_RELPATH)
    try:
        with open(p, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise InputError(f"{p}: settings file not found.") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{p}: not valid TOML ({exc}).") from None
    raw["_path"] = str(p)
    validate_settings(raw)
    return raw


def validate_settings(s: dict) -> None:
    """Check a settings dict at the door; raise :class:`InputError` naming file, key and expected form."""
    src = s.get("_path", "<settings>")

    def fail(key, expected, found=None):
        got = "" if found is None else f", found {found!r}"
        raise InputError(f"{src}: key '{key}': expected {expected}{got}.")

    def table(key):
        node = s
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                fail(key, "a table")
            node = node[part]
        if not isinstance(node, dict):
            fail(key, "a table", node)
        return node

    def number(tbl, tkey, key, lo=-math.inf, hi=math.inf, integer=False, open_lo=False):
        if tkey not in tbl:
            fail(key, "a number" + (" (integer)" if integer else ""))
        v = tbl[tkey]
        ok_type = isinstance(v, int) if integer else isinstance(v, (int, float))
        if isinstance(v, bool) or not ok_type or not math.isfinite(v):
            fail(key, "an integer" if integer else "a finite number", v)
        if v < lo or v > hi or (open_lo and v == lo):
            rng = f"{'(' if open_lo else '['}{lo}, {hi}]"
            fail(key, f"a number in {rng}", v)
        return v

    coh = table("cohort")
    number(coh, "n_treated", "cohort.n_treated", 1, integer=True)
    number(coh, "n_control", "cohort.n_control", 1, integer=True)
    number(coh, "seed", "cohort.seed", 0, integer=True)
    number(coh, "pool_factor", "cohort.pool_factor", 2, integer=True)

    for name in COVARIATES:
        key = f"covariates.{name}"
        c = table(key)
        kind = c.get("kind")
        if kind not in ("binary", "normal", "lognormal"):
            fail(f"{key}.kind", "one of 'binary', 'normal', 'lognormal'", kind)
        number(c, "loading", f"{key}.loading", -0.999, 0.999)
        if kind == "binary":
            number(c, "prevalence", f"{key}.prevalence", 0.0, 1.0, open_lo=True)
            if c["prevalence"] >= 1:
                fail(f"{key}.prevalence", "a probability in (0, 1)", c["prevalence"])
        else:
            if kind == "normal":
                number(c, "mean", f"{key}.mean")
                number(c, "sd", f"{key}.sd", 0, open_lo=True)
            else:
                number(c, "median", f"{key}.median", 0, open_lo=True)
                number(c, "sdlog", f"{key}.sdlog", 0, open_lo=True)
            number(c, "min", f"{key}.min")
            number(c, "max", f"{key}.max", c["min"])
            number(c, "center", f"{key}.center")
            number(c, "scale", f"{key}.scale", 0, open_lo=True)

    def coef_table(key):
        t = table(key)
        for name in COVARIATES:
            number(t, name, f"{key}.{name}")
        extra = sorted(set(t) - set(COVARIATES))
        if extra:
            fail(f"{key}.{extra[0]}", f"one of the covariates {', '.join(COVARIATES)}", extra[0])

    number(table("assignment"), "intercept", "assignment.intercept")
    coef_table("assignment.coef")

    for ep in ("os", "progression"):
        t = table(ep)
        cuts, haz = t.get("cuts_months"), t.get("baseline_hazard")
        if (
            not isinstance(cuts, list)
            or not all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in cuts)
            or any(c <= 0 or not math.isfinite(c) for c in cuts)
            or any(b <= a for a, b in zip(cuts, cuts[1:]))
        ):
            fail(f"{ep}.cuts_months", "a list of strictly increasing positive finite months", cuts)
        if (
            not isinstance(haz, list)
            or len(haz) != len(cuts) + 1
            or not all(isinstance(h, (int, float)) and not isinstance(h, bool) for h in haz)
            or any(not (h > 0 and math.isfinite(h)) for h in haz)
        ):
            fail(
                f"{ep}.baseline_hazard",
                f"a list of {len(cuts) + 1} positive hazards per month (one more than cuts_months)",
                haz,
            )
        number(t, "log_hr_treatment", f"{ep}.log_hr_treatment")
        by = t.get("log_hr_treatment_by_interval")
        if by is not None and (
            not isinstance(by, list)
            or len(by) != len(cuts) + 1
            or not all(isinstance(g, (int, float)) and not isinstance(g, bool) and math.isfinite(g) for g in by)
        ):
            fail(
                f"{ep}.log_hr_treatment_by_interval",
                f"a list of {len(cuts) + 1} finite log-HRs, one per baseline-hazard interval (optional: "
                "non-proportional hazards)",
                by,
            )
        coef_table(f"{ep}.log_hr")

    r = table("response")
    number(r, "intercept", "response.intercept")
    number(r, "treatment", "response.treatment")
    number(r, "missing_fraction", "response.missing_fraction", 0.0, 0.5)
    coef_table("response.coef")

    f = table("followup")
    for k in ("accrual_start", "accrual_end", "data_cutoff"):
        if not isinstance(f.get(k), _dt.date) or isinstance(f.get(k), _dt.datetime):
            fail(f"followup.{k}", "a TOML date like 2019-01-01 (unquoted)", f.get(k))
    if not f["accrual_start"] <= f["accrual_end"] < f["data_cutoff"]:
        fail("followup.data_cutoff", "accrual_start <= accrual_end < data_cutoff", f["data_cutoff"])
    number(f, "loss_rate_per_month", "followup.loss_rate_per_month", 0.0)
    number(f, "days_per_month", "followup.days_per_month", 0, open_lo=True)

    e = table("estimands")
    number(e, "n", "estimands.n", 100, integer=True)
    number(e, "seed", "estimands.seed", 0, integer=True)
    number(e, "hr_horizon_months", "estimands.hr_horizon_months", 0, open_lo=True)

    cal = table("calibration")
    for k in ("os_hr", "pfs_hr", "os_median_treated", "os_median_control", "pfs_median_treated",
              "pfs_median_control"):
        number(cal, k, f"calibration.{k}", 0, open_lo=True)
    for k in ("orr_treated", "orr_control"):
        number(cal, k, f"calibration.{k}", 0.0, 1.0, open_lo=True)
    number(cal, "n", "calibration.n", 100, integer=True)
    number(cal, "seed", "calibration.seed", 0, integer=True)


def _checked(settings: dict | None) -> dict:
    if settings is None:
        return load_settings()
    validate_settings(settings)
    return settings


# --------------------------------------------------------------------------------------- generators
def draw_covariates(s: dict, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Covariates for ``n`` patients from the latent-factor Gaussian copula (see module docstring)."""
    z = rng.standard_normal(n)
    cols = {}
    for name in COVARIATES:
        c = s["covariates"][name]
        lo = c["loading"]
        u = lo * z + math.sqrt(1.0 - lo * lo) * rng.standard_normal(n)
        if c["kind"] == "binary":
            cols[name] = (u > stats.norm.ppf(1.0 - c["prevalence"])).astype(np.int64)
        elif c["kind"] == "normal":
            cols[name] = np.clip(np.round(c["mean"] + c["sd"] * u), c["min"], c["max"]).astype(np.int64)
        else:
            x = np.round(c["median"] * np.exp(c["sdlog"] * u), 1)
            cols[name] = np.clip(x, c["min"], c["max"])
    return pd.DataFrame(cols)


def design_matrix(s: dict, X: pd.DataFrame) -> np.ndarray:
    """Covariates as used in linear predictors: binary as 0/1, continuous as (x - center) / scale."""
    out = np.empty((len(X), len(COVARIATES)))
    for j, name in enumerate(COVARIATES):
        c = s["covariates"][name]
        x = X[name].to_numpy(dtype=float)
        out[:, j] = x if c["kind"] == "binary" else (x - c["center"]) / c["scale"]
    return out


def coefficients(table: dict) -> np.ndarray:
    """A settings table of per-covariate coefficients as a vector in :data:`COVARIATES` order
    (the columns of :func:`design_matrix`)."""
    return np.array([float(table[name]) for name in COVARIATES])


def propensity(settings: dict, X: pd.DataFrame) -> np.ndarray:
    """True propensity score P(treatment = 1 | x) of the generator's assignment model."""
    s = settings
    lp = s["assignment"]["intercept"] + design_matrix(s, X) @ coefficients(s["assignment"]["coef"])
    return special.expit(lp)


def pwe_inverse(cuts, hazards, target: np.ndarray) -> np.ndarray:
    """Times t with H0(t) = target for the piecewise-constant hazard (vectorised inversion)."""
    cuts = np.asarray(cuts, dtype=float)
    haz = np.asarray(hazards, dtype=float)
    starts = np.concatenate([[0.0], cuts])
    cum_at_starts = np.concatenate([[0.0], np.cumsum(haz[:-1] * np.diff(starts))])
    j = np.searchsorted(cum_at_starts, target, side="right") - 1
    return starts[j] + (target - cum_at_starts[j]) / haz[j]


def _pwe_cumhaz(cuts, hazards, t: np.ndarray) -> np.ndarray:
    """Baseline cumulative hazard H0(t) of the piecewise-constant hazard."""
    starts = np.concatenate([[0.0], np.asarray(cuts, dtype=float)])
    ends = np.concatenate([starts[1:], [np.inf]])
    t = np.asarray(t, dtype=float)[..., None]
    return (np.clip(t - starts, 0.0, ends - starts) * np.asarray(hazards)).sum(axis=-1)


def _event_times(s: dict, key: str, D: np.ndarray, a, e: np.ndarray) -> np.ndarray:
    """Event times (months) under treatment ``a`` given unit-exponential draws ``e``.

    With the optional ``log_hr_treatment_by_interval`` (one log-HR per baseline interval) the
    treatment effect varies over time (non-proportional hazards): the treated arm's baseline
    hazard is ``h0_j exp(g_j)`` and ``log_hr_treatment`` is not used for the times.
    """
    m = s[key]
    by = m.get("log_hr_treatment_by_interval")
    if by is None:
        lp = m["log_hr_treatment"] * np.asarray(a, dtype=float) + D @ coefficients(m["log_hr"])
        return pwe_inverse(m["cuts_months"], m["baseline_hazard"], e * np.exp(-lp))
    target = e * np.exp(-(D @ coefficients(m["log_hr"])))
    a = np.broadcast_to(np.asarray(a, dtype=float), target.shape)
    h0 = np.asarray(m["baseline_hazard"], dtype=float)
    out = pwe_inverse(m["cuts_months"], h0, target)
    treated = a == 1
    if treated.any():
        out[treated] = pwe_inverse(m["cuts_months"], h0 * np.exp(np.asarray(by, dtype=float)), target[treated])
    return out


def _response_prob(s: dict, D: np.ndarray, a) -> np.ndarray:
    r = s["response"]
    return special.expit(r["intercept"] + r["treatment"] * np.asarray(a, dtype=float) + D @ coefficients(r["coef"]))


def _draw_pool(s: dict, n: int, rng: np.random.Generator) -> pd.DataFrame:
    X = draw_covariates(s, n, rng)
    X["treatment"] = (rng.random(n) < propensity(s, X)).astype(np.int64)
    return X


def simulate_population(settings: dict | None, n: int, seed: int) -> pd.DataFrame:
    """A counterfactual population of ``n`` source-pool patients with both potential outcomes.

    Columns: the covariates; ``treatment`` (assigned by the assignment model: rows with 1 form the
    ATT population); ``ps`` (true propensity); for a in {0, 1}: ``death_time_a``, ``prog_time_a``,
    ``pfs_time_a`` = min(prog, death), ``response_a`` (0/1 draw) and ``p_response_a`` (its
    conditional probability). Times in months, uncensored. Potential outcomes share their random
    draws across arms (common random numbers), which leaves marginal estimands unchanged.
    """
    s = _checked(settings)
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise InputError(f"simulate_population: n: expected a positive integer, found {n!r}.")
    rng = np.random.default_rng(seed)
    X = _draw_pool(s, int(n), rng)
    D = design_matrix(s, X)
    X["ps"] = propensity(s, X)
    e_death, e_prog, u_resp = rng.standard_exponential(n), rng.standard_exponential(n), rng.random(n)
    for a in (0, 1):
        death = _event_times(s, "os", D, a, e_death)
        prog = _event_times(s, "progression", D, a, e_prog)
        p = _response_prob(s, D, a)
        X[f"death_time_{a}"] = death
        X[f"prog_time_{a}"] = prog
        X[f"pfs_time_{a}"] = np.minimum(prog, death)
        X[f"p_response_{a}"] = p
        X[f"response_{a}"] = (u_resp < p).astype(np.int64)
    return X


def simulate_cohort(settings: dict | None, n_treated: int, n_control: int, seed: int) -> pd.DataFrame:
    """Simulate an observational cohort with exactly ``n_treated`` and ``n_control`` patients.

    Patients are drawn from a source pool assigned by the logistic assignment model (see module
    docstring), then given death and progression times (months), administrative censoring (uniform
    entry over the accrual window to the data cut-off) and exponential loss to follow-up, and a
    response (1/0, missing completely at random with ``response.missing_fraction``).

    Returns columns ``id, treatment, os_time, os_event, pfs_time, pfs_event, response`` and then
    :data:`COVARIATES`; rows ordered by entry date, ``id`` 1..n. Times are rounded to 0.01 month and
    are >= 0.01; ``pfs_time <= os_time``; ``response`` is a nullable integer (``<NA>`` = not
    evaluable).
    """
    s = _checked(settings)
    for name, v in (("n_treated", n_treated), ("n_control", n_control)):
        if not isinstance(v, (int, np.integer)) or v < 0:
            raise InputError(f"simulate_cohort: {name}: expected a non-negative integer, found {v!r}.")
    rng = np.random.default_rng(seed)
    n_pool = s["cohort"]["pool_factor"] * (n_treated + n_control)
    while True:
        pool = _draw_pool(s, max(n_pool, 1), rng)
        idx_t = np.flatnonzero(pool["treatment"].to_numpy() == 1)
        idx_c = np.flatnonzero(pool["treatment"].to_numpy() == 0)
        if len(idx_t) >= n_treated and len(idx_c) >= n_control:
            break
        n_pool *= 2  # rare: the pool was too small for the requested arm sizes
    chosen = np.concatenate(
        [rng.choice(idx_t, n_treated, replace=False), rng.choice(idx_c, n_control, replace=False)]
    )
    X = pool.iloc[chosen].reset_index(drop=True)
    n = len(X)
    a = X["treatment"].to_numpy()
    D = design_matrix(s, X)

    death = _event_times(s, "os", D, a, rng.standard_exponential(n))
    prog = _event_times(s, "progression", D, a, rng.standard_exponential(n))
    p_resp = _response_prob(s, D, a)
    resp = (rng.random(n) < p_resp).astype(np.int64)
    missing = rng.random(n) < s["response"]["missing_fraction"]

    f = s["followup"]
    window_days = (f["accrual_end"] - f["accrual_start"]).days + 1
    entry_day = rng.integers(0, window_days, size=n)  # uniform entry date within the accrual window
    cutoff_day = (f["data_cutoff"] - f["accrual_start"]).days
    admin = (cutoff_day - entry_day) / f["days_per_month"]
    rate = f["loss_rate_per_month"]
    loss = rng.exponential(1.0 / rate, size=n) if rate > 0 else np.full(n, np.inf)
    cens = np.minimum(admin, loss)

    pfs_true = np.minimum(prog, death)
    os_time = np.maximum(np.round(np.minimum(death, cens), _TIME_DECIMALS), _MIN_TIME)
    pfs_time = np.maximum(np.round(np.minimum(pfs_true, cens), _TIME_DECIMALS), _MIN_TIME)
    pfs_time = np.minimum(pfs_time, os_time)

    out = pd.DataFrame(
        {
            "treatment": a.astype(np.int64),
            "os_time": os_time,
            "os_event": (death <= cens).astype(np.int64),
            "pfs_time": pfs_time,
            "pfs_event": (pfs_true <= cens).astype(np.int64),
            "response": pd.array(np.where(missing, pd.NA, resp), dtype="Int64"),
        }
    )
    for name in COVARIATES:
        out[name] = X[name].to_numpy()
    order = np.lexsort((rng.random(n), entry_day))  # by entry date, ties at random
    out = out.iloc[order].reset_index(drop=True)
    out.insert(0, "id", np.arange(1, n + 1, dtype=np.int64))
    return out


# -------------------------------------------------------------------------------------- estimands
def cox_hr(time, event, group, weights=None) -> tuple[float, float]:
    """Cox partial-likelihood log-HR of a binary ``group`` (the only covariate), Breslow ties.

    Solved by Newton's method on the score; ``weights`` (e.g. IPTW) multiply each row's contribution.
    Returns ``(log_hr, se)`` with the model-based (inverse information) standard error, which is not
    robust to weights. Reference: Cox (1972); Breslow (1974).
    """
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=float)
    g = np.asarray(group, dtype=float)
    w = np.ones_like(time) if weights is None else np.asarray(weights, dtype=float)
    _, inv = np.unique(time, return_inverse=True)
    d = np.bincount(inv, weights=w * event)
    d1 = np.bincount(inv, weights=w * event * g)
    r1 = np.bincount(inv, weights=w * g)[::-1].cumsum()[::-1]
    r0 = np.bincount(inv, weights=w * (1 - g))[::-1].cumsum()[::-1]
    keep = d > 0
    d, d1, r1, r0 = d[keep], d1[keep], r1[keep], r0[keep]
    b = 0.0
    for _ in range(50):
        eb = math.exp(b)
        p = r1 * eb / (r1 * eb + r0)
        score = np.sum(d1 - d * p)
        info = np.sum(d * p * (1 - p))
        step = score / info
        b += step
        if abs(step) < 1e-10:
            break
    eb = math.exp(b)
    p = r1 * eb / (r1 * eb + r0)
    return b, 1.0 / math.sqrt(np.sum(d * p * (1 - p)))


def _median(t: np.ndarray) -> float:
    return float(np.median(t))


def _survival_estimands(t0, t1, horizon) -> list[tuple[str, str, float]]:
    """Marginal estimands of one endpoint from potential times of one population (no censoring)."""
    n = len(t0)
    time = np.concatenate([t0, t1])
    grp = np.concatenate([np.zeros(n), np.ones(n)])
    event = (time <= horizon).astype(float)
    log_hr, _ = cox_hr(np.minimum(time, horizon), event, grp)
    rows = [("marginal_log_hr", "", log_hr), ("marginal_hr", "", math.exp(log_hr))]
    rmst = {}
    for arm, t in (("control", t0), ("treated", t1)):
        rows += [
            ("median", arm, _median(t)),
            ("survival_12", arm, float(np.mean(t > 12.0))),
            ("survival_24", arm, float(np.mean(t > 24.0))),
        ]
        rmst[arm] = float(np.mean(np.minimum(t, 24.0)))
        rows.append(("rmst_24", arm, rmst[arm]))
    rows.append(("rmst_24_difference", "", rmst["treated"] - rmst["control"]))
    return rows


def true_estimands(settings: dict | None = None, n: int | None = None, seed: int | None = None) -> pd.DataFrame:
    """True marginal estimands of the generator, from a counterfactual population (months).

    A population of ``n`` source-pool patients (default ``estimands.n``) is simulated with both
    potential outcomes and no censoring (:func:`simulate_population`). Populations: ``ATE`` = all
    of them; ``ATT`` = those the assignment model assigned to HAIC-LEN-P.

    Definitions, per endpoint (``os``; ``pfs`` = min(progression, death)):

    * ``marginal_hr`` / ``marginal_log_hr``: Cox partial-likelihood (log) HR fitted to the pooled
      counterfactual population (each patient once under each treatment; treatment the only
      covariate), all times administratively censored at ``estimands.hr_horizon_months``. This is
      the large-sample limit of an unadjusted Cox fit in a randomised trial (or of an IPTW Cox fit)
      with that follow-up; it depends on the horizon because marginal hazards are not proportional.
    * ``conditional_log_hr``: the generator's treatment coefficient (OS: death hazard; PFS: the
      progression hazard, noting the PFS hazard is the sum of progression and death hazards).
    * ``median``, ``survival_12``, ``survival_24`` (probabilities), ``rmst_24`` (restricted mean
      survival time to 24 months) per arm, and ``rmst_24_difference`` (treated minus control).

    Response: ``orr`` per arm, ``risk_difference``, ``risk_ratio``, ``odds_ratio`` (marginal),
    computed from the conditional response probabilities averaged over the population (exact given
    the simulated covariates), and ``conditional_log_or``.

    Returns a tidy DataFrame with columns ``endpoint, estimand, arm, population, value, n``
    (``arm`` is ``treated``, ``control`` or empty for contrasts).
    """
    s = _checked(settings)
    n = int(s["estimands"]["n"] if n is None else n)
    seed = s["estimands"]["seed"] if seed is None else seed
    horizon = float(s["estimands"]["hr_horizon_months"])
    pop = simulate_population(s, n, seed)
    rows = []
    for pop_name, mask in (("ATE", np.ones(n, bool)), ("ATT", pop["treatment"].to_numpy() == 1)):
        sub = pop[mask]
        for ep, col, key in (("os", "death_time", "os"), ("pfs", "pfs_time", "progression")):
            est = _survival_estimands(sub[f"{col}_0"].to_numpy(), sub[f"{col}_1"].to_numpy(), horizon)
            cond = s[key].get("log_hr_treatment_by_interval") is None  # else not one number (non-PH)
            est.append(("conditional_log_hr", "", float(s[key]["log_hr_treatment"]) if cond else math.nan))
            rows += [(ep, e, arm, pop_name, v, len(sub)) for e, arm, v in est]
        p0 = float(sub["p_response_0"].mean())
        p1 = float(sub["p_response_1"].mean())
        rows += [
            ("response", "orr", "control", pop_name, p0, len(sub)),
            ("response", "orr", "treated", pop_name, p1, len(sub)),
            ("response", "risk_difference", "", pop_name, p1 - p0, len(sub)),
            ("response", "risk_ratio", "", pop_name, p1 / p0, len(sub)),
            ("response", "odds_ratio", "", pop_name, (p1 / (1 - p1)) / (p0 / (1 - p0)), len(sub)),
            ("response", "conditional_log_or", "", pop_name, float(s["response"]["treatment"]), len(sub)),
        ]
    return pd.DataFrame(rows, columns=["endpoint", "estimand", "arm", "population", "value", "n"])


# ------------------------------------------------------------------------------------ calibration
def _weibull_shape_hazards(cuts, level: float, shape: float) -> list[float]:
    """Piecewise hazards h_j = level * (m_j / 6) ** (shape - 1) at interval midpoints m_j (months)."""
    starts = np.concatenate([[0.0], cuts])
    ends = np.concatenate([cuts, [cuts[-1] + 12.0]])
    mid = (starts + ends) / 2.0
    return list(level * (mid / 6.0) ** (shape - 1.0))


def calibrate(settings: dict | None = None, n: int | None = None, seed: int | None = None) -> dict:
    """Find the calibrated generator parameters; returns the new values and what they achieve.

    How the shipped values were found (everything else in the settings is held fixed):

    1. ``assignment.intercept``: root of P(A = 1) = n_treated / (n_treated + n_control) in the pool.
    2. OS: the death baseline hazard is a Weibull-type curve evaluated at interval midpoints
       (:func:`_weibull_shape_hazards`, parameters level and shape) with conditional log-HR gamma.
       The three unknowns solve three equations: marginal HR (ATE population, definition of
       :func:`true_estimands`) = ``calibration.os_hr``, median OS treated / control in the ATT
       population = ``calibration.os_median_treated`` / ``os_median_control`` (on the log scale).
    3. PFS: the same for the progression hazard, with PFS = min(progression, death) and the targets
       ``pfs_hr``, ``pfs_median_treated``, ``pfs_median_control``.
    4. Response: intercept and treatment log-OR solve ORR treated / control in the ATE population =
       ``orr_treated`` / ``orr_control`` (the IPTW ORRs of the abstract).

    All equations use one counterfactual population with common random numbers (``calibration.n``
    patients, ``calibration.seed``), solved with ``scipy.optimize.least_squares``. Paste the
    returned ``values`` into generator.toml (rounded as there) and re-run :func:`true_estimands`.
    """
    s = copy.deepcopy(_checked(settings))
    cal = s["calibration"]
    n = int(cal["n"] if n is None else n)
    seed = cal["seed"] if seed is None else seed
    horizon = float(s["estimands"]["hr_horizon_months"])
    rng = np.random.default_rng(seed)

    # 1. assignment intercept
    X = draw_covariates(s, n, rng)
    D = design_matrix(s, X)
    share = s["cohort"]["n_treated"] / (s["cohort"]["n_treated"] + s["cohort"]["n_control"])
    lin = D @ coefficients(s["assignment"]["coef"])
    alpha0 = optimize.brentq(lambda a0: special.expit(a0 + lin).mean() - share, -10, 10)
    s["assignment"]["intercept"] = alpha0
    treated = rng.random(n) < special.expit(alpha0 + lin)
    e_death, e_prog = rng.standard_exponential(n), rng.standard_exponential(n)

    def times(key, params, e):
        level, shape, gamma = math.exp(params[0]), math.exp(params[1]), params[2]
        m = s[key]
        m["baseline_hazard"] = _weibull_shape_hazards(m["cuts_months"], level, shape)
        m["log_hr_treatment"] = gamma
        return _event_times(s, key, D, 0, e), _event_times(s, key, D, 1, e)

    def resid(t0, t1, hr, med1, med0):
        tt = np.concatenate([t0, t1])
        g = np.concatenate([np.zeros(n), np.ones(n)])
        b, _ = cox_hr(np.minimum(tt, horizon), (tt <= horizon).astype(float), g)
        return [
            b - math.log(hr),
            math.log(np.median(t1[treated])) - math.log(med1),
            math.log(np.median(t0[treated])) - math.log(med0),
        ]

    def fit(fun, x0):
        # medians of a finite sample are only piecewise smooth in the parameters: use coarse steps
        sol = optimize.least_squares(fun, x0, diff_step=1e-2, xtol=1e-10, ftol=1e-10)
        return sol.x, sol.fun

    # 2. OS
    def f_os(p):
        d0, d1 = times("os", p, e_death)
        return resid(d0, d1, cal["os_hr"], cal["os_median_treated"], cal["os_median_control"])

    p_os, r_os = fit(f_os, [math.log(0.025), math.log(1.0), -1.1])
    death0, death1 = times("os", p_os, e_death)

    # 3. PFS
    def f_pfs(p):
        q0, q1 = times("progression", p, e_prog)
        return resid(np.minimum(q0, death0), np.minimum(q1, death1), cal["pfs_hr"],
                     cal["pfs_median_treated"], cal["pfs_median_control"])

    p_pfs, r_pfs = fit(f_pfs, [math.log(0.035), math.log(0.6), -0.6])
    times("progression", p_pfs, e_prog)

    # 4. response
    lin_r = D @ coefficients(s["response"]["coef"])

    def f_resp(p):
        return [
            special.expit(p[0] + lin_r).mean() - cal["orr_control"],
            special.expit(p[0] + p[1] + lin_r).mean() - cal["orr_treated"],
        ]

    p_resp = optimize.fsolve(f_resp, [-1.0, 1.6], xtol=1e-12)
    s["response"]["intercept"], s["response"]["treatment"] = float(p_resp[0]), float(p_resp[1])

    values = {
        "assignment.intercept": alpha0,
        "os.baseline_hazard": s["os"]["baseline_hazard"],
        "os.log_hr_treatment": s["os"]["log_hr_treatment"],
        "os.weibull_level_shape": [math.exp(p_os[0]), math.exp(p_os[1])],
        "progression.baseline_hazard": s["progression"]["baseline_hazard"],
        "progression.log_hr_treatment": s["progression"]["log_hr_treatment"],
        "progression.weibull_level_shape": [math.exp(p_pfs[0]), math.exp(p_pfs[1])],
        "response.intercept": s["response"]["intercept"],
        "response.treatment": s["response"]["treatment"],
    }
    return {"values": values, "residuals": {"os": list(r_os), "pfs": list(r_pfs)}, "settings": s}


# ------------------------------------------------------------------------------------------ output
def format_cohort(df: pd.DataFrame) -> str:
    """CSV text with fixed float formatting (times 2 decimals, size 1 decimal), '\\n' line ends."""
    out = pd.DataFrame({"id": df["id"].astype(np.int64).astype(str)})
    for col in df.columns[1:]:
        v = df[col]
        if col in ("os_time", "pfs_time"):
            out[col] = [f"{x:.{_TIME_DECIMALS}f}" for x in v]
        elif col == "tumor_size_cm":
            out[col] = [f"{x:.1f}" for x in v]
        elif col == "response":
            out[col] = ["" if pd.isna(x) else str(int(x)) for x in v]
        else:
            out[col] = v.astype(np.int64).astype(str)
    return out.to_csv(index=False, lineterminator="\n")


def meta_path(csv_path: str | os.PathLike) -> Path:
    """Sidecar path of a cohort CSV: ``cohort.csv`` -> ``cohort.meta.json``."""
    p = Path(csv_path)
    return p.with_name((p.name[:-4] if p.name.endswith(".csv") else p.name) + ".meta.json")


def _display_path(p: str) -> str:
    """A settings path relative to the repository root when it lies inside it (to the installed
    package's data for an installed package: ``bayes_haic:data/...``), else absolute."""
    shown = paths.display_path(p)
    return shown if shown != str(p) else Path(p).resolve().as_posix()


def write_cohort(path: str | os.PathLike, settings: dict | None = None, seed: int | None = None) -> Path:
    """Simulate the default cohort and write it (CSV + ``.meta.json`` sidecar) atomically.

    Arm sizes come from ``cohort.n_treated`` / ``cohort.n_control``; ``seed`` defaults to
    ``cohort.seed``. Output is byte-for-byte reproducible (fixed float formatting, no timestamps).
    Each file is written to a temporary file in the same folder and moved into place with
    ``os.replace``. Returns the CSV path.
    """
    s = _checked(settings)
    seed = s["cohort"]["seed"] if seed is None else seed
    path = Path(path)
    if not path.parent.is_dir():
        raise InputError(f"{path}: folder {path.parent} does not exist.")
    df = simulate_cohort(s, s["cohort"]["n_treated"], s["cohort"]["n_control"], seed)
    meta = {
        "data_tier": "synthetic",
        "generator": "bayes_haic.synthetic",
        "settings": _display_path(s.get("_path", "<in-memory settings>")),
        "seed": int(seed),
        "n_treated": int(s["cohort"]["n_treated"]),
        "n_control": int(s["cohort"]["n_control"]),
        "time_unit": "months",
        "covariates": list(COVARIATES),
        "description": (
            "SYNTHETIC cohort, not the study's patient data: simulated by bayes_haic.synthetic "
            "(latent-factor covariates, logistic treatment assignment, conditional proportional "
            "piecewise-exponential hazards for death and progression, logistic response) with "
            "parameters calibrated to the abstract of Int J Surg 2024 (PMID 38549220): marginal HR "
            "0.384 (OS) and 0.507 (PFS), median OS 27.0 vs 9.0 and PFS 8.0 vs 3.0 months, ORR 66.1% "
            "vs 27.8%. treatment 1 = HAIC-LEN-P, 0 = LEN-P. See DATA_CARD.md."
        ),
    }
    atomic_write_text(path, format_cohort(df))
    atomic_write_text(meta_path(path), json.dumps(meta, indent=2) + "\n")
    return path


def write_true_estimands(path: str | os.PathLike, settings: dict | None = None) -> Path:
    """Write :func:`true_estimands` for ``settings`` (default: the shipped ones) as CSV, atomically.

    Values are written with 6 decimals, so the file is byte-for-byte reproducible.
    """
    s = _checked(settings)
    path = Path(path)
    est = true_estimands(s)
    atomic_write_text(path, est.to_csv(index=False, float_format="%.6f", lineterminator="\n"))
    return path
