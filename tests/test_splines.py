"""The PS spline's degrees of freedom mean what R's ``ns(df = k)`` means.

References were computed in R by ``tests/reference/rotterdam_spline_reference.R`` (R 4.2.2,
survival 3.5-3, splines) from the checked-in Rotterdam cohort and propensity scores:
``rotterdam_spline_basis.csv`` (``ns(x, df = k)`` on a small vector with ties) and
``rotterdam_spline_reference.csv`` (the knots ``ns(qlogis(ps), df = k)`` places on the cohort, and
the log HR and SE of treatment from the Poisson GLM on the piecewise-exponential split with that
spline, k = 3 and 4). The two df give clearly different HRs on this cohort (OS: -0.03 and -0.17),
so a df off by one fails the comparison.

Tolerances: deterministic comparisons at 1e-6 (ML fits, same data and knots); the vague-prior
posterior (slow) within 4 x the MCSE of its median and its SD within 4 / sqrt(2 ESS) relative, as
in ``test_real_data.py``.
"""

from __future__ import annotations

import math
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest

from bayes_haic import covariates
from bayes_haic import response as rs
from bayes_haic import splines
from bayes_haic import survival as sv
from bayes_haic.errors import InputError
from bayes_haic.priors import load_prior_set
from bayes_haic.sampling import SamplerSettings

REF = Path(__file__).parent / "reference"
CUTS = [0, 12, 24, 36, 60, 84, 120]  # months, as in the R scripts
VAGUE = load_prior_set("reference", ("survival.log_hr.sigma=10", "survival.log_baseline_hazard.sigma=10",
                                     "survival.ps_spline.sigma=10"))
SAMPLER = SamplerSettings(draws=1000, tune=1000, chains=2, seed=3)


@pytest.fixture(scope="module")
def rotterdam():
    frame = pd.read_csv(REF / "rotterdam_cohort.csv")
    ps = pd.read_csv(REF / "rotterdam_ps.csv")
    assert list(ps["id"]) == list(frame["id"])
    frame["ps"] = ps["ps"].to_numpy()
    return frame


def reference(endpoint: str, df: int) -> pd.Series:
    ref = pd.read_csv(REF / "rotterdam_spline_reference.csv")
    row = ref[(ref.endpoint == endpoint) & (ref.df == df)]
    assert len(row) == 1
    return row.iloc[0]


def r_basis(df: int) -> tuple[np.ndarray, np.ndarray]:
    b = pd.read_csv(REF / "rotterdam_spline_basis.csv")
    b = b[b.df == df]
    x = b[b.column == 1]["x"].to_numpy()
    return x, np.column_stack([b[b.column == j]["value"].to_numpy() for j in range(1, df + 1)])


def projection_residual(A: np.ndarray, B: np.ndarray) -> float:
    """Largest residual of the least-squares projection of the columns of B onto span(A)."""
    coef, *_ = np.linalg.lstsq(A, B, rcond=None)
    return float(np.abs(A @ coef - B).max())


@pytest.mark.parametrize("df", [3, 4])
def test_basis_spans_rs_ns_plus_intercept(df):
    """span(1, our basis with spline_df = k) == span(1, ns(x, df = k)) on a vector with ties
    (where quantiles of all values and of the unique values differ), both ways round."""
    x, R = r_basis(df)
    ours = splines.ps_spline_basis(x, df)
    assert ours.shape == (x.size, df)
    one = np.ones((x.size, 1))
    A, B = np.hstack([one, ours]), np.hstack([one, R])
    assert projection_residual(A, B) < 1e-8
    assert projection_residual(B, A) < 1e-8
    # one df fewer does not span it (the test can fail)
    assert projection_residual(np.hstack([one, splines.ps_spline_basis(x, df - 1)]), B) > 1e-3
    # centred, orthogonal, SD 1 columns
    np.testing.assert_allclose(ours.mean(axis=0), 0, atol=1e-10)
    np.testing.assert_allclose(ours.T @ ours / x.size, np.eye(df), atol=1e-10)


@pytest.mark.parametrize("df", [3, 4])
def test_knots_are_rs_on_the_rotterdam_scores(rotterdam, df):
    """Boundary knots at the range and interior knots at the quantiles of all scores (the cohort's
    scores are tied: patsy's cr(df=) would use the unique values and move the knots)."""
    lps = np.log(rotterdam["ps"] / (1 - rotterdam["ps"])).to_numpy()
    r_knots = np.array(reference("os", df)["knots"].split(), float)
    np.testing.assert_allclose(splines.ns_knots(lps, df), r_knots, rtol=0, atol=1e-8)


