"""Tests of the PWE survival models (bayes_haic.survival, bayes_haic.survival_bootstrap).

Tolerances come from Monte Carlo error (ArviZ MCSE) plus, where a Bayesian posterior is compared
with a maximum-likelihood estimate, an explicit prior-shrinkage allowance (see _allowance).
"""

from __future__ import annotations

from pathlib import Path

import arviz as az
import numpy as np
from scipy import special
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from bayes_haic import bootstrap_prior as bp
from bayes_haic import survival as sv
from bayes_haic import survival_bootstrap as sb
from bayes_haic.errors import InputError
from bayes_haic.priors import Prior, as_prior_set, load_prior_set
from bayes_haic.results import RESULT_COLUMNS
from bayes_haic.sampling import SamplerSettings, sample

REF = Path(__file__).parent / "reference"
FAST = SamplerSettings(draws=500, tune=500, chains=2, seed=11)
QUICK = SamplerSettings(draws=250, tune=250, chains=2, seed=12)  # where only identity or direction is tested
VAGUE = ("survival.log_hr.sigma=10", "survival.log_baseline_hazard.sigma=10")


# --------------------------------------------------------------------------- simulators


def simulate_pwe(n, hr, cuts, hazards, seed, censor_max=36.0):
    """Piecewise-exponential times with baseline ``hazards`` on ``cuts`` and a constant HR,
    by inverting the cumulative hazard; uniform censoring on (0, censor_max)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, n)
    target = rng.exponential(size=n) / hr**x  # baseline cumulative hazard at the event time
    cuts = np.asarray(cuts, float)
    h = np.asarray(hazards, float)
    Hc = np.concatenate([[0.0], np.cumsum(h[:-1] * np.diff(cuts))])
    j = np.searchsorted(Hc, target, side="right") - 1
    T = cuts[j] + (target - Hc[j]) / h[j]
    c = rng.uniform(0, censor_max, n)
    return pd.DataFrame(
        {"id": np.arange(n), "treatment": x, "os_time": np.minimum(T, c), "os_event": (T <= c).astype(int)}
    )


def simulate_confounded(n, hr, a_treat, rho, seed):
    """Confounded data with a known *marginal* HR: potential outcomes T(a) = -log(U) / (0.08 hr^a)
    with U = Phi(-rho z + sqrt(1 - rho^2) e) uniform, so each T(a) is exponential with marginal
    hazard 0.08 hr^a whatever z; treatment depends on z (logit a_treat * z), and so does U."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    x = rng.binomial(1, 1 / (1 + np.exp(-a_treat * z)))
    u = stats.norm.cdf(-rho * z + np.sqrt(1 - rho**2) * rng.normal(size=n))
    T = -np.log(u) / (0.08 * hr**x)
    c = rng.uniform(6, 36, n)
    return pd.DataFrame(
        {"id": np.arange(n), "treatment": x, "z": z, "os_time": np.minimum(T, c), "os_event": (T <= c).astype(int)}
    )


def logistic_design(frame, covariates=("z",)):
    """A design_fn: weighted logistic propensity model (statsmodels) -> ATE IPT weights."""
    X = sm.add_constant(frame[list(covariates)].to_numpy(float))
    x = frame["treatment"].to_numpy()

    def design(g):
        p = sm.GLM(x, X, family=sm.families.Binomial(), freq_weights=g).fit().predict(X)
        return x / p + (1 - x) / (1 - p)

    return design


def glm_log_hr(coll):
    """ML Poisson GLM (statsmodels) on collapsed data: interval factors + treatment, offset log E."""
    D = coll["events"].values
    E = coll["exposure"].values
    J = D.shape[1]
    X = np.zeros((2 * J, J + 1))
    for k in (0, 1):
        X[k * J : (k + 1) * J, :J] = np.eye(J)
        X[k * J : (k + 1) * J, J] = k
    keep = E.ravel() > 0
    fit = sm.GLM(D.ravel()[keep], X[keep], family=sm.families.Poisson(), offset=np.log(E.ravel()[keep])).fit()
    return float(fit.params[-1]), float(fit.bse[-1])


def _allowance(coll, se, prior_sigma, mle, prior_mu=0.0):
    """Allowed |posterior median - MLE| beyond Monte Carlo error: the Normal-Normal shrinkage
    toward the prior mean, se^2 / (se^2 + sigma^2) |mle - mu|, plus the median-vs-mode gap of the
    log-rate posterior, about 1/(3 D) per arm (log-gamma posterior), summed over both arms."""
    D = coll["events"].values.sum(axis=1)
    shrink = se**2 / (se**2 + prior_sigma**2) * abs(mle - prior_mu)
    return shrink + float(np.sum(1 / (3 * D)))


def _mcse_median(idata, var="log_hr"):
    return float(az.mcse(idata, var_names=[var], method="median")[var])


# --------------------------------------------------------------------------- cut points


def test_quantile_cut_points_balance_events():
    df = simulate_pwe(1000, 0.7, [0, 6], [0.1, 0.05], seed=1)
    cuts = sv.cut_points(df.os_time, df.os_event, n_intervals=5)
    assert cuts[0] == 0 and len(cuts) == 5 and np.all(np.diff(cuts) > 0)
    coll = sv.collapse(df.os_time, df.os_event, df.treatment, cuts)
    per_interval = coll["events"].sum("arm").values
    assert per_interval.sum() == df.os_event.sum()
    assert per_interval.max() - per_interval.min() <= 3  # equal shares up to ties at cuts


def test_grid_cut_points_and_validation():
    grid = [0, 3, 6, 9, 12, 18, 24, 36]
    np.testing.assert_array_equal(sv.cut_points([1, 2], [1, 0], grid=grid), grid)
    with pytest.raises(InputError, match="first cut point must be 0"):
        sv.validate_cuts([1, 3])
    with pytest.raises(InputError, match="strictly increasing"):
        sv.validate_cuts([0, 3, 3])
    with pytest.raises(InputError, match="inf"):
        sv.validate_cuts([0, 3, np.inf])
    with pytest.raises(InputError, match="finite"):
        sv.validate_cuts([0, np.nan])
    with pytest.raises(InputError, match="n_intervals"):
        sv.cut_points([1, 2], [1, 1], n_intervals=0)
    with pytest.raises(InputError, match="no events"):
        sv.cut_points([1, 2], [0, 0])
    with pytest.raises(InputError, match="method='grid' needs grid"):
        sv.cut_points([1, 2], [1, 1], method="grid")
    with pytest.raises(InputError, match="column 'event'"):
        sv.cut_points([1, 2], [1, 2])
    with pytest.raises(InputError, match="column 'time', row 2"):
        sv.cut_points([1, -2], [1, 1])


# --------------------------------------------------------------------------- collapsing


def test_collapse_by_hand():
    # two patients per arm; cuts 0, 2, 5 -> intervals (0,2], (2,5], (5,inf)
    time = [1.0, 2.0, 6.0, 3.0]
    event = [1, 0, 1, 1]
    trt = [0, 0, 1, 1]
    coll = sv.collapse(time, event, trt, [0, 2, 5])
    np.testing.assert_allclose(coll["events"].values, [[1, 0, 0], [0, 1, 1]])
    np.testing.assert_allclose(coll["exposure"].values, [[3, 0, 0], [4, 4, 1]])
    assert list(coll["intervals"].values) == ["0-2", "2-5", "5+"]
    assert coll.attrs["n_treated"] == 2 and coll.attrs["n_control"] == 2
    w = sv.collapse(time, event, trt, [0, 2, 5], weights=[2, 1, 1, 0.5])
    np.testing.assert_allclose(w["events"].values, [[2, 0, 0], [0, 0.5, 1]])
    np.testing.assert_allclose(w["exposure"].values, [[2 + 2, 0, 0], [2 + 1, 3 + 0.5, 1]])


