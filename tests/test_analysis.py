"""The glue of one analysis (``bayes_haic.analysis``): the memoised design replicates."""

from __future__ import annotations

import numpy as np
import pytest

from bayes_haic import analysis, propensity
from bayes_haic.paths import default_cohort_path
from bayes_haic.schema import load_cohort


@pytest.fixture(scope="module")
def cohort():
    return load_cohort(default_cohort_path())


def test_design_replicates_are_memoised_exactly(cohort, monkeypatch):
    """The IPT weights and rematched sets of a Bayesian-bootstrap replicate are computed once
    per cohort, design and patient weights, and equal what a fresh computation gives."""
    analysis._REPLICATES.clear()
    design = analysis.make_design(cohort)
    frame = cohort.frame
    calls = []
    cls = type(design.ps_fit)
    refit = cls.refit

    def counting_refit(self, *args, **kw):
        calls.append(1)
        return refit(self, *args, **kw)

    monkeypatch.setattr(cls, "refit", counting_refit)
    rng = np.random.default_rng(3)
    g = rng.dirichlet(np.ones(len(frame))) * len(frame)
    fn = analysis.design_fn(cohort, design)
    v1 = fn(g)
    v1 *= 2.0  # a caller scaling its weights in place must not change the memoised value
    v2 = analysis.design_fn(cohort, design)(g.copy())
    assert len(calls) == 1
    fresh = propensity.ipt_weights(refit(design.ps_fit, frame, sample_weight=g).ps, frame["treatment"].to_numpy(),
                                   **design.weight_settings)
    np.testing.assert_array_equal(v2, fresh)
    np.testing.assert_array_equal(v1, 2.0 * fresh)
    # another patient-weight vector, or another design object, is computed anew
    fn(rng.dirichlet(np.ones(len(frame))) * len(frame))
    assert len(calls) == 2
    other = analysis.make_design(cohort)
    analysis.design_fn(cohort, other)(g)
    assert len(calls) == 3
    assert len(analysis._REPLICATES) == 3


def test_design_replicates_skip_large_cohorts(cohort, monkeypatch):
    monkeypatch.setattr(analysis, "REPLICATE_MEMO_MAX_PATIENTS", 10)
    analysis._REPLICATES.clear()
    design = analysis.make_design(cohort)
    g = np.ones(len(cohort.frame))
    out = [analysis.design_replicate("x", cohort, design, g, lambda g_: g_.sum()) for _ in range(2)]
    assert out == [len(g), len(g)] and not analysis._REPLICATES


def test_blocked_refits_compute_only_the_replicates_not_memoised(cohort, monkeypatch):
    """``design_fn(...).many`` (blocks of replicates, as the IPTW bootstrap refits them) reuses
    memoised replicates and refits the others together, to the same weights as one at a time."""
    analysis._REPLICATES.clear()
    design = analysis.make_design(cohort)
    n = len(cohort.frame)
    rng = np.random.default_rng(8)
    G = rng.dirichlet(np.ones(n), size=3) * n
    fn = analysis.design_fn(cohort, design)
    single = fn(G[1])
    cls = type(design.ps_fit)
    many = cls.refit_logit_ps_many
    blocks = []

    def counting_many(self, frame, rows, *a, **kw):
        blocks.append(len(rows))
        return many(self, frame, rows, *a, **kw)

    monkeypatch.setattr(cls, "refit_logit_ps_many", counting_many)
    V = fn.many(G)
    assert blocks == [2]  # rows 0 and 2; row 1 came from the memo
    np.testing.assert_array_equal(V[1], single)
    np.testing.assert_allclose(V[0], analysis.design_fn(cohort, analysis.make_design(cohort))(G[0]),
                               rtol=1e-10)
    assert fn.many(G) and blocks == [2]  # all three memoised now