def pwe_spline_mle(frame: pd.DataFrame, endpoint: str, df: int) -> tuple[float, float]:
    """Maximum-likelihood log HR and SE of the PS-spline PWE model with our basis (the basis
    fit_pwe uses), by a Poisson GLM on the person-interval rows."""
    import statsmodels.api as sm

    t, d, x = sv.endpoint_columns(frame, endpoint)
    Z, names, _ = covariates.ps_spline(covariates.propensity_scores(frame, "ps"), df)
    long = sv.expand_person_intervals(t, d, x, CUTS, covariates=pd.DataFrame(Z, columns=names))
    long = long[long["exposure"] > 0]
    X = pd.get_dummies(long["interval"], prefix="j", dtype=float)
    X["treatment"] = long["treatment"].astype(float)
    X[names] = long[names]
    fit = sm.GLM(long["event"].to_numpy(float), X, family=sm.families.Poisson(),
                 offset=np.log(long["exposure"].to_numpy())).fit(tol=1e-12)
    return float(fit.params["treatment"]), float(fit.bse["treatment"])


@pytest.mark.parametrize("endpoint", ["os", "pfs"])
@pytest.mark.parametrize("df", [3, 4])
def test_ps_spline_pwe_mle_matches_r(rotterdam, endpoint, df):
    """Deterministic: the ML estimate of the PWE model with our spline_df = k basis equals R's
    Poisson GLM with ns(qlogis(ps), df = k), log HR and SE; and differs from R's other df."""
    est, se = pwe_spline_mle(rotterdam, endpoint, df)
    ref = reference(endpoint, df)
    assert est == pytest.approx(ref["log_hr"], abs=1e-6)
    assert se == pytest.approx(ref["se"], rel=1e-5)
    other = reference(endpoint, 7 - df)
    assert abs(est - other["log_hr"]) > 0.1


def test_default_df_is_rs_df_3():
    import inspect

    assert splines.DEFAULT_DF == 3
    assert inspect.signature(sv.fit_pwe).parameters["spline_df"].default == 3
    assert inspect.signature(rs.fit_response).parameters["spline_df"].default == 3


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, "3"])
def test_df_must_be_a_positive_integer(bad):
    with pytest.raises(InputError, match="spline_df"):
        splines.ps_spline_basis(np.linspace(-2, 2, 30), bad)


def test_too_few_distinct_scores_is_an_input_error():
    x = np.r_[np.zeros(20), np.ones(3)]  # the quantile knots coincide
    with pytest.raises(InputError, match="too few distinct values"):
        splines.ps_spline_basis(x, 3)
    assert splines.ps_spline_basis(x, 1).shape == (23, 1)


def test_a_score_with_few_values_gets_the_spline_it_supports():
    """``supported_basis``: a continuous score keeps df; a score of 3 values supports 2
    functions, of 2 values 1 (then the basis spans the indicator of the higher value:
    stratification); a constant score is a user error that names the cause."""
    rng = np.random.default_rng(4)
    assert splines.supported_basis(rng.normal(size=200), 3)[1] == 3
    assert splines.supported_basis(rng.choice([-1.0, 0.2, 1.5], size=200), 3)[1] == 2
    two = rng.choice([-0.1, 0.2], size=200)
    assert splines.supported_basis(two, 3)[1] == 1
    basis = splines.ps_spline_basis(two, 1)
    assert projection_residual(np.c_[np.ones(200), two > 0], basis) < 1e-10
    assert "only 2 distinct values" in splines.reduced_df_note(1, 3, two)
    assert splines.reduced_df_note(3, 3, two) == ""
    with pytest.raises(InputError, match="all equal"):
        splines.supported_basis(np.full(50, 0.3), 3)


def binary_confounder_cohort(n: int = 400, seed: int = 8) -> pd.DataFrame:
    """One binary confounder (so the propensity score takes two values), exponential times."""
    rng = np.random.default_rng(seed)
    male = rng.integers(0, 2, n)
    treatment = (rng.random(n) < np.where(male == 1, 0.7, 0.35)).astype(int)
    time = rng.exponential(1 / (0.05 * np.exp(-0.5 * treatment + 0.6 * male)))
    cens = rng.uniform(6, 40, n)
    frame = pd.DataFrame({"id": range(n), "treatment": treatment, "male": male,
                          "os_time": np.minimum(time, cens), "os_event": (time <= cens).astype(int),
                          "response": (rng.random(n) < 0.3 + 0.2 * treatment).astype(float)})
    share = frame.groupby("male")["treatment"].mean()
    frame["ps"] = frame["male"].map(share)  # the saturated logistic model's fitted score
    return frame