def test_collapse_equals_aggregated_person_intervals():
    df = simulate_pwe(300, 0.6, [0, 6], [0.1, 0.05], seed=2)
    cuts = [0, 3, 6, 12, 24]
    wts = np.random.default_rng(0).uniform(0.5, 2, len(df))
    coll = sv.collapse(df.os_time, df.os_event, df.treatment, cuts, wts)
    rows = sv.expand_person_intervals(df.os_time, df.os_event, df.treatment, cuts, wts, ids=df.id)
    assert rows.groupby("id")["event"].sum().sum() == df.os_event.sum()
    agg = rows.assign(we=rows.event * rows.weight, wx=rows.exposure * rows.weight).groupby(["treatment", "interval"])
    D = agg["we"].sum().unstack(fill_value=0).to_numpy()
    E = agg["wx"].sum().unstack(fill_value=0).to_numpy()
    np.testing.assert_allclose(coll["events"].values, D)
    np.testing.assert_allclose(coll["exposure"].values, E)
    np.testing.assert_allclose(coll["exposure"].values.sum(), np.sum(wts * df.os_time))


# --------------------------------------------------------------------------- the Poisson-likelihood identity


def test_rows_model_has_the_collapsed_models_parameters():
    """The naive rows model and the collapsed model share their baseline and prior code: the
    same free variables, and ``log_lambda`` and ``hr`` recorded, for every baseline and for one
    interval (where the rows model used to leave ``log_lambda`` out)."""
    df = simulate_pwe(120, 0.6, [0, 6], [0.1, 0.05], seed=5)
    ps = load_prior_set("reference")
    for n_intervals in (1, 4):
        cuts = sv.cut_points(df.os_time, df.os_event, n_intervals=n_intervals)
        coll = sv.collapse(df.os_time, df.os_event, df.treatment, cuts)
        rows = sv.expand_person_intervals(df.os_time, df.os_event, df.treatment, cuts)
        for baseline in ("rw", "independent"):
            m_c = sv.build_pwe_model(coll, ps, baseline)
            m_r = sv.build_pwe_rows_model(rows, len(cuts), ps, baseline)
            free = [sorted(v.name for v in m.free_RVs) for m in (m_c, m_r)]
            assert free[0] == free[1], (n_intervals, baseline, free)
            assert {"log_lambda", "hr"} <= set(m_r.named_vars), (n_intervals, baseline)



def test_collapsed_logp_equals_rows_logp_up_to_a_constant():
    df = simulate_pwe(200, 0.6, [0, 6], [0.1, 0.05], seed=3)
    cuts = sv.cut_points(df.os_time, df.os_event, n_intervals=4)
    ps = load_prior_set("reference")
    for baseline in ("rw", "independent"):
        coll = sv.collapse(df.os_time, df.os_event, df.treatment, cuts)
        rows = sv.expand_person_intervals(df.os_time, df.os_event, df.treatment, cuts)
        m_c = sv.build_pwe_model(coll, ps, baseline)
        m_r = sv.build_pwe_rows_model(rows, len(cuts), ps, baseline)
        lp_c, lp_r = m_c.compile_logp(), m_r.compile_logp()
        rng = np.random.default_rng(4)
        diffs = []
        for _ in range(6):
            point = {k: v + rng.normal(0, 0.5, np.shape(v)) for k, v in m_c.initial_point().items()}
            diffs.append(lp_c(point) - lp_r(point))
        assert np.ptp(diffs) < 1e-8 * max(1.0, abs(diffs[0])), (baseline, diffs)
                # the collapsed Poisson keeps sum_jk [D log E - log D!]; the rows' Poisson sum_i d_i log e_i
        r = rows[rows.exposure > 0]
        D, E = coll["events"].values, coll["exposure"].values
        const = np.sum(special.xlogy(D, E) - special.gammaln(D + 1)) - np.sum(r.event * np.log(r.exposure))
        assert diffs[0] == pytest.approx(const, abs=1e-6)


@pytest.fixture(scope="module")
def small_data():
    df = simulate_pwe(300, 0.6, [0, 6], [0.12, 0.06], seed=5)
    cuts = sv.cut_points(df.os_time, df.os_event, n_intervals=4)
    return df, cuts


def test_collapsed_and_rows_posteriors_agree(small_data):
    df, cuts = small_data
    collapsed = sv.fit_pwe(df, "os", cuts=cuts, sampler=FAST)
    rows = sv.expand_person_intervals(df.os_time, df.os_event, df.treatment, cuts)
    naive = sample(sv.build_pwe_rows_model(rows, len(cuts)), FAST)
    for var in ("log_hr", "log_lambda"):
        a, b = collapsed.posterior[var], naive.posterior[var]
        se_a = az.mcse(collapsed, var_names=[var])[var].values
        se_b = az.mcse(naive, var_names=[var])[var].values
        diff = np.abs(a.mean(("chain", "draw")).values - b.mean(("chain", "draw")).values)
        assert np.all(diff < 4 * np.hypot(se_a, se_b)), (var, diff, np.hypot(se_a, se_b))


# --------------------------------------------------------------------------- fits and known truth


@pytest.fixture(scope="module")
def truth_fit():
    df = simulate_pwe(2000, 0.5, [0, 6, 18], [0.15, 0.08, 0.05], seed=6)
    ps = load_prior_set("reference", overrides=VAGUE)
    idata = sv.fit_pwe(df, "os", prior_set=ps, sampler=FAST, baseline="independent")
    return df, idata


def test_known_hr_is_recovered(truth_fit):
    _, idata = truth_fit
    x = idata.posterior["log_hr"].values.ravel()
    lo, med, hi = np.quantile(x, [0.025, 0.5, 0.975])
    assert lo < np.log(0.5) < hi
    assert abs(med - np.log(0.5)) < 3 * x.std()


def test_vague_prior_matches_poisson_glm(truth_fit):
    df, idata = truth_fit
    coll = sv.collapse(df.os_time, df.os_event, df.treatment, idata.attrs["cuts"])
    mle, se = glm_log_hr(coll)
    med = float(idata.posterior["log_hr"].median())
    tol = 4 * _mcse_median(idata) + _allowance(coll, se, prior_sigma=10.0, mle=mle)
    assert abs(med - mle) < tol, (med, mle, tol)
    # the closed-form profile MLE of the bootstrap module is the same estimator
    assert sb.weighted_pwe_mle(coll["events"].values, coll["exposure"].values)[0] == pytest.approx(mle, abs=1e-6)


