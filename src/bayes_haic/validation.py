"""The validation study: do the credible intervals cover the truth?

Operating characteristics of every adjustment strategy on cohorts simulated by the calibrated
generator (:mod:`bayes_haic.synthetic`), whose true estimands are known, and simulation-based
calibration of the core models (:mod:`bayes_haic.calibration`).

Design
------
* **Scenarios** are generator settings (``data/synthetic/generator.toml``) with overrides, one
  TOML file each (``models/validation/*.toml``: ``name``, ``description`` and a ``[settings]``
  table with the keys of generator.toml to replace). When a scenario changes the arm sizes or
  the assignment coefficients but not ``assignment.intercept``, the intercept is recalibrated so
  that P(treated) in the source pool equals the cohort's share of treated patients: the cohort is
  then a random sample of the pool, whose covariate law is the ATE population.
* **Truth** per scenario comes from :func:`bayes_haic.synthetic.true_estimands`: a large
  counterfactual population (``truth_n`` patients) in which every patient has BOTH potential
  outcomes (death/progression times under each treatment from the same random draws; response
  probabilities under each treatment). The marginal log-HR is the Cox log-HR of the pooled
  population (each patient once per treatment, treatment the only covariate, censored at
  ``estimands.hr_horizon_months``); ATE = the whole source pool, ATT = the patients the
  assignment model assigned to treatment. The conditional log-HR is the generator's treatment
  coefficient (OS only: the PFS hazard is the sum of the progression and death hazards, so no
  single conditional PFS HR exists; nor under non-proportional hazards).
* **Estimands per strategy** (:data:`TARGETS`): ``none`` is the crude contrast, which targets
  no causal estimand under confounding: it is compared with the marginal ATE (its bias there is
  the confounding bias). ``iptw`` (propagated, Bayesian bootstrap) and ``iptw_fixed`` (fixed
  weights): marginal ATE. ``psm``: marginal in the matched population, compared with the ATT
  (1:1 matching of treated patients within a caliper; ATT-like, not exactly ATT when treated
  patients are dropped). ``covariates``: conditional on all covariates. ``ps_covariate``:
  compared with the same conditional log-HR, although strictly it conditions on the propensity
  score only, which by non-collapsibility is a slightly smaller effect: its "bias" includes that
  difference. The standardised RMST difference at 24 months targets the ATE for all strategies
  but ``psm`` (ATT); the ORR risk difference likewise.
* **One replicate** (:func:`run_replicate`) = one simulated cohort, all strategies x endpoints,
  a tidy list of rows. Its seeds derive from (study seed, scenario name, replicate index) by
  :class:`numpy.random.SeedSequence` (:func:`replicate_seeds`), so a replicate gives the same
  numbers wherever and whenever it runs.
* **Performance measures** (:func:`aggregate`; Morris, White & Crowther 2019, Stat Med 38:2074):
  bias = mean(estimate - truth) with MCSE sd/sqrt(R); RMSE with MCSE sd((est - truth)^2) /
  (2 RMSE sqrt(R)) (delta method); coverage p of the central 95% interval with MCSE
  sqrt(p (1 - p) / R); mean width with MCSE sd/sqrt(R); the rate of P(benefit) > 0.975
  (a "success" decision; under the null this is the false-positive rate) with MCSE; the rate of
  convergence failures. Estimates are posterior medians. All replicates count, converged or not.
* **Execution** (:func:`run_study`): each replicate and each SBC draw is a Dask task; results are
  written per task as Parquet part files as they finish (``replicates/<scenario>/rep-NNNNN.parquet``,
  ``sbc/<model>/draw-NNNNN.parquet``), so a study resumes and extends without recomputing.
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import json
import math
import os
import tempfile
import time
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from . import paths, synthetic
from .errors import InputError
from .results import atomic_write, atomic_write_text
from .sampler_settings import BACKENDS, DEFAULT_BACKEND

SURVIVAL = ("none", "ps_covariate", "iptw", "iptw_fixed", "psm", "covariates")
ORR = ("none", "ps_covariate", "iptw", "psm", "covariates")
ENDPOINTS = ("os", "pfs")

#: strategy -> (population of the marginal truth, HR estimand, label)
TARGETS = {
    "none": ("ATE", "marginal_log_hr", "crude contrast (compared with the marginal ATE)"),
    "iptw": ("ATE", "marginal_log_hr", "marginal ATE"),
    "iptw_fixed": ("ATE", "marginal_log_hr", "marginal ATE"),
    "psm": ("ATT", "marginal_log_hr", "marginal, matched population (compared with the ATT)"),
    "covariates": ("ATE", "conditional_log_hr", "conditional on the covariates"),
    "ps_covariate": ("ATE", "conditional_log_hr", "conditional (compared with the covariate-conditional)"),
}
COVERAGE_BAND = (0.93, 0.97)


# ------------------------------------------------------------------------------------ configuration
@dataclass
class Scenario:
    name: str
    description: str
    settings: dict
    path: str = ""


@dataclass
class StudyConfig:
    path: str
    seed: int = 20240329
    replicates: int = 200
    endpoints: tuple = ("os",)
    strategies: tuple = ("none", "ps_covariate", "iptw", "psm")
    orr: tuple = ()
    truth_n: int = 200000
    scenarios: list = field(default_factory=list)
    sampler: dict = field(default_factory=lambda: {"draws": 300, "tune": 300, "chains": 2,
                                                   "backend": DEFAULT_BACKEND, "target_accept": 0.9})
    n_boot: int = 200
    psm_design_draws: int = 2
    n_intervals: int = 8
    failure: dict = field(default_factory=lambda: {"rhat_max": 1.01, "ess_bulk_min": 100.0,
                                                   "divergences_max": 0})
    sbc: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "scenarios"}
        d["scenarios"] = [s.name for s in self.scenarios]
        d["endpoints"], d["strategies"], d["orr"] = list(self.endpoints), list(self.strategies), list(self.orr)
        return d


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found.") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc}).") from None


def _merge(base: dict, over: dict, src: str, prefix: str = "") -> dict:
    """``base`` with the values of ``over`` replaced (tables merged); unknown keys are errors."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        key = f"{prefix}{k}"
        if k not in out and k != "log_hr_treatment_by_interval":
            raise InputError(f"{src}: key 'settings.{key}': not a key of the generator settings "
                             f"(expected one of {', '.join(sorted(map(str, out)))}).")
        if isinstance(v, dict):
            if not isinstance(out.get(k), dict):
                raise InputError(f"{src}: key 'settings.{key}': expected a value, found a table.")
            out[k] = _merge(out[k], v, src, key + ".")
        else:
            out[k] = v
    return out


