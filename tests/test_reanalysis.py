"""Reanalysis of the published numbers: SEs, the prior family, closed forms vs MCMC, rows."""

from __future__ import annotations

import math

import arviz as az
import numpy as np
import pytest
from scipy import special, stats

from bayes_haic import prior_files
from bayes_haic import reanalysis as ra
from bayes_haic.report import published as rpub
from bayes_haic.errors import InputError
from bayes_haic.paths import priors_dir
from bayes_haic.priors import REQUIRED_KEYS, Prior, load_prior_set
from bayes_haic.published import load_meta_analyses, load_published
from bayes_haic.results import RESULT_COLUMNS
from bayes_haic.sampling import SamplerSettings, sample

FAMILY = ("skeptical", "enthusiastic", "pessimistic", "evidence_based")


@pytest.fixture(scope="module")
def run():
    return ra.run_published(n_draws=100_000)


# --------------------------------------------------------------------------- SEs


def test_se_from_ci():
    assert ra.se_from_ci(0.45, 0.64) == pytest.approx((math.log(0.64) - math.log(0.45)) / 3.919928)
    with pytest.raises(InputError):
        ra.se_from_ci(0.64, 0.45)


def test_se_from_p_matches_published_bound():
    ev = load_published()
    for endpoint in ("os", "pfs"):
        hr = ev.value(f"hr_{endpoint}", analysis_set="IPTW")
        se = ra.se_from_p(hr, 0.001)
        assert round(se, 3) == ev.value("se_log_hr_bound", endpoint=endpoint)
        # a Wald test at that SE gives exactly P = 0.001
        assert 2 * stats.norm.sf(abs(math.log(hr)) / se) == pytest.approx(0.001)
    assert ra.se_from_p(0.5, 0.05, two_sided=False) == pytest.approx(math.log(2) / 1.644854)


def test_reanalyse_hr_states_the_se_assumption():
    r = ra.reanalyse_hr("os")
    assert r.se == pytest.approx(0.29087, abs=1e-5)
    assert "P < 0.001 read as P = 0.001" in r.se_method and "most conservative" in r.se_method
    r2 = ra.reanalyse_hr("os", se=0.2)
    assert r2.se == 0.2 and "given by the caller" in r2.se_method


# --------------------------------------------------------------------------- prior family


def test_prior_from_probability():
    p = ra.prior_from_probability(1.0, 0.5, 0.05)
    assert p.params["mu"] == 0.0
    assert stats.norm.cdf(math.log(0.5), 0, p.params["sigma"]) == pytest.approx(0.05)
    p = ra.prior_from_probability(0.7, 1.0, 0.05)
    assert stats.norm.sf(0.0, p.params["mu"], p.params["sigma"]) == pytest.approx(0.05)
    with pytest.raises(InputError):
        ra.prior_from_probability(1.0, 1.0, 0.05)
    with pytest.raises(InputError):
        ra.prior_from_probability(1.0, 0.5, 0.7)


def test_clinical_or_is_rd_02_at_control_25():
    p0, p1 = 0.25, 0.45
    assert ra.CLINICAL_OR == pytest.approx((p1 / (1 - p1)) / (p0 / (1 - p0)))


@pytest.mark.parametrize("name", FAMILY)
def test_family_files_state_their_probabilities(name):
    ps = load_prior_set(name)  # validates every key
    member = ra.family_members()[name]
    assert member.statements
    for st in member.statements:
        got = st.evaluate(ps.get(st.key))
        assert got == pytest.approx(st.prob, abs=2e-5), f"{name}: {st.key} {st}: {got}"
    # the file is exactly what the code derives (no hand edits drifting from the statements)
    assert (priors_dir() / f"{name}.toml").read_text() == prior_files.render_prior_file(member)


@pytest.mark.parametrize("name", FAMILY)
def test_family_nuisance_priors_are_the_reference(name):
    ref = load_prior_set("reference")
    ps = load_prior_set(name)
    effect = set(ra.family_members()[name].priors)
    for section, keys in REQUIRED_KEYS.items():
        for key in keys:
            dotted = f"{section}.{key}"
            if dotted not in effect:
                assert ps.get(dotted) == ref.get(dotted), dotted