def test_idata_contents(truth_fit, tmp_path):
    df, idata = truth_fit
    for group in ("posterior", "sample_stats", "log_likelihood", "posterior_predictive", "observed_data", "constant_data"):
        assert group in idata.groups()
    post = idata.posterior
    assert {"log_hr", "hr", "log_lambda", "hazard"} <= set(post.data_vars)
    assert post["log_lambda"].dims == ("chain", "draw", "intervals")
    assert post["hazard"].dims == ("chain", "draw", "arm", "intervals")
    assert not [v for v in post.data_vars if "__" in v]
    np.testing.assert_allclose(post["hr"], np.exp(post["log_hr"]))
    a = idata.attrs
    assert a["endpoint"] == "os" and a["adjustment"] == "none" and a["estimand"] == "marginal"
    assert a["prior"].startswith("reference+") and "NUTS" in a["method"]
    assert a["n_treated"] + a["n_control"] == len(df)
    assert list(idata.observed_data["intervals"].values) == list(post["intervals"].values)
    assert idata.observed_data["events"].sum() == df.os_event.sum()
    # the log-likelihood is per patient (LOO leaves out patients), and the per-patient data are stored
    assert idata.log_likelihood["survival"].dims == ("chain", "draw", "patient")
    assert idata.log_likelihood.sizes["patient"] == len(df)
    np.testing.assert_array_equal(idata.constant_data["event"].values, df.os_event.to_numpy())
    loo = az.loo(idata)
    assert np.isfinite(loo.elpd_loo) and loo.n_data_points == len(df)
    # survives a netCDF round trip, and the estimands read from the reloaded file
    idata.to_netcdf(tmp_path / "fit.nc")
    back = az.from_netcdf(tmp_path / "fit.nc")
    np.testing.assert_allclose(back.attrs["cuts"], a["cuts"])
    s1, _ = sv.survival_estimands(back, times=[0, 12])
    s2, _ = sv.survival_estimands(idata, times=[0, 12])
    pd.testing.assert_frame_equal(s1, s2)


def test_veteran_matches_r_reference():
    """Against R's survival::veteran: the PWE Poisson GLM and Cox fits of
    tests/reference/survival_veteran.R (reference values in survival_veteran_reference.csv)."""
    vet = pd.read_csv(REF / "survival_veteran.csv")
    ref = pd.read_csv(REF / "survival_veteran_reference.csv").set_index("quantity")["value"]
    frame = vet.rename(columns={"time_months": "os_time", "status": "os_event"})
    cuts = [0, 1, 2, 3, 4, 6, 9, 12]
    coll = sv.collapse(frame.os_time, frame.os_event, frame.treatment, cuts)
    mle, se = glm_log_hr(coll)
    assert mle == pytest.approx(ref["pwe_glm_log_hr"], abs=1e-6)  # same statistics as R's survSplit + glm
    assert se == pytest.approx(ref["pwe_glm_se"], rel=1e-4)
    ps = load_prior_set("reference", overrides=VAGUE)
    idata = sv.fit_pwe(frame, "os", cuts=cuts, prior_set=ps, sampler=FAST, baseline="independent")
    med = float(idata.posterior["log_hr"].median())
    tol = 4 * _mcse_median(idata) + _allowance(coll, se, prior_sigma=10.0, mle=mle)
    assert abs(med - ref["pwe_glm_log_hr"]) < tol
    # PWE and Cox estimate the same HR under proportional hazards; they differ by the baseline model
    assert abs(med - ref["cox_efron_log_hr"]) < 0.5 * ref["cox_efron_se"]


def test_same_settings_give_identical_draws_and_the_graph_is_reused(small_data):
    df, cuts = small_data
    sv.clear_model_cache()
    a = sv.fit_pwe(df, "os", cuts=cuts, sampler=QUICK)
    entry = next(iter(sv._CACHE.values()))
    # a different prior (same families) and data set reuse the same graph ...
    tight = load_prior_set("reference", overrides=("survival.log_hr.mu=0.3", "survival.log_hr.sigma=0.01"))
    c = sv.fit_pwe(df.iloc[:200], "os", cuts=cuts, prior_set=tight, sampler=QUICK)
    assert len(sv._CACHE) == 1 and entry.fits == 2
    assert float(c.posterior["log_hr"].mean()) == pytest.approx(0.3, abs=0.03)  # the new prior took effect
    assert c.attrs["n_treated"] + c.attrs["n_control"] == 200
    # ... and refitting the first problem afterwards gives the same draws
    b = sv.fit_pwe(df, "os", cuts=cuts, sampler=QUICK)
    np.testing.assert_array_equal(a.posterior["log_hr"].values, b.posterior["log_hr"].values)
    np.testing.assert_array_equal(a.posterior_predictive["events"].values, b.posterior_predictive["events"].values)


def test_fit_input_errors(small_data):
    df, _ = small_data
    with pytest.raises(InputError, match="endpoint"):
        sv.fit_pwe(df, "dfs")
    with pytest.raises(InputError, match="adjust"):
        sv.fit_pwe(df, "os", adjust="magic")
    with pytest.raises(InputError, match="adjust='iptw'"):
        sv.fit_pwe(df, "os", weights=np.ones(len(df)))
    with pytest.raises(InputError, match="needs weights"):
        sv.fit_pwe(df, "os", adjust="iptw")
    with pytest.raises(InputError, match="baseline"):
        sv.fit_pwe(df, "os", baseline="spline")
    with pytest.raises(InputError, match="missing column"):
        sv.fit_pwe(df.drop(columns="os_event"), "os")


# --------------------------------------------------------------------------- estimands


def test_closed_forms_for_constant_hazard():
    h = np.array([[0.1, 0.1, 0.1], [0.05, 0.05, 0.05]])
    cuts = [0, 6, 12]
    np.testing.assert_allclose(sv.median_survival(h, cuts), np.log(2) / h[:, 0])
    np.testing.assert_allclose(sv.rmst(h, cuts, 24), (1 - np.exp(-24 * h[:, 0])) / h[:, 0])
    np.testing.assert_allclose(sv.rmst(h, cuts, 3), (1 - np.exp(-3 * h[:, 0])) / h[:, 0])
    # piecewise: RMST equals numerical integration of S(t)
    hp = np.array([0.2, 0.05, 0.1])
    grid = np.linspace(0, 20, 200001)
    S = np.exp(-sv.cumulative_hazard(hp, cuts, grid))
    assert sv.rmst(hp, cuts, 20) == pytest.approx(np.trapezoid(S, grid), rel=1e-8)
    med = sv.median_survival(hp, cuts)
    assert np.exp(-sv.cumulative_hazard(hp, cuts, [med]))[0] == pytest.approx(0.5)


def test_survival_estimands_and_result_rows(truth_fit):
    _, idata = truth_fit
    summary, draws = sv.survival_estimands(idata, times=[0, 6, 12])
    assert set(summary["quantity"]) >= {"hr", "P(HR<0.7)", "median", "survival", "rmst", "rmst_diff"}
    assert draws["survival"].dims == ("chain", "draw", "arm", "time")
    np.testing.assert_allclose(draws["survival"].sel(time=0.0), 1.0)
    med = summary.query("quantity == 'median' and arm == 'control'")["median"].item()
    assert med == pytest.approx(float(draws["median"].sel(arm="control").median()))
    p_hr = summary.set_index("quantity").loc["hr", "probability"]
    assert p_hr == pytest.approx(float((draws["hr"] < 1).mean()))
    rows = sv.result_rows(idata, "synthetic", "simulated")
    assert [r["measure"] for r in rows] == ["hr", "median_treated", "median_control", "rmst_diff_24"]
    assert all(list(r) == RESULT_COLUMNS for r in rows)
    assert rows[0]["rhat_max"] < 1.05 and rows[0]["ess_bulk_min"] > 100
    assert rows[1]["estimand"] == "arm-level"