def recalibrate_intercept(settings: dict, n: int = 200000, seed: int = 1) -> float:
    """The assignment intercept that makes P(treated) in the source pool equal the cohort's
    share of treated patients (root of mean expit(a0 + x'alpha) = share on ``n`` draws)."""
    from scipy import optimize, special

    rng = np.random.default_rng(seed)
    X = synthetic.draw_covariates(settings, n, rng)
    lin = synthetic.design_matrix(settings, X) @ synthetic.coefficients(settings["assignment"]["coef"])
    c = settings["cohort"]
    share = c["n_treated"] / (c["n_treated"] + c["n_control"])
    return float(optimize.brentq(lambda a0: special.expit(a0 + lin).mean() - share, -20, 20))


def load_scenario(path, base: dict | None = None) -> Scenario:
    """Read a scenario file: ``name``, ``description``, ``[settings]`` (overrides of generator.toml)."""
    path = Path(path)
    raw = _read_toml(path)
    base = base if base is not None else synthetic.load_settings()
    name = raw.get("name")
    if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
        raise InputError(f"{path}: key 'name': expected a scenario name of letters, digits, '_' or "
                         f"'-', found {name!r}.")
    over = raw.get("settings", {})
    if not isinstance(over, dict):
        raise InputError(f"{path}: key 'settings': expected a table of generator settings to override.")
    extra = sorted(set(raw) - {"name", "description", "settings"})
    if extra:
        raise InputError(f"{path}: key '{extra[0]}': expected only 'name', 'description' and [settings].")
    s = _merge({k: v for k, v in base.items() if k != "_path"}, over, str(path))
    s["_path"] = f"{base.get('_path', 'generator.toml')} + {path}"
    try:
        synthetic.validate_settings(s)
    except InputError as exc:
        raise InputError(f"{path}: the scenario's settings are invalid: {exc}") from None
    changes_assignment = ("cohort" in over and ({"n_treated", "n_control"} & set(over["cohort"]))) or \
        ("assignment" in over and "coef" in over["assignment"])
    if changes_assignment and "intercept" not in over.get("assignment", {}):
        s["assignment"]["intercept"] = recalibrate_intercept(s)
    return Scenario(name, str(raw.get("description", "")), s, str(path))


