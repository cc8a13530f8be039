"""Prior sensitivity study: reweighting vs refitting, power scaling, tipping points, seeds, tiers.

Tolerances come from Monte Carlo standard errors. The patient-level tests share one model
structure (4 PWE intervals, nutpie's C callbacks), compiled once per session, so each extra fit
costs well under a second.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.optimize import brentq

from bayes_haic import reanalysis as ra
from bayes_haic import report as rp
from bayes_haic import sensitivity as sn
from bayes_haic.jobs import write_sensitivity
from bayes_haic.report.sensitivity import sensitivity_section
from bayes_haic.errors import InputError
from bayes_haic.paths import default_cohort_path
from bayes_haic.priors import Prior, load_prior_set
from bayes_haic.results import RESULT_COLUMNS
from bayes_haic.sampling import SamplerSettings
from bayes_haic.schema import load_cohort

SAMPLER = SamplerSettings(draws=1000, tune=500, chains=2, seed=20240329)
PRIORS = ("reference", "skeptical", "enthusiastic", "pessimistic", "evidence_based")
# two cut sets with the same number of intervals share the compiled model
CUTS = (4, [0, 3, 9, 18])


@pytest.fixture(scope="module")
def cohort():
    return load_cohort(default_cohort_path())


def _run(cohort, **kw):
    args = {"endpoints": ("os",), "prior_names": PRIORS, "cut_sets": CUTS, "sampler": SAMPLER,
            "strategies": ("none",), "orr_strategies": ()}
    args.update(kw)
    return sn.run_sensitivity(cohort, **args)


@pytest.fixture(scope="module")
def study(cohort):
    return _run(cohort)


# --------------------------------------------------------------------------- published tier (exact)


def test_conjugate_tipping_matches_direct_computation():
    """The closed-form s* gives exactly P(HR < 1) = threshold when the published HR is
    reanalysed (reanalysis.reanalyse_hr, conjugate normal) under a Normal(0, s*) prior."""
    ref = load_prior_set("reference")
    for endpoint in ("os", "pfs"):
        r = ra.reanalyse_hr(endpoint, ref)
        for threshold in (0.9, 0.95, 0.975, 0.99):
            s = sn.conjugate_tipping_scale(r.log_hr, r.se, threshold)
            ps = ref.with_prior(f"published.log_hr_{endpoint}", sn.normal_scale_prior(s))
            direct = ra.reanalyse_hr(endpoint, ps)
            assert direct.prob_below(1.0) == pytest.approx(threshold, abs=1e-9)
            # and by brute-force root finding on the direct computation
            def gap(x, endpoint=endpoint, threshold=threshold):
                p = ref.with_prior(f"published.log_hr_{endpoint}", sn.normal_scale_prior(x))
                return ra.reanalyse_hr(endpoint, p).prob_below(1.0) - threshold

            assert brentq(gap, 1e-3, 10, xtol=1e-12) == pytest.approx(s, rel=1e-7)


def test_conjugate_tipping_is_monotone():
    y, se = math.log(0.384), 0.291
    s = np.geomspace(10, 1e-3, 400)
    p = sn.conjugate_prob_benefit(y, se, s)
    assert np.all(np.diff(p) < 0)  # smaller s (more skeptical): smaller P(HR < 1)
    assert p[0] == pytest.approx(stats.norm.cdf(-y / se), abs=1e-3)  # flat-prior limit
    assert p[-1] == pytest.approx(0.5, abs=0.01)  # the prior at HR = 1 wins
    # a stricter threshold needs a less skeptical prior to fail, i.e. a larger s*
    thr = [0.8, 0.9, 0.95, 0.99]
    assert np.all(np.diff([sn.conjugate_tipping_scale(y, se, t) for t in thr]) > 0)
    # no tipping point if even a flat prior does not reach the threshold
    assert math.isinf(sn.conjugate_tipping_scale(math.log(0.9), 0.2, 0.95))
    assert math.isinf(sn.conjugate_tipping_scale(math.log(1.2), 0.2, 0.95))
    for bad in (0.5, 1.0, 1.2, 0.3):
        with pytest.raises(InputError, match="threshold"):
            sn.conjugate_tipping_scale(y, se, bad)


def test_published_tipping_in_words():
    tips = sn.published_tipping(0.95)
    t = tips["os"]
    assert t.data_tier == "published" and t.status == "tips"
    assert t.scale == pytest.approx(0.1679, abs=1e-3)  # 1.645 se^2 / sqrt(y^2 - 1.645^2 se^2)
    text = t.text()
    assert "s below 0.168" in text and "P(HR < 0.5) = 1.8e-05" in text
    assert "P < 0.001 read as P = 0.001" in text and "0.75 x SE" in text
    assert tips["pfs"].scale == pytest.approx(0.1191, abs=1e-3)
    assert sn.prior_prob_below(0.421404) == pytest.approx(0.05, abs=1e-6)  # the shipped skeptic


# --------------------------------------------------------------------------- building blocks


def test_psis_weights_reweight_a_known_case():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (2, 2000))
    lr = stats.norm.logpdf(x, 0.3, 1) - stats.norm.logpdf(x, 0, 1)
    rw = sn.psis_weights(lr)
    assert rw.reliable and rw.k < 0.5
    mean = float(np.sum(rw.weights * x.ravel()))
    assert abs(mean - 0.3) < 4 / math.sqrt(rw.ess)
    # far away and narrow: heavy-tailed weights, not reliable
    bad = sn.psis_weights(stats.norm.logpdf(x, 3, 0.3) - stats.norm.logpdf(x, 0, 1))
    assert not bad.reliable and (bad.k > bad.k_threshold or bad.ess < sn.MIN_ESS)
    same = sn.psis_weights(np.zeros((2, 1000)))  # the same prior: equal weights
    assert same.reliable and np.allclose(same.weights, 1 / 2000) and same.ess == 2000
    assert rw.k_threshold == pytest.approx(min(0.7, 1 - 1 / math.log10(4000)))


def test_weighted_quantile():
    x = np.random.default_rng(2).normal(size=5001)
    w = np.full(x.size, 1 / x.size)
    np.testing.assert_allclose(sn.weighted_quantile(x, w, [0.1, 0.5, 0.9]),
                               np.quantile(x, [0.1, 0.5, 0.9]), atol=2e-3)


def test_cut_sets():
    assert sn.as_cut_set(4) == sn.quantile_cuts(4)
    assert sn.as_cut_set("quantile:12").n_intervals == 12
    g = sn.as_cut_set("0,3,6,9,12,18,24")
    assert g.method == "grid" and g.grid == (0, 3, 6, 9, 12, 18, 24)
    assert g.label == "grid 0, 3, 6, 9, 12, 18, 24 months"
    assert sn.DEFAULT_CUT_SETS[0].label == "8 quantile intervals"
    for bad in ("quantile:x", "1,3", 0, "3,0"):
        with pytest.raises(InputError):
            sn.as_cut_set(bad)


def test_bad_arguments(cohort):
    with pytest.raises(InputError, match="threshold"):
        sn.run_sensitivity(cohort, threshold=0.4)
    with pytest.raises(InputError, match="prior set not found"):
        sn.run_sensitivity(cohort, prior_names=("reference", "skeptic"))
    with pytest.raises(InputError, match="endpoint"):
        sn.run_sensitivity(cohort, endpoints=("orr",))


# --------------------------------------------------------------------------- patient level


def test_table_rows_and_tier(study, cohort):
    t = study.table()
    assert len(t) == len(PRIORS) * len(CUTS)
    assert set(t["data_tier"]) == {cohort.data_tier} == {"synthetic"}
    main, other = t[t["cut_set"] == "4 quantile intervals"], t[t["cut_set"] != "4 quantile intervals"]
    assert set(main["method"]) == {"fit", "refit"}  # main cut set: every prior fitted
    assert set(other["method"]) - {"fit", "refit"}, "some posterior reweighted"
    for r in other.to_dict("records"):
        if r["method"].startswith("PSIS"):
            assert r["method"] == f"PSIS reweighting (k={r['pareto_k']:.2f})"
            assert r["pareto_k"] < 0.7 and r["ess"] >= sn.MIN_ESS
    assert (t["lower"] < t["median"]).all() and (t["median"] < t["upper"]).all()
    rows = study.rows()
    assert all(list(r) == RESULT_COLUMNS for r in rows)
    hr = [r for r in rows if r["measure"] == "hr"]
    assert {r["prior"] for r in hr} == set(PRIORS)
    assert all("cuts: " in r["method"] and r["data_tier"] == "synthetic" for r in hr)
    assert any("PSIS reweighting" in r["method"] for r in hr) and any(": refit" in r["method"] for r in hr)
    tip = [r for r in rows if r["measure"] == "tipping_sd_log_hr"]
    assert len(tip) == 1 and tip[0]["lower"] <= tip[0]["median"] <= tip[0]["upper"]
    pub = study.published_rows()
    assert {r["data_tier"] for r in pub} == {"published"} and len(pub) == 2


def test_a_reweighted_median_beyond_the_follow_up_is_labelled_in_its_row(study):
    """The study's median rows carry the extrapolation label of their own (weighted) draws: none
    on the synthetic cohort (its medians lie within follow-up); with the longest follow-up moved
    to the posterior median of the treated median, about half the weight lies beyond it."""
    from dataclasses import replace

    from bayes_haic import survival

    p = next(q for q in study.posteriors if q.medians is not None and q.weights is not None)
    assert np.isfinite(p.max_follow_up) and p.median_note("treated") == ""
    x = p.medians[:, 1]
    cut = float(sn.weighted_quantile(x, p.draw_weights(), [0.5])[0])
    q = replace(p, max_follow_up=cut)
    share = float(q.draw_weights()[x > cut].sum())
    assert 0.3 < share < 0.7
    assert q.median_note("treated") == survival.extrapolation_note(share, cut) != ""
    rows = replace(study, posteriors=[q], orr=[]).rows(tipping=False)
    med = next(r for r in rows if r["measure"] == "median_treated")
    assert med["method"] == f"{q.method}; {q.median_note('treated')}"
    # the section's table of PSM medians (main cut set) marks it: a posterior of the main cut
    # set shown as if it were the PSM one, with and without the follow-up moved
    m = next(r for r in study.posteriors if r.medians is not None and r.cut_set == study.main_cut_set)
    cut_m = float(np.median(m.medians[:, 1]))

    def section(post):
        return rp.render("t", [sensitivity_section(
            replace(study, posteriors=[replace(post, strategy="psm")], orr=[]), overlays={})])

    text = section(replace(m, max_follow_up=cut_m))
    assert "† Extrapolated median" in text and f"OS, treated, {m.prior_label}" in text
    assert "† Extrapolated" not in section(m)


def test_reweighting_agrees_with_refit(study):
    """Where k < threshold, the reweighted and the refitted posterior medians of log HR agree
    within 4 combined Monte Carlo standard errors (and so do P(HR < 1) within 4 MCSE)."""
    check = study.reweighting_check
    assert len(check) == len(PRIORS) - 1
    ok = check[check["pareto_k"] < check["k_threshold"]]
    assert len(ok) >= 3
    for r in ok.to_dict("records"):
        assert abs(r["diff_log_hr"]) <= 4 * r["mcse_diff"], r
    # the pessimistic prior moves the posterior far from the reference one: not reweighted
    pess = check.set_index("prior").loc["pessimistic"]
    assert not pess["reliable"]


def test_reweighted_posterior_matches_refit_on_another_cut_set(study, cohort):
    """A reweighted posterior of the second cut set against a refit of the same cut set."""
    posts = [p for p in study.posteriors if p.cut_set == sn.as_cut_set(CUTS[1]) and p.weights is not None]
    assert posts
    p = posts[0]
    refit = _run(cohort, prior_names=(p.prior_label,), cut_sets=(CUTS[1],), tipping=False)
    q = refit.posteriors[0]
    diff = float(p.quantile(0.5) - q.quantile(0.5))
    assert abs(diff) <= 4 * math.hypot(p.mcse_median, q.mcse_median)


def test_power_scaling(study):
    ps = study.psens.set_index("prior")
    assert list(ps.index) == list(PRIORS)
    ref = ps.loc["reference"]
    # the vague reference prior hardly matters; the likelihood does
    assert ref["prior_log_hr"] < sn.PSENS_THRESHOLD and ref["likelihood"] >= sn.PSENS_THRESHOLD
    assert ref["diagnosis"] == "-"
    # the pessimistic prior (centred on harm) against data showing benefit: a conflict
    assert ps.loc["pessimistic", "prior_log_hr"] > 0.1
    assert ps.loc["pessimistic", "diagnosis"] == "potential prior-data conflict"
    assert ps.loc["reference", "priors_scaled"] == "log_hr, log_lambda_first, baseline_rw_sd"


def test_log_prior_group(study):
    post = next(p for p in study.posteriors if p.idata is not None and p.prior_label == "skeptical")
    ps = load_prior_set("skeptical")
    idata = sn.add_log_prior(post.idata, ps)
    assert set(idata.log_prior.data_vars) == {"log_hr", "log_lambda_first", "baseline_rw_sd"}
    x = post.idata.posterior["log_hr"].values
    np.testing.assert_allclose(idata.log_prior["log_hr"].values,
                               stats.norm.logpdf(x, 0, 0.421404), rtol=1e-10)
    assert "log_prior" not in post.idata.groups()  # the fit itself is not modified


def test_patient_tipping_monotone_and_near_the_normal_approximation(study):
    t = study.tipping[("os", "none")]
    assert t.status == "tips" and t.data_tier == "synthetic"
    order = np.argsort(t.scales)
    p, se = t.p_benefit[order], t.mcse[order]
    # monotone in s within Monte Carlo error
    assert np.all(np.diff(p) >= -4 * np.hypot(se[1:], se[:-1]) - 1e-12)
    assert p[-1] > 0.999 and p[0] < 0.7
    lo, hi = t.scale_range
    assert lo < t.scale < hi
    # the PWE likelihood of log HR is close to normal: the conjugate formula with the reference
    # posterior's mean and sd is a good approximation of the curve
    ref = next(q for q in study.posteriors if q.prior_label == "reference" and q.idata is not None)
    x = ref.log_hr.ravel()
    approx = sn.conjugate_prob_benefit(x.mean(), x.std(), t.scales[order])
    assert np.max(np.abs(approx - p) - 4 * se) < 0.02
    s_approx = sn.conjugate_tipping_scale(x.mean(), x.std(), t.threshold)
    assert t.scale == pytest.approx(s_approx, rel=0.15)
    assert "stays at or above 0.95 unless" in t.text() and "P(HR < 0.5) = " in t.text()


def test_section(study):
    sec = sensitivity_section(study)
    assert (sec.id, sec.nav, sec.tier) == ("sensitivity", "Sensitivity", "synthetic")
    kinds = [type(b).__name__ for b in sec.blocks]
    assert kinds.count("Figure") == 3  # overlay (one endpoint), patient and published tipping
    texts = [b.text for b in sec.blocks if isinstance(b, rp.Text)]
    assert any(t.startswith("PUBLISHED TIER") for t in texts)
    assert sum(t.startswith(("Published: OS", "Published: PFS")) for t in texts) == 2
    assert any("SYNTHETIC" in t for t in texts)
    html = rp.render("sensitivity", [sec])
    assert "Data tier: SYNTHETIC" in html and "Power-scaling" in html
    # the baseline-hazard prior check on the synthetic cohort's plentiful events: not influential
    assert list(study.baseline_check["strategy"]) == ["none"]
    assert not study.baseline_check["influential"].any()
    assert any("this nuisance prior does not drive the hazard ratios" in t for t in texts)


def test_reproducible(study, cohort):
    """The same seed gives the same study, to the last digit: fits, reweighting, power scaling,
    tipping point, rows."""
    again = _run(cohort)
    pd.testing.assert_frame_equal(study.table(), again.table())
    a, b = study.tipping[("os", "none")], again.tipping[("os", "none")]
    assert a.scale == b.scale and np.array_equal(a.p_benefit, b.p_benefit)
    pd.testing.assert_frame_equal(study.psens, again.psens)
    pd.testing.assert_frame_equal(study.reweighting_check, again.reweighting_check)
    pd.testing.assert_frame_equal(pd.DataFrame(study.rows()), pd.DataFrame(again.rows()))


def test_user_cohort_tier_and_seed(cohort, tmp_path):
    path = tmp_path / "mine.csv"
    shutil.copy(default_cohort_path(), path)  # no sidecar: tier "user"
    user = load_cohort(path, list(cohort.covariates))
    kw = {"prior_names": ("reference", "skeptical"), "cut_sets": (4,), "tipping": False}
    s1 = _run(user, **kw)
    assert set(s1.table()["data_tier"]) == {"user"} and sensitivity_section(s1).tier == "user"
    assert {r["source"] for r in s1.rows()} == {"mine.csv"}
    other = SamplerSettings(**{**SAMPLER.as_dict(), "seed": 7})
    s2 = _run(user, sampler=other, **kw)
    assert not np.array_equal(s1.posteriors[0].log_hr, s2.posteriors[0].log_hr)
    m1, m2 = (float(s.posteriors[0].quantile(0.5)) for s in (s1, s2))
    assert abs(m1 - m2) <= 4 * math.hypot(s1.posteriors[0].mcse_median, s2.posteriors[0].mcse_median)


# --------------------------------------------------------------------------- slow


@pytest.mark.slow
def test_tipping_point_checked_by_an_independent_refit(study, cohort):
    """At the reported s*, a refit with another seed gives P(HR < 1) = threshold within MCSE."""
    t = study.tipping[("os", "none")]
    ps = load_prior_set("reference").with_prior("survival.log_hr", sn.normal_scale_prior(t.scale))
    other = SamplerSettings(draws=4000, tune=1000, chains=2, seed=11)
    from bayes_haic import analysis

    idata = analysis.fit_survival(cohort, "os", "none", prior_set=ps, sampler=other,
                                  cuts=sn.as_cut_set(4).cuts(cohort, "os"))
    x = idata.posterior["log_hr"].values
    p = float(np.mean(x < 0))
    import arviz as az

    ess = float(az.ess((x < 0).astype(float), method="mean"))
    mcse = math.sqrt(p * (1 - p) / ess)
    assert abs(p - t.threshold) <= 4 * math.hypot(mcse, t.mcse[np.argmin(abs(t.scales - t.scale))])


@pytest.mark.slow
def test_refit_everywhere_agrees_with_reweighting(cohort, study):
    """reweight=False refits every posterior; where reweighting was used the medians agree."""
    full = _run(cohort, reweight=False, tipping=False)
    assert set(full.table()["method"]) == {"fit", "refit"}
    a = study.table().set_index(["cut_set", "prior"])
    b = full.table().set_index(["cut_set", "prior"])
    for key, r in a.iterrows():
        if r["method"].startswith("PSIS"):
            se = math.hypot(r["mcse_median_log_hr"], b.loc[key, "mcse_median_log_hr"])
            assert abs(math.log(r["median"]) - math.log(b.loc[key, "median"])) <= 4 * se, key


@pytest.mark.slow
def test_the_studys_analyses_under_every_prior(cohort):
    """IPTW hazard ratios, PSM medians and ORR differences are refitted or reweighted under each
    prior set: the priors really enter (an informative prior centred on HR = 1 moves the IPTW HR
    towards 1 and the pessimistic set further), the rows are unique by their key columns, the
    IPTW HR has a tipping point, and a pooled PSM posterior reweighted to another prior set
    (normalised within each design draw) agrees with a refit within Monte Carlo error."""
    from bayes_haic import analysis
    from bayes_haic.results import duplicate_keys

    priors = ("reference", "skeptical", "pessimistic")
    design = analysis.make_design(cohort)
    st = sn.run_sensitivity(cohort, endpoints=("os",), strategies=("iptw", "psm"),
                            orr_strategies=("iptw",), prior_names=priors, cut_sets=(4,),
                            sampler=SAMPLER, n_boot=200, psm_design_draws=2, design=design)
    rows = pd.DataFrame(st.rows())
    assert duplicate_keys(rows).empty
    hr = rows[(rows["measure"] == "hr") & (rows["adjustment"] == "iptw")].set_index("prior")
    assert hr.loc["reference", "median"] < hr.loc["skeptical", "median"] < hr.loc["pessimistic", "median"]
    assert (hr["model"] == "pwe-bootstrap").all() and (hr["analysis"] == "sensitivity").all()
    med = rows[(rows["adjustment"] == "psm") & rows["measure"].str.startswith("median_")]
    assert set(med["prior"]) == set(priors) and len(med) == 2 * len(priors)
    assert (med["model"] == "pwe-pooled-design").all()
    rd = rows[rows["measure"] == "rd"].set_index("prior")
    assert rd["median"].nunique() == len(priors)
    assert ("os", "iptw") in st.tipping and st.tipping[("os", "iptw")].status in ("tips", "already", "never")
    # stratified reweighting of a pooled PSM fit against a refit
    cuts = sn.as_cut_set(4).cuts(cohort, "os")
    ref, skep = load_prior_set("reference"), load_prior_set("skeptical")
    fit = lambda ps: analysis.fit_survival(cohort, "os", "psm", design=design, prior_set=ps,  # noqa: E731
                                           sampler=SAMPLER, cuts=cuts, psm_design_draws=2)
    base, refit = fit(ref), fit(skep)
    rw = sn.psis_reweight(base, ref, skep)
    assert rw.reliable
    a = sn._from_weights(sn._from_fit(base, "os", "psm", sn.as_cut_set(4), ref), skep, rw)
    b = sn._from_fit(refit, "os", "psm", sn.as_cut_set(4), skep)
    se = math.hypot(a.mcse_median, b.mcse_median)
    assert abs(float(a.quantile(0.5)) - float(b.quantile(0.5))) < 4 * se


def test_the_shipped_configuration_keeps_the_studys_parts_to_its_own_cohort(tmp_path):
    """Found on R's gbsg data: `bayes-haic sensitivity --cohort gbsg.csv` (no --config, so the
    shipped, study's configuration) wrote HAIC-LEN-P's published tipping points (tier
    'published') into gbsg's results and refitted gbsg under the evidence_based prior (a
    meta-analysis of HAIC-LEN-P vs LEN-P). With another cohort the shipped file's study parts
    are off; on its own cohort, and in a configuration of the user's that turns them on, they
    stay."""
    from bayes_haic.config import load_config

    shipped = load_config()
    light = shipped.model_copy(update={  # still the shipped file (its source), lighter
        "sampler": shipped.sampler.model_copy(update={"draws": 300, "tune": 300, "seed": 5}),
        "sensitivity": shipped.sensitivity.model_copy(update={"strategies": ["none"],
                                                             "orr_strategies": []})})
    assert light.is_shipped()
    frame = pd.read_csv(default_cohort_path())
    theirs = tmp_path / "theirs.csv"  # no sidecar: tier user
    frame.to_csv(theirs, index=False)
    other = light.for_cohort(theirs)
    assert not other.published.enabled and "evidence_based" not in other.priors.published_sets
    assert light.for_cohort(default_cohort_path()) is light
    mine = tmp_path / "mine.toml"
    mine.write_text("[published]\nenabled = true\n")
    assert load_config(mine).for_cohort(theirs).published.enabled  # the user's word stands
    study = write_sensitivity(theirs, tmp_path / "out", endpoints=("os",), cut_sets=(4,),
                              config_path=light, echo=lambda m: None)
    res = pd.read_csv(tmp_path / "out" / "results.csv")
    assert set(res["data_tier"]) == {"user"} and not study.published_tipping
    assert set(study.prior_labels) == {"reference", "skeptical", "enthusiastic", "pessimistic"}


def test_prior_object_sets(cohort):
    """Prior sets may be given as objects (e.g. a user's Normal(0, 1) variant)."""
    ref = load_prior_set("reference")
    mine = ref.with_prior("survival.log_hr", Prior("Normal", {"mu": 0.0, "sigma": 1.0}))
    st = _run(cohort, prior_names=(ref, mine), cut_sets=(CUTS[1],), tipping=False)
    assert st.prior_labels == ["reference", "reference+survival.log_hr=Normal(mu: 0, sigma: 1)"]
    assert list(st.table()["method"]) == ["fit", "refit"]
    assert st.reweighting_check["reliable"].item()  # a mild change: reweighting would do


def test_write_sensitivity_job(tmp_path):
    """The CLI job writes results.csv (both tiers), sensitivity.csv, tipping.csv,
    baseline_prior.csv and report.html."""
    out = tmp_path / "sens"
    config = tmp_path / "main.toml"
    config.write_text("[sampler]\ndraws = 1000\ntune = 300\nseed = 5\n"
                      "[sensitivity]\nstrategies = [\"none\"]\norr_strategies = []\n"
                      "[published]\nenabled = true\n")
    msgs = []
    study = write_sensitivity(default_cohort_path(), out, endpoints=("os",),
                              prior_names=("reference", "skeptical"), cut_sets=(4,),
                              threshold=0.975, config_path=config, echo=msgs.append)
    assert study.settings["sampler"]["tune"] == 300 and study.settings["sampler"]["seed"] == 5
    assert sorted(p.name for p in out.iterdir()) == ["baseline_prior.csv", "report.html", "results.csv",
                                                     "sensitivity.csv", "tipping.csv"]
    check = pd.read_csv(out / "baseline_prior.csv")
    assert list(check[["endpoint", "strategy", "prior"]].itertuples(index=False, name=None)) == [
        ("os", "none", "reference")]
    assert check["baseline_prior_widened"].iloc[0].endswith("sigma: 10)")
    res = pd.read_csv(out / "results.csv")
    assert list(res.columns) == RESULT_COLUMNS
    assert set(res["data_tier"]) == {"synthetic", "published"}
    pub = res[res["data_tier"] == "published"]
    assert set(pub["measure"]) == {"tipping_sd_log_hr"} and set(pub["endpoint"]) == {"os", "pfs"}
    # the configured backend (the configuration's default), no longer overridden by the job
    assert study.threshold == 0.975 and study.settings["sampler"]["backend"] == "nutpie-numba"
    assert len(pd.read_csv(out / "sensitivity.csv")) == 2
    curves = pd.read_csv(out / "tipping.csv")
    assert set(curves["data_tier"]) == {"synthetic", "published"}
    html = (out / "report.html").read_text()
    assert "SYNTHETIC DATA" in html and "PUBLISHED TIER" in html
    assert "stays at or above 0.975 unless" in html
    assert msgs and "wrote" in msgs[-1]


def test_a_cut_set_that_is_not_estimable_is_left_out_with_a_note(cohort):
    """An IPTW bootstrap on a grid with an interval without events has no finite baseline
    estimate: that cut set is left out, said in a note on the report, and the study goes on."""
    st = sn.run_sensitivity(cohort, endpoints=("os",), strategies=("iptw",), orr_strategies=(),
                            prior_names=("reference", "skeptical"), cut_sets=(4, [0, 0.01, 6, 12]),
                            sampler=SAMPLER, n_boot=50, tipping=False)
    assert {p.cut_set.label for p in st.posteriors} == {"4 quantile intervals"}
    assert len(st.notes) == 1 and "not estimable" in st.notes[0] and "no events" in st.notes[0]
    assert "not estimable" in rp.render("t", [sensitivity_section(st)])


# --------------------------------------------------------------------------- baseline-hazard prior

REFERENCE = Path(__file__).resolve().parent / "reference"


def test_widened_baseline_prior_and_the_shift_rule():
    """The check's prior set differs from its base only in the baseline-hazard prior's sd (x5,
    named in its label); the row measures shifts of log-HR quantiles in posterior sds and calls
    them influential only beyond 0.1 sd and 3 Monte Carlo standard errors."""
    base_set = load_prior_set("reference")
    wide = sn.widened_baseline(base_set)
    b0, b1 = base_set.get(sn.BASELINE_KEY), wide.get(sn.BASELINE_KEY)
    assert b1.params["sigma"] == sn.BASELINE_WIDEN * b0.params["sigma"]
    assert b1.params["mu"] == b0.params["mu"] and wide.get("survival.log_hr") == base_set.get("survival.log_hr")
    assert "survival.log_baseline_hazard" in wide.label()
    cut = sn.as_cut_set(4)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 20000))

    def post(draws, prior_set):
        return sn.HRPosterior("os", "none", cut, (0.0, 1.0, 2.0, 3.0), prior_set, draws, None,
                              "refit", ess=float(draws.size))

    same = sn.baseline_row(post(x, base_set), post(x, wide))
    assert same["shift_median_sd"] == 0 and not same["influential"]
    moved = sn.baseline_row(post(x, base_set), post(x + 0.3, wide))
    # shifts of 0.3 sd, each quantile's MCSE ~0.01-0.02 sd at 40,000 draws
    for q in ("lower", "median", "upper"):
        assert moved[f"shift_{q}_sd"] == pytest.approx(0.3, abs=0.02)
    assert moved["influential"] and moved["max_mcse_log_hr"] < 0.05
    small = sn.baseline_row(post(x[:, :100], base_set), post(x[:, :100] + 0.15, wide))
    assert not small["influential"]  # 0.15 sd, but within 3 MCSE of 200 draws


