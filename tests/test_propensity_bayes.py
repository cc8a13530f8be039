"""Bayesian propensity model: recovers a known assignment model; posterior draws of every score."""

import numpy as np
import pytest

from bayes_haic.errors import InputError
from bayes_haic.propensity import fit_ps, fit_ps_bayes, posterior_ps
from bayes_haic.sampling import SamplerSettings

# The known assignment model and its simulator are shared with the ML tests.
from test_propensity import COVARIATES, TRUE_COEF, simulate_cohort  # noqa: E402,F401

FAST = SamplerSettings(draws=400, tune=400, chains=2)


@pytest.fixture(scope="module")
def cohort():
    return simulate_cohort(300, seed=21)


@pytest.fixture(scope="module")
def idata(cohort):
    return fit_ps_bayes(cohort, COVARIATES, sampler=FAST)


def test_structure_and_provenance(idata, cohort):
    for group in ("posterior", "posterior_predictive", "log_likelihood", "observed_data", "sample_stats"):
        assert group in idata.groups()
    post = idata.posterior
    assert list(post["beta"].coords["coef"].values) == ["intercept", *COVARIATES]
    assert list(post["gamma"].coords["covariate"].values) == COVARIATES
    assert list(post["ps"].coords["patient"].values) == cohort["id"].tolist()
    assert idata.log_likelihood["treatment"].sizes["patient"] == len(cohort)
    assert idata.attrs["model"] == "propensity_logistic"
    assert idata.attrs["prior_gamma"] == "Normal(mu: 0, sigma: 1)"
    assert idata.attrs["covariates"] == ", ".join(COVARIATES)
    assert idata.attrs["convergence_rhat_max"] < 1.02
    assert idata.attrs["convergence_divergences"] == 0


def test_posterior_covers_the_true_coefficients(idata):
    beta = idata.posterior["beta"].stack(s=("chain", "draw")).transpose("coef", "s").to_numpy()
    lo, hi = np.quantile(beta, [0.005, 0.995], axis=1)
    truth = TRUE_COEF.to_numpy()
    assert np.all((lo < truth) & (truth < hi)), (lo, truth, hi)


def test_posterior_agrees_with_maximum_likelihood(idata, cohort):
    # weak prior, n = 300: posterior mean within a fraction of an SE of the MLE, and the
    # back-transformed beta is on the same scale as fit_ps's coefficients
    fit = fit_ps(cohort, COVARIATES)
    beta = idata.posterior["beta"]
    mean = beta.mean(("chain", "draw")).to_numpy()
    sd = beta.std(("chain", "draw")).to_numpy()
    assert np.all(np.abs(mean - fit.coef.to_numpy()) < 0.3 * fit.se.to_numpy())
    np.testing.assert_allclose(sd, fit.se.to_numpy(), rtol=0.25)
    ps = posterior_ps(idata)
    assert ps.shape == (FAST.draws * FAST.chains, len(cohort))
    assert np.max(np.abs(ps.mean(axis=0) - fit.ps)) < 0.05
    logit = posterior_ps(idata, logit=True)
    np.testing.assert_allclose(1 / (1 + np.exp(-logit)), ps, rtol=1e-10)


def test_separated_data_still_give_finite_scores():
    frame = simulate_cohort(60, seed=22)
    frame["marker"] = frame["treatment"]  # complete separation: no MLE
    with pytest.raises(InputError, match="separation"):
        fit_ps(frame, ["age", "marker"])
    idata = fit_ps_bayes(frame, ["age", "marker"], sampler=SamplerSettings(draws=200, tune=200, chains=1))
    ps = posterior_ps(idata)
    assert np.all((ps > 0) & (ps < 1))


def test_bad_prior_sd():
    with pytest.raises(InputError, match="prior_sd must be a positive number"):
        fit_ps_bayes(simulate_cohort(50, seed=1), COVARIATES, prior_sd=0)