def _check(cond, src, key, expected, found=None):
    if not cond:
        got = "" if found is None else f", found {found!r}"
        raise InputError(f"{src}: key '{key}': expected {expected}{got}.")


def load_config(path=None) -> StudyConfig:
    """Read ``models/validation.toml`` (or ``path``) and its scenario files."""
    path = Path(path) if path is not None else paths.shipped("models/validation.toml")
    raw = _read_toml(path)
    src = str(path)
    study = raw.get("study", {})
    cfg = StudyConfig(path=src)
    known = {"seed", "replicates", "endpoints", "strategies", "orr", "truth_n", "scenarios",
             "n_boot", "psm_design_draws", "n_intervals"}
    for k in study:
        _check(k in known, src, f"study.{k}", f"one of {', '.join(sorted(known))}")
    for k in ("seed", "replicates", "truth_n", "n_boot", "psm_design_draws", "n_intervals"):
        if k in study:
            v = study[k]
            _check(isinstance(v, int) and not isinstance(v, bool) and v >= (0 if k == "seed" else 1),
                   src, f"study.{k}", "a positive integer" if k != "seed" else "a non-negative integer", v)
            setattr(cfg, k, v)
    for k, allowed in (("endpoints", ENDPOINTS), ("strategies", SURVIVAL), ("orr", ORR)):
        if k in study:
            v = study[k]
            _check(isinstance(v, list) and all(x in allowed for x in v) and len(set(v)) == len(v),
                   src, f"study.{k}", f"a list of distinct values from {', '.join(allowed)}", v)
            setattr(cfg, k, tuple(v))
    sam = raw.get("sampler", {})
    for k, v in sam.items():
        _check(k in ("draws", "tune", "chains", "backend", "target_accept"), src, f"sampler.{k}",
               "one of draws, tune, chains, backend, target_accept")
        if k == "backend":
            _check(v in BACKENDS, src, "sampler.backend", f"one of {', '.join(map(repr, BACKENDS))}", v)
        elif k == "target_accept":
            _check(isinstance(v, float) and 0 < v < 1, src, "sampler.target_accept", "a number in (0, 1)", v)
        else:
            _check(isinstance(v, int) and not isinstance(v, bool) and v >= 1, src, f"sampler.{k}",
                   "a positive integer", v)
        cfg.sampler[k] = v
    fail = raw.get("failure", {})
    for k, v in fail.items():
        _check(k in cfg.failure, src, f"failure.{k}", f"one of {', '.join(cfg.failure)}")
        _check(isinstance(v, (int, float)) and not isinstance(v, bool), src, f"failure.{k}", "a number", v)
        cfg.failure[k] = v
    cfg.sbc = dict(raw.get("sbc", {}))
    from .calibration import check_sbc_config
    check_sbc_config(cfg.sbc, src)
    base = synthetic.load_settings()
    names = study.get("scenarios", ["calibrated"])
    _check(isinstance(names, list) and names and all(isinstance(n, str) for n in names), src,
           "study.scenarios", "a non-empty list of scenario files (relative to this file) or names "
           "of files in models/validation/", names)
    for n in names:
        p = Path(n)
        if not p.suffix:
            p = Path("validation") / f"{n}.toml"
        if not p.is_absolute():
            p = path.parent / p
        _check(p.is_file(), src, "study.scenarios", "existing scenario files", str(p))
        cfg.scenarios.append(load_scenario(p, base))
    dup = [s.name for s in cfg.scenarios if [t.name for t in cfg.scenarios].count(s.name) > 1]
    _check(not dup, src, "study.scenarios", "scenarios with distinct names", dup[:1])
    return cfg


# ------------------------------------------------------------------------------------------- truth
def truth_table(scenario: Scenario, n: int) -> pd.DataFrame:
    """True estimands of ``scenario`` (:func:`bayes_haic.synthetic.true_estimands`, ``n`` patients)."""
    return synthetic.true_estimands(scenario.settings, n=n)