def test_baseline_prior_check_on_a_small_real_cohort():
    """R's ovarian data (26 women, 12 deaths in 8 quantile intervals; tests/reference/
    survival_ovarian.R): the reference baseline prior Normal(-2.5, 2) pulls the crude HR away
    from R's maximum-likelihood PWE estimate (log HR -0.625, se 0.587), and the check flags it;
    with the prior 5-fold wider the posterior median is back within 0.1 posterior sd plus
    3 MCSE of the MLE (flat priors make the two agree up to the small skew of the posterior)."""
    ref = pd.read_csv(REFERENCE / "survival_ovarian_reference.csv").set_index("quantity")["value"]
    cohort = load_cohort(REFERENCE / "survival_ovarian.csv")
    assert cohort.endpoints == ("os",)
    study = sn.run_sensitivity(cohort, strategies=("none",), prior_names=("reference",),
                               cut_sets=(8,), sampler=SAMPLER, baseline="independent",
                               tipping=False, published=False)
    post = study.posteriors[0]
    np.testing.assert_allclose(post.cuts, ref[[f"cut_{i}" for i in range(1, 9)]].to_numpy(), rtol=1e-9)
    row = study.baseline_check.iloc[0]
    mle = float(ref["pwe_glm_log_hr"])
    base_med, wide_med = math.log(row["median_hr"]), math.log(row["median_hr_widened"])
    sd = (math.log(row["upper_hr"]) - math.log(row["lower_hr"])) / (2 * 1.96)
    assert row["influential"] and row["shift_median_sd"] > 0.1
    assert abs(wide_med - mle) < 0.1 * sd + 3 * row["max_mcse_log_hr"]
    assert abs(base_med - mle) > abs(wide_med - mle)
    blocks = sensitivity_section(study).blocks
    text = " ".join(b.text for b in blocks if isinstance(b, rp.Text))
    assert "The baseline-hazard prior informs the hazard ratio of: OS 'none'" in text
    # here the cause is few events: the prior's mean is within 1 prior sd of the crude hazard
    assert abs(row["prior_mean_distance_sd"]) <= 1 and "few events per interval" in text