def test_stated_probabilities_in_plain_words():
    text = {n: load_prior_set(n).description for n in FAMILY}
    assert "P(HR < 0.5) = 0.05" in text["skeptical"] and "P(OR > 2.45) = 0.05" in text["skeptical"]
    assert "median HR = 0.7 with P(HR > 1) = 0.05" in text["enthusiastic"]
    assert "P(HR < 1) = 0.05" in text["pessimistic"]
    assert "a0 = 0.5" in text["evidence_based"] and "includes this study" in text["evidence_based"]
    # the skeptic's implied P(HR < 0.7), printed in the description
    sk = load_prior_set("skeptical").get("published.log_hr_os").to_scipy()
    assert f"P(HR < 0.7) = {sk.cdf(math.log(0.7)):.2f}" in text["skeptical"]


def test_evidence_based_is_power_prior_of_meta_analysis():
    meta = load_meta_analyses()
    ps = load_prior_set("evidence_based")
    for endpoint, key in (("os", "zhao2025_hr_os"), ("pfs", "zhao2025_hr_pfs")):
        m = meta.loc[key]
        p = ps.get(f"published.log_hr_{endpoint}")
        assert math.exp(p.params["mu"]) == pytest.approx(m.value, rel=1e-5)
        se = ra.se_from_ci(m.lower, m.upper)
        assert p.params["sigma"] == pytest.approx(se / math.sqrt(ra.POWER_PRIOR_A0), rel=1e-5)
    lor = ps.get("response.log_or")
    assert lor.params["mu"] == pytest.approx(ra.log_or_from_rr(2.15, 0.25), rel=1e-5)
    # the conversion spread widens the prior beyond the pooled RR's own uncertainty
    assert lor.params["sigma"] > ra.se_from_ci(1.84, 2.50) / math.sqrt(0.5)


def test_subtract_study_inverts_pooling():
    pool_without = Prior("Normal", {"mu": -0.6, "sigma": 0.1})
    y, s = math.log(0.384), 0.291
    m0, s0 = pool_without.params["mu"], pool_without.params["sigma"]
    prec = 1 / s0**2 + 1 / s**2
    pooled = Prior("Normal", {"mu": (m0 / s0**2 + y / s**2) / prec, "sigma": prec**-0.5})
    back = ra.subtract_study(pooled, y, s)
    assert back.params["mu"] == pytest.approx(-0.6)
    assert back.params["sigma"] == pytest.approx(0.1)


# --------------------------------------------------------------------------- HR posteriors


def test_reference_posterior_is_the_likelihood():
    r = ra.reanalyse_hr("os", "reference")
    s = r.summary()
    assert s["median"] == pytest.approx(0.384, rel=2e-3)  # N(0, 10^2) prior: 0.08% shrinkage
    assert s["p_hr_below_1"] == pytest.approx(1 - 0.0005, abs=2e-5)  # P = 0.001 two-sided


def test_conjugate_formula_against_grid_quadrature():
    y, se = math.log(0.507), 0.206
    closed = ra.normal_posterior(Prior("Normal", {"mu": 0.2, "sigma": 0.3}), y, se)
    # a Student-t with huge nu is a normal to ~1e-7, but takes the quadrature route
    grid = ra.normal_posterior(Prior("StudentT", {"nu": 1e7, "mu": 0.2, "sigma": 0.3}), y, se)
    assert closed.closed_form and not grid.closed_form
    assert grid.mean == pytest.approx(closed.mean, abs=1e-5)
    assert grid.sd == pytest.approx(closed.sd, abs=1e-5)
    for q in (0.025, 0.5, 0.975):
        assert grid.quantile(q) == pytest.approx(closed.quantile(q), abs=1e-4)


def test_conjugate_against_mcmc_within_mcse():
    r = ra.reanalyse_hr("os", "skeptical")
    model = ra.hr_model(r.log_hr, r.se, r.prior)
    idata = sample(model, SamplerSettings(draws=2000, tune=1000, chains=2, seed=11))
    x = idata.posterior["log_hr"]
    mcse_mean = float(az.mcse(idata, var_names=["log_hr"], method="mean")["log_hr"])
    # MCSE of the sd by the delta method on the squared deviations (ArviZ's method="sd" fails
    # under numba in arviz 0.23)
    sq = (x - x.mean()) ** 2
    mcse_var = float(az.mcse(az.convert_to_dataset(sq.values))["x"])
    mcse_sd = mcse_var / (2 * float(x.std()))
    assert abs(float(x.mean()) - r.posterior.mean) < 4 * mcse_mean
    assert abs(float(x.std()) - r.posterior.sd) < 4 * mcse_sd
    for q in (0.025, 0.975):
        mcse_q = float(az.mcse(idata, var_names=["log_hr"], method="quantile", prob=q)["log_hr"])
        assert abs(float(x.quantile(q)) - r.posterior.quantile(q)) < 4 * mcse_q