def test_two_valued_score_adjusts_as_its_covariate_does():
    """With one binary confounder the PS spline (reduced to one function) and adjusting for the
    covariate span the same columns: the Poisson-GLM log HR and SE agree to 1e-8 (both by
    maximum likelihood on the same person-interval split)."""
    import statsmodels.api as sm

    frame = binary_confounder_cohort()
    spline_lhr, spline_se = pwe_spline_mle(frame, "os", 3)
    t, d, x = sv.endpoint_columns(frame, "os")
    long = sv.expand_person_intervals(t, d, x, CUTS, covariates=frame[["male"]].reset_index(drop=True))
    long = long[long["exposure"] > 0]
    X = pd.get_dummies(long["interval"], prefix="j", dtype=float)
    X["treatment"] = long["treatment"].astype(float)
    X["male"] = long["male"].astype(float)
    fit = sm.GLM(long["event"].to_numpy(float), X, family=sm.families.Poisson(),
                 offset=np.log(long["exposure"].to_numpy())).fit(tol=1e-12)
    assert spline_lhr == pytest.approx(fit.params["treatment"], abs=1e-8)
    assert spline_se == pytest.approx(fit.bse["treatment"], abs=1e-8)


def test_two_valued_score_fits_and_says_so():
    """The PWE and response fits under ps_covariate run on such a cohort (they stopped with an
    error before) and record the reduced spline in their attrs and method."""
    frame = binary_confounder_cohort(n=200)
    fast = SamplerSettings(draws=200, tune=200, chains=2, seed=1)
    pwe = sv.fit_pwe(frame, "os", adjust="ps_covariate", ps=frame["ps"].to_numpy(), cuts=CUTS[:4],
                     sampler=fast)
    assert pwe.attrs["spline_df"] == 1 and "only 2 distinct values" in pwe.attrs["method"]
    orr = rs.fit_response(frame, adjust="ps_covariate", ps=frame["ps"].to_numpy(), sampler=fast)
    assert "only 2 distinct values" in orr.attrs["method"]
    assert orr.attrs["covariates"] == ["spline_1"]


def test_response_model_uses_the_same_basis(monkeypatch):
    """The ORR model's ps_covariate spline is the shared basis, with the same spline_df."""
    calls = []

    class Stop(Exception):
        pass

    def spy(x, df):
        calls.append((np.asarray(x).copy(), df))
        raise Stop

    rng = np.random.default_rng(1)
    n = 40
    frame = pd.DataFrame({"id": range(n), "treatment": np.r_[np.ones(20), np.zeros(20)].astype(int),
                          "response": rng.integers(0, 2, n).astype(float)})
    ps = rng.uniform(0.1, 0.9, n)
    monkeypatch.setattr(rs.splines, "ps_spline_basis", spy)
    with pytest.raises(Stop):
        rs.fit_response(frame, adjust="ps_covariate", ps=ps, spline_df=4)
    np.testing.assert_allclose(calls[0][0], np.log(ps / (1 - ps)))
    assert calls[0][1] == 4


@pytest.mark.slow
@pytest.mark.parametrize("endpoint", ["os", "pfs"])
@pytest.mark.parametrize("df", [3, 4])
def test_ps_spline_posterior_matches_r(rotterdam, endpoint, df):
    """With vague priors the PS-spline PWE posterior of log HR is centred on R's estimate with
    the same df and as wide as its SE."""
    fit = sv.fit_pwe(rotterdam, endpoint, adjust="ps_covariate", ps="ps", spline_df=df, cuts=CUTS,
                     prior_set=VAGUE, sampler=SAMPLER, baseline="independent")
    ref = reference(endpoint, df)
    x = fit.posterior["log_hr"].values.ravel()
    assert fit.attrs["spline_df"] == df and len(fit.attrs["covariates"]) == df
    assert int(fit.sample_stats["diverging"].sum()) == 0
    assert abs(np.median(x) - ref["log_hr"]) < 4 * float(az.mcse(fit.posterior["log_hr"].values, method="median"))
    ess = float(az.ess(fit.posterior["log_hr"].values, method="bulk"))
    assert abs(x.std() / ref["se"] - 1) < 4 / math.sqrt(2 * ess)