def test_a_median_beyond_the_longest_follow_up_is_labelled_extrapolated(truth_fit):
    """Simulated with known truth: control median log(2)/0.03 = 23 months, treated (HR 0.5)
    46 months, every patient censored by 20 months. The treated median lies beyond the longest
    follow-up in (nearly) every draw, and its results row says so in ``method``; the rows of a
    fit whose medians are within follow-up (``truth_fit``: medians ~6 and ~11 months, follow-up
    to 36) carry the fit's method unchanged."""
    df = simulate_pwe(600, 0.5, [0], [0.03], seed=21, censor_max=20.0)
    idata = sv.fit_pwe(df, "os", sampler=QUICK)
    fu = idata.attrs["max_follow_up"]
    assert fu == pytest.approx(df.os_time.max()) and fu < 20
    summary, draws = sv.survival_estimands(idata, times=[0.0])
    share = summary.query("quantity == 'median'").set_index("arm")["extrapolated"]
    x = draws["median"].sel(arm="treated").values
    assert share["treated"] == pytest.approx(np.mean(x > fu)) and share["treated"] > 0.95
    rows = {r["measure"]: r for r in sv.result_rows(idata, "synthetic", "simulated", draws=draws)}
    note = rows["median_treated"]["method"]
    assert note.startswith(idata.attrs["method"] + "; median extrapolated: beyond the longest "
                           f"follow-up ({fu:.1f} months) in ")
    assert rows["hr"]["method"] == idata.attrs["method"]
    _, within = truth_fit
    assert all(r["method"] == within.attrs["method"] for r in sv.result_rows(within, "synthetic", "x"))


def test_extrapolated_share_and_note():
    x = np.array([5.0, 8.0, 12.0, 30.0])
    assert sv.extrapolated_share(x, 10.0) == pytest.approx(0.5)
    assert sv.extrapolated_share(x, 10.0, weights=[0.4, 0.4, 0.1, 0.1]) == pytest.approx(0.2)
    assert sv.extrapolated_share(x, np.inf) == 0.0 and sv.extrapolated_share(x, None) == 0.0
    assert sv.extrapolation_note(sv.EXTRAPOLATED_SHARE, 10.0) == ""  # at the 95% interval's edge
    assert sv.extrapolation_note(0.2, 10.04, short=True) == ("beyond the longest follow-up "
                                                             "(10.0 months) in 20% of draws")
    assert "in >99% of draws" in sv.extrapolation_note(0.996, 10.0)
    assert "in 100% of draws" in sv.extrapolation_note(1.0, 10.0)


# --------------------------------------------------------------------------- IPTW Bayesian bootstrap


@pytest.fixture(scope="module")
def confounded():
    # strong treatment selection, weakly prognostic confounder: highly variable IPT weights
    df = simulate_confounded(800, 0.6, a_treat=2.0, rho=0.2, seed=7)
    return df, logistic_design(df)


def test_bayesian_bootstrap_recovers_marginal_hr_and_is_deterministic():
    # strongly prognostic confounder: the crude HR is far from the marginal HR
    df = simulate_confounded(1000, 0.6, a_treat=1.0, rho=0.8, seed=8)
    design = logistic_design(df)
    bb = sb.iptw_bayesian_bootstrap(df, "os", design, n_boot=300, seed=1)
    x = bb.posterior["log_hr"].values.ravel()
    assert bb.posterior["log_hr"].shape == (1, 300)
    assert abs(np.median(x) - np.log(0.6)) < 3 * x.std()
    t, d, trt = sv.endpoint_columns(df, "os")
    coll = sv.collapse(t, d, trt, bb.attrs["cuts"])
    crude = sb.weighted_pwe_mle(coll["events"].values, coll["exposure"].values)[0]
    assert abs(crude - np.log(0.6)) > 3 * x.std()  # confounding is real in this design
    again = sb.iptw_bayesian_bootstrap(df, "os", design, n_boot=300, seed=1)
    np.testing.assert_array_equal(x, again.posterior["log_hr"].values.ravel())
    other = sb.iptw_bayesian_bootstrap(df, "os", design, n_boot=300, seed=2)
    assert not np.array_equal(x, other.posterior["log_hr"].values.ravel())
    a = bb.attrs
    assert a["adjustment"] == "iptw" and a["estimand"] == "marginal (ATE)" and "Saarela" in a["method"]
    rows = sv.result_rows(bb, "synthetic", "simulated")
    assert np.isnan(rows[0]["rhat_max"]) and np.isnan(rows[0]["divergences"])


def test_fixed_weight_pseudo_posterior_has_the_kish_ess_information(confounded):
    """With highly variable weights, the fixed-weight pseudo-posterior (weights scaled to the
    Kish ESS) has the spread of the weighted likelihood's curvature at the effective sample
    size: its SD matches the profile-likelihood SE of the weighted MLE computed from the
    Kish-scaled statistics (within the Monte Carlo error of an SD, sd / sqrt(2 ESS), and 5% for
    the prior and the Laplace approximation). Scaled to n instead, it would be narrower by
    sqrt(ESS / n) (about 0.65 here)."""
    df, design = confounded
    w = design(np.ones(len(df)))
    fixed = sv.fit_pwe(df, "os", adjust="iptw", weights=w, cuts=[0, 3, 6, 12], sampler=FAST)
    assert fixed.attrs["method"].endswith(sv.FIXED_WEIGHT_METHOD)
    D = fixed.observed_data["events"].values
    E = fixed.constant_data["exposure"].values
    beta, _ = sb.weighted_pwe_mle(D, E)
    eb = np.exp(beta)
    info = np.sum(D.sum(axis=0) * E[0] * E[1] * eb / (E[0] + E[1] * eb) ** 2)
    se = 1 / np.sqrt(info)
    sd = float(fixed.posterior["log_hr"].std())
    ess = float(az.ess(fixed, var_names=["log_hr"])["log_hr"])
    assert abs(sd - se) < 3 * sd / np.sqrt(2 * ess) + 0.05 * se, (sd, se)
    kish = w.sum() ** 2 / np.sum(w**2)
    assert kish / len(w) < 0.6  # the weights really are variable: scaling to n would matter


def test_bootstrap_errors(confounded):
    df, design = confounded
    with pytest.raises(InputError, match="design_fn"):
        sb.iptw_bayesian_bootstrap(df, "os", lambda g: np.ones(3), n_boot=5)
    with pytest.raises(InputError, match="n_boot"):
        sb.iptw_bayesian_bootstrap(df, "os", design, n_boot=1)
    with pytest.raises(InputError, match="no events"):
        sb.iptw_bayesian_bootstrap(df, "os", design, n_boot=2, cuts=[0, 3, 200])


@pytest.fixture(scope="module")
def large_boot():
    """Bootstrap replicates on a large cohort (n = 3000), where their distribution is close to
    normal, so the normal-normal combination is the exact target of the prior combination."""
    df = simulate_confounded(3000, 0.6, a_treat=1.0, rho=0.8, seed=11)
    return sb.bootstrap_draws(df, "os", logistic_design(df), n_boot=1000, seed=4, cuts=[0, 3, 6, 12])


def _normal_normal(boot, ps):
    """Posterior mean and sd of log HR predicted by the normal-normal combination of the
    prior-free replicates (mean, covariance) with the prior set's Normal priors."""
    raw = np.column_stack([boot.log_hr, boot.log_lambda])
    priors = [ps.get(ps.log_hr_key("os"))] + [ps.get("survival.log_baseline_hazard")] * boot.cuts.size
    mu, C = bp.normal_posterior(raw.mean(0), np.cov(raw, rowvar=False), priors)
    return mu[0], np.sqrt(C[0, 0])


@pytest.mark.parametrize("sigma, path", [(2.5, "reweighting"), (0.15, "reweighting"),
                                         (0.02, "normal-exact")])