def truth_for(truth: pd.DataFrame, endpoint: str, strategy: str, measure: str) -> tuple[float, str]:
    """(true value, label) of the estimand ``strategy`` targets, for ``measure`` in ``log_hr``,
    ``rmst_diff_24``, ``rd``."""
    pop, hr_key, label = TARGETS[strategy]
    pop = "ATT" if strategy == "psm" else "ATE"
    t = truth[truth["population"] == pop]

    def get(ep, est):
        v = t[(t["endpoint"] == ep) & (t["estimand"] == est)]["value"]
        return float(v.iloc[0]) if len(v) else math.nan

    if measure == "log_hr":
        if hr_key == "conditional_log_hr" and endpoint != "os":
            return math.nan, "conditional (no single conditional PFS HR: not scored)"
        return get(endpoint, hr_key), label
    if measure == "rmst_diff_24":
        return get(endpoint, "rmst_24_difference"), f"standardised RMST difference, {pop}"
    if measure == "rd":
        return get("response", "risk_difference"), f"marginal risk difference, {pop}"
    raise ValueError(measure)


# ---------------------------------------------------------------------------------------- seeding
def _name_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")


def replicate_seeds(study_seed: int, scenario: str, replicate: int) -> tuple[int, int]:
    """(cohort seed, sampler seed) of one replicate, from SeedSequence((study seed, hash of the
    scenario name, replicate index)): independent of execution order, worker and run."""
    state = np.random.SeedSequence([int(study_seed), _name_key(scenario), int(replicate)]).generate_state(2)
    return int(state[0]), int(state[1])


# ------------------------------------------------------------------------------------- replicate
def cohort_from_frame(frame: pd.DataFrame, covariates, name: str = "<simulated>", data_tier: str = "synthetic"):
    """A validated :class:`~bayes_haic.schema.Cohort` from a simulated frame in the cohort schema
    (written to a temporary CSV and read by :func:`bayes_haic.schema.load_cohort`, so it is
    checked and typed exactly as a file would be)."""
    from .schema import load_cohort

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "cohort.csv"
        p.write_text(synthetic.format_cohort(frame))
        c = load_cohort(p, covariates=list(covariates))
    return replace(c, path=name, data_tier=data_tier)


def _interval(x: np.ndarray) -> tuple[float, float, float, float, float]:
    lo, med, hi = np.quantile(x, [0.025, 0.5, 0.975])
    return float(med), float(lo), float(hi), float(np.mean(x)), float(np.std(x, ddof=1))


def _failed(conv: dict, rules: dict) -> bool:
    if not conv or all(math.isnan(v) for v in conv.values() if isinstance(v, float)):
        return False
    return bool(conv["rhat_max"] > rules["rhat_max"] or conv["ess_bulk_min"] < rules["ess_bulk_min"]
                or conv["divergences"] > rules["divergences_max"])


