"""Simulation-based calibration (SBC; Talts, Betancourt, Simpson, Vehtari & Gelman 2018,
arXiv:1804.06788) of the core PWE survival model and the response model.

For draw ``i``: parameters theta_i from the prior set; a data set from the model given theta_i;
the posterior of the same model (the same prior set) fitted to it by NUTS; the rank statistic
``r_i = #{l : theta_il < theta_i}`` over ``L`` posterior draws thinned evenly from the chains
(Talts et al. Algorithm 2, with thinning to reduce autocorrelation). If the fit is correct the
ranks are uniform on {0, ..., L}. :func:`sbc_summary` bins them into ``bins`` equal bins and
tests uniformity with Pearson's chi-square (``bins - 1`` degrees of freedom).

Data sets:

* ``pwe``: ``n_per_arm`` patients per arm, event times from the piecewise-exponential model with
  the drawn ``log_lambda`` (random-walk baseline, ``cuts`` in months) and ``log_hr``,
  administrative censoring uniform on [``censor_min``, ``censor_max``] months (censoring is not
  part of the model, so any independent mechanism is allowed). Parameters ranked: ``log_hr``,
  ``log_lambda_first``, ``baseline_rw_sd``.
* ``response``: ``n_per_arm`` patients per arm, ``y ~ Bernoulli(expit(intercept + log_or t))``
  (the logistic model of ``fit_response(adjust="none")``). Ranked: ``intercept``, ``log_or``.

A deliberately wrong fit (``fit_override``: e.g. ``{"survival.log_hr": [0.0, 0.5]}`` fits with a
Normal(0, 0.5) log-HR prior to data drawn under the reference prior) shows what miscalibration
looks like (the tests check that it is detected).
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pandas as pd
from scipy import stats

from .errors import InputError
from .sampler_settings import BACKENDS, DEFAULT_BACKEND

MODELS = ("pwe", "response")
DEFAULTS = {"models": ["pwe"], "draws": 200, "thin_to": 99, "bins": 10, "n_per_arm": 100,
            "cuts": [0.0, 3.0, 6.0, 12.0, 24.0], "censor_min": 6.0, "censor_max": 54.0,
            "prior": "reference",
            "sampler": {"draws": 300, "tune": 300, "chains": 2, "backend": DEFAULT_BACKEND}}
PARAMS = {"pwe": ("log_hr", "log_lambda_first", "baseline_rw_sd"), "response": ("intercept", "log_or")}


def check_sbc_config(sbc: dict, src: str) -> None:
    """Validate the ``[sbc]`` table of the validation configuration (in place: fills defaults)."""
    def fail(key, expected, found):
        raise InputError(f"{src}: key 'sbc.{key}': expected {expected}, found {found!r}.")

    for k in sbc:
        if k not in DEFAULTS:
            fail(k, f"one of {', '.join(DEFAULTS)}", k)
    for k, v in DEFAULTS.items():
        sbc.setdefault(k, v if not isinstance(v, (list, dict)) else type(v)(v))
    if not isinstance(sbc["models"], list) or not set(sbc["models"]) <= set(MODELS):
        fail("models", f"a list from {', '.join(MODELS)}", sbc["models"])
    for k in ("draws", "thin_to", "bins", "n_per_arm"):
        v = sbc[k]
        if not isinstance(v, int) or isinstance(v, bool) or v < (0 if k == "draws" else 2):
            fail(k, "a positive integer", v)
    if (sbc["thin_to"] + 1) % sbc["bins"]:
        fail("bins", f"a divisor of thin_to + 1 = {sbc['thin_to'] + 1}", sbc["bins"])
    c = sbc["cuts"]
    if not isinstance(c, list) or len(c) < 2 or c[0] != 0 or any(b <= a for a, b in zip(c, c[1:])):
        fail("cuts", "a list of increasing months starting at 0, at least two", c)
    if not (0 < sbc["censor_min"] <= sbc["censor_max"]):
        fail("censor_max", "0 < censor_min <= censor_max (months)", sbc["censor_max"])
    s = sbc["sampler"]
    if not isinstance(s, dict) or not set(s) <= {"draws", "tune", "chains", "backend"}:
        fail("sampler", "a table with draws, tune, chains (and backend)", s)
    if s.get("backend", DEFAULT_BACKEND) not in BACKENDS:
        fail("sampler.backend", f"one of {', '.join(map(repr, BACKENDS))}", s["backend"])


def _key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")


def sbc_tasks(sbc: dict, study_seed: int) -> list[dict]:
    """One task per model and prior draw (seeded by (study seed, model, draw index))."""
    tasks = []
    for i in range(int(sbc.get("draws", 0)) if sbc else 0):
        for model in sbc["models"]:
            payload = {**{k: v for k, v in sbc.items() if k != "models"}, "model": model, "draw": i,
                       "seed": int(np.random.SeedSequence([int(study_seed), _key("sbc-" + model), i])
                                   .generate_state(1)[0])}
            tasks.append({"kind": "sbc", "group": model, "index": i, "payload": payload,
                          "id": {"seed": study_seed, "model": model, "draw": i}})
    return tasks


def _prior_draw(prior, rng: np.random.Generator, size=None):
    """A draw from a :class:`~bayes_haic.priors.Prior` (via its scipy form)."""
    return prior.to_scipy().rvs(size=size, random_state=rng)


def rank_statistic(value: float, draws: np.ndarray, thin_to: int) -> int:
    """Rank of ``value`` among ``thin_to`` draws taken evenly from ``draws`` (chains concatenated)."""
    d = np.asarray(draws, float).ravel()
    idx = np.linspace(0, d.size - 1, thin_to).round().astype(int)
    return int(np.sum(d[idx] < value))


def _fit_prior_set(payload):
    from .priors import Prior, as_prior_set

    ps = as_prior_set(payload.get("prior", "reference"))
    data_ps = ps
    for key, (mu, sigma) in (payload.get("fit_override") or {}).items():
        ps = ps.with_prior(key, Prior("Normal", {"mu": float(mu), "sigma": float(sigma)}))
    return data_ps, ps


def simulate_pwe(theta: dict, n_per_arm: int, cuts, censor, rng) -> pd.DataFrame:
    """Patients from the PWE model with parameters ``theta`` (``log_lambda`` per interval, ``log_hr``)."""
    from .synthetic import pwe_inverse

    cuts = np.asarray(cuts, float)
    lam = np.exp(np.asarray(theta["log_lambda"], float))
    t = np.repeat([0, 1], n_per_arm)
    e = rng.standard_exponential(t.size)
    times = np.where(t == 1, pwe_inverse(cuts[1:], lam * math.exp(theta["log_hr"]), e),
                     pwe_inverse(cuts[1:], lam, e))
    c = rng.uniform(censor[0], censor[1], t.size)
    return pd.DataFrame({"id": np.arange(1, t.size + 1), "treatment": t,
                         "os_time": np.maximum(np.minimum(times, c), 1e-6),
                         "os_event": (times <= c).astype(int)})


def sbc_draw(payload: dict) -> pd.DataFrame:
    """One SBC draw (see the module docstring); rows: model, draw, parameter, prior value, rank."""
    from . import response, survival
    from .sampling import SamplerSettings, convergence

    rng = np.random.default_rng(payload["seed"])
    data_ps, fit_ps = _fit_prior_set(payload)
    sampler = SamplerSettings(seed=int(payload["seed"]) % (2**31), **payload["sampler"])
    model = payload["model"]
    if model == "pwe":
        J = len(payload["cuts"])
        first = float(_prior_draw(data_ps.get("survival.log_baseline_hazard"), rng))
        sd = float(_prior_draw(data_ps.get("survival.baseline_rw_sd"), rng))
        z = rng.standard_normal(J - 1)
        theta = {"log_lambda_first": first, "baseline_rw_sd": sd,
                 "log_lambda": np.concatenate([[first], first + np.cumsum(sd * z)]),
                 "log_hr": float(_prior_draw(data_ps.get("survival.log_hr"), rng))}
        frame = simulate_pwe(theta, payload["n_per_arm"], payload["cuts"],
                             (payload["censor_min"], payload["censor_max"]), rng)
        idata = survival.fit_pwe(frame, "os", cuts=payload["cuts"], prior_set=fit_ps, sampler=sampler)
        post = {"log_hr": idata.posterior["log_hr"].values,
                "log_lambda_first": idata.posterior["log_lambda"].values[..., 0],
                "baseline_rw_sd": idata.posterior["baseline_rw_sd"].values}
        conv = convergence(idata, var_names=["log_hr", "log_lambda"])
        n_events = int(frame["os_event"].sum())
    else:
        theta = {"intercept": float(_prior_draw(data_ps.get("response.intercept"), rng)),
                 "log_or": float(_prior_draw(data_ps.get("response.log_or"), rng))}
        t = np.repeat([0, 1], payload["n_per_arm"])
        p = 1 / (1 + np.exp(-(theta["intercept"] + theta["log_or"] * t)))
        y = (rng.random(t.size) < p).astype(int)
        frame = pd.DataFrame({"id": np.arange(1, t.size + 1), "treatment": t,
                              "response": pd.array(y, dtype="Int64")})
        idata = response.fit_response(frame, adjust="none", prior_set=fit_ps, sampler=sampler)
        post = {k: idata.posterior[k].values for k in ("intercept", "log_or")}
        conv = convergence(idata, var_names=["intercept", "log_or"])
        n_events = int(y.sum())
    L = int(payload["thin_to"])
    rows = [{"model": model, "draw": int(payload["draw"]), "parameter": k, "prior_value": float(theta[k]),
             "rank": rank_statistic(theta[k], post[k], L), "thin_to": L,
             "posterior_mean": float(np.mean(post[k])), "n_events": n_events,
             "rhat_max": conv["rhat_max"], "divergences": conv["divergences"]}
            for k in PARAMS[model]]
    return pd.DataFrame(rows)


def uniformity_test(ranks, thin_to: int, bins: int) -> tuple[np.ndarray, float, float]:
    """(counts per bin, chi-square statistic, p-value) of ranks in {0..thin_to} in ``bins`` bins."""
    ranks = np.asarray(ranks, int)
    counts = np.bincount(ranks * bins // (thin_to + 1), minlength=bins)
    if ranks.size == 0:
        return counts, math.nan, math.nan
    res = stats.chisquare(counts)
    return counts, float(res.statistic), float(res.pvalue)


def sbc_summary(sbc: pd.DataFrame, bins: int = 10) -> pd.DataFrame:
    """Per model x parameter: draws, chi-square uniformity test, counts per bin."""
    rows = []
    for (model, par), g in sbc.groupby(["model", "parameter"], sort=False):
        L = int(g["thin_to"].iloc[0])
        counts, chi2, p = uniformity_test(g["rank"], L, bins)
        rows.append({"model": model, "parameter": par, "draws": len(g), "thin_to": L, "bins": bins,
                     "chi2": chi2, "df": bins - 1, "p_value": p,
                     "divergent_fits": int((g["divergences"] > 0).sum()),
                     "counts": " ".join(str(int(c)) for c in counts)})
    return pd.DataFrame(rows)
