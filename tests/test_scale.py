"""Large cohorts: memory grows with the number of patients, not with draws x patients; the
exact shortcuts (covariate-pattern collapse, grouped standardisation, blocked propensity refits)
give the same numbers as the per-patient computations; the approximations of large cohorts (the
binned PS spline, thinned standardisation) agree with the exact ones within Monte Carlo error.

Per-patient quantities that scale with draws (the pointwise log-likelihood) are stored only up
to survival.LOGLIK_MAX_VALUES; above it a fit keeps O(n) data (its patients' time, event and
treatment) and O(draws) posterior draws. Measured with tracemalloc (numpy reports its buffers
to it), without timing anything: the extra peak memory of a cohort twice as large must stay
far below what one stored (draws x patients) array would cost.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd

from bayes_haic import survival as sv
from bayes_haic.sampling import SamplerSettings

DRAWS = SamplerSettings(draws=200, tune=200, chains=2, seed=5, backend="nutpie")


def _cohort(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, n)
    t_event = rng.exponential(1 / (0.08 * np.exp(-0.5 * x)))
    c = rng.uniform(1, 36, n)
    return pd.DataFrame({"id": np.arange(n), "treatment": x, "os_time": np.minimum(t_event, c).round(3) + 0.001,
                         "os_event": (t_event <= c).astype(int)})


def _peak_bytes(frame: pd.DataFrame) -> tuple[int, object]:
    tracemalloc.start()
    try:
        fit = sv.fit_pwe(frame, "os", cuts=[0, 3, 6, 12, 24], sampler=DRAWS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, fit


def test_peak_memory_per_patient_is_bounded_and_independent_of_draws():
    n = 70_000  # n x 400 draws = 28M > LOGLIK_MAX_VALUES: the log-likelihood is not stored
    sv.fit_pwe(_cohort(500, 1), "os", cuts=[0, 3, 6, 12, 24], sampler=DRAWS)  # compile outside the measurement
    peak_n, fit_n = _peak_bytes(_cohort(n, 2))
    peak_2n, fit_2n = _peak_bytes(_cohort(2 * n, 3))
    draws = DRAWS.draws * DRAWS.chains
    assert n * draws > sv.LOGLIK_MAX_VALUES
    assert "log_likelihood" not in fit_2n.groups() and "not stored" in fit_2n.attrs["log_likelihood"]
    per_patient = (peak_2n - peak_n) / n
    # one stored (draws x patients) float64 array would cost 8 x draws = 3200 bytes per patient;
    # the O(n) work (columns, collapse, stored patient data) costs a few hundred
    assert per_patient < 0.25 * 8 * draws, per_patient
    assert peak_2n < 2 * peak_n + 8 * draws * 1000, (peak_n, peak_2n)
    # and the estimate is unaffected: both cohorts are the same process, so log HR agrees
    assert abs(float(fit_n.posterior["log_hr"].mean()) - float(fit_2n.posterior["log_hr"].mean())) < 0.05


# --------------------------------------------------------------------------- exact pattern collapse


def _pattern_cohort(n: int, seed: int, continuous: bool = False) -> pd.DataFrame:
    """Treatment, two discrete covariates (few patterns) and, if asked, a PS-like continuous one."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 3, n)
    b = rng.integers(0, 2, n)
    s = rng.normal(0, 1, n)
    logit = -0.2 + 0.5 * a - 0.4 * b + (0.8 * s if continuous else 0.0)
    x = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    rate = 0.08 * np.exp(-0.5 * x + 0.3 * a - 0.3 * b + (0.4 * s if continuous else 0.0))
    te = rng.exponential(1 / rate)
    c = rng.uniform(1, 36, n)
    return pd.DataFrame({"id": np.arange(n), "treatment": x, "os_time": np.minimum(te, c).round(2) + 0.01,
                         "os_event": (te <= c).astype(int), "a": a, "b": b, "s": s,
                         "ps": 1 / (1 + np.exp(-logit))})