def run_replicate(task: dict) -> pd.DataFrame:
    """One replicate: simulate a cohort of the scenario, fit every strategy, score against truth.

    ``task``: ``scenario`` (name), ``settings`` (generator settings), ``replicate``, ``study_seed``,
    ``endpoints``, ``strategies``, ``orr`` (ORR strategies), ``sampler`` (dict), ``n_boot``,
    ``psm_design_draws``, ``n_intervals``, ``failure`` (rules), ``truth`` (records of the truth
    table). Returns one row per endpoint x strategy x measure.
    """
    from . import analysis, survival
    from .sampling import SamplerSettings

    s = task["settings"]
    cseed, sseed = replicate_seeds(task["study_seed"], task["scenario"], task["replicate"])
    frame = synthetic.simulate_cohort(s, s["cohort"]["n_treated"], s["cohort"]["n_control"], cseed)
    cohort = cohort_from_frame(frame, synthetic.COVARIATES, name=f"{task['scenario']}#{task['replicate']}")
    truth = pd.DataFrame(task["truth"])
    sampler = SamplerSettings(seed=sseed, **task["sampler"])
    t0 = time.perf_counter()
    design = analysis.make_design(cohort)
    design_seconds = time.perf_counter() - t0
    rows = []
    base = {"scenario": task["scenario"], "replicate": int(task["replicate"]), "cohort_seed": cseed,
            "sampler_seed": sseed, "n_treated": cohort.n_treated, "n_control": cohort.n_control}

    def add(endpoint, strategy, measure, draws, benefit, conv, seconds, extra=None):
        value, label = truth_for(truth, endpoint, strategy, measure)
        med, lo, hi, mean, sd = _interval(draws)
        rows.append({**base, "endpoint": endpoint, "strategy": strategy, "measure": measure,
                     "estimand": label, "truth": value, "estimate": med, "mean": mean, "sd": sd,
                     "lower": lo, "upper": hi, "covered": bool(lo <= value <= hi) if not math.isnan(value) else None,
                     "width": hi - lo, "prob_benefit": float(np.mean(benefit(draws))),
                     "rhat_max": conv.get("rhat_max", math.nan), "ess_bulk_min": conv.get("ess_bulk_min", math.nan),
                     "divergences": conv.get("divergences", math.nan), "failed": _failed(conv, task["failure"]),
                     "seconds": seconds, "design_seconds": design_seconds, **(extra or {})})

    for endpoint in task["endpoints"]:
        cuts = analysis.endpoint_cuts(cohort, endpoint, n_intervals=task["n_intervals"])
        for strategy in task["strategies"]:
            t0 = time.perf_counter()
            if strategy == "iptw_fixed":
                idata = survival.fit_pwe(cohort.frame, endpoint, adjust="iptw", weights=design.weights,
                                         cuts=cuts, sampler=sampler,
                                         weights_estimand=design.weight_settings["estimand"])
            else:
                idata = analysis.fit_survival(cohort, endpoint, strategy, design=design, sampler=sampler,
                                              cuts=cuts, n_boot=task["n_boot"],
                                              psm_design_draws=task["psm_design_draws"])
            conv = survival.fit_diagnostics(idata)
            _, draws = survival.survival_estimands(idata, times=[0.0], rmst_tau=24.0)
            seconds = time.perf_counter() - t0
            log_hr = idata.posterior["log_hr"].values.ravel()
            add(endpoint, strategy, "log_hr", log_hr, lambda x: x < 0, conv, seconds)
            add(endpoint, strategy, "rmst_diff_24", draws["rmst_diff"].values.ravel(), lambda x: x > 0,
                conv, math.nan)
    for strategy in task["orr"]:
        t0 = time.perf_counter()
        idata = analysis.fit_orr(cohort, strategy, design=design, sampler=sampler, n_boot=task["n_boot"])
        conv = {}
        if "sample_stats" in idata.groups() and "bootstrap" not in idata.groups():
            from .sampling import convergence
            conv = convergence(idata, var_names=[v for v in ("intercept", "log_or", "p_arm") if v in idata.posterior])
        add("response", strategy, "rd", idata.posterior["rd"].values.ravel(), lambda x: x > 0, conv,
            time.perf_counter() - t0)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------- aggregation
def _mcse_rate(p: float, r: int) -> float:
    return math.sqrt(p * (1 - p) / r) if r > 0 else math.nan


def performance(err: np.ndarray, covered: np.ndarray, width: np.ndarray, success: np.ndarray,
                failed: np.ndarray) -> dict:
    """Performance measures of one estimator with Monte Carlo standard errors (Morris et al. 2019).

    ``err`` = estimate - truth, ``covered`` (bool), ``width`` of the interval, ``success``
    (P(benefit) > 0.975), ``failed`` (convergence failure), one entry per replicate.
    """
    r = len(err)
    out = {"replicates": r}
    ok = ~np.isnan(err)
    e = err[ok]
    re = len(e)
    if re:
        bias = float(np.mean(e))
        mse = float(np.mean(e ** 2))
        rmse = math.sqrt(mse)
        sd_e = float(np.std(e, ddof=1)) if re > 1 else math.nan
        sd_se = float(np.std(e ** 2, ddof=1)) if re > 1 else math.nan
        cov = float(np.mean(covered[ok].astype(float)))
        out.update({"bias": bias, "bias_mcse": sd_e / math.sqrt(re), "empirical_se": sd_e,
                    "rmse": rmse, "rmse_mcse": sd_se / (2 * rmse * math.sqrt(re)) if rmse > 0 else math.nan,
                    "coverage": cov, "coverage_mcse": _mcse_rate(cov, re)})
    else:
        out.update({k: math.nan for k in ("bias", "bias_mcse", "empirical_se", "rmse", "rmse_mcse",
                                          "coverage", "coverage_mcse")})
    out["mean_width"] = float(np.mean(width))
    out["mean_width_mcse"] = float(np.std(width, ddof=1) / math.sqrt(r)) if r > 1 else math.nan
    sr = float(np.mean(success))
    out["success_rate"], out["success_rate_mcse"] = sr, _mcse_rate(sr, r)
    fr = float(np.mean(failed))
    out["failure_rate"], out["failure_rate_mcse"] = fr, _mcse_rate(fr, r)
    return out


