"""Patient-level response (ORR) models: exactness, agreement with ML, recovery, missing data."""

from __future__ import annotations

import math

import arviz as az
import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from bayes_haic import response as rs
from bayes_haic.errors import InputError
from bayes_haic.priors import load_prior_set
from bayes_haic.results import RESULT_COLUMNS
from bayes_haic.sampling import SamplerSettings

FAST = SamplerSettings(draws=1000, tune=700, chains=2, seed=7)
TRUE = {"intercept": -0.8, "log_or": 1.4, "x1": 0.9, "x2": -0.6}


def simulate(n: int, seed: int, n_missing=(0, 0)) -> tuple[pd.DataFrame, float, np.ndarray]:
    """Confounded cohort: x1 ~ N(0,1), x2 ~ Bernoulli(0.4); treatment depends on both, and
    logit P(response) = -0.8 + 1.4 t + 0.9 x1 - 0.6 x2. Returns the frame, the sample ATE risk
    difference by standardisation with the true coefficients, and the true propensity scores."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = (rng.random(n) < 0.4).astype(float)
    ps = special.expit(0.2 + 0.8 * x1 - 0.5 * x2)
    t = (rng.random(n) < ps).astype(int)
    eta0 = TRUE["intercept"] + TRUE["x1"] * x1 + TRUE["x2"] * x2
    y = (rng.random(n) < special.expit(eta0 + TRUE["log_or"] * t)).astype(float)
    rd = float(np.mean(special.expit(eta0 + TRUE["log_or"]) - special.expit(eta0)))
    frame = pd.DataFrame({"id": np.arange(1, n + 1), "treatment": t, "response": y,
                          "x1": x1, "x2": x2})
    for arm, k in ((1, n_missing[0]), (0, n_missing[1])):
        idx = frame.index[frame["treatment"] == arm][:k]
        frame.loc[idx, "response"] = np.nan
    return frame, rd, ps


@pytest.fixture(scope="module")
def cohort():
    return simulate(600, seed=2024, n_missing=(4, 3))


@pytest.fixture(scope="module")
def vague():
    return load_prior_set(
        "reference",
        overrides=["response.intercept.sigma=10", "response.log_or.sigma=10",
                   "response.covariate.sigma=10"],
    )


@pytest.fixture(scope="module")
def covariate_fit(cohort, vague):
    frame, _, _ = cohort
    return rs.fit_response(frame, adjust="covariates", covariates=["x1", "x2"],
                           prior_set=vague, sampler=FAST)


def _mcse(idata, var, method="mean", **kw):
    return float(az.mcse(idata, var_names=[var], method=method, **kw)[var].values.max())


def test_beta_binomial_matches_exact_beta():
    frame, _, _ = simulate(90, seed=5, n_missing=(2, 1))
    idata = rs.fit_response(frame, model="beta_binomial", sampler=FAST)
    ev = frame.dropna(subset=["response"])
    a, b = load_prior_set("reference").get("response.arm_rate").params.values()
    for k, arm in enumerate(rs.ARMS):
        yk = ev.loc[ev["treatment"] == k, "response"]
        exact = stats.beta(a + yk.sum(), b + len(yk) - yk.sum())
        draws = idata.posterior["p_arm"].sel(arm=arm)
        mcse = float(az.mcse(idata.posterior["p_arm"].sel(arm=arm).to_dataset())["p_arm"])
        assert abs(float(draws.mean()) - exact.mean()) < 4 * mcse
        for q in (0.05, 0.5, 0.95):
            mq = float(az.mcse(draws.to_dataset(), method="quantile", prob=q)["p_arm"])
            assert abs(float(draws.quantile(q)) - exact.ppf(q)) < 4 * mq + 1e-3
    assert idata.attrs["response_model"] == "beta_binomial"


def test_logistic_vague_prior_agrees_with_ml(cohort, covariate_fit):
    frame, _, _ = cohort
    ml = rs.ml_logistic(frame, ["x1", "x2"])
    post = covariate_fit.posterior
    names = {"intercept": 0, "log_or": 1}
    for var, j in names.items():
        mle, se = ml.params[j], ml.bse[j]
        # posterior mean vs MLE: MC error plus an allowance for the O(1/n) difference between
        # the posterior mean and the mode and for the (sd 10) prior's shrinkage se^2/10^2 * |mle|
        allowance = 0.1 * se + se**2 / 100 * abs(mle)
        assert abs(float(post[var].mean()) - mle) < 4 * _mcse(covariate_fit, var) + allowance
        assert float(post[var].std()) == pytest.approx(se, rel=0.15)
    for j, cov in enumerate(["x1", "x2"]):
        draws = post["beta_z"].sel(term=cov)
        mcse = float(az.mcse(draws.to_dataset())["beta_z"])
        se = ml.bse[2 + j]
        assert abs(float(draws.mean()) - ml.params[2 + j]) < 4 * mcse + 0.1 * se + se**2 / 100


def test_recovers_known_rd(cohort, covariate_fit):
    _, true_rd, _ = cohort
    rd = covariate_fit.posterior["rd"].values.ravel()
    lo, hi = np.quantile(rd, [0.025, 0.975])
    assert lo < true_rd < hi
    assert abs(np.median(rd) - true_rd) < 3 * rd.std()
    # standardised over the whole cohort: the ATE population, which true_rd averages over
    assert covariate_fit.attrs["estimand"] == "marginal (ATE)"
    assert "standardisation" in covariate_fit.attrs["estimand_detail"]


def test_missing_responses_counted_per_arm(cohort, covariate_fit):
    frame, _, _ = cohort
    a = covariate_fit.attrs
    assert (a["n_missing_treated"], a["n_missing_control"]) == (4, 3)
    assert a["n_treated"] == int((frame["treatment"] == 1).sum()) - 4
    assert a["n_control"] == int((frame["treatment"] == 0).sum()) - 3
    assert covariate_fit.observed_data["y"].size == len(frame) - 7
    assert not np.isnan(covariate_fit.observed_data["y"].values).any()
    rows = rs.response_rows(covariate_fit, "synthetic", "sim.csv")
    assert "4 treated, 3 control" in rows[0]["method"]
    s = rs.response_summary(covariate_fit)
    assert (s["n_missing_treated"], s["n_missing_control"]) == (4, 3)


def test_missing_counted_within_matched_set():
    frame, _, _ = simulate(60, seed=9)
    frame.loc[[0, 1, 2], "response"] = np.nan
    matched = frame["id"].iloc[2:40].to_numpy()  # row 0 and 1 are outside the matched set
    idata = rs.fit_response(frame, adjust="psm", matched_ids=matched, model="beta_binomial",
                            sampler=SamplerSettings(draws=200, tune=200, chains=1, seed=1))
    arm2 = int(frame["treatment"].iloc[2])
    got = {1: idata.attrs["n_missing_treated"], 0: idata.attrs["n_missing_control"]}
    assert got[arm2] == 1 and got[1 - arm2] == 0
    assert idata.attrs["n_treated"] + idata.attrs["n_control"] == 37


def test_rows_summary_and_figure(covariate_fit):
    rows = rs.response_rows(covariate_fit, "synthetic", "sim.csv")
    assert [r["measure"] for r in rows] == ["rd", "rr", "or"]
    p = float(np.mean(covariate_fit.posterior["rd"].values > 0))
    for r in rows:
        assert list(r) == RESULT_COLUMNS
        assert r["prob_benefit"] == p
        assert r["adjustment"] == "covariates" and r["rhat_max"] < 1.05
    assert rs.prob_rd_above(covariate_fit, 0.2) == pytest.approx(
        np.mean(covariate_fit.posterior["rd"].values > 0.2)
    )
    from matplotlib.figure import Figure

    from bayes_haic.report.figures import plot_rd

    assert isinstance(plot_rd(covariate_fit), Figure)
    groups = set(covariate_fit.groups())
    assert {"posterior", "log_likelihood", "posterior_predictive", "observed_data",
            "constant_data", "sample_stats"} <= groups
    assert list(covariate_fit.posterior["p_arm"].coords["arm"].values) == list(rs.ARMS)


def test_iptw_bootstrap_and_fixed_weights(cohort):
    frame, true_rd, ps = cohort
    t = frame["treatment"].to_numpy()

    def design_fn(g):  # IPT weights from the true score (deterministic)
        return np.where(t == 1, 1 / ps, 1 / (1 - ps))

    boot = rs.fit_response(frame, adjust="iptw", design_fn=design_fn, n_boot=300,
                           sampler=SamplerSettings(seed=3))
    again = rs.fit_response(frame, adjust="iptw", design_fn=design_fn, n_boot=300,
                            sampler=SamplerSettings(seed=3))
    assert np.array_equal(boot.posterior["rd"].values, again.posterior["rd"].values)
    assert boot.attrs["method"].startswith(rs.BOOTSTRAP_METHOD + "; prior combined by PSIS")
    rd = boot.posterior["rd"].values.ravel()
    assert abs(np.median(rd) - true_rd) < 3 * rd.std()
    assert math.isnan(rs.response_rows(boot, "synthetic", "x")[0]["rhat_max"])
    fixed = rs.fit_response(frame, adjust="iptw", weights=design_fn(None),
                            sampler=SamplerSettings(draws=400, tune=400, chains=2, seed=3))
    assert "fixed-weight pseudo-posterior" in fixed.attrs["method"]
    rd_f = fixed.posterior["rd"].values.ravel()
    assert abs(np.median(rd_f) - np.median(rd)) < 0.5 * rd.std()
    w = fixed.constant_data["weights"].values
    # fixed weights are scaled to their Kish effective sample size, (sum w)^2 / sum w^2
    assert w.sum() == pytest.approx(w.sum() ** 2 / np.sum(w**2)) and w.sum() < w.size


@pytest.mark.slow
def test_ps_covariate_recovers_rd(cohort):
    frame, true_rd, ps = cohort
    idata = rs.fit_response(frame, adjust="ps_covariate", ps=ps, sampler=FAST)
    rd = idata.posterior["rd"].values.ravel()
    assert abs(np.median(rd) - true_rd) < 3 * rd.std()
    assert idata.attrs["covariates"][0] == "spline_1"


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        ({"adjust": "matching"}, "adjust: expected one of"),
        ({"adjust": "iptw"}, "needs weights"),
        ({"adjust": "covariates"}, "needs a list"),
        ({"adjust": "covariates", "covariates": ["nope"]}, "not in the cohort: nope"),
        ({"adjust": "ps_covariate", "ps": np.full(30, 1.2)}, r"expected probabilities strictly between 0 and 1"),
        ({"adjust": "psm"}, "needs the ids"),
        ({"adjust": "psm", "matched_ids": [999]}, "not in the cohort: 999"),
        ({"adjust": "covariates", "covariates": ["x1"], "model": "beta_binomial"}, "'none' or"),
        ({"weights": np.ones(30)}, "given with adjust other than 'iptw'"),
    ],
)
def test_input_errors(kwargs, pattern):
    frame, _, _ = simulate(30, seed=1)
    with pytest.raises(InputError, match=pattern):
        rs.fit_response(frame, **kwargs)


def test_bad_response_values_named():
    frame, _, _ = simulate(30, seed=1)
    frame.loc[4, "response"] = 2
    with pytest.raises(InputError, match=r"column 'response', row 5: expected 1, 0 or missing"):
        rs.fit_response(frame)