def test_pattern_collapse_gives_the_patient_layouts_log_likelihood_exactly():
    from bayes_haic import patterns

    df = _pattern_cohort(2000, 11)
    cuts = np.array([0.0, 3.0, 6.0, 12.0, 24.0])
    Z = np.column_stack([df.a, df.b]).astype(float)
    t, d, x = df.os_time.to_numpy(), df.os_event.to_numpy(), df.treatment.to_numpy()
    pat = patterns.collapse_patterns(t, d, x, Z, cuts)
    assert pat.n_patterns == 12 and pat.count.sum() == 2000
    assert pat.events.sum() == d.sum() and np.isclose(pat.exposure.sum(), t.sum(), rtol=1e-12)
    rng = np.random.default_rng(3)
    for _ in range(5):  # random parameter values: sum of patients' log densities == pattern form
        hazard = np.exp(rng.normal(-2.5, 0.5, (2, cuts.size)))
        coef = rng.normal(0, 0.5, 2)
        per_patient = sv.patient_loglik(hazard, t, d, x, cuts, Z @ coef).sum()
        eta = np.log(hazard)[pat.treatment] + (pat.covariates @ coef)[:, None]
        collapsed = np.sum(pat.events * eta - pat.exposure * np.exp(eta))
        assert np.isclose(per_patient, collapsed, rtol=1e-11, atol=1e-8), (per_patient, collapsed)


def test_pattern_model_log_density_equals_the_patient_model():
    """The two PyMC graphs (patient layout, pattern layout) give the same log density."""
    from bayes_haic import patterns
    from bayes_haic.priors import as_prior_set

    df = _pattern_cohort(600, 12)
    cuts = np.array([0.0, 4.0, 10.0, 20.0])
    Z = np.column_stack([df.a, df.b]).astype(float)
    t, d, x = df.os_time.to_numpy(), df.os_event.to_numpy(), df.treatment.to_numpy()
    prior = as_prior_set(None)
    spec = sv.ModelSpec(cuts.size, "independent", "patient", n_covariates=2)
    pspec = sv.ModelSpec(cuts.size, "independent", "pattern", n_covariates=2)
    patient = sv._build(spec, prior)
    sampling_values = {"event": d.astype("int64"), "interval_index": sv.interval_index(t, cuts).astype("int64"),
                       "exposure": sv.exposure_matrix(t, cuts), "treatment": x.astype("int64"), "covariates": Z}
    from bayes_haic import sampling
    sampling.set_data(patient, sv._values(spec, sampling_values, prior))
    pat = patterns.collapse_patterns(t, d, x, Z, cuts)
    pattern = sv._build(pspec, prior)
    sampling.set_data(pattern, sv._values(pspec, {"pattern_events": pat.events.astype(float), "exposure": pat.exposure,
                                                  "treatment": pat.treatment, "covariates": pat.covariates}, prior))
    lp1, lp2 = patient.compile_logp(), pattern.compile_logp()
    rng = np.random.default_rng(4)
    for _ in range(3):
        point = {"log_lambda": rng.normal(-2.5, 0.3, cuts.size), "log_hr": rng.normal(-0.3, 0.2),
                 "coef": rng.normal(0, 0.3, 2)}
        assert np.isclose(lp1(point), lp2(point), rtol=1e-10, atol=1e-7)


def test_grouped_standardisation_equals_the_per_patient_mean():
    from bayes_haic import patterns

    rng = np.random.default_rng(5)
    Z = rng.integers(0, 4, (3000, 2)).astype(float)
    coef = rng.normal(0, 0.4, (30, 2))
    hazard = np.exp(rng.normal(-2.5, 0.3, (30, 2, 4)))
    cuts = [0.0, 3.0, 8.0, 15.0]
    rows, _, count = patterns.unique_rows(Z)
    full = sv.standardised_survival(hazard, np.exp(coef @ Z.T), cuts, [1.0, 6.0, 20.0])
    grouped = sv.standardised_survival(hazard, np.exp(coef @ rows.T), cuts, [1.0, 6.0, 20.0],
                                       weight=count / count.sum())
    np.testing.assert_allclose(grouped, full, rtol=1e-12)
    rm_full = sv._standardised_rmst(hazard, np.exp(coef @ Z.T), cuts, 24.0)
    rm_grouped = sv._standardised_rmst(hazard, np.exp(coef @ rows.T), cuts, 24.0, weight=count / count.sum())
    np.testing.assert_allclose(rm_grouped, rm_full, rtol=1e-12)