def aggregate(reps: pd.DataFrame) -> pd.DataFrame:
    """One row per scenario x endpoint x strategy x measure with :func:`performance` and the truth."""
    rows = []
    keys = ["scenario", "endpoint", "strategy", "measure"]
    for key, g in reps.groupby(keys, sort=False):
        perf = performance((g["estimate"] - g["truth"]).to_numpy(float),
                           g["covered"].eq(True).to_numpy(bool), g["width"].to_numpy(float),
                           (g["prob_benefit"] > 0.975).to_numpy(bool), g["failed"].to_numpy(bool))
        rows.append({**dict(zip(keys, key)), "estimand": g["estimand"].iloc[0],
                     "truth": float(g["truth"].iloc[0]), **perf,
                     # a fit's time is stored on its first measure (log HR / RD) only
                     "mean_seconds": float(g["seconds"].mean()) if key[3] != "rmst_diff_24" else math.nan})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------ storage
def part_path(out: Path, kind: str, group: str, index: int) -> Path:
    return Path(out) / kind / group / f"{'rep' if kind == 'replicates' else 'draw'}-{index:05d}.parquet"


def write_part(path: Path, frame: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))


def read_parts(out: Path, kind: str) -> pd.DataFrame:
    files = sorted((Path(out) / kind).glob("*/*.parquet"))
    if not files:
        return pd.DataFrame()
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


# -------------------------------------------------------------------------------------------- tasks
def _task_key(task: dict) -> str:
    return f"{task['kind']}-{task['group']}-{task['index']}-{hashlib.sha1(repr(sorted(task['id'].items())).encode()).hexdigest()[:8]}"


def run_task(task: dict) -> pd.DataFrame:
    """Execute one task (a replicate or an SBC draw); what a Dask worker runs."""
    if task["kind"] == "replicates":
        return run_replicate(task["payload"])
    from .calibration import sbc_draw

    return sbc_draw(task["payload"])


def plan_tasks(cfg: StudyConfig, out: Path, replicates: int, truths: dict) -> list[dict]:
    """The tasks not yet stored in ``out``: the SBC draws, then replicates 0..``replicates``-1 of
    every scenario (replicate-major, so an interrupted study has about as many of each)."""
    tasks = []
    for rep in range(replicates):
        for sc in cfg.scenarios:
            if part_path(out, "replicates", sc.name, rep).exists():
                continue
            payload = {"scenario": sc.name, "settings": sc.settings, "replicate": rep,
                       "study_seed": cfg.seed, "endpoints": list(cfg.endpoints),
                       "strategies": list(cfg.strategies), "orr": list(cfg.orr),
                       "sampler": dict(cfg.sampler), "n_boot": cfg.n_boot,
                       "psm_design_draws": cfg.psm_design_draws, "n_intervals": cfg.n_intervals,
                       "failure": dict(cfg.failure), "truth": truths[sc.name].to_dict("records")}
            tasks.append({"kind": "replicates", "group": sc.name, "index": rep, "payload": payload,
                          "id": {"seed": cfg.seed, "scenario": sc.name, "rep": rep}})
    from .calibration import sbc_tasks

    for t in sbc_tasks(cfg.sbc, cfg.seed):
        if not part_path(out, "sbc", t["group"], t["index"]).exists():
            tasks.append(t)
    # SBC draws first (a fixed, small set), then the replicates, replicate-major
    return [t for t in tasks if t["kind"] == "sbc"] + [t for t in tasks if t["kind"] == "replicates"]


#: sampler backends that run the same sampler on the same compiled density and give bit-identical
#: draws (tests/test_validation.py checks it), so a study may mix them: backend -> its equivalent
SAME_DRAWS = {"nutpie-numba": "nutpie"}


def _same_draws_backend(sampler: dict) -> dict:
    out = dict(sampler)
    if "backend" in out:
        out["backend"] = SAME_DRAWS.get(out["backend"], out["backend"])
    return out


def _config_fingerprint(cfg: StudyConfig) -> dict:
    """What must not change between the runs of one study: everything but the number of
    replicates, the file's path and the choice between backends of identical draws."""
    d = cfg.as_dict()
    d.pop("replicates")
    d.pop("path")
    d["sampler"] = _same_draws_backend(d["sampler"])
    if isinstance(d.get("sbc"), dict) and isinstance(d["sbc"].get("sampler"), dict):
        d["sbc"] = dict(d["sbc"], sampler=_same_draws_backend(d["sbc"]["sampler"]))
    d["scenario_settings"] = {s.name: hashlib.sha256(json.dumps(s.settings, default=str, sort_keys=True)
                                                     .encode()).hexdigest()[:16] for s in cfg.scenarios}
    return d


