"""The validation study (issue 14): truth, performance measures with MC standard errors, seeding,
scenario files, resume planning, SBC machinery; a tiny study on a Dask cluster started as
separate processes (slow)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayes_haic import calibration, synthetic, validation
from bayes_haic.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
SCEN = ROOT / "models" / "validation"


def _simple_settings(gamma: float, lam: float = 0.05) -> dict:
    """Generator settings without covariate effects and a constant baseline hazard."""
    s = synthetic.load_settings()
    for key in ("os", "progression"):
        s[key]["log_hr"] = {k: 0.0 for k in synthetic.COVARIATES}
        s[key]["baseline_hazard"] = [lam] * len(s[key]["baseline_hazard"])
        s[key]["log_hr_treatment"] = gamma
    return s


def test_truth_matches_closed_forms():
    """No covariate effects, constant hazards: marginal = conditional log-HR, RMST closed form."""
    gamma, lam = -0.7, 0.05
    sc = validation.Scenario("simple", "", _simple_settings(gamma, lam))
    truth = validation.truth_table(sc, 40000)
    v, label = validation.truth_for(truth, "os", "iptw", "log_hr")
    assert v == pytest.approx(gamma, abs=0.03) and "ATE" in label
    assert validation.truth_for(truth, "os", "covariates", "log_hr")[0] == gamma
    rmst = lambda h: (1 - math.exp(-24 * h)) / h
    d, _ = validation.truth_for(truth, "os", "iptw", "rmst_diff_24")
    assert d == pytest.approx(rmst(lam * math.exp(gamma)) - rmst(lam), abs=0.15)
    # PFS has no single conditional HR: not scored
    assert math.isnan(validation.truth_for(truth, "pfs", "covariates", "log_hr")[0])


def test_null_scenario_truth_is_exactly_zero():
    sc = validation.load_scenario(SCEN / "null.toml")
    truth = validation.truth_table(sc, 5000)
    for strategy in ("none", "iptw", "psm", "covariates"):
        assert validation.truth_for(truth, "os", strategy, "log_hr")[0] == pytest.approx(0.0, abs=1e-9)
        assert validation.truth_for(truth, "os", strategy, "rmst_diff_24")[0] == pytest.approx(0.0, abs=1e-9)
    assert validation.truth_for(truth, "response", "iptw", "rd")[0] == pytest.approx(0.0, abs=1e-12)


def test_psm_scored_against_att_and_none_against_ate():
    sc = validation.load_scenario(SCEN / "calibrated.toml")
    truth = pd.read_csv(ROOT / "data" / "synthetic" / "true_estimands.csv", keep_default_na=False)
    att = truth[(truth.population == "ATT") & (truth.estimand == "marginal_log_hr") & (truth.endpoint == "os")]
    assert validation.truth_for(truth, "os", "psm", "log_hr")[0] == pytest.approx(att["value"].iloc[0])
    assert "crude" in validation.truth_for(truth, "os", "none", "log_hr")[1]
    assert sc.settings["assignment"]["intercept"] == 0.0887  # as shipped: not recalibrated


def test_non_proportional_generator_reduces_to_ph():
    s = synthetic.load_settings()
    D = np.zeros((5, len(synthetic.COVARIATES)))
    e = np.linspace(0.1, 3, 5)
    ph = synthetic._event_times(s, "os", D, 1, e)
    s2 = json.loads(json.dumps(s, default=str))
    s2 = dict(s)
    s2["os"] = dict(s["os"], log_hr_treatment_by_interval=[s["os"]["log_hr_treatment"]] * 6)
    assert np.allclose(synthetic._event_times(s2, "os", D, np.ones(5), e), ph)
    sc = validation.load_scenario(SCEN / "nonph.toml")
    truth = validation.truth_table(sc, 4000)
    assert math.isnan(validation.truth_for(truth, "os", "covariates", "log_hr")[0])


def test_small_scenario_recalibrates_the_intercept():
    sc = validation.load_scenario(SCEN / "small.toml")
    assert sc.settings["cohort"]["n_treated"] == 55
    assert sc.settings["assignment"]["intercept"] != pytest.approx(0.0887, abs=0.02)


def test_performance_measures_and_mcse_on_known_inputs():
    err = np.array([1.0, -1.0, 1.0, -1.0])
    covered = np.array([True, True, False, True])
    width = np.array([1.0, 2.0, 3.0, 4.0])
    success = np.array([True, False, False, False])
    failed = np.array([False, False, False, True])
    p = validation.performance(err, covered, width, success, failed)
    assert p["bias"] == 0 and p["rmse"] == 1.0
    assert p["bias_mcse"] == pytest.approx(np.std(err, ddof=1) / 2)
    assert p["coverage"] == 0.75 and p["coverage_mcse"] == pytest.approx(math.sqrt(0.75 * 0.25 / 4))
    assert p["mean_width"] == 2.5 and p["mean_width_mcse"] == pytest.approx(np.std(width, ddof=1) / 2)
    assert p["success_rate"] == 0.25 and p["failure_rate"] == 0.25
    assert p["rmse_mcse"] == 0.0  # every squared error is 1


def test_aggregate_counts_a_missing_coverage_as_not_covered_without_a_pandas_warning():
    """A replicate without an interval (``covered`` None, as stored for a failed fit) counts as
    not covered; pandas' downcasting FutureWarning (which `bayes-haic validate` printed) is gone."""
    import warnings

    reps = pd.DataFrame({"scenario": "s", "endpoint": "os", "strategy": "none", "measure": "log_hr",
                         "estimand": "e", "estimate": [0.1, -0.1, 0.2], "truth": 0.0,
                         "covered": pd.Series([True, None, True], dtype=object),
                         "width": [1.0, 1.0, 1.0], "prob_benefit": [0.5, 0.5, 0.99],
                         "failed": [False, True, False], "seconds": [1.0, 1.0, 1.0]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = validation.aggregate(reps)
    assert out["coverage"].item() == pytest.approx(2 / 3)


def test_seeds_are_deterministic_and_distinct():
    a = validation.replicate_seeds(1, "calibrated", 0)
    assert a == validation.replicate_seeds(1, "calibrated", 0)
    assert a != validation.replicate_seeds(1, "calibrated", 1)
    assert a != validation.replicate_seeds(1, "null", 0)
    assert a != validation.replicate_seeds(2, "calibrated", 0)


def test_bad_scenario_names_file_and_key(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('name = "bad"\n[settings.os]\nlog_hr_treatmnt = 0.0\n')
    with pytest.raises(InputError, match=r"bad.toml.*settings\.os\.log_hr_treatmnt"):
        validation.load_scenario(p)
    p.write_text('name = "bad"\n[settings.os]\nlog_hr_treatment = "strong"\n')
    with pytest.raises(InputError, match=r"bad.toml.*os\.log_hr_treatment"):
        validation.load_scenario(p)


def test_bad_config_exit_2(tmp_path):
    from bayes_haic.cli import main

    p = tmp_path / "v.toml"
    p.write_text('[study]\nstrategies = ["iptw", "magic"]\n')
    assert main(["validate", "--config", str(p), "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()


def test_plan_skips_stored_replicates(tmp_path):
    """Resume/extend: stored part files are never planned again; new replicates are."""
    cfg = validation.load_config(ROOT / "models" / "validation_stored.toml")
    cfg.sbc["draws"] = 0
    truths = {s.name: pd.DataFrame() for s in cfg.scenarios}
    first = validation.plan_tasks(cfg, tmp_path, 2, truths)
    assert [(t["group"], t["index"]) for t in first] == [("calibrated", 0), ("null", 0), ("calibrated", 1), ("null", 1)]
    validation.write_part(validation.part_path(tmp_path, "replicates", "calibrated", 0), pd.DataFrame({"a": [1]}))
    validation.write_part(validation.part_path(tmp_path, "replicates", "null", 0), pd.DataFrame({"a": [1]}))
    again = validation.plan_tasks(cfg, tmp_path, 3, truths)
    assert [(t["group"], t["index"]) for t in again] == [("calibrated", 1), ("null", 1), ("calibrated", 2), ("null", 2)]


def test_sbc_ranks_uniform_for_correct_and_not_for_wrong_model():
    """The rank machinery on a conjugate normal model (exact posterior draws): a correct
    posterior gives uniform ranks, an overconfident one (wrong prior) does not."""
    rng = np.random.default_rng(3)
    L, n_obs = 99, 5

    def ranks(prior_sd_fit):
        out = []
        for _ in range(400):
            theta = rng.normal(0, 1)
            y = rng.normal(theta, 1, n_obs)
            prec = 1 / prior_sd_fit ** 2 + n_obs
            post = rng.normal(y.sum() / prec, 1 / math.sqrt(prec), 500)
            out.append(calibration.rank_statistic(theta, post, L))
        return np.array(out)

    _, _, p_ok = calibration.uniformity_test(ranks(1.0), L, 10)
    _, _, p_bad = calibration.uniformity_test(ranks(0.2), L, 10)
    assert p_ok > 0.001 and p_bad < 1e-6


def test_validation_page_from_stored_result():
    from bayes_haic.report import validation as validation_report

    res = validation.load_result(validation_report.stored_result_path())
    assert res is not None, "the stored validation result is missing from data/validation"
    sec = validation_report.validation_sections(res)[0]
    texts = " ".join(b.text for b in sec.blocks if hasattr(b, "text"))
    assert "seed" in texts and str(res["meta"]["seed"]) in texts
    assert res["meta"]["sbc_draws"].get("pwe", 0) >= 200
    assert set(res["summary"]["scenario"]) == {"calibrated", "null"}  # "null" is a name, not NA


def test_another_studys_report_says_the_validation_study_is_not_about_its_cohort():
    """Found on R's gbsg data: the main job of another study's cohort showed the stored
    validation study (cohorts simulated like this package's study) and its coverage in the
    limitations as if they were about that cohort. Given the cohort's name they say they are
    not; the package's own run is unchanged."""
    from bayes_haic.report import validation as validation_report

    res = validation.load_result(validation_report.stored_result_path())

    def text(sec):
        return " ".join(b.text for b in sec.blocks if hasattr(b, "text"))

    own, other = (validation_report.validation_sections(res, cohort_name=name)[0]
                  for name in (None, "gbsg.csv"))
    assert "not one of gbsg.csv" in text(other) and "models/validation/" in text(other)
    assert "not one of" not in text(own) and text(other).endswith(text(own))
    mine = validation_report.limitations_text(res)
    theirs = validation_report.limitations_text(res, "gbsg.csv")
    assert mine.startswith("Validation study (") and "not like gbsg.csv" in theirs
    assert theirs.split(" replicates): ")[1] == mine.split(" replicates): ")[1]


def _pwe_cohort(n, seed, hr):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, n)
    t = rng.exponential(1 / (0.08 * hr**x))
    c = rng.uniform(0, 36, n)
    return pd.DataFrame({"treatment": x, "os_time": np.minimum(t, c), "os_event": (t <= c).astype(int)})


def test_nutpie_numba_backend_refits_new_data_and_matches_the_default_backend():
    """The validation study's backend ("nutpie-numba": nutpie.compile_pymc_model, compiled once
    per model object): a refit after set_data (inside fit_pwe) uses the new data, the same seed
    gives identical draws twice, and the draws equal the default nutpie backend's (same sampler,
    same numba density), so a study may mix the two backends."""
    from bayes_haic import sampling
    from bayes_haic import survival as sv

    a_df, b_df = _pwe_cohort(200, 1, 0.5), _pwe_cohort(160, 2, 1.5)
    cuts = [0, 4, 8, 16]
    fast = sampling.SamplerSettings(draws=200, tune=200, chains=2, seed=5, backend="nutpie-numba")
    default = sampling.SamplerSettings(draws=200, tune=200, chains=2, seed=5, backend="nutpie")
    sv.clear_model_cache()
    start = dict(sampling.COMPILATIONS)
    a = sv.fit_pwe(a_df, "os", cuts=cuts, sampler=fast)
    b = sv.fit_pwe(b_df, "os", cuts=cuts, sampler=fast)            # new data, another size
    a2 = sv.fit_pwe(a_df, "os", cuts=cuts, sampler=fast)
    assert sampling.COMPILATIONS["nutpie-numba"] == start["nutpie-numba"] + 1  # compiled once
    assert b.attrs["n_treated"] + b.attrs["n_control"] == 160
    np.testing.assert_array_equal(a.posterior["log_hr"].values, a2.posterior["log_hr"].values)
    np.testing.assert_array_equal(a.posterior["hazard"].values, a2.posterior["hazard"].values)
    ref_b = sv.fit_pwe(b_df, "os", cuts=cuts, sampler=default)
    ref_a = sv.fit_pwe(a_df, "os", cuts=cuts, sampler=default)
    # the refit saw b's data: its posterior mean is the default backend's on b, far from a's
    mean = lambda idata: float(idata.posterior["log_hr"].mean())
    mcse = float(np.std(ref_b.posterior["log_hr"].values)) / np.sqrt(100)
    assert abs(mean(b) - mean(ref_b)) < 4 * mcse and abs(mean(b) - mean(a)) > 0.5
    # and in fact bit-identical draws (what lets a stored study extend across the two backends)
    np.testing.assert_array_equal(a.posterior["log_hr"].values, ref_a.posterior["log_hr"].values)
    np.testing.assert_array_equal(b.posterior["log_hr"].values, ref_b.posterior["log_hr"].values)
    assert not [v for v in a.posterior.data_vars if "__" in v]
    assert a.attrs["sampler_backend"] == "nutpie-numba"
    with pytest.raises(ValueError, match="nutpie-numba"):
        sampling.sample(next(iter(sv._CACHE.values())).model, sampling.SamplerSettings(backend="stan"))


def test_vectorised_iptw_bootstrap_equals_a_collapse_per_replicate():
    """survival_bootstrap.bootstrap_draws computes every replicate's collapsed statistics as one
    matrix product: the same replicates (to rounding) as collapse() + the MLE per replicate."""
    from bayes_haic import analysis, survival_bootstrap
    from bayes_haic.survival import collapse, endpoint_columns

    s = synthetic.load_settings()
    frame = synthetic.simulate_cohort(s, 127, 103, 3)
    cohort = validation.cohort_from_frame(frame, synthetic.COVARIATES)
    design = analysis.make_design(cohort)
    fn = analysis.design_fn(cohort, design)
    cuts = analysis.endpoint_cuts(cohort, "os", n_intervals=8)
    boot = survival_bootstrap.bootstrap_draws(cohort.frame, "os", fn, n_boot=30, seed=9, cuts=cuts)
    t, d, x = endpoint_columns(cohort.frame, "os")
    n = t.size
    rng = np.random.default_rng(9)
    ref_hr, ref_ll = [], []
    for _ in range(30):  # the former loop
        g = rng.dirichlet(np.ones(n)) * n
        w = g * survival_bootstrap.call_design_fn(fn, g, n)
        coll = collapse(t, d, x, cuts, w * (n / w.sum()))
        b, ll = survival_bootstrap.weighted_pwe_mle(coll["events"].values, coll["exposure"].values)
        ref_hr.append(b)
        ref_ll.append(ll)
    np.testing.assert_allclose(boot.log_hr, ref_hr, rtol=0, atol=1e-9)
    np.testing.assert_allclose(boot.log_lambda, np.array(ref_ll), rtol=0, atol=1e-9)
    with pytest.raises(InputError, match="weights"):
        survival_bootstrap.bootstrap_draws(cohort.frame, "os", lambda g: np.zeros(n), n_boot=3, cuts=cuts)


def test_backend_choice_keeps_the_study_fingerprint_and_unpacked_parts_resume(tmp_path):
    """Switching between backends of identical draws does not change the study's identity; a
    folder holding only the combined tables (as committed) is unpacked into part files, so the
    stored replicates are not recomputed; a different setting is refused."""
    cfg_text = TINY.format(reps=3, scen=(SCEN / "calibrated.toml").as_posix())
    (tmp_path / "a.toml").write_text(cfg_text)
    (tmp_path / "b.toml").write_text(cfg_text.replace('backend = "nutpie"', 'backend = "nutpie-numba"'))
    (tmp_path / "c.toml").write_text(cfg_text.replace("draws = 100", "draws = 120"))
    a, b, c = (validation.load_config(tmp_path / f"{k}.toml") for k in "abc")
    assert b.sampler["backend"] == "nutpie-numba"
    assert validation._config_fingerprint(a) == validation._config_fingerprint(b)
    out = tmp_path / "out"
    out.mkdir()
    rows = pd.DataFrame({"scenario": ["calibrated"] * 4, "replicate": [0, 0, 1, 1], "x": [1.0, 2, 3, 4]})
    rows.to_parquet(out / "replicates.parquet", index=False)
    (out / "meta.json").write_text(json.dumps({"config": a.as_dict()}, default=str))
    validation._check_out(out, b)                      # the same study: accepted
    assert validation.unpack_combined(out) == 2
    assert validation.unpack_combined(out) == 0        # existing parts are kept
    pd.testing.assert_frame_equal(pd.read_parquet(validation.part_path(out, "replicates", "calibrated", 1)),
                                  rows.iloc[2:].reset_index(drop=True))
    truths = {"calibrated": pd.DataFrame({"x": [0]})}
    assert [t["index"] for t in validation.plan_tasks(b, out, 3, truths)] == [2]
    other = tmp_path / "other"
    other.mkdir()
    (other / "meta.json").write_text(json.dumps({"config": a.as_dict()}, default=str))
    with pytest.raises(InputError, match="other settings"):
        validation._check_out(other, c)


# ------------------------------------------------------------------------------- slow: real runs
TINY = """
[study]
seed = 11
replicates = {reps}
scenarios = ["{scen}"]
endpoints = ["os"]
strategies = ["none"]
truth_n = 5000
[sampler]
draws = 100
tune = 100
chains = 2
backend = "nutpie"
[sbc]
draws = 0
"""


def _bin(name):
    return str(Path(sys.executable).parent / name)


@pytest.mark.slow
def test_dask_cluster_same_numbers_and_resume(tmp_path):
    """A scheduler and a worker started as separate processes (`dask scheduler`, `dask
    worker`); `validate --scheduler` gives the same numbers as a local run; extending a stored
    study computes only the new replicates and leaves the stored ones untouched."""
    from bayes_haic.cli import main

    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY.format(reps=2, scen=(SCEN / "calibrated.toml").as_posix()))
    sched_file = tmp_path / "scheduler.json"
    procs = [subprocess.Popen([_bin("dask"), "scheduler", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(sched_file)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)]
    try:
        for _ in range(120):
            if sched_file.exists() and sched_file.stat().st_size:
                break
            time.sleep(0.5)
        address = json.loads(sched_file.read_text())["address"]
        procs.append(subprocess.Popen([_bin("dask"), "worker", address, "--nworkers", "1", "--nthreads", "1",
                                       "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True))
        remote = tmp_path / "remote"
        assert main(["validate", "--config", str(cfg), "--scheduler", address, "--out", str(remote),
                     "--replicates", "1", "--no-progress"]) == 0
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(timeout=30)
    local = tmp_path / "local"
    assert main(["validate", "--config", str(cfg), "--out", str(local), "--replicates", "1",
                 "--workers", "1", "--no-progress"]) == 0
    a = pd.read_parquet(remote / "replicates.parquet")
    b = pd.read_parquet(local / "replicates.parquet")
    num = ["truth", "estimate", "lower", "upper", "prob_benefit", "cohort_seed", "sampler_seed"]
    pd.testing.assert_frame_equal(a[num], b[num])
    # resume / extend: replicate 0 stays as stored (same bytes and mtime), only replicate 1 runs
    part0 = validation.part_path(local, "replicates", "calibrated", 0)
    before = (part0.read_bytes(), part0.stat().st_mtime_ns)
    cfg_obj = validation.load_config(cfg)
    stats = validation.run_study(cfg_obj, local, replicates=2, n_workers=1, progress=False)
    assert stats["submitted"] == 1 and stats["done"] == 1
    assert (part0.read_bytes(), part0.stat().st_mtime_ns) == before
    assert validation.run_study(cfg_obj, local, replicates=2, n_workers=1, progress=False)["submitted"] == 0


@pytest.mark.slow
def test_sbc_pwe_detects_a_wrong_prior():
    """SBC of the PWE model: 40 draws fitted with a Normal(0, 0.2) log-HR prior to data drawn under
    the reference prior's Normal(0, 2.5): the log-HR ranks pile up at the extremes."""
    sbc = {"models": ["pwe"], "draws": 40}
    calibration.check_sbc_config(sbc, "test")
    sbc["sampler"] = {"draws": 150, "tune": 150, "chains": 2, "backend": "nutpie"}
    rows = []
    for t in calibration.sbc_tasks(sbc, 5):
        t["payload"]["fit_override"] = {"survival.log_hr": [0.0, 0.2]}
        rows.append(calibration.sbc_draw(t["payload"]))
    df = pd.concat(rows)
    r = df[df.parameter == "log_hr"]["rank"]
    _, _, p = calibration.uniformity_test(r, 99, 10)
    assert p < 1e-4