def test_baseline_prior_check_names_a_prior_centred_far_from_the_cohorts_hazard():
    """R's pbc trial (312 patients, 125 deaths; tests/reference/survival_pbc.R): plenty of events,
    but hazards ~0.006 per month, 1.3 prior sd below the reference baseline prior's mean
    (Normal(-2.5, 2) per month). The prior pulls the baseline up and the crude HR with it (the
    check flags it); with it 5-fold wider the posterior median is back at R's maximum-likelihood
    PWE estimate. The check reports the analysed control arm's crude log hazard (equal to R's)
    and its distance from the prior's mean, and the page and the report's summary say that the
    prior's location is the cause, with both hazards."""
    from types import SimpleNamespace

    from bayes_haic.config import MainConfig
    from bayes_haic.report.main import summary_section

    ref = pd.read_csv(REFERENCE / "survival_pbc_reference.csv").set_index("quantity")["value"]
    cohort = load_cohort(REFERENCE / "survival_pbc.csv")
    study = sn.run_sensitivity(cohort, strategies=("none",), prior_names=("reference",),
                               cut_sets=(8,), sampler=SAMPLER, baseline="independent",
                               tipping=False, published=False)
    np.testing.assert_allclose(study.posteriors[0].cuts,
                               ref[[f"cut_{i}" for i in range(1, 9)]].to_numpy(), rtol=1e-9)
    row = study.baseline_check.iloc[0]
    crude = float(ref["crude_log_hazard_control"])
    assert row["crude_log_hazard_control"] == pytest.approx(crude, rel=1e-9)
    assert row["prior_mean_distance_sd"] == pytest.approx((-2.5 - crude) / 2.0, rel=1e-9)
    mle = float(ref["pwe_glm_log_hr"])
    base_med, wide_med = math.log(row["median_hr"]), math.log(row["median_hr_widened"])
    sd = (math.log(row["upper_hr"]) - math.log(row["lower_hr"])) / (2 * 1.96)
    assert row["influential"] and base_med < wide_med  # pulled down by the prior
    assert abs(wide_med - mle) < 0.1 * sd + 3 * row["max_mcse_log_hr"]
    text = " ".join(b.text for b in sensitivity_section(study).blocks if isinstance(b, rp.Text))
    assert "The prior sits far from this cohort's hazards" in text
    assert f"crude log hazard, {crude:.2f}" in text and "few events" not in text
    state = SimpleNamespace(rows=[{**dict.fromkeys(RESULT_COLUMNS, ""), "data_tier": "user",
                                   "analysis": "main", "endpoint": "os", "measure": "hr",
                                   "median": 1.0, "lower": 0.7, "upper": 1.4, "prob_benefit": 0.5}],
                            cohort=cohort, design=None, config=MainConfig(), alerts=[],
                            reconstructed=None, baseline_check=study.baseline_check)
    summary = " ".join(b.text for b in summary_section(state).blocks if isinstance(b, rp.Text))
    assert (f"moves the hazard ratio of OS 'none' (median {row['median_hr']:.2f} -> "
            f"{row['median_hr_widened']:.2f}") in summary


def test_the_important_hr_of_the_table_and_page(study):
    """The study's P(HR < d) column is for its ``important_hr`` (``[survival] important_hr``):
    0.8 gives ``p_hr_below_0.8``, each the posterior's own P(HR < 0.8), and the page's column
    says so; the default is the study's 0.7."""
    from dataclasses import replace

    from bayes_haic.report.sensitivity import sensitivity_section

    assert study.important_hr == 0.7 and "p_hr_below_0.7" in study.table()
    other = replace(study, settings={**study.settings, "important_hr": 0.8})
    t = other.table()
    assert "p_hr_below_0.7" not in t
    assert list(t["p_hr_below_0.8"]) == [p.prob_below(0.8) for p in other.posteriors]
    heads = [list(b.frame.columns) for b in sensitivity_section(other).blocks if hasattr(b, "frame")]
    assert any("P(HR < 0.8)" in h for h in heads) and not any("P(HR < 0.7)" in h for h in heads)
