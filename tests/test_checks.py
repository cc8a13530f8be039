"""Tests of the model checks (bayes_haic.checks): PPC replicates and their calibration, the
per-patient PWE log-likelihood (Poisson-likelihood identity), PSIS-LOO, convergence table.

Posterior predictive p-values are deterministic given the seeds; the thresholds for "extreme"
(0.01) and "not extreme" (0.05) are fixed in advance, and the slow calibration test checks the
rate of extreme p-values over many simulated data sets instead of one.
"""

from __future__ import annotations

from types import SimpleNamespace

import arviz as az
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import special

from bayes_haic import checks as ck
from bayes_haic import report as rp
from bayes_haic.report.checks import checks_section
from bayes_haic import survival as sv
from bayes_haic import survival_bootstrap as sb
from bayes_haic.errors import InputError
from bayes_haic.response import fit_response
from bayes_haic.sampling import SamplerSettings

FAST = SamplerSettings(draws=500, tune=500, chains=2, seed=7, target_accept=0.95)
TINY = SamplerSettings(draws=150, tune=150, chains=1, seed=7)


# --------------------------------------------------------------------------- simulators


def simulate(n, cuts, hazards_control, hazards_treated, seed, censor=(6.0, 30.0)):
    """Arm-specific piecewise-constant hazards on ``cuts`` (months) by inverting the cumulative
    hazard; uniform censoring on ``censor``; a covariate ``z`` and a response column."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, n)
    c = np.asarray(cuts, float)
    h = np.where(x[:, None] == 1, np.asarray(hazards_treated, float), np.asarray(hazards_control, float))
    Hc = np.concatenate([np.zeros((n, 1)), np.cumsum(h[:, :-1] * np.diff(c), 1)], 1)
    target = rng.exponential(size=n)
    j = np.sum(target[:, None] >= Hc, 1) - 1
    T = c[j] + (target - Hc[np.arange(n), j]) / h[np.arange(n), j]
    C = rng.uniform(*censor, n)
    return pd.DataFrame({
        "id": np.arange(n).astype(str), "treatment": x, "z": rng.normal(size=n),
        "os_time": np.round(np.minimum(T, C), 3), "os_event": (T <= C).astype(int),
        "response": rng.binomial(1, np.where(x == 1, 0.6, 0.3)).astype(float),
    })


@pytest.fixture(scope="module")
def good():
    """Data from a PWE proportional-hazards model, and the fit of that model."""
    df = simulate(300, [0, 4, 10], [0.10, 0.06, 0.04], [0.06, 0.036, 0.024], seed=1)
    cuts = sv.cut_points(df.os_time, df.os_event, n_intervals=4)
    return df, sv.fit_pwe(df, "os", cuts=cuts, sampler=FAST, baseline="independent")


def constructed_fit(df, cuts, hazard, adjustment="none"):
    """A PWE InferenceData built by hand: posterior hazard (chain, draw, arm, intervals)."""
    coll = sv.collapse(df.os_time, df.os_event, df.treatment, cuts)
    C, D = hazard.shape[:2]
    post = xr.Dataset({"hazard": (("chain", "draw", "arm", "intervals"), hazard)},
                      coords={"chain": np.arange(C), "draw": np.arange(D), "arm": list(sv.ARMS),
                              "intervals": coll["intervals"].values})
    idata = az.InferenceData(posterior=post, observed_data=xr.Dataset({"events": coll["events"]}),
                             constant_data=xr.Dataset({"exposure": coll["exposure"]}))
    idata.attrs.update({"cuts": list(cuts), "endpoint": "os", "adjustment": adjustment})
    return idata, coll


# --------------------------------------------------------------------------- log-likelihood


def test_patient_loglik_sums_to_the_poisson_loglik_exactly():
    """sum_i l_i = sum_jk [D log h - E h] = sum_jk Poisson(D | E h) - sum D log E + sum log D!"""
    df = simulate(60, [0, 3], [0.2, 0.1], [0.1, 0.2], seed=2)
    df.loc[:4, "os_time"] = 3.0  # ties on a cut point: (c_j, c_j+1] convention
    cuts = np.array([0.0, 1.5, 3.0, 7.0])
    rng = np.random.default_rng(3)
    hazard = np.exp(rng.normal(-2, 0.5, (2, 5, 2, 4)))  # arbitrary arm x interval hazards (non-PH)
    idata, coll = constructed_fit(df, cuts, hazard)
    ll = ck.pointwise_loglik(idata, df)
    assert ll.dims == ("chain", "draw", "patient") and ll.sizes["patient"] == 60
    D, E = coll["events"].values, coll["exposure"].values
    poisson = sv.poisson_loglik(D, E, hazard).sum(axis=(-2, -1))
    const = np.sum(special.xlogy(D, E)) - np.sum(special.gammaln(D + 1))
    np.testing.assert_allclose(ll.sum("patient").values, poisson - const, rtol=1e-12, atol=1e-9)

    # and per patient, the formula sum_j [d_ij log(h_xj) - h_xj t_ij] by brute force
    t, d, x = df.os_time.to_numpy(), df.os_event.to_numpy(), df.treatment.to_numpy()
    for i in (0, 7, 31):
        ends = np.append(cuts[1:], np.inf)
        own = 0 if t[i] == 0 else next(j for j in range(4) if cuts[j] < t[i] <= ends[j])
        total = 0.0
        for j in range(4):
            t_ij = max(0.0, min(t[i], cuts[j + 1] if j < 3 else np.inf) - cuts[j])
            d_ij = float(d[i] == 1 and j == own)
            total += d_ij * np.log(hazard[1, 2, x[i], j]) - hazard[1, 2, x[i], j] * t_ij
        assert ll.values[1, 2, i] == pytest.approx(total, rel=1e-12)


def test_patient_loglik_of_a_fit_matches_its_collapsed_loglik(good):
    df, fit = good
    ll = ck.pointwise_loglik(fit, df).sum("patient").values
    D, E = fit.observed_data["events"].values, fit.constant_data["exposure"].values
    h = fit.posterior["hazard"].transpose("chain", "draw", "arm", "intervals").values
    cells = sv.poisson_loglik(D, E, h).sum(axis=(-2, -1))
    # the fit stored the same per-patient values (log_likelihood.survival)
    np.testing.assert_allclose(fit.log_likelihood["survival"].sum("patient").values, ll, rtol=1e-12)
    const = np.sum(special.xlogy(D, E)) - np.sum(special.gammaln(D + 1))
    np.testing.assert_allclose(ll, cells - const, rtol=1e-10)


@pytest.fixture(scope="module")
def covariate_fit():
    """A patient-level fit (a prognostic covariate z in the linear predictor; short chains)."""
    df = simulate(150, [0, 5], [0.1, 0.05], [0.07, 0.035], seed=4)
    return df, sv.fit_pwe(df, "os", adjust="covariates", covariates=["z"], cuts=[0, 5], sampler=TINY)


def test_patient_loglik_of_a_covariate_fit_matches_the_fits_own(covariate_fit):
    _, fit = covariate_fit
    mine = ck.pointwise_loglik(fit)  # patient-level fit: data from constant_data
    np.testing.assert_allclose(mine.values, fit.log_likelihood["survival"].values, rtol=1e-10, atol=1e-10)


def test_loglik_refuses_weighted_fits_and_wrong_data(good):
    df, fit = good
    boot = _bootstrap(df)
    with pytest.raises(InputError, match="IPTW"):
        ck.pointwise_loglik(boot, df)
    with pytest.raises(InputError, match="do not reproduce"):
        ck.pointwise_loglik(fit, df.iloc[:-3])
    with pytest.raises(InputError, match="stored no patient data"):  # a pooled/bootstrap-like fit
        ck.pointwise_loglik(az.InferenceData(posterior=fit.posterior, observed_data=fit.observed_data,
                                             attrs=dict(fit.attrs)))


# --------------------------------------------------------------------------- Kaplan-Meier and replicates


def _km_by_definition(t, d, w, grid):
    """prod over distinct event times u <= s of (1 - sum_{t_i = u} w_i d_i / sum_{t_i >= u} w_i)."""
    out = []
    for s in grid:
        surv = 1.0
        for u in np.unique(t[(d == 1) & (t <= s)]):
            surv *= 1 - np.sum(w * d * (t == u)) / np.sum(w * (t >= u))
        out.append(surv)
    return np.array(out)


def test_kaplan_meier_matches_lifelines_and_the_definition():
    from lifelines import KaplanMeierFitter

    rng = np.random.default_rng(5)
    t = np.round(rng.exponential(10, 80), 0)  # many ties, the largest time an event
    d = rng.integers(0, 2, 80)
    w = rng.uniform(0.2, 3, 80)
    grid = np.linspace(0, t.max(), 50)
    km = KaplanMeierFitter().fit(t, d)
    np.testing.assert_allclose(ck.km_on_grid(t, d, grid), km.survival_function_at_times(grid).to_numpy(),
                               rtol=1e-12, atol=1e-12)
    # weighted: lifelines does not drop to 0 at a last event with non-integer weights; the
    # definition does
    np.testing.assert_allclose(ck.km_on_grid(t, d, grid, w), _km_by_definition(t, d, w, grid),
                               rtol=1e-12, atol=1e-12)
    # row-wise on a matrix
    both = ck.km_on_grid(np.stack([t, t[::-1]]), np.stack([d, d[::-1]]), grid)
    np.testing.assert_allclose(both[1], ck.km_on_grid(t[::-1], d[::-1], grid))


def test_km_figure_draws_the_product_limit_estimate_per_arm():
    """The Kaplan-Meier steps in the report's KM-vs-model figure are the estimate above
    (lifelines' for unweighted data), drawn from S(0) = 1, one line per arm."""
    from lifelines import KaplanMeierFitter

    from bayes_haic.report import figures

    rng = np.random.default_rng(8)
    n = 60
    frame = pd.DataFrame({"treatment": rng.integers(0, 2, n), "os_time": np.round(rng.exponential(9, n), 1),
                          "os_event": rng.integers(0, 2, n)})
    grid = np.linspace(0, 30, 31)
    surv = xr.DataArray(np.ones((1, 4, 2, grid.size)), dims=("chain", "draw", "arm", "time"),
                        coords={"arm": ["treated", "control"], "time": grid})
    km = ck.km_by_arm(frame["os_time"].to_numpy(), frame["os_event"].to_numpy(), frame["treatment"].to_numpy())
    fig = figures.km_vs_model(km, "os", {"survival": surv})
    lines = {ln.get_label(): ln for ln in fig.axes[0].lines if "Kaplan-Meier" in ln.get_label()}
    assert len(lines) == 2
    for code, name in ((1, "HAIC-LEN-P"), (0, "LEN-P")):
        g = frame[frame["treatment"] == code]
        (label,) = [k for k in lines if k.startswith(name + " ")]
        x, y = (np.asarray(v, float) for v in lines[label].get_data())
        assert x[0] == 0 and y[0] == 1 and np.all(np.diff(x) >= 0)
        last = np.r_[x[1:] != x[:-1], True]  # at tied times the step ends at its last point
        ref = KaplanMeierFitter().fit(g["os_time"], g["os_event"]).survival_function_at_times(x[last])
        np.testing.assert_allclose(y[last], ref.to_numpy(), rtol=1e-12, atol=1e-12)


def test_simulated_event_times_follow_the_piecewise_hazard():
    rng = np.random.default_rng(6)
    cuts = np.array([0.0, 2.0, 5.0])
    h = np.array([0.3, 0.05, 0.2])
    T = ck.simulate_event_times(np.broadcast_to(h, (1, 200_000, 3)), cuts, rng)[0]
    grid = np.array([1.0, 2.0, 4.0, 8.0])
    expected = np.exp(-sv.cumulative_hazard(h, cuts, grid))
    se = np.sqrt(expected * (1 - expected) / T.size)
    assert np.all(np.abs(np.mean(T[:, None] > grid, 0) - expected) < 4 * se)


def test_censoring_replicates_keep_observed_censoring():
    df = simulate(200, [0, 4], [0.1, 0.05], [0.06, 0.03], seed=7, censor=(3.0, 20.0))
    data = ck.SurvivalData(df.os_time.to_numpy(), df.os_event.to_numpy(), df.treatment.to_numpy(),
                           np.array([0.0, 4.0]))
    C = ck.simulate_censoring(data, 300, np.random.default_rng(8))
    cens = data.event == 0
    np.testing.assert_array_equal(C[:, cens], np.broadcast_to(data.time[cens], (300, cens.sum())))
    ev = ~cens
    for k in (0, 1):  # drawn among the arm's censoring times after t_i, or the last follow-up
        m = ev & (data.treatment == k)
        support = np.append(data.time[cens & (data.treatment == k)], data.time.max())
        assert np.all(np.isin(C[:, m], np.append(support, data.time[m])))
        assert np.all((C[:, m] > data.time[m]) | (C[:, m] == data.time.max()))


def test_replicates_are_seeded(good):
    df, fit = good
    a = ck.survival_ppc(fit, df, n_draws=50, seed=11)
    b = ck.survival_ppc(fit, df, n_draws=50, seed=11)
    c = ck.survival_ppc(fit, df, n_draws=50, seed=12)
    for x, y in zip(a.replicates, b.replicates):
        np.testing.assert_array_equal(x, y)
    assert a.p_km == b.p_km and a.p_events == b.p_events
    pd.testing.assert_frame_equal(a.events, b.events)
    assert not np.array_equal(a.replicates[0], c.replicates[0])
    assert a.replicates[0].shape == (50, len(df))


# --------------------------------------------------------------------------- PPC calibration


def test_ppc_does_not_flag_a_correct_model(good):
    df, fit = good
    ppc = ck.survival_ppc(fit, df, seed=13)
    assert min(ppc.p_km.values()) > 0.05, ppc.p_km
    assert ppc.p_events > 0.05
    ev = ppc.events
    assert len(ev) == 2 * len(fit.attrs["cuts"]) and set(ev["arm"]) == {"control", "treated"}
    np.testing.assert_array_equal(ev["observed"].to_numpy(), fit.observed_data["events"].values.ravel())
    inside = (ev["observed"] >= ev["predicted_lower"]) & (ev["observed"] <= ev["predicted_upper"])
    assert inside.all()
    assert ppc.events_source.startswith("the model's posterior_predictive")


def test_ppc_flags_non_proportional_hazards():
    """Crossing hazards (HR 0.25 before 6 months, 4 after) fitted by a PH model."""
    base = np.array([0.08, 0.08, 0.08])
    df = simulate(500, [0, 6, 12], base, base * np.array([0.25, 4.0, 4.0]), seed=14, censor=(12.0, 36.0))
    cuts = sv.cut_points(df.os_time, df.os_event, n_intervals=4)
    fit = sv.fit_pwe(df, "os", cuts=cuts, sampler=FAST, baseline="independent")
    ppc = ck.survival_ppc(fit, df, seed=15)
    assert ppc.p_km["both"] < 0.01, ppc.p_km
    assert ppc.p_events < 0.01
    assert (ppc.events["p_value"] < 0.05).sum() >= 2


def test_ppc_flags_a_hazard_change_inside_a_long_interval():
    """Hazard 0.4 for 3 months then 0.02, fitted with a first interval of 15 months: the events
    table cannot see it (one baseline parameter per interval), the Kaplan-Meier check does."""
    df = simulate(400, [0, 3], [0.4, 0.02], [0.4, 0.02], seed=16, censor=(10.0, 30.0))
    fit = sv.fit_pwe(df, "os", cuts=[0.0, 15.0, 20.0, 25.0], sampler=FAST, baseline="independent")
    ppc = ck.survival_ppc(fit, df, seed=17)
    assert ppc.p_km["both"] < 0.01 and max(ppc.p_km.values()) < 0.05, ppc.p_km
    assert ppc.p_events > 0.05


def test_ppc_of_a_patient_level_fit_uses_each_patients_hazard(covariate_fit):
    df, fit = covariate_fit
    data = ck.fit_data(fit)
    np.testing.assert_allclose(data.time, df.os_time.to_numpy(), rtol=1e-12)
    np.testing.assert_array_equal(data.event, df.os_event.to_numpy())
    assert data.weight is None and data.lp.shape == (1, 150, 150)
    coef = fit.posterior["coef"].values[..., 0]  # one standardised covariate
    z = (df.z - df.z.mean()) / df.z.std(ddof=0)
    np.testing.assert_allclose(data.lp, coef[..., None] * z.to_numpy(), rtol=1e-10)
    ppc = ck.survival_ppc(fit, n_draws=30, seed=1)
    np.testing.assert_array_equal(ppc.events["observed"].to_numpy(), fit.observed_data["events"].values.ravel())


# --------------------------------------------------------------------------- weighted / bootstrap fits


def _bootstrap(df):
    def weights_fn(g):  # fixed, non-constant IPT weights (no propensity refit)
        return 1.0 + 0.5 * df["z"].to_numpy() ** 2

    return sb.iptw_bayesian_bootstrap(df, "os", weights_fn, n_boot=60, seed=3,
                                      cuts=sv.cut_points(df.os_time, df.os_event, n_intervals=4))


def test_weighted_ppc_for_an_iptw_bootstrap_fit(good):
    df, _ = good
    boot = _bootstrap(df)
    w = 1.0 + 0.5 * df["z"].to_numpy() ** 2
    ppc = ck.survival_ppc(boot, df, weights=w, seed=18)
    assert ppc.weighted and ppc.n_draws == 60 and "weighted" in ppc.events_source
    np.testing.assert_allclose(ppc.events["observed"].to_numpy(), boot.observed_data["events"].values.ravel())
    assert min(ppc.p_km.values()) > 0.01 and ppc.p_events > 0.01
    with pytest.raises(InputError, match="weights"):
        ck.survival_ppc(boot, df)
    with pytest.raises(InputError, match="do not reproduce"):
        ck.survival_ppc(boot, df, weights=np.ones(len(df)))


# --------------------------------------------------------------------------- convergence table


def _idata(chains=2, draws=1000, shift=0.0, divergent=0, energy_ar=0.0, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(chains, draws, 3))
    x[-1] += shift
    e = rng.normal(size=(chains, draws))
    if energy_ar:
        for t in range(1, draws):  # strongly autocorrelated energy: low BFMI
            e[:, t] = energy_ar * e[:, t - 1] + np.sqrt(1 - energy_ar**2) * e[:, t]
    div = np.zeros((chains, draws), bool)
    div.flat[:divergent] = True
    return az.from_dict(posterior={"log_hr": x[..., 0], "log_lambda": x[..., 1:]},
                        sample_stats={"diverging": div, "energy": e},
                        attrs={"endpoint": "os", "adjustment": "none"})


def test_diagnostics_table_flags_bad_fits_and_passes_good_ones():
    boot = az.from_dict(posterior={"log_hr": np.zeros((1, 50))},
                        attrs={"endpoint": "os", "adjustment": "iptw", "bootstrap_n": 50})
    fits = {("os", "good"): _idata(), ("os", "split"): _idata(shift=3.0),
            ("os", "short"): _idata(draws=60), ("os", "divergent"): _idata(divergent=3),
            ("os", "bfmi"): _idata(energy_ar=0.99), ("os", "one chain"): _idata(chains=1, draws=2000),
            ("os", "bootstrap"): boot}
    tab = ck.diagnostics_table(fits).set_index("fit")
    assert tab.loc["OS good", "status"] == "pass" and tab.loc["OS good", "problems"] == ""
    assert tab.loc["OS split", "status"] == "fail" and "R-hat" in tab.loc["OS split", "problems"]
    assert tab.loc["OS short", "status"] == "fail" and "ESS" in tab.loc["OS short", "problems"]
    assert "3 divergent transitions" in tab.loc["OS divergent", "problems"]
    assert tab.loc["OS bfmi", "status"] == "fail" and "BFMI" in tab.loc["OS bfmi", "problems"]
    assert tab.loc["OS one chain", "status"] == "fail" and "1 chain" in tab.loc["OS one chain", "problems"]
    assert tab.loc["OS bootstrap", "status"] == "not applicable"
    assert np.isnan(tab.loc["OS bootstrap", "rhat_max"])
    msgs = ck.failures(tab.reset_index())
    assert len(msgs) == 5 and all(m.startswith("Convergence problem: OS ") for m in msgs)
    assert not any("good" in m or "bootstrap" in m for m in msgs)


def test_a_real_fit_passes(good):
    _, fit = good
    tab = ck.diagnostics_table({("os", "none"): fit})
    assert tab["status"].tolist() == ["pass"], tab.to_dict("records")
    assert ck.failures(tab) == []


# --------------------------------------------------------------------------- response, LOO, section


@pytest.fixture(scope="module")
def orr(good):
    df, _ = good
    return fit_response(df, sampler=SamplerSettings(draws=300, tune=300, chains=2, seed=7))


def test_response_ppc(good, orr):
    df, _ = good
    ppc = ck.response_ppc(orr)
    tab = ppc.table.set_index("arm")
    for arm, k in (("control", 0), ("treated", 1)):
        m = df.treatment == k
        assert tab.loc[arm, "responders"] == df.response[m].sum()
        assert tab.loc[arm, "observed"] == pytest.approx(df.response[m].mean())
        assert 0.05 < tab.loc[arm, "p_value"] <= 1
        assert ppc.replicates[arm].shape == (orr.posterior.sizes["chain"] * orr.posterior.sizes["draw"],)


@pytest.fixture(scope="module")
def tv(good):
    """A time-varying-HR fit of the good data (as the main job's HR(t) fit; short chains)."""
    df, fit = good
    return sv.fit_pwe(df, "os", cuts=fit.attrs["cuts"], time_varying=True, sampler=TINY)


def test_loo_table_and_checks_section(good, orr, tv):
    df, fit = good
    boot = _bootstrap(df)
    cohort = SimpleNamespace(frame=df, data_tier="synthetic")
    design = SimpleNamespace(weights=1.0 + 0.5 * df["z"].to_numpy() ** 2)
    fits = {("os", "none"): fit, ("os", "iptw"): boot, ("orr", "none"): orr}
    res = ck.run_checks(cohort, fits, design=design, compare_models=True,
                        candidates=({"n_intervals": 2},), candidate_sampler=FAST, n_draws=40)
    (key, loo), = res.loo.items()
    assert key == ("os", "OS: model structures (unadjusted)")
    assert len(loo) == 2 and loo["elpd_diff"].iloc[0] == 0.0
    assert {"elpd_loo", "se", "elpd_diff", "dse", "k > 0.7", "max k"} <= set(loo.columns)
    assert loo["model"].str.startswith("main: ").sum() == 1
    # elpd_loo = lpd - p_loo, with lpd the in-sample log pointwise predictive density
    main = loo.set_index("model").loc[f"main: {ck.model_label(fit)}"]
    ll = ck.pointwise_loglik(fit, df).stack(s=("chain", "draw")).values  # (patient, sample)
    lpd = float(np.sum(special.logsumexp(ll, axis=1) - np.log(ll.shape[1])))
    assert main["elpd_loo"] < lpd and lpd - main["elpd_loo"] == pytest.approx(main["p_loo"], rel=1e-6)
    diag = res.diagnostics.set_index("fit")
    assert diag.loc["OS iptw", "status"] == "not applicable"
    assert any(f.startswith("OS LOO candidate: 2 intervals") for f in diag.index)
    sec = checks_section(res, cohort, fits)
    assert sec.id == "checks" and sec.nav_label == "Checks" and sec.tier == "synthetic"
    kinds = [type(b).__name__ for b in sec.blocks]
    assert kinds.count("Figure") == 2 and kinds.count("Table") >= 4
    html = rp.render("checks", [sec])
    assert "PSIS-LOO" in html and "posterior predictive" in html
    assert set(res.survival) == {("os", "none"), ("os", "iptw")} and set(res.response) == {("orr", "none")}
    assert len(res.events_table()) == 2 * 2 * len(fit.attrs["cuts"])


def test_time_varying_fit_is_compared_without_refitting(good, tv):
    df, fit = good
    cohort = SimpleNamespace(frame=df, data_tier="user")
    res = ck.run_checks(cohort, {("os", "none"): fit}, time_varying_fits={"os": tv}, n_draws=20,
                        compare_models=True, candidates=({"time_varying": True},))
    assert res.candidate_fits == {}  # the time-varying candidate is covered by the given fit
    (key, loo), = res.loo.items()
    assert key[0] == "os" and "time-varying" in key[1]
    assert set(loo["model"]) == {f"main: {ck.model_label(fit)}", ck.model_label(tv)}
    assert "OS none time-varying HR" in set(res.diagnostics["fit"])
    assert any("not refitted" in n for n in res.notes)


def test_checks_merged_per_block_equal_one_run_over_all_fits(good, orr, tv):
    """The main job checks each block's fits as the block ends and merges them: the same
    diagnostics table (rows in run_checks' order), PPC p-values, LOO tables and failures as one
    run_checks of every fit; the figures drawn per block are the section's own."""
    df, fit = good
    cohort = SimpleNamespace(frame=df, data_tier="synthetic")
    fits = {("os", "none"): fit, ("orr", "none"): orr}
    whole = ck.run_checks(cohort, fits, time_varying_fits={"os": tv}, n_draws=30)
    parts = [ck.run_checks(cohort, {("orr", "none"): orr}, n_draws=30),  # ends first
             ck.run_checks(cohort, {("os", "none"): fit}, time_varying_fits={"os": tv}, n_draws=30)]
    merged = ck.merge_checks(parts, order=ck.diagnostics_order(fits, {"os": tv}))
    pd.testing.assert_frame_equal(merged.diagnostics, whole.diagnostics)
    assert merged.diagnostics["fit"].tolist() == ["OS none", "ORR none", "OS none time-varying HR"]
    assert merged.failures == whole.failures
    assert list(merged.survival) == list(whole.survival) and set(merged.response) == set(whole.response)
    for k in whole.survival:
        assert merged.survival[k].summary() == whole.survival[k].summary()
    for k in whole.loo:
        pd.testing.assert_frame_equal(merged.loo[k], whole.loo[k])
    from bayes_haic.report.checks import ppc_figures

    drawn = {k: v for p in parts for k, v in ppc_figures(p, cohort).items()}
    assert set(drawn) == {("survival", "os"), ("response",)}
    png = lambda sec: [b.png_base64 for b in sec.blocks if type(b).__name__ == "Figure"]
    assert png(checks_section(merged, cohort, fits, drawn=drawn)) == png(checks_section(whole, cohort, fits))
    with pytest.raises(ValueError, match="no checks"):
        ck.merge_checks([])


def test_fit_loo_candidates_time_varying_and_duplicates(good):
    df, fit = good
    cands = ({"n_intervals": 4}, {"time_varying": True})
    models, notes = ck.fit_loo_candidates(df, "os", fit, candidates=cands, sampler=TINY)
    assert next(iter(models)).startswith("main: ")
    assert any("same structure" in n for n in notes)  # 4 quantile intervals = the main fit's cuts
    tv = [m for k, m in models.items() if "time-varying" in k]
    assert len(tv) == 1 and "log_hr_t" in tv[0].posterior
    ll = ck.pointwise_loglik(tv[0], df)  # covers the arm-specific hazards
    D, E = tv[0].observed_data["events"].values, tv[0].constant_data["exposure"].values
    const = np.sum(special.xlogy(D, E)) - np.sum(special.gammaln(D + 1))
    h = tv[0].posterior["hazard"].transpose("chain", "draw", "arm", "intervals").values
    cells = sv.poisson_loglik(D, E, h).sum(axis=(-2, -1))
    np.testing.assert_allclose(ll.sum("patient").values, cells - const, rtol=1e-10)
    with pytest.raises(InputError, match="unknown option"):
        ck.fit_loo_candidates(df, "os", fit, candidates=({"knots": 3},))


# --------------------------------------------------------------------------- slow


@pytest.mark.slow
def test_ppc_p_values_are_rarely_extreme_under_the_true_model():
    """Over 20 data sets from a PH PWE model, the global PPC p-values (KM both arms, events
    X²) are below 0.05 in at most 15% of cases (posterior predictive p-values are conservative:
    concentrated around 0.5)."""
    low = []
    for s in range(20):
        df = simulate(250, [0, 4, 10], [0.10, 0.06, 0.04], [0.06, 0.036, 0.024], seed=100 + s)
        cuts = sv.cut_points(df.os_time, df.os_event, n_intervals=4)
        fit = sv.fit_pwe(df, "os", cuts=cuts, sampler=SamplerSettings(draws=300, tune=300, seed=s),
                         baseline="independent")
        ppc = ck.survival_ppc(fit, df, seed=s, n_draws=100)
        low += [ppc.p_km["both"] < 0.05, ppc.p_events < 0.05]
    assert np.mean(low) <= 0.15, np.mean(low)


@pytest.mark.slow
def test_loo_prefers_the_time_varying_hr_under_crossing_hazards():
    base = np.array([0.08, 0.08, 0.08])
    df = simulate(500, [0, 6, 12], base, base * np.array([0.25, 4.0, 4.0]), seed=14, censor=(12.0, 36.0))
    cuts = sv.cut_points(df.os_time, df.os_event, n_intervals=6)
    fit = sv.fit_pwe(df, "os", cuts=cuts, sampler=FAST)
    models, _ = ck.fit_loo_candidates(df, "os", fit, candidates=({"time_varying": True},), sampler=FAST)
    tab = ck.loo_table(models, df)
    assert "time-varying" in tab["model"].iloc[0]
    assert tab["elpd_diff"].iloc[1] > 2 * tab["dse"].iloc[1]