def _check_out(out: Path, cfg: StudyConfig) -> None:
    """Refuse to extend a stored study with different settings (its numbers would mix).

    A folder with only a combined result (``meta.json``, as committed in ``data/validation``) is
    checked against the configuration stored in its meta (without the scenario settings' hashes,
    which only ``study.json`` records)."""
    meta = out / "study.json"
    fp = _config_fingerprint(cfg)
    if not meta.exists() and (out / "meta.json").exists():
        stored = json.loads((out / "meta.json").read_text()).get("config", {})
        stored_cfg = StudyConfig(path="", **{k: v for k, v in stored.items()
                                            if k not in ("path", "scenarios") and k in StudyConfig.__dataclass_fields__})
        stored_cfg.scenarios = cfg.scenarios if stored.get("scenarios") == [s.name for s in cfg.scenarios] else \
            [Scenario(n, "", {}) for n in stored.get("scenarios", [])]
        a, b = (json.loads(json.dumps(_config_fingerprint(c), default=str)) for c in (stored_cfg, cfg))
        if a != b:
            raise InputError(f"{out}: holds a validation study with other settings ({out / 'meta.json'}); "
                             "expected the same configuration to resume or extend it, or a new --out folder.")
    if meta.exists():
        old = json.loads(meta.read_text())
        if old.get("fingerprint") != json.loads(json.dumps(fp, default=str)):
            raise InputError(f"{out}: holds a validation study with other settings ({meta}); "
                             "expected the same configuration to resume or extend it, or a new --out folder.")
    else:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(meta, json.dumps({"fingerprint": fp}, indent=2, default=str) + "\n")


def unpack_combined(out: Path) -> int:
    """Write the part files of the replicates and SBC draws that are stored only in the combined
    tables (``replicates.parquet``, ``sbc.parquet``; e.g. a committed result whose part files are
    not in the repository), so the study resumes and extends from them. Returns how many parts
    were written; existing parts are left as they are."""
    written = 0
    for kind, table, group, index in (("replicates", "replicates.parquet", "scenario", "replicate"),
                                      ("sbc", "sbc.parquet", "model", "draw")):
        p = Path(out) / table
        if not p.is_file():
            continue
        df = pd.read_parquet(p)
        for (g, i), rows in df.groupby([group, index], sort=True):
            part = part_path(out, kind, str(g), int(i))
            if not part.exists():
                write_part(part, rows.reset_index(drop=True))
                written += 1
    return written


def run_study(cfg: StudyConfig, out, *, replicates: int | None = None, scheduler: str | None = None,
              n_workers: int | None = None, progress: bool = True, echo=print, compute: bool = True) -> dict:
    """Run (resume, extend) the study into ``out`` on Dask; returns counts and timings.

    ``scheduler``: address of an existing Dask scheduler (``tcp://HOST:PORT``); default a local
    cluster of ``n_workers`` single-threaded worker processes (default: all cores). Each finished
    task's rows are written at once (Parquet part file), so an interrupted study loses only the
    tasks in flight.
    """
    from dask.distributed import Client, LocalCluster, as_completed

    out = Path(out)
    replicates = cfg.replicates if replicates is None else int(replicates)
    _check_out(out, cfg)
    unpacked = unpack_combined(out)
    if unpacked:
        echo(f"{out}: {unpacked} stored replicates/draws unpacked from the combined tables into part files")
    truths = {}
    for sc in cfg.scenarios:
        tp = out / "truth" / f"{sc.name}.csv"
        if tp.exists():
            truths[sc.name] = pd.read_csv(tp, keep_default_na=False, na_values=[""]).fillna({"arm": ""})
        else:
            echo(f"truth of scenario {sc.name}: {cfg.truth_n} patients with both potential outcomes")
            truths[sc.name] = truth_table(sc, cfg.truth_n)
            tp.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(tp, truths[sc.name].to_csv(index=False, lineterminator="\n"))
    tasks = plan_tasks(cfg, out, replicates, truths) if compute else []
    done = 0
    t_start = time.time()
    if tasks:
        cluster = None
        if scheduler:
            try:
                client = Client(scheduler, timeout="20s")
            except (OSError, TimeoutError) as exc:
                raise InputError(f"--scheduler {scheduler}: cannot connect to a Dask scheduler there "
                                 f"({exc}); expected the address a running `dask scheduler` prints, "
                                 "like tcp://127.0.0.1:8786.") from None
        else:
            cluster = LocalCluster(n_workers=n_workers or os.cpu_count() or 1, threads_per_worker=1,
                                   processes=True, dashboard_address=None)
            client = Client(cluster)
        try:
            futures = [client.submit(run_task, t, key=_task_key(t), pure=False, priority=-i)
                       for i, t in enumerate(tasks)]
            by_key = {f.key: t for f, t in zip(futures, tasks)}
            bar = None
            if progress:
                from tqdm import tqdm

                bar = tqdm(total=len(tasks), unit="task", desc="validate", dynamic_ncols=True)
            for fut in as_completed(futures):
                t = by_key[fut.key]
                frame = fut.result()
                write_part(part_path(out, t["kind"], t["group"], t["index"]), frame)
                done += 1
                fut.release()
                if bar is not None:
                    bar.update(1)
            if bar is not None:
                bar.close()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    return {"submitted": len(tasks), "done": done, "seconds": time.time() - t_start}