# --------------------------------------------------------------------------- binned PS spline, thinning


def test_binned_ps_spline_agrees_with_the_exact_fit_and_thinning_with_all_draws(monkeypatch):
    """The binned PS spline (forced on a 2,500-patient cohort with 30 bins, far coarser than the
    400 bins of a large cohort) moves the posterior mean of the log HR by less than a tenth of its
    posterior SD plus Monte Carlo error; the thinned standardisation agrees with every draw's
    within Monte Carlo error of the thinned draws."""
    from bayes_haic import patterns

    df = _pattern_cohort(2500, 13, continuous=True)
    cuts = [0.0, 3.0, 6.0, 12.0, 24.0]
    s = SamplerSettings(draws=300, tune=300, chains=2, seed=7, backend="nutpie")
    exact = sv.fit_pwe(df, "os", adjust="ps_covariate", ps="ps", cuts=cuts, sampler=s, baseline="independent")
    assert "ps_spline_bins" not in exact.attrs and exact.attrs["layout"] == "patient"
    monkeypatch.setattr(patterns, "PS_BIN_MIN_N", 1000)
    monkeypatch.setattr(patterns, "PS_BINS", 30)
    binned = sv.fit_pwe(df, "os", adjust="ps_covariate", ps="ps", cuts=cuts, sampler=s, baseline="independent")
    assert binned.attrs["ps_spline_bins"] == 30 and binned.attrs["likelihood_patterns"] <= 60
    assert "30 bins" in binned.attrs["method"] and "exact sufficient statistics" in binned.attrs["method"]
    import arviz as az
    m = [float(f.posterior["log_hr"].mean()) for f in (exact, binned)]
    sd = float(exact.posterior["log_hr"].std())
    mcse = [float(az.mcse(f.posterior["log_hr"]).to_array().max()) for f in (exact, binned)]
    assert abs(m[0] - m[1]) < 0.1 * sd + 4 * np.hypot(*mcse), (m, sd, mcse)
    assert abs(float(binned.posterior["log_hr"].std()) / sd - 1) < 0.15
    # thinned standardisation (as a large cohort's fit records it) vs every draw of the same fit
    full_summary, full = sv.survival_estimands(exact, times=[0.0, 12.0])
    thinned_fit = exact.copy()
    thinned_fit.attrs.update(sv.standardisation_attrs(10**6, 600))
    thinned_fit.attrs["standardisation_draws"] = 100
    thin_summary, thin = sv.survival_estimands(thinned_fit, times=[0.0, 12.0])
    assert thin.sizes["draw"] == 50 and full.sizes["draw"] == 300
    for q in ("median", "rmst", "survival_at"):
        a, b = full[q].values.reshape(600, -1), thin[q].values.reshape(100, -1)
        tol = 4 * a.std(axis=0) / np.sqrt(100)  # the thinned mean's Monte Carlo error (draws ~independent)
        assert np.all(np.abs(a.mean(axis=0) - b.mean(axis=0)) <= tol + 1e-12), q
    # the HR row uses every draw either way
    assert full_summary.iloc[0]["median"] == thin_summary.iloc[0]["median"]


# --------------------------------------------------------------------------- Bayesian-bootstrap refits


def test_blocked_ps_refits_equal_one_refit_per_replicate():
    from bayes_haic import propensity

    df = _pattern_cohort(1500, 14, continuous=True)
    fit = propensity.fit_ps(df, ["a", "b", "s"])
    G = np.random.default_rng(9).dirichlet(np.ones(len(df)), size=6) * len(df)
    many = fit.refit_logit_ps_many(df, G)
    one = np.stack([propensity.fit_ps(df, ["a", "b", "s"], sample_weight=g).logit_ps for g in G])
    np.testing.assert_allclose(many, one, rtol=0, atol=1e-9)
    warm = fit.refit(df, G[0])  # warm-started refit == fit from scratch
    np.testing.assert_allclose(warm.coef.to_numpy(), propensity.fit_ps(df, ["a", "b", "s"], sample_weight=G[0]).coef.to_numpy(),
                               rtol=0, atol=1e-9)