def test_iptw_prior_moves_the_posterior_as_normal_normal_predicts(large_boot, sigma, path):
    """The IPTW posterior under a Normal(0, sigma) log-HR prior: by PSIS reweighting of the
    bootstrap replicates where the weights allow, by the normal approximation where they
    degenerate; either way within Monte Carlo error of the normal-normal prediction (MCSE of a
    mean: posterior sd / sqrt(ESS), ESS = the importance-sampling ESS on the reweighting path,
    the number of draws on the exact-normal path). sigma = 2.5 (vague) reproduces the prior-free
    replicates."""
    ps = as_prior_set("reference").with_prior("survival.log_hr", Prior("Normal", {"mu": 0.0, "sigma": sigma}))
    post = sb.iptw_posterior(large_boot, ps)
    x = post.posterior["log_hr"].values.ravel()
    assert post.attrs["prior_path"] == path
    mean, sd = _normal_normal(large_boot, ps)
    ess = post.attrs["prior_ess"] if path == "reweighting" else x.size
    mcse = sd / np.sqrt(ess)
    assert abs(x.mean() - mean) < 4 * mcse, (x.mean(), mean, mcse)
    assert abs(x.std() - sd) < 4 * sd / np.sqrt(2 * ess), (x.std(), sd)
    if sigma == 2.5:  # vague: the prior-free result, within Monte Carlo error
        assert abs(x.mean() - large_boot.log_hr.mean()) < 4 * large_boot.log_hr.std() / np.sqrt(ess)
    else:  # an informative prior centred on HR = 1 pulls the estimate towards 0
        assert x.mean() > large_boot.log_hr.mean() + 4 * mcse
    assert "log_likelihood" not in post.groups()  # a weighted pseudo-likelihood is no likelihood


def test_prior_combination_with_a_non_normal_prior_uses_nuts():
    """A Student-t prior on a degenerate case goes through NUTS on the normal approximation:
    with nu = 1000 the t is practically Normal, so the result matches the closed form."""
    rng = np.random.default_rng(0)
    draws = rng.normal([-1.0, 0.5], [0.2, 0.1], size=(400, 2))
    t_prior = Prior("StudentT", {"nu": 1000.0, "mu": 0.0, "sigma": 0.02})
    comb = bp.combine_with_prior(draws, [t_prior, None], seed=1)
    assert comb.path == "normal-nuts"
    mu, C = bp.normal_posterior(draws.mean(0), np.cov(draws, rowvar=False),
                                [Prior("Normal", {"mu": 0.0, "sigma": 0.02}), None])
    x = comb.draws[:, 0]
    assert abs(x.mean() - mu[0]) < 4 * np.sqrt(C[0, 0]) / np.sqrt(200)


def test_fixed_weights_are_scaled_to_the_kish_ess():
    w = np.array([1.0, 1.0, 4.0, 0.5])
    ks = sv.kish_scaled(w)
    assert np.isclose(ks.sum(), w.sum() ** 2 / np.sum(w**2))
    np.testing.assert_allclose(ks / ks.sum(), w / w.sum())
    df = simulate_confounded(200, 0.6, a_treat=1.0, rho=0.5, seed=3)
    weights = np.where(df["treatment"] == 1, 3.0, 0.5)
    fit = sv.fit_pwe(df, "os", adjust="iptw", weights=weights, cuts=[0, 6], sampler=FAST)
    ess = weights.sum() ** 2 / np.sum(weights**2)
    t, d, x = sv.endpoint_columns(df, "os")
    raw = sv.collapse(t, d, x, [0, 6], weights)
    # the weighted events and exposure enter on the scale of the effective sample size
    np.testing.assert_allclose(fit.observed_data["events"].values,
                               raw["events"].values * ess / weights.sum())
    assert "Kish" in fit.attrs["method"] and "ignores the design" in fit.attrs["method"]


@pytest.mark.slow
def test_bootstrap_calibration():
    """Over repeated data sets, the bootstrap posterior SD matches the repeated-sampling SD of
    the IPTW estimate (within 30%) and the posterior medians centre on the true marginal log-HR."""
    truth = np.log(0.6)
    est, sds = [], []
    for rep in range(30):
        df = simulate_confounded(800, 0.6, a_treat=1.0, rho=0.8, seed=100 + rep)
        bb = sb.iptw_bayesian_bootstrap(df, "os", logistic_design(df), n_boot=200, seed=rep)
        x = bb.posterior["log_hr"].values.ravel()
        est.append(np.median(x))
        sds.append(x.std())
    est, sds = np.array(est), np.array(sds)
    assert abs(est.mean() - truth) < 3 * est.std() / np.sqrt(len(est)) + 0.02
    assert 0.7 < sds.mean() / est.std() < 1.3


# --------------------------------------------------------------------------- adjusted strategies