# ------------------------------------------------------------------------------------------ results
def collect(cfg: StudyConfig, out) -> dict:
    """Read the stored parts of ``out`` and write the combined result: ``replicates.parquet``,
    ``sbc.parquet``, ``summary.csv``, ``sbc_summary.csv`` and ``meta.json``. Returns them."""
    from .calibration import sbc_summary

    out = Path(out)
    reps = read_parts(out, "replicates")
    sbc = read_parts(out, "sbc")
    summ = aggregate(reps) if len(reps) else pd.DataFrame()
    sbcs = sbc_summary(sbc) if len(sbc) else pd.DataFrame()
    n_rep = reps.groupby("scenario")["replicate"].nunique().to_dict() if len(reps) else {}
    meta = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "seed": cfg.seed,
        "replicates_per_scenario": {k: int(v) for k, v in n_rep.items()},
        "sbc_draws": {k: int(v) for k, v in sbc.groupby("model")["draw"].nunique().items()} if len(sbc) else {},
        "config": cfg.as_dict(),
        "scenarios": {s.name: s.description for s in cfg.scenarios},
        "coverage_band": list(COVERAGE_BAND),
        "same_draws_backends": {k: v for k, v in SAME_DRAWS.items()},
        "backend_note": "Sampler backends that give bit-identical draws count as the same settings "
                        f"({', '.join(f'{k} = {v}' for k, v in SAME_DRAWS.items())}), so a stored study "
                        "may hold replicates computed with either (see the README for this result's).",
    }
    if len(reps):
        atomic_write(out / "replicates.parquet", lambda tmp: reps.to_parquet(tmp, index=False))
    if len(sbc):
        atomic_write(out / "sbc.parquet", lambda tmp: sbc.to_parquet(tmp, index=False))
    atomic_write_text(out / "summary.csv", summ.to_csv(index=False, lineterminator="\n"))
    atomic_write_text(out / "sbc_summary.csv", sbcs.to_csv(index=False, lineterminator="\n"))
    atomic_write_text(out / "meta.json", json.dumps(meta, indent=2, default=str) + "\n")
    return {"replicates": reps, "sbc": sbc, "summary": summ, "sbc_summary": sbcs, "meta": meta}


def load_result(folder) -> dict | None:
    """A stored validation result (``summary.csv``, ``sbc.parquet``, ``sbc_summary.csv``,
    ``meta.json``), or None when ``folder`` holds none."""
    folder = Path(folder)
    if not (folder / "meta.json").is_file() or not (folder / "summary.csv").is_file():
        return None
    res = {"meta": json.loads((folder / "meta.json").read_text())}
    read = lambda f: pd.read_csv(f, keep_default_na=False, na_values=["", "nan", "NaN"])  # a scenario may be called "null"
    res["summary"] = read(folder / "summary.csv") if (folder / "summary.csv").stat().st_size > 1 else pd.DataFrame()
    res["sbc"] = pd.read_parquet(folder / "sbc.parquet") if (folder / "sbc.parquet").is_file() else pd.DataFrame()
    p = folder / "sbc_summary.csv"
    res["sbc_summary"] = read(p) if p.is_file() and p.stat().st_size > 1 else pd.DataFrame()
    return res
