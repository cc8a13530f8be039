"""The vectorised convergence diagnostics equal ArviZ's, quantity by quantity.

ArviZ 0.23 (its NumPy code path, the one ``bayes_haic.sampling`` used before) is the reference:
the values must agree to 1e-12 relative (the same arithmetic in the same order; the observed
differences are ~1e-15, from FFTs and sums over batches) and be NaN exactly where ArviZ's are.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from bayes_haic import diagnostics as dg


def _ar1(rng, q, c, n, phi):
    e = rng.normal(size=(q, c, n))
    x = np.empty_like(e)
    x[..., 0] = e[..., 0]
    for t in range(1, n):
        x[..., t] = phi * x[..., t - 1] + e[..., t]
    return x


def _arviz(x):
    import arviz as az

    with warnings.catch_warnings(), dg.arviz_numpy():
        warnings.simplefilter("ignore")
        return {"rhat": np.array([float(az.rhat(e)) for e in x]),
                "ess_bulk": np.array([float(az.ess(e, method="bulk")) for e in x]),
                "ess_tail": np.array([float(az.ess(e, method="tail")) for e in x])}


def _assert_same(got, ref):
    for k in ref:
        np.testing.assert_array_equal(np.isnan(got[k]), np.isnan(ref[k]), err_msg=k)
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-12, err_msg=k)


@pytest.mark.parametrize("n", [8, 9, 21, 400])
@pytest.mark.parametrize("chains", [1, 2, 4])
def test_equal_to_arviz_for_autocorrelated_and_antithetic_chains(n, chains):
    """AR(1) chains from strongly antithetic (phi = -0.9: Geyer's sequence stops at once) to
    nearly non-mixing (phi = 0.999: it runs to the end), odd and even lengths, 1-4 chains."""
    rng = np.random.default_rng(n * 10 + chains)
    x = np.concatenate([_ar1(rng, 3, chains, n, phi) for phi in (-0.9, -0.3, 0.0, 0.6, 0.97, 0.999)])
    _assert_same(dg.rhat_ess(x), _arviz(x))


def test_equal_to_arviz_for_constant_discrete_shifted_and_missing_values():
    """A constant (R-hat undefined, ESS = all draws), rounded and binary values (ties in the
    ranks), a chain shifted away from the other (R-hat >> 1) and a quantity with a NaN (NaN
    everywhere, as ArviZ), next to ordinary ones."""
    rng = np.random.default_rng(7)
    x = _ar1(rng, 6, 2, 300, 0.4)
    x[0] = 2.5
    x[1] = np.round(x[1])
    x[2] = (x[2] > 0.3).astype(float)
    x[3, 1] += 3.0
    x[4, 0, 17] = np.nan
    ref = _arviz(x)
    got = dg.rhat_ess(x)
    _assert_same(got, ref)
    assert np.isnan(got["rhat"][[0, 4]]).all() and got["ess_bulk"][0] == 600
    assert got["rhat"][3] > 1.5


def test_equal_to_arviz_on_posterior_draws_of_a_pwe_fit():
    """Real draws: every scalar of a small PWE fit's posterior (log hazards, HR, hazards,
    expected events: skewed, correlated, on different scales)."""
    import pandas as pd

    from bayes_haic import sampling
    from bayes_haic import survival as sv

    rng = np.random.default_rng(3)
    trt = rng.integers(0, 2, 150)
    t = rng.exponential(1 / (0.08 * 0.6**trt))
    df = pd.DataFrame({"treatment": trt, "os_time": np.minimum(t, 24.0), "os_event": (t <= 24.0).astype(int)})
    idata = sv.fit_pwe(df, "os", cuts=[0, 4, 8, 16], baseline="independent",
                       sampler=sampling.SamplerSettings(draws=300, tune=300, chains=2, seed=1,
                                                        backend="nutpie-numba"))
    post = idata.posterior
    x = np.concatenate([np.moveaxis(post[v].values.reshape(2, 300, -1), 2, 0) for v in post.data_vars])
    assert x.shape[0] >= 20
    _assert_same(dg.rhat_ess(x), _arviz(x))


def test_short_chains_and_bad_shapes():
    """Fewer than 4 draws: NaN (as ArviZ); 4-7 draws: ArviZ's own values; not 3-D: an error."""
    rng = np.random.default_rng(0)
    assert np.isnan(dg.rhat_ess(rng.normal(size=(2, 2, 3)))["ess_bulk"]).all()
    x = rng.normal(size=(2, 2, 6))
    _assert_same(dg.rhat_ess(x), _arviz(x))
    with pytest.raises(ValueError, match="quantities, chains, draws"):
        dg.rhat_ess(rng.normal(size=(2, 100)))
    assert {k: v.shape for k, v in dg.rhat_ess(x).items()} == {"rhat": (2,), "ess_bulk": (2,), "ess_tail": (2,)}