def simulate_ph_covariate(n, hr, gamma, seed, hr_late=None, change=6.0):
    """Exponential times with conditional hazard 0.08 exp(log(hr) x + gamma z), z ~ N(0, 1),
    treatment depending on z; with ``hr_late`` the HR changes from ``hr`` to ``hr_late`` at
    ``change`` months (time-varying effect)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    x = rng.binomial(1, 1 / (1 + np.exp(-0.8 * z)))
    e = rng.exponential(size=n)
    h1 = 0.08 * np.exp(np.log(hr) * x + gamma * z)
    T = e / h1
    if hr_late is not None:
        h2 = 0.08 * np.exp(np.log(hr_late) * x + gamma * z)
        late = T > change
        T = np.where(late, change + (e - h1 * change) / h2, T)
    c = rng.uniform(3, 36, n)
    return pd.DataFrame(
        {"id": np.arange(n), "treatment": x, "z": z, "os_time": np.minimum(T, c), "os_event": (T <= c).astype(int)}
    )


def test_patient_layout_logp_equals_rows_model_with_covariates_and_pairs():
    """The per-patient likelihood (covariates + pair effects) is the person-interval Poisson
    likelihood up to a constant (the Poisson-likelihood identity with a varying linear predictor)."""
    import pymc as pm
    import pytensor.tensor as pt

    df = simulate_ph_covariate(120, 0.6, 0.5, seed=9)
    df["pair"] = np.arange(len(df)) // 2
    cuts = sv.cut_points(df.os_time, df.os_event, n_intervals=4)
    ps = load_prior_set("reference")
    z = ((df.z - df.z.mean()) / df.z.std(ddof=0)).to_numpy()[:, None]
    spec = sv.ModelSpec(len(cuts), "rw", "patient", time_varying=True, n_covariates=1, n_pairs=60)
    t, d, x = sv.endpoint_columns(df, "os")
    data = {
        "event": d, "interval_index": sv.interval_index(t, cuts), "exposure": sv.exposure_matrix(t, cuts),
        "treatment": x, "covariates": z, "pair_index": df.pair.to_numpy(),
        "event_share": np.full(len(cuts), 1 / len(cuts)),
    }
    m_p = sv._build(spec, ps)
    pm.set_data(sv._values(spec, data, ps), model=m_p)
    # the same model written as one Poisson term per person-interval row
    rows = sv.expand_person_intervals(t, d, x, cuts, covariates={"z": z[:, 0], "pair": df.pair})
    rows = rows[rows.exposure > 0]
    m_r = pm.Model(coords=m_p.coords)
    with m_r:
        lam0 = ps.get("survival.log_baseline_hazard").to_pymc_data("log_lambda_first")
        sd = ps.get("survival.baseline_rw_sd").to_pymc_data("baseline_rw_sd")
        log_lambda = sv._random_walk("log_lambda", lam0, sd, len(cuts))
        hr0 = ps.get("survival.log_hr").to_pymc_data("log_hr_first")
        hr_sd = ps.get("survival.log_hr_rw_sd").to_pymc_data("log_hr_rw_sd")
        log_hr_t = sv._random_walk("log_hr_t", hr0, hr_sd, len(cuts))
        coef = ps.get("survival.covariate").to_pymc_data("coef", dims="covariates")
        pz = pm.Normal("pair_z", 0, 1, dims="pairs")
        u = ps.get("survival.pair_sd").to_pymc_data("pair_sd") * pz
        j = rows.interval.to_numpy()
        eta = log_lambda[j] + rows.treatment.to_numpy() * log_hr_t[j] + coef[0] * rows.z.to_numpy() + u[rows.pair.to_numpy()]
        pm.Poisson("event", mu=rows.exposure.to_numpy() * pt.exp(eta), observed=rows.event.to_numpy())
    lp_p, lp_r = m_p.compile_logp(), m_r.compile_logp()
    rng = np.random.default_rng(1)
    diffs = []
    for _ in range(5):
        point = {k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in m_p.initial_point().items()}
        diffs.append(lp_p(point) - lp_r(point))
    assert np.ptp(diffs) < 1e-8 * max(1.0, abs(diffs[0])), diffs


def test_pymc_computes_the_per_patient_loglik_and_predictive_of_a_fit(covariate_pair_fit):
    """The likelihood is an observed PyMC variable: pm.compute_log_likelihood on the fitted graph
    reproduces the stored per-patient log-likelihood (patient layout: exactly; collapsed layout:
    its cells sum to the patients' sum plus the data constant sum_jk [D log E - log D!]), and
    pm.sample_posterior_predictive draws event indicators / counts."""
    import pymc as pm

    for fit in covariate_pair_fit:
        spec = sv.model_spec(fit.attrs)
        model = sv._cached(spec, load_prior_set("reference")).model
        sub = fit.posterior.isel(draw=slice(0, 20))
        free = az.InferenceData(posterior=sub[[v.name for v in model.free_RVs]])
        ll = pm.compute_log_likelihood(free, model=model, extend_inferencedata=False, progressbar=False)
        mine = fit.log_likelihood["survival"].isel(draw=slice(0, 20)).values
        if spec.layout == "patient":
            np.testing.assert_allclose(ll["survival"].values, mine, rtol=1e-9, atol=1e-9)
            pp = pm.sample_posterior_predictive(free, model=model, var_names=["survival"], progressbar=False,
                                                random_seed=1, return_inferencedata=False)
            assert set(np.unique(pp["survival"])) <= {0, 1}
        else:
            D, E = fit.observed_data["events"].values, fit.constant_data["exposure"].values
            const = np.sum(special.xlogy(D, E) - special.gammaln(D + 1))
            np.testing.assert_allclose(ll["events"].sum(("arm", "intervals")).values, mine.sum(-1) + const, rtol=1e-9)
        # PyMC's log prior of the prior-set parameters is the one the sensitivity study computes
        from bayes_haic.sensitivity import log_prior

        lp = pm.compute_log_prior(free, model=model, extend_inferencedata=False, progressbar=False)
        mine_lp = log_prior(az.InferenceData(posterior=sub, attrs=dict(fit.attrs)), load_prior_set("reference"))
        for var in mine_lp.data_vars:
            np.testing.assert_allclose(lp[var].values, mine_lp[var].values, rtol=1e-9, atol=1e-9)


@pytest.fixture(scope="module")
def covariate_pair_fit():
    """(a collapsed fit, a patient-layout fit with a covariate) of one cohort, short chains."""
    df = simulate_ph_covariate(120, 0.6, 0.5, seed=9)
    tiny = SamplerSettings(draws=50, tune=100, chains=2, seed=3)
    return (sv.fit_pwe(df, "os", sampler=tiny),
            sv.fit_pwe(df, "os", adjust="covariates", covariates=["z"], sampler=tiny))


def test_standardisation_reduces_to_closed_form_without_covariates():
    h = np.array([[[0.12, 0.08, 0.05], [0.06, 0.04, 0.03]]])  # (draws, arm, J)
    cuts = [0, 6, 12]
    elp = np.ones((1, 7))
    np.testing.assert_allclose(
        sv.standardised_survival(h, elp, cuts, [3.0, 10.0, 30.0]), np.exp(-sv.cumulative_hazard(h, cuts, [3.0, 10.0, 30.0]))
    )
    np.testing.assert_allclose(sv._standardised_median(h, elp, cuts, 24.0), sv.median_survival(h, cuts), rtol=1e-9)
    np.testing.assert_allclose(sv._standardised_rmst(h, elp, cuts, 24.0), sv.rmst(h, cuts, 24.0), rtol=1e-10)
    # a mixture: the standardised curve is the mean of the patients' curves
    elp2 = np.array([[0.5, 2.0]])
    S = sv.standardised_survival(h, elp2, cuts, [10.0])
    H = sv.cumulative_hazard(h, cuts, [10.0])
    np.testing.assert_allclose(S, (np.exp(-0.5 * H) + np.exp(-2.0 * H)) / 2)


def test_standardised_median_and_rmst_of_a_mixture_solve_their_definitions():
    """For patients of different linear predictors the standardised median is the root of
    S(t) = 1/2 (checked by evaluating S on either side of it, 1e-9 months apart) and the RMST
    is the integral of S (checked by Simpson's rule on a fine grid); a curve that never falls
    to 1/2 (zero hazard after the last cut) has an infinite median."""
    rng = np.random.default_rng(3)
    cuts = np.array([0.0, 3.0, 7.0, 12.0, 20.0])
    h = np.exp(rng.normal(-2.3, 0.5, size=(40, 2, cuts.size)))
    elp = np.exp(rng.normal(0.0, 1.0, size=(40, 9)))
    w = rng.dirichlet(np.ones(9))
    med = sv._standardised_median(h, elp, cuts, 40.0, weight=w)
    assert np.isfinite(med).all()
    below = sv.standardised_survival(h, elp, cuts, med - 1e-9, weight=w)
    above = sv.standardised_survival(h, elp, cuts, med + 1e-9, weight=w)
    assert (below > 0.5).all() and (above < 0.5).all()
    grid = np.linspace(0.0, 24.0, 4801)  # Simpson's rule; the curve is smooth between the cuts
    S = sv.standardised_survival(h, elp, cuts, grid, weight=w)
    simpson = (grid[1] - grid[0]) / 3 * (S[..., 0] + S[..., -1] + 4 * S[..., 1:-1:2].sum(-1)
                                         + 2 * S[..., 2:-1:2].sum(-1))
    np.testing.assert_allclose(sv._standardised_rmst(h, elp, cuts, 24.0, weight=w), simpson, rtol=1e-7)
    flat = h * 0.02
    flat[..., -1] = 0.0  # S stays above 1/2 for most draws
    med0 = sv._standardised_median(flat, elp, cuts, 40.0, weight=w)
    never = sv.standardised_survival(flat, elp, cuts, np.full((40, 2), 1e6), weight=w) > 0.5
    assert never.any() and (np.isinf(med0) == never).all()


def _direct_standardised(h, elp, cuts, times, w):
    """sum_i w_i exp(-H(t) e_i) for every time at once (the definition, for the tests)."""
    H = sv.cumulative_hazard(h, cuts, times)
    return np.exp(-H[..., None] * elp[:, None, None, :]) @ w


@pytest.mark.parametrize("kind", ["even", "sorted", "unsorted", "cuts"])
def test_walked_standardised_curve_equals_the_definition(kind):
    """A grid of times is walked (each patient's survival carried from one time to the next
    within an interval); it must equal exp(-H(t) e_i) averaged directly, to 1e-12 relative:
    an even grid past the last cut, a sorted grid starting before 0, an unsorted one, and one
    with every cut point (twice), on random hazards (some intervals with zero hazard)."""
    rng = np.random.default_rng({"even": 1, "sorted": 2, "unsorted": 3, "cuts": 4}[kind])
    for _ in range(20):
        J = int(rng.integers(1, 9))
        cuts = np.concatenate([[0.0], np.sort(rng.uniform(0.5, 40.0, J - 1))])
        h = rng.gamma(0.5, 0.2, (int(rng.integers(1, 20)), 2, J))
        h[..., rng.integers(0, J)] = 0.0
        m = int(rng.integers(1, 40))
        elp = np.exp(rng.normal(0.0, 1.5, (h.shape[0], m)))
        w = rng.dirichlet(np.ones(m))
        times = {"even": lambda: np.linspace(0.0, rng.uniform(30.0, 80.0), 121),
                 "sorted": lambda: np.sort(rng.uniform(-1.0, 60.0, 60)),
                 "unsorted": lambda: rng.uniform(0.0, 60.0, 60),
                 "cuts": lambda: np.sort(np.concatenate([cuts, cuts, np.linspace(0.0, 50.0, 31)]))}[kind]()
        assert times.size > sv._WALK_MIN  # walked, not computed directly
        np.testing.assert_allclose(sv.standardised_survival(h, elp, cuts, times, weight=w),
                                   _direct_standardised(h, elp, cuts, times, w), rtol=1e-12, atol=0)
        # in blocks of draws: the same
        np.testing.assert_allclose(sv.standardised_survival(h, elp, cuts, times, chunk=3, weight=w),
                                   _direct_standardised(h, elp, cuts, times, w), rtol=1e-12, atol=0)


def test_standardised_rmst_is_the_mean_of_the_patients_closed_forms():
    """The standardised RMST (one expm1 per patient and interval, survival carried across
    intervals) equals the weighted mean of each patient's own closed-form :func:`rmst` of the
    hazard h e_i, to 1e-12 relative: tau inside the first interval, at a cut, past the last
    cut; zero-hazard intervals; tiny e_i (the Taylor branch)."""
    rng = np.random.default_rng(5)
    cuts = np.array([0.0, 3.0, 7.0, 12.0, 20.0])
    h = np.exp(rng.normal(-2.3, 0.7, size=(15, 2, cuts.size)))
    h[:, :, 2] = 0.0
    elp = np.exp(rng.normal(0.0, 1.0, size=(15, 6)))
    elp[:, 0] = 1e-14
    w = rng.dirichlet(np.ones(6))
    for tau in (1.5, 7.0, 12.5, 36.0):
        each = np.stack([sv.rmst(h * elp[:, i, None, None], cuts, tau) for i in range(6)], axis=-1)
        np.testing.assert_allclose(sv._standardised_rmst(h, elp, cuts, tau, weight=w), each @ w,
                                   rtol=1e-12, atol=0)


def test_time_varying_hr_detects_a_change():
    df = simulate_ph_covariate(1500, 0.4, 0.0, seed=10, hr_late=1.0)
    cuts = [0, 2, 4, 6, 9, 12, 18]
    idata = sv.fit_pwe(df, "os", cuts=cuts, time_varying=True, sampler=QUICK)
    hr_t = idata.posterior["log_hr_t"]
    assert hr_t.dims == ("chain", "draw", "intervals") and "hr_t" in idata.posterior
    early = hr_t.isel(intervals=[0, 1, 2]).mean("intervals").values.ravel()
    late = hr_t.isel(intervals=[4, 5, 6]).mean("intervals").values.ravel()
    assert np.mean(early < late) > 0.99
    assert abs(np.median(early) - np.log(0.4)) < 3 * early.std()
    assert idata.attrs["time_varying"] == 1 and "HR(t)" in idata.attrs["method"]


def test_adjustment_input_errors(small_data):
    df, _ = small_data
    with pytest.raises(InputError, match="needs a list of covariate"):
        sv.fit_pwe(df, "os", adjust="covariates")
    with pytest.raises(InputError, match="'nope' not in"):
        sv.fit_pwe(df, "os", adjust="covariates", covariates=["nope"])
    with pytest.raises(InputError, match="needs the propensity score"):
        sv.fit_pwe(df, "os", adjust="ps_covariate")
    with pytest.raises(InputError, match="strictly between 0 and 1"):
        sv.fit_pwe(df, "os", adjust="ps_covariate", ps=np.r_[1.0, np.full(len(df) - 1, 0.5)])
    with pytest.raises(InputError, match="matched-pair column"):
        sv.fit_pwe(df, "os", adjust="psm", pair_effect=True)
    with pytest.raises(InputError, match="only used with"):
        sv.fit_pwe(df, "os", covariates=["treatment"])
    with pytest.raises(InputError, match="is constant"):
        sv.fit_pwe(df.assign(k=1.0), "os", adjust="covariates", covariates=["k"])


@pytest.mark.slow
def test_covariate_and_ps_models_recover_conditional_hr():
    df = simulate_ph_covariate(1000, 0.6, 0.7, seed=11)
    X = sm.add_constant(df[["z"]])
    df["ps"] = sm.GLM(df.treatment, X, family=sm.families.Binomial()).fit().predict(X)
    cov = sv.fit_pwe(df, "os", adjust="covariates", covariates=["z"], sampler=FAST)
    x = cov.posterior["log_hr"].values.ravel()
    assert abs(np.median(x) - np.log(0.6)) < 3 * x.std()
    g = cov.posterior["coef"].sel(covariates="z").values.ravel() / df.z.std(ddof=0)  # per unit of z
    assert abs(np.median(g) - 0.7) < 3 * g.std()
    assert cov.attrs["estimand"] == "conditional" and cov.attrs["covariates"] == ["z"]
    assert cov.log_likelihood["survival"].dims == ("chain", "draw", "patient")
    psm = sv.fit_pwe(df, "os", adjust="ps_covariate", ps="ps", sampler=FAST)
    y = psm.posterior["log_hr"].values.ravel()
    # the PS is a function of z, so conditioning on it removes confounding; the HR given the PS
    # is attenuated toward 1 relative to the HR given z (non-collapsibility), never beyond 0
    assert np.quantile(y, 0.025) < np.log(0.6) + 0.25 and np.median(y) < 0
    summary, _ = sv.survival_estimands(psm, times=[0, 12])
    assert np.isfinite(summary.query("quantity == 'median'")["median"]).all()


@pytest.mark.slow
def test_psm_pair_effects():
    """Matched pairs (one treated, one control) sharing a frailty u_pair ~ N(0, 1): the pair
    random-effect model recovers the pair-conditional HR and the frailty SD."""
    rng = np.random.default_rng(12)
    n_pairs = 250
    u = np.repeat(rng.normal(0, 1.0, n_pairs), 2)
    x = np.tile([1, 0], n_pairs)
    T = rng.exponential(size=2 * n_pairs) / (0.08 * np.exp(np.log(0.6) * x + u))
    c = rng.uniform(3, 36, 2 * n_pairs)
    df = pd.DataFrame({"treatment": x, "pair": np.repeat(np.arange(n_pairs), 2),
                       "os_time": np.minimum(T, c), "os_event": (T <= c).astype(int)})
    fit = sv.fit_pwe(df, "os", adjust="psm", pair="pair", pair_effect=True, sampler=FAST)
    assert fit.attrs["estimand"] == "conditional" and fit.attrs["n_pairs"] == n_pairs
    assert fit.posterior["pair_effect"].dims == ("chain", "draw", "pairs")
    sd = fit.posterior["pair_sd"].values.ravel()
    assert np.quantile(sd, 0.025) < 1.0 < np.quantile(sd, 0.975)
    x = fit.posterior["log_hr"].values.ravel()
    assert abs(np.median(x) - np.log(0.6)) < 3 * x.std()
    marginal = sv.fit_pwe(df, "os", adjust="psm", sampler=FAST)  # no pair effect: attenuated toward 0
    assert marginal.attrs["estimand"] == "marginal (matched set)"
    assert float(marginal.posterior["log_hr"].median()) > np.median(x)
    rows = sv.result_rows(fit, "synthetic", "simulated")
    assert rows[0]["adjustment"] == "psm" and rows[0]["estimand"] == "conditional"
    # its RMST difference is standardised over the matched pairs: the matched set's average
    assert rows[3]["measure"] == "rmst_diff_24" and rows[3]["estimand"] == "marginal (matched set)"


def test_random_walk_fits_sample_with_small_steps_and_do_not_diverge():
    """A random-walk baseline needs target_accept 0.99 (survival.sampler_for): on the synthetic
    default cohort's PFS, 16 quantile intervals, the same seed at 0.9 diverges (this test
    checks that it still does, so the floor is still needed) and at 0.99 does not. The
    independent baseline keeps the settings it was given."""
    from bayes_haic.paths import default_cohort_path
    from bayes_haic.schema import load_cohort

    frame = load_cohort(default_cohort_path()).frame
    cuts = sv.cut_points(frame["pfs_time"].to_numpy(), frame["pfs_event"].to_numpy(), n_intervals=16)
    base = SamplerSettings(draws=1000, tune=1000, chains=2, seed=0, target_accept=0.9)
    rw = sv.fit_pwe(frame, "pfs", cuts=cuts, baseline="rw", sampler=base)
    assert rw.attrs["sampler_target_accept"] == sv.RANDOM_WALK_TARGET_ACCEPT
    assert int(rw.sample_stats["diverging"].sum()) == 0
    entry = sv._cached(sv.ModelSpec(len(cuts), "rw"), load_prior_set("reference"))
    raw = sample(entry.model, base)  # the same graph and data at the configured 0.9
    assert int(raw.sample_stats["diverging"].sum()) > 0
    ind = sv.fit_pwe(frame, "pfs", cuts=cuts, baseline="independent", sampler=base)
    assert ind.attrs["sampler_target_accept"] == 0.9
    assert sv.sampler_for(None, baseline="rw", n_intervals=1).target_accept == 0.9
    assert sv.sampler_for(base, baseline="independent", n_intervals=8, time_varying=True).target_accept == 0.99


def test_an_endpoint_can_have_its_own_log_hr_prior(small_data, tmp_path):
    """A prior set with survival.log_hr_pfs uses it for PFS fits (time-varying too) and
    survival.log_hr for OS; the sensitivity study's prior ratios use each endpoint's key."""
    from bayes_haic import sensitivity as sn
    from bayes_haic.paths import priors_dir

    text = (priors_dir() / "reference.toml").read_text().replace(
        "[survival]\n", '[survival]\nlog_hr_pfs = { dist = "Normal", mu = 0.3, sigma = 0.01 }\n')
    path = tmp_path / "pfs_own.toml"
    path.write_text(text.replace('name = "reference"', 'name = "pfs_own"'))
    own = load_prior_set(path)
    ref = load_prior_set("reference")
    df, cuts = small_data
    df = df.assign(pfs_time=df.os_time, pfs_event=df.os_event)
    os_fit = sv.fit_pwe(df, "os", cuts=cuts, prior_set=own, sampler=QUICK, baseline="independent")
    pfs_fit = sv.fit_pwe(df, "pfs", cuts=cuts, prior_set=own, sampler=QUICK, baseline="independent")
    assert os_fit.attrs["hr_prior"] == "survival.log_hr" and pfs_fit.attrs["hr_prior"] == "survival.log_hr_pfs"
    assert float(pfs_fit.posterior["log_hr"].mean()) == pytest.approx(0.3, abs=0.03)  # the tight PFS prior
    assert float(os_fit.posterior["log_hr"].mean()) < 0  # the data (true HR 0.6) under the wide prior
    tv = sv.ModelSpec(4, "rw", time_varying=True, hr_prior=own.log_hr_key("pfs")).prior_vars()
    assert tv["log_hr_first"] == "survival.log_hr_pfs"
    np.testing.assert_array_equal(sn.log_prior_ratio(os_fit, ref, own), 0.0)
    x = pfs_fit.posterior["log_hr"].transpose("chain", "draw").values
    expected = stats.norm.logpdf(x, 0.3, 0.01) - stats.norm.logpdf(x, 0.0, 2.5)
    np.testing.assert_allclose(sn.log_prior_ratio(pfs_fit, ref, own), expected, rtol=1e-9)


def test_survival_curves_cover_the_follow_up_of_any_cohort():
    """The curves' default grid ends at the data's maximum follow-up (a whole month up), e.g.
    well past the HCC study's 36 months for a cohort followed for years."""
    df = simulate_pwe(300, 0.7, [0, 24], [0.02, 0.01], seed=21, censor_max=150.0)
    fit = sv.fit_pwe(df, "os", cuts=[0, 24, 60], sampler=QUICK, baseline="independent")
    _, draws = sv.survival_estimands(fit)
    grid = draws["time"].values
    assert grid[0] == 0 and grid[-1] == np.ceil(df["os_time"].max()) and grid[-1] > 100
    assert sv.default_times(None)[-1] == sv.DEFAULT_HORIZON == 36.0


def test_prior_predictive_event_counts_match_their_closed_form():
    """With an independent baseline, log lambda_j ~ N(m, s^2) and log HR ~ N(0, g^2) (independent),
    E[events_kj] = E_kj exp(m + s^2/2) exp(k g^2/2): the prior predictive draws (PyMC's own,
    from the observed Poisson variable) agree within 4 Monte Carlo SEs."""
    df = simulate_pwe(300, 0.6, [0, 6], [0.1, 0.05], seed=5)
    cuts = [0.0, 4.0, 10.0]
    ps = (as_prior_set("reference")
          .with_prior("survival.log_baseline_hazard", Prior("Normal", {"mu": -3.0, "sigma": 0.3}))
          .with_prior("survival.log_hr", Prior("Normal", {"mu": 0.0, "sigma": 0.2})))
    pp = sv.prior_predictive(df, "os", cuts=cuts, prior_set=ps, baseline="independent", draws=4000, seed=2)
    E = sv.collapse(df.os_time, df.os_event, df.treatment, cuts)["exposure"].values
    expected = E * np.exp(-3.0 + 0.3**2 / 2) * np.exp(np.array([0.0, 0.2**2 / 2]))[:, None]
    ev = pp.prior_predictive["events"].stack(s=("chain", "draw")).transpose("arm", "intervals", "s").values
    se = ev.std(axis=-1) / np.sqrt(ev.shape[-1])
    assert np.all(np.abs(ev.mean(axis=-1) - expected) < 4 * se), (ev.mean(axis=-1), expected, se)
    assert pp.attrs["prior"] == ps.label() and set(pp.prior["log_lambda"].dims) >= {"intervals"}
