"""Propensity-score model (maximum likelihood), IPT weights, Kish ESS and the design bundle."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bayes_haic.errors import InputError
from bayes_haic.propensity import design, fit_ps, ipt_weights, kish_ess

REF = Path(__file__).parent / "reference"
LALONDE_COVARIATES = ["age", "educ", "black", "hispan", "married", "nodegree", "re74", "re75"]

# A known assignment model on covariates like the study's (binary 0/1 and two continuous).
TRUE_COEF = pd.Series(
    {"intercept": 2.0, "age": -0.04, "male": 0.3, "ecog_1": -0.7, "afp_400": 0.5,
     "tumor_size_cm": 0.12, "mvi": 0.9}
)
COVARIATES = list(TRUE_COEF.index[1:])


def simulate_cohort(n, seed, coef=TRUE_COEF):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "id": [f"P{i:04d}" for i in range(n)],
        "age": rng.normal(58, 10, n).round(1),
        "male": rng.binomial(1, 0.85, n),
        "ecog_1": rng.binomial(1, 0.4, n),
        "afp_400": rng.binomial(1, 0.45, n),
        "tumor_size_cm": np.exp(rng.normal(np.log(7), 0.4, n)).round(1),
        "mvi": rng.binomial(1, 0.4, n),
    })
    eta = coef["intercept"] + frame[list(coef.index[1:])].to_numpy() @ coef.iloc[1:].to_numpy()
    frame.insert(1, "treatment", rng.binomial(1, 1 / (1 + np.exp(-eta))))
    return frame


# ---------------------------------------------------------------------------------------------
# ML fit
# ---------------------------------------------------------------------------------------------


def test_ml_fit_equals_r_glm_on_lalonde():
    lal = pd.read_csv(REF / "matchit_lalonde.csv")
    ref = pd.read_csv(REF / "matchit_lalonde_glm.csv").set_index("term")
    fit = fit_ps(lal, LALONDE_COVARIATES)
    assert list(fit.coef.index) == ["intercept", *LALONDE_COVARIATES]
    np.testing.assert_allclose(fit.coef.to_numpy(), ref["estimate"].to_numpy(), rtol=1e-6)
    # glm() reports SEs at its last-but-one IRLS iterate (convergence epsilon 1e-8)
    np.testing.assert_allclose(fit.se.to_numpy(), ref["se"].to_numpy(), rtol=1e-3)
    dist = pd.read_csv(REF / "matchit_lalonde_distance.csv")
    np.testing.assert_allclose(fit.logit_ps, dist["distance"], atol=1e-6)
    np.testing.assert_allclose(fit.ps, 1 / (1 + np.exp(-fit.logit_ps)))
    assert list(fit.ids) == lal["id"].tolist()


def test_ml_recovers_the_assignment_model_within_3_se():
    frame = simulate_cohort(3000, seed=1)
    fit = fit_ps(frame, COVARIATES)
    z = (fit.coef - TRUE_COEF) / fit.se
    assert (z.abs() < 3).all(), z
    d = (fit.coef - TRUE_COEF).to_numpy()
    wald = d @ np.linalg.solve(fit.cov.to_numpy(), d)
    assert stats.chi2.sf(wald, len(d)) > 0.001


def test_wald_intervals_have_nominal_coverage():
    # 200 replicates: coverage of the 95% interval of each coefficient; binomial SD 0.015
    hits = np.zeros(len(TRUE_COEF))
    reps = 200
    for seed in range(reps):
        fit = fit_ps(simulate_cohort(400, seed=100 + seed), COVARIATES)
        hits += ((fit.coef - TRUE_COEF).abs() <= 1.959964 * fit.se).to_numpy()
    coverage = hits / reps
    assert np.all((coverage > 0.90) & (coverage < 0.99)), coverage


def test_covariate_scale_changes_only_its_own_coefficient():
    frame = simulate_cohort(500, seed=3)
    fit = fit_ps(frame, COVARIATES)
    scaled = frame.assign(age=frame["age"] * 12.0 + 5.0)  # e.g. months, shifted
    refit = fit_ps(scaled, COVARIATES)
    assert refit.coef["age"] == pytest.approx(fit.coef["age"] / 12.0, rel=1e-8)
    assert refit.se["age"] == pytest.approx(fit.se["age"] / 12.0, rel=1e-6)
    np.testing.assert_allclose(refit.ps, fit.ps, rtol=1e-8)


def test_integer_sample_weights_equal_duplicated_patients():
    frame = simulate_cohort(300, seed=4)
    w = np.random.default_rng(0).integers(0, 4, len(frame))
    expanded = frame.loc[np.repeat(np.arange(len(frame)), w)].reset_index(drop=True)
    expanded["id"] = [f"E{i}" for i in range(len(expanded))]
    weighted = fit_ps(frame, COVARIATES, sample_weight=w)
    direct = fit_ps(expanded, COVARIATES)
    np.testing.assert_allclose(weighted.coef, direct.coef, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(weighted.se, direct.se, rtol=1e-6)
    assert weighted.ps.shape == (len(frame),)  # scores for every patient, weighted or not


def test_refit_with_dirichlet_weights_and_predict():
    frame = simulate_cohort(300, seed=5)
    fit = fit_ps(frame, COVARIATES)
    w = np.random.default_rng(1).dirichlet(np.ones(len(frame))) * len(frame)
    boot = fit.refit(frame, sample_weight=w)
    assert boot.covariates == fit.covariates and boot.sample_weight is not None
    assert not np.allclose(boot.coef, fit.coef)
    ps, logit = fit.predict(frame)
    np.testing.assert_allclose(ps, fit.ps, rtol=1e-10)
    np.testing.assert_allclose(logit, fit.logit_ps, rtol=1e-10, atol=1e-12)


def test_missing_covariate_is_an_error_naming_column_and_rows():
    frame = simulate_cohort(50, seed=6)
    frame.loc[[3, 7], "age"] = np.nan
    with pytest.raises(InputError, match=r"column 'age' is missing at rows 4, 8.*does not drop"):
        fit_ps(frame, COVARIATES)


@pytest.mark.parametrize(
    "change, covariates, message",
    [
        (lambda f: f.assign(male=f["male"].astype(str).replace("1", "yes")), COVARIATES,
         r"column 'male'.*expected a number"),
        (lambda f: f, COVARIATES + ["hbv"], r"no column\(s\) 'hbv'"),
        (lambda f: f, COVARIATES + ["age"], "listed twice"),
        (lambda f: f, "age", "list of column names"),
        (lambda f: f, [], "at least one covariate"),
        (lambda f: f.assign(age=np.inf), COVARIATES, "infinite"),
        (lambda f: f.assign(hbv=1), COVARIATES + ["hbv"], "single value"),
        (lambda f: f.assign(female=1 - f["male"]), COVARIATES + ["female"],
         "'female' is a linear combination"),
        (lambda f: f.assign(treatment=f["treatment"].replace(0, 2)), COVARIATES, "expected 1 .* or 0"),
        (lambda f: f.assign(treatment=1), COVARIATES, "needs both arms"),
        (lambda f: f.assign(id="same"), COVARIATES, "ids must be unique"),
    ],
)
def test_input_errors(change, covariates, message):
    frame = change(simulate_cohort(80, seed=7))
    with pytest.raises(InputError, match=message):
        fit_ps(frame, covariates)


def test_complete_separation_is_reported():
    frame = simulate_cohort(100, seed=8)
    frame["marker"] = frame["treatment"] * 2.0 + np.random.default_rng(0).normal(0, 0.1, len(frame))
    with pytest.raises(InputError, match=r"perfectly predicted by .*marker.*separation"):
        fit_ps(frame, COVARIATES + ["marker"])


def test_quasi_complete_separation_by_a_binary_covariate_is_reported():
    frame = simulate_cohort(200, seed=9)
    frame["portal_invasion"] = 0
    treated = np.flatnonzero(frame["treatment"] == 1)
    frame.loc[treated[:15], "portal_invasion"] = 1  # only treated patients have it
    with pytest.raises(InputError, match=r"portal_invasion = 1: 15 treated, 0 control"):
        fit_ps(frame, COVARIATES + ["portal_invasion"])


def test_lalonde_with_all_three_race_indicators_is_collinear():
    lal = pd.read_csv(REF / "matchit_lalonde.csv")
    with pytest.raises(InputError, match="'white' is a linear combination"):
        fit_ps(lal, LALONDE_COVARIATES + ["white"])


def test_unknown_method():
    with pytest.raises(InputError, match="fit_ps_bayes"):
        fit_ps(simulate_cohort(50, seed=1), COVARIATES, method="bayes")


# ---------------------------------------------------------------------------------------------
# Weights: hand-computed values on a six-patient cohort
# ---------------------------------------------------------------------------------------------

PS = np.array([0.2, 0.5, 0.8, 0.25, 0.5, 0.75])
T = np.array([1, 1, 0, 0, 0, 0])  # p = P(treated) = 1/3


@pytest.mark.parametrize(
    "estimand, stabilized, expected",
    [
        ("ATE", False, [5, 2, 5, 4 / 3, 2, 4]),
        ("ATE", True, [5 / 3, 2 / 3, 10 / 3, 8 / 9, 4 / 3, 8 / 3]),
        ("ATT", False, [1, 1, 4, 1 / 3, 1, 3]),
        ("ATT", True, [1, 1, 8, 2 / 3, 2, 6]),
        ("ATO", False, [0.8, 0.5, 0.8, 0.25, 0.5, 0.75]),
        ("ate", False, [5, 2, 5, 4 / 3, 2, 4]),
    ],
)
def test_weights_by_hand(estimand, stabilized, expected):
    np.testing.assert_allclose(ipt_weights(PS, T, estimand, stabilized=stabilized), expected, rtol=1e-14)


def test_truncation_by_hand():
    # ATE weights sorted: 4/3, 2, 2, 4, 5, 5; type-7 quantiles: 10% -> 5/3, 70% -> 4.5
    np.testing.assert_allclose(
        ipt_weights(PS, T, "ATE", truncate=(0.1, 0.7)), [4.5, 2, 4.5, 5 / 3, 2, 4], rtol=1e-14
    )
    # ATT: only the control weights (4, 1/3, 1, 3) are truncated; 50% quantile = 2
    np.testing.assert_allclose(
        ipt_weights(PS, T, "ATT", truncate=(0.0, 0.5)), [1, 1, 2, 1 / 3, 1, 2], rtol=1e-14
    )
    # truncation after stabilisation
    np.testing.assert_allclose(
        ipt_weights(PS, T, "ATE", stabilized=True, truncate=(0.0, 0.8)),
        np.minimum([5 / 3, 2 / 3, 10 / 3, 8 / 9, 4 / 3, 8 / 3], np.quantile(
            [5 / 3, 2 / 3, 10 / 3, 8 / 9, 4 / 3, 8 / 3], 0.8)),
        rtol=1e-14,
    )


def test_kish_ess_by_hand():
    ess = kish_ess(ipt_weights(PS, T, "ATE"), T)
    assert ess["treated"] == pytest.approx(49 / 29)  # (5 + 2)^2 / (25 + 4)
    assert ess["control"] == pytest.approx(1369 / 421)  # (37/3)^2 / (421/9)
    assert kish_ess(np.ones(6), T) == {"treated": 2.0, "control": 4.0}


def test_stabilised_ate_weights_sum_to_about_arm_sizes():
    frame = simulate_cohort(4000, seed=11)
    fit = fit_ps(frame, COVARIATES)
    t = frame["treatment"].to_numpy()
    w = ipt_weights(fit.ps, t, "ATE", stabilized=True)
    # E[sum of stabilised weights in an arm] = arm size; Monte Carlo error a few percent
    assert w[t == 1].sum() / (t == 1).sum() == pytest.approx(1, abs=0.06)
    assert w[t == 0].sum() / (t == 0).sum() == pytest.approx(1, abs=0.06)
    # weighting balances the covariate means (the PS model is correct)
    x = frame["mvi"].to_numpy()
    wt = ipt_weights(fit.ps, t, "ATE")
    diff = np.average(x[t == 1], weights=wt[t == 1]) - np.average(x[t == 0], weights=wt[t == 0])
    assert abs(diff) < 0.03


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(ps=[0.2, 1.0, 0.5]), "strictly between 0 and 1"),
        (dict(ps=[0.2, np.nan, 0.5]), "strictly between 0 and 1"),
        (dict(treatment=[1, 0, 3]), "0 or 1"),
        (dict(treatment=[1, 1, 1]), "both arms"),
        (dict(estimand="ATC"), "estimand must be one of"),
        (dict(estimand="ATO", stabilized=True), "no stabilised form"),
        (dict(truncate=(1, 99)), "fractions, not percent"),
        (dict(truncate=0.99), "pair of quantile levels"),
    ],
)
def test_weight_input_errors(kwargs, message):
    args = dict(ps=[0.2, 0.5, 0.7], treatment=[1, 0, 0])
    args.update(kwargs)
    with pytest.raises(InputError, match=message):
        ipt_weights(**args)


# ---------------------------------------------------------------------------------------------
# The design bundle
# ---------------------------------------------------------------------------------------------


def test_design_bundles_fit_weights_matching_and_balance():
    frame = simulate_cohort(230, seed=12)
    d = design(frame, COVARIATES)
    t = frame["treatment"].to_numpy()
    np.testing.assert_allclose(d.weights, ipt_weights(d.ps_fit.ps, t, "ATE", stabilized=True))
    assert d.ess == kish_ess(d.weights, t)
    assert d.match.caliper == 0.2 and d.match.order == "largest"
    assert d.balance["covariate"].tolist() == COVARIATES
    # adjustment improves the worst imbalance
    worst_before = d.balance["smd_before"].abs().max()
    assert d.balance["smd_matched"].abs().max() < worst_before
    assert d.balance["smd_weighted"].abs().max() < worst_before
    summary = d.summary()
    assert summary["n_pairs"] == d.match.n_pairs and summary["weights_estimand"] == "ATE"
    mf = d.matched_frame(frame)
    assert len(mf) == 2 * d.match.n_pairs and "pair" in mf.columns


def test_design_with_overlap_weights_records_that_they_are_not_stabilised():
    frame = simulate_cohort(230, seed=13)
    d = design(frame, COVARIATES, estimand="ATO")  # stabilized=True by default
    assert d.weight_settings == {"estimand": "ATO", "stabilized": False, "truncate": None}
    np.testing.assert_allclose(d.weights, ipt_weights(d.ps_fit.ps, frame["treatment"], "ATO"))


def test_design_refit_weights_for_a_bayesian_bootstrap():
    frame = simulate_cohort(230, seed=14)
    d = design(frame, COVARIATES, truncate=(0.01, 0.99))
    np.testing.assert_allclose(d.refit_weights(frame, np.ones(len(frame))), d.weights, rtol=1e-10)
    g = np.random.default_rng(2).dirichlet(np.ones(len(frame))) * len(frame)
    w = d.refit_weights(frame, g)
    fit = fit_ps(frame, COVARIATES, sample_weight=g)
    expected = ipt_weights(fit.ps, frame["treatment"], "ATE", stabilized=True, truncate=(0.01, 0.99))
    np.testing.assert_allclose(w, expected)
    assert not np.allclose(w, d.weights)
