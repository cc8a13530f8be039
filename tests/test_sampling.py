"""The nutpie path: one compilation per model structure, reused for new data and prior values,
with identical draws for identical settings (seed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_haic import sampling
from bayes_haic import survival as sv
from bayes_haic.priors import load_prior_set

NUTPIE = sampling.SamplerSettings(draws=200, tune=200, chains=2, seed=5, backend="nutpie")


def _cohort(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, n)
    t = rng.exponential(1 / (0.08 * 0.6**x))
    c = rng.uniform(0, 36, n)
    return pd.DataFrame({"treatment": x, "os_time": np.minimum(t, c), "os_event": (t <= c).astype(int),
                         "age": rng.normal(60, 10, n)})


@pytest.mark.parametrize("adjust", ["none", "covariates"])
def test_refit_reuses_the_nutpie_compilation_and_is_reproducible(adjust):
    a_df, b_df = _cohort(150, 1), _cohort(120, 2)
    cuts = [0, 4, 8, 16]
    kw = {"covariates": ["age"]} if adjust == "covariates" else {}
    sv.clear_model_cache()
    start = sampling.COMPILATIONS["nutpie"]
    a = sv.fit_pwe(a_df, "os", adjust=adjust, cuts=cuts, sampler=NUTPIE, **kw)
    assert sampling.COMPILATIONS["nutpie"] == start + 1
    # new data (another size) and new prior values: same structure, no new compilation
    tight = load_prior_set("reference", overrides=("survival.log_hr.mu=0.3", "survival.log_hr.sigma=0.01"))
    b = sv.fit_pwe(b_df, "os", adjust=adjust, cuts=cuts, prior_set=tight, sampler=NUTPIE, **kw)
    assert sampling.COMPILATIONS["nutpie"] == start + 1
    assert float(b.posterior["log_hr"].mean()) == pytest.approx(0.3, abs=0.03)  # the new prior took effect
    assert b.attrs["n_treated"] + b.attrs["n_control"] == 120
    # refitting the first problem gives the same draws as the first fit
    again = sv.fit_pwe(a_df, "os", adjust=adjust, cuts=cuts, sampler=NUTPIE, **kw)
    assert sampling.COMPILATIONS["nutpie"] == start + 1
    np.testing.assert_array_equal(a.posterior["log_hr"].values, again.posterior["log_hr"].values)
    np.testing.assert_array_equal(a.posterior["hazard"].values, again.posterior["hazard"].values)
    # a cleared cache compiles again and still gives the same draws
    sv.clear_model_cache()
    fresh = sv.fit_pwe(a_df, "os", adjust=adjust, cuts=cuts, sampler=NUTPIE, **kw)
    assert sampling.COMPILATIONS["nutpie"] == start + 2
    np.testing.assert_array_equal(a.posterior["log_hr"].values, fresh.posterior["log_hr"].values)
    assert not [v for v in a.posterior.data_vars if "__" in v]
    assert int(a.sample_stats["diverging"].shape[0]) == 2
