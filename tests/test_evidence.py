"""Reanalysis of any published result (``bayes-haic reanalyse``, ``bh.reanalyse``): checked
against the closed-form normal-normal posterior computed here from first principles."""

import math

import pandas as pd
import pytest
from scipy import stats

import bayes_haic as bh
from bayes_haic.cli import main
from bayes_haic.results import RESULT_COLUMNS

Z = stats.norm.isf(0.025)


def closed_form(estimate, se, mu, sigma):
    """Posterior of log ratio: N(m, s^2) with precision-weighted mean; HR summaries."""
    y = math.log(estimate)
    prec = 1 / sigma**2 + 1 / se**2
    m = (mu / sigma**2 + y / se**2) / prec
    s = math.sqrt(1 / prec)
    return {"median": math.exp(m), "lower": math.exp(m - Z * s), "upper": math.exp(m + Z * s),
            "p_below_1": stats.norm.cdf(0, m, s)}


def _row(frame, prior, measure="hr"):
    r = frame[(frame["prior"] == prior) & (frame["measure"] == measure)]
    assert len(r) >= 1, (prior, measure, frame["prior"].unique())
    return r.iloc[0]


def test_hr_with_ci_matches_closed_form_for_the_whole_family(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["reanalyse", "--measure", "hr", "--estimate", "0.75", "--ci", "0.55", "1.02",
                 "--out", str(out)]) == 0
    frame = pd.read_csv(out / "results.csv")
    assert list(frame.columns) == RESULT_COLUMNS
    # the generic family: the HAIC-LEN-P meta-analysis prior (evidence_based) is not another
    # study's prior unless named
    assert list(frame["prior"]) == ["reference", "skeptical", "enthusiastic", "pessimistic"]
    se = (math.log(1.02) - math.log(0.55)) / (2 * Z)
    priors = {"reference": (0.0, 10.0), "skeptical": (0.0, math.log(2) / stats.norm.isf(0.05)),
              "enthusiastic": (math.log(0.7), -math.log(0.7) / stats.norm.isf(0.05))}
    for name, (mu, sigma) in priors.items():
        want = closed_form(0.75, se, mu, sigma)
        got = _row(frame, name)
        for k in ("median", "lower", "upper"):
            assert got[k] == pytest.approx(want[k], rel=2e-5), (name, k)
        assert got["prob_benefit"] == pytest.approx(want["p_below_1"], rel=2e-5)
        assert got["data_tier"] == "published" and "conjugate normal-normal" in got["method"]
    # a skeptical prior pulls the posterior towards HR = 1
    assert _row(frame, "skeptical")["median"] > _row(frame, "reference")["median"]
    html = (out / "report.html").read_text()
    assert "P(HR &lt; 0.8)" in html and "skeptical" in html and "<img" in html
    named = bh.reanalyse(measure="hr", estimate=0.75, ci=(0.55, 1.02), family=["evidence_based"])
    assert list(named.summary()["prior"]) == ["reference", "evidence_based"]


def test_p_value_bound_is_read_as_equal_and_overrides_and_partial_priors_apply(tmp_path):
    # "P < 0.01" for HR 0.6 -> the largest SE consistent with it: |log 0.6| / z(0.995)
    se = abs(math.log(0.6)) / stats.norm.isf(0.005)
    res = bh.reanalyse(measure="hr", estimate=0.6, p_value="< 0.01", prior="skeptical",
                       overrides=["published.log_hr_os.sigma=0.5"], family=["reference"])
    s = res.summary()
    got = s.iloc[0]
    assert got["prior"].startswith("skeptical+published.log_hr_os.sigma=0.5")
    want = closed_form(0.6, se, 0.0, 0.5)
    assert got["median"] == pytest.approx(want["median"], rel=1e-9)
    assert got["prob_benefit"] == pytest.approx(want["p_below_1"], rel=1e-9)
    assert "largest SE consistent" in got["method"]
    # a partial prior file: only the key it changes (the PFS HR prior), the rest from reference
    partial = tmp_path / "mine.toml"
    partial.write_text('name = "mine"\n[published]\nlog_hr_pfs = { dist = "Normal", mu = -0.2, sigma = 0.3 }\n')
    res = bh.reanalyse(measure="hr", estimate=0.6, ci=(0.4, 0.9), endpoint="pfs",
                       prior=str(partial), family=[])
    se = (math.log(0.9) - math.log(0.4)) / (2 * Z)
    got = res.summary().iloc[0]
    assert got["prior"] == "mine" and got["endpoint"] == "pfs"
    assert got["median"] == pytest.approx(closed_form(0.6, se, -0.2, 0.3)["median"], rel=1e-9)
    assert "published.log_hr_os" in res.prior_sets["mine"].inherited