def test_se_sensitivity_flags_and_widths():
    tab = ra.hr_se_sensitivity("pfs", "reference")
    assert tab["consistent_with_p"].tolist() == [True, True, True, False, False]
    width = np.log(tab["upper"]) - np.log(tab["lower"])
    assert np.all(np.diff(width) > 0)


# --------------------------------------------------------------------------- ORR


def _p_b_beats_a(a_a, b_a, a_b, b_b):
    """Closed form of P(p_B > p_A) for integer a_b (Miller 2014 / Cook 2005)."""
    tot = 0.0
    for i in range(int(a_b)):
        tot += math.exp(
            special.betaln(a_a + i, b_a + b_b)
            - math.log(b_b + i)
            - special.betaln(1 + i, b_b)
            - special.betaln(a_a, b_a)
        )
    return tot


def test_orr_exact_posteriors():
    r = ra.reanalyse_orr("reference", n_draws=100_000, seed=3)
    assert r.responders == (37, 16) and r.n == (55, 55)
    assert r.post_treated == (38.0, 19.0) and r.post_control == (17.0, 40.0)
    exact = _p_b_beats_a(*r.post_control, *r.post_treated)
    assert r.p_rd_above_0 == pytest.approx(exact, abs=1e-9)
    n = len(r.draws["rd"])
    mc = float(np.mean(r.draws["rd"] > ra.IMPORTANT_RD))
    assert abs(mc - r.p_rd_above_important) < 4 * math.sqrt(mc * (1 - mc) / n)
    # the exact posterior mean of RD and MC
    mean = 38 / 57 - 17 / 57
    assert abs(r.draws["rd"].mean() - mean) < 4 * r.draws["rd"].std() / math.sqrt(n)
    # the per-arm draws follow the exact Beta posteriors
    ks = stats.kstest(r.draws["p_treated"][:5000], stats.beta(38, 19).cdf)
    assert ks.pvalue > 1e-3


def test_prob_rd_greater_edges():
    assert ra.prob_rd_greater(2, 3, 2, 3, 1.0) == 0.0
    assert ra.prob_rd_greater(2, 3, 2, 3, 0.0) == pytest.approx(0.5, abs=1e-9)
    assert ra.prob_rd_greater(2, 3, 2, 3, -1.0) == pytest.approx(1.0, abs=1e-9)


def test_prob_rd_greater_against_closed_forms_and_monte_carlo():
    """P(p1 - p0 > d) by quadrature against (a) the uniform case, P(U1 - U0 > d) = (1 - d)^2 / 2
    for d >= 0 and 1 - (1 + d)^2 / 2 for d < 0; (b) the exact sum for integer a1 (Evan Miller's
    formula for P(p1 > p0)); (c) 2,000,000 Monte Carlo draws with non-integer parameters and
    d != 0, within 5 Monte Carlo standard errors."""
    from scipy.special import betaln

    for d in (-0.7, -0.2, 0.0, 0.15, 0.6):
        exact = (1 - d) ** 2 / 2 if d >= 0 else 1 - (1 + d) ** 2 / 2
        assert ra.prob_rd_greater(1, 1, 1, 1, d) == pytest.approx(exact, abs=1e-10)
    for a1, b1, a0, b0 in ((31, 31, 21, 39), (5, 2, 3, 9), (70, 35, 31, 76)):
        exact = sum(math.exp(betaln(a0 + i, b0 + b1) - math.log(b1 + i) - betaln(1 + i, b1) - betaln(a0, b0))
                    for i in range(a1))
        assert ra.prob_rd_greater(a1, b1, a0, b0, 0.0) == pytest.approx(exact, rel=1e-9)
    rng = np.random.default_rng(11)
    n = 2_000_000
    for a1, b1, a0, b0, d in ((35.5, 17.5, 16.5, 39.5, 0.3), (2.5, 7.2, 4.1, 3.3, -0.25)):
        p = float(np.mean(rng.beta(a1, b1, n) - rng.beta(a0, b0, n) > d))
        assert abs(ra.prob_rd_greater(a1, b1, a0, b0, d) - p) < 5 * math.sqrt(p * (1 - p) / n) + 1e-12