def test_odds_ratio_uses_the_log_or_prior_and_benefit_is_above_one():
    res = bh.reanalyse(measure="or", estimate=2.0, ci=(1.2, 3.3), prior="skeptical", family=[])
    sd = math.log(((0.45 / 0.55) / (0.25 / 0.75))) / stats.norm.isf(0.05)  # skeptical log-OR sd
    se = (math.log(3.3) - math.log(1.2)) / (2 * Z)
    want = closed_form(2.0, se, 0.0, sd)
    got = res.summary().iloc[0]
    assert got["measure"] == "or" and got["endpoint"] == "orr"
    assert got["median"] == pytest.approx(want["median"], rel=1e-4)
    assert got["prob_benefit"] == pytest.approx(1 - want["p_below_1"], rel=1e-4)


def test_counts_give_exact_beta_binomial_and_logistic_contrasts():
    from bayes_haic.reanalysis import prob_rd_greater

    res = bh.reanalyse(measure="rd", counts=(30, 60, 20, 58), family=["skeptical"])
    s = res.summary()
    assert set(s["measure"]) == {"rd", "rr", "or"} and (s["n_treated"] == 60).all()
    beta = s[s["method"].str.startswith("exact beta-binomial")]
    exact = prob_rd_greater(1 + 30, 1 + 30, 1 + 20, 1 + 38, 0.0)
    assert beta["prob_benefit"].iloc[0] == pytest.approx(exact, rel=1e-9)
    assert "published counts 30/60 vs 20/58" in beta["method"].iloc[0]
    rd = beta[beta["measure"] == "rd"].iloc[0]
    assert rd["median"] == pytest.approx(30 / 60 - 20 / 58, abs=0.01)
    assert "P(RD < 0.2)" in res.table().columns


def test_published_file_of_another_study(tmp_path):
    """Any study's evidence file in the data/published format: generic arm names."""
    path = tmp_path / "other.csv"
    path.write_text(
        "id,measure,endpoint,analysis_set,arm,value,lower,upper,unit,p_value,provenance,source\n"
        "hr,hr_os,os,all,contrast,0.7,0.5,0.98,ratio,,verbatim,Table 2\n"
        "r1,responders,orr,all,treated,12,,,patients,,verbatim,Table 3\n"
        "n1,n_patients,cohort,all,treated,40,,,patients,,verbatim,Table 1\n"
        "r0,responders,orr,all,control,6,,,patients,,verbatim,Table 3\n"
        "n0,n_patients,cohort,all,control,41,,,patients,,verbatim,Table 1\n")
    out = tmp_path / "o"
    assert main(["reanalyse", "--published", str(path), "--family", "skeptical",
                 "--out", str(out)]) == 0
    frame = pd.read_csv(out / "results.csv")
    hr = frame[frame["measure"] == "hr"]
    assert list(hr["prior"]) == ["reference", "skeptical"]
    se = (math.log(0.98) - math.log(0.5)) / (2 * Z)
    assert hr.iloc[0]["median"] == pytest.approx(closed_form(0.7, se, 0, 10)["median"], rel=2e-5)
    assert "from the published 95% CI" in hr.iloc[0]["method"]
    assert (hr["n_treated"] == 40).all() and (hr["n_control"] == 41).all()
    assert (frame["source"].str.startswith("other.csv")).all()
    assert (frame[frame["endpoint"] == "orr"]["n_control"] == 41).all()


@pytest.mark.parametrize("args, needles", [
    (["--measure", "hr"], ["--estimate"]),
    (["--estimate", "0.75", "--ci", "0.8", "1.02"], ["--ci 0.8 1.02", "lower <= estimate"]),
    (["--estimate", "0.75"], ["exactly one of --ci"]),
    (["--estimate", "0.75", "--p-value", "> 0.05"], ["lower bound on P"]),
    (["--estimate", "0.75", "--p-value", "small"], ["--p-value 'small'"]),
    (["--measure", "rd", "--counts", "40", "30", "1", "5"], ["0 <= events <= patients"]),
    (["--estimate", "0.75", "--se", "0.1", "--prior", "nonesuch"], ["prior set not found"]),
    (["--estimate", "0.75", "--se", "0.1", "--set", "published.log_hr_os.sigma=x"], ["not a number"]),
])
def test_bad_input_is_one_paragraph_and_exit_2(tmp_path, capsys, args, needles):
    code = main(["reanalyse", *args, "--out", str(tmp_path / "o")])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "Traceback" not in err
    for needle in needles:
        assert needle in err, (needle, err)
    assert not (tmp_path / "o" / "results.csv").exists()


def test_labels_are_escaped_in_the_report(tmp_path):
    out = tmp_path / "o"
    assert main(["reanalyse", "--estimate", "0.8", "--se", "0.2", "--label",
                 "<script>alert(1)</script>", "--family", "reference", "--out", str(out)]) == 0
    html = (out / "report.html").read_text()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert pd.read_csv(out / "results.csv")["source"].iloc[0] == "<script>alert(1)</script>"