def test_orr_contrast_grid_against_mcmc():
    import pymc as pm

    ps = load_prior_set("skeptical")
    g = ra.reanalyse_orr_contrast(ps)
    with pm.Model():
        a = ps.get("response.intercept").to_pymc("a")
        b = ps.get("response.log_or").to_pymc("b")
        pm.Binomial("y0", n=55, p=pm.math.invlogit(a), observed=16)
        pm.Binomial("y1", n=55, p=pm.math.invlogit(a + b), observed=37)
        pm.Deterministic("rd", pm.math.invlogit(a + b) - pm.math.invlogit(a))
        idata = sample(pm.modelcontext(None), SamplerSettings(draws=2000, chains=2, seed=5))
    for var, key in (("b", "log_or"), ("rd", "rd")):
        mcse = float(az.mcse(idata, var_names=[var], method="mean")[var])
        assert abs(float(idata.posterior[var].mean()) - g.mean(key)) < 4 * mcse, var
    p = float((idata.posterior["rd"] > 0.2).mean())
    ess = float(az.ess(idata, var_names=["rd"])["rd"])
    assert abs(p - g.p_rd_above_important) < 4 * math.sqrt(p * (1 - p) / ess) + 1e-3


def test_orr_contrast_reference_close_to_beta_binomial():
    """Vague priors on both routes: the two ORR models agree closely (not exactly: the priors
    differ, uniform on each rate vs normal on the logits)."""
    g = ra.reanalyse_orr_contrast("reference")
    e = ra.reanalyse_orr("reference", n_draws=100_000)
    assert g.summary("rd")["median"] == pytest.approx(e.summary("rd")["median"], abs=0.01)
    assert g.p_rd_above_important == pytest.approx(e.p_rd_above_important, abs=0.01)


# --------------------------------------------------------------------------- rows, table, figures


def test_published_rows(run):
    rows = run.rows()
    # per prior set: HR OS, HR PFS and the logistic-contrast RD/RR/OR; the beta-binomial RD/RR/OR
    # once, since every shipped set has the same uniform per-arm prior (no set changes them)
    assert len(rows) == 5 * (2 + 3) + 3
    for row in rows:
        assert list(row) == RESULT_COLUMNS
        assert row["data_tier"] == "published" and row["adjustment"] == "published"
        assert math.isnan(row["rhat_max"])
        assert 0 <= row["prob_benefit"] <= 1
        assert row["lower"] <= row["median"] <= row["upper"]
        assert row["source"].endswith("study.csv")
    hr = [r for r in rows if r["measure"] == "hr"]
    assert {r["estimand"] for r in hr} == {ra.HR_ESTIMAND}
    assert {(r["n_treated"], r["n_control"]) for r in hr} == {(127, 103)}
    orr = [r for r in rows if r["endpoint"] == "orr"]
    assert {(r["n_treated"], r["n_control"]) for r in orr} == {(55, 55)}
    assert all("derived" in r["method"] for r in orr)
    assert {r["prior"] for r in rows} == set(ra.PRIOR_NAMES) | {"Beta(alpha: 1, beta: 1)"}
    bb = [r for r in rows if r["model"] == "beta-binomial"]
    assert {r["prior"] for r in bb} == {"Beta(alpha: 1, beta: 1)"} and len(bb) == 3


def test_prior_ordering(run):
    """Posterior medians order as the priors do: enthusiastic/skeptical pull toward their centres,
    the pessimistic prior gives the largest HR."""
    med = {label: r.summary()["median"] for (e, label), r in run.hr.items() if e == "os"}
    assert med["reference"] < med["skeptical"] < med["pessimistic"]
    assert med["pessimistic"] == max(med.values())


def test_table_and_figures(run):
    tab = run.table()
    assert {"p_benefit", "p_important", "important"} <= set(tab.columns)
    assert set(tab["important"]) == {"P(HR < 0.8)", "P(RD > 0.2)"}
    from matplotlib.figure import Figure

    for fig in (
        rpub.plot_hr_reanalysis(run.hr[("os", "skeptical")]),
        rpub.plot_hr_family(run, "pfs"),
        rpub.plot_orr_difference(run),
    ):
        assert isinstance(fig, Figure)
    ax = rpub.plot_hr_reanalysis(run.hr[("os", "reference")]).axes[0]
    assert ax.get_xscale() == "log" and len(ax.lines) >= 3
