"""Estimands follow the design, and the forest plot compares like with like.

With ``estimand = "ATT"`` (``[design] estimand``) every IPTW label, results row, figure label and
report text of the design, survival and response sections says ATT and never ATE. The forest
plot puts marginal and conditional hazard ratios in separate panels, adds the standardised RMST
difference at 24 months, and draws the study's published HR only for the study's own synthetic
cohort. Small cohort and few draws: these tests check labels and layout, not inference.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from bayes_haic import pipeline, propensity
from bayes_haic import response as rs
from bayes_haic.labels import marginal_estimand, strategy_label
from bayes_haic.report import figures as report_figures
from bayes_haic.report import main as report_main
from bayes_haic import survival as sv
from bayes_haic import report as rp
from bayes_haic.config import MainConfig
from bayes_haic.errors import InputError
from bayes_haic.paths import default_cohort_path
from bayes_haic.sampling import SamplerSettings
from bayes_haic.schema import load_cohort

TINY = SamplerSettings(draws=100, tune=150, chains=1, seed=4)
COVARIATES = ["age", "ecog_1", "tumor_size_cm", "mvi"]
CUTS = [0, 6, 12, 24]
ATE = re.compile(r"\bATE\b")


def visible_text(html: str) -> str:
    """The page without embedded images (base64 could contain any letters)."""
    return re.sub(r"data:image/[a-z]+;base64,[A-Za-z0-9+/=]+", "", html)


def figure_text(fig) -> str:
    """Every text of a matplotlib figure: titles, tick labels, axis labels, legend entries."""
    parts = [t.get_text() for t in fig.findobj(lambda o: hasattr(o, "get_text"))]
    return " | ".join(p for p in parts if p)


@pytest.fixture(scope="module")
def att_run(tmp_path_factory):
    """A user's cohort (120 patients of the synthetic one) with ATT weights; fits of OS
    (unadjusted, IPTW, PS spline) and ORR (unadjusted, IPTW), as the main job builds them."""
    tmp = tmp_path_factory.mktemp("att")
    frame = pd.read_csv(default_cohort_path()).sample(120, random_state=2).reset_index(drop=True)
    path = tmp / "my_cohort.csv"
    frame.to_csv(path, index=False)
    cohort = load_cohort(path, COVARIATES)
    assert cohort.data_tier == "user"
    design = propensity.design(cohort.frame, COVARIATES, estimand="ATT")
    est = design.weight_settings["estimand"]
    f = cohort.frame
    state = pipeline.RunState(MainConfig(), cohort=cohort, design=design)
    state.fits[("os", "none")] = sv.fit_pwe(f, "os", cuts=CUTS, sampler=TINY)
    state.fits[("os", "iptw")] = sv.fit_pwe(f, "os", adjust="iptw", weights=design.weights, cuts=CUTS,
                                            sampler=TINY, weights_estimand=est)
    state.fits[("os", "ps_covariate")] = sv.fit_pwe(f, "os", adjust="ps_covariate", ps=design.ps_fit.ps,
                                                    cuts=CUTS, sampler=TINY)
    state.fits[("orr", "none")] = rs.fit_response(f, sampler=TINY)
    state.fits[("orr", "iptw")] = rs.fit_response(f, adjust="iptw", weights=design.weights, sampler=TINY,
                                                  weights_estimand=est)
    return cohort, design, state.summarise()


def test_results_rows_say_att(att_run):
    _, _, state = att_run
    rows = sv.result_rows(state.fits[("os", "iptw")], "user", "my_cohort.csv")
    rows += rs.response_rows(state.fits[("orr", "iptw")], "user", "my_cohort.csv")
    frame = pd.DataFrame(rows)
    contrasts = frame[frame["measure"].isin(["hr", "rmst_diff_24", "rd", "rr", "or"])]
    assert len(contrasts) == 5 and set(contrasts["estimand"]) == {"marginal (ATT)"}
    text = frame.astype(str).to_csv()
    assert "ATT" in text and not ATE.search(text)
    for key in (("os", "iptw"), ("orr", "iptw")):
        a = state.fits[key].attrs
        assert a["estimand"] == "marginal (ATT)"
        assert "ATT" in a["estimand_detail"] and not ATE.search(a["estimand_detail"])


def test_each_contrast_names_its_population(att_run):
    """results.csv's estimand says whose average a contrast is. Found on R's gbsg data: the
    standardised RMST difference of the PS-covariate and covariate models was labelled
    'conditional' (their HR's estimand) although it averages over the whole analysed cohort
    (the ATE population, whatever the weights' estimand: here ATT), and PS matching's contrasts
    were a bare 'marginal', like the unadjusted comparison's."""
    cohort, _, state = att_run
    for strategy, hr in (("ps_covariate", "conditional"), ("none", "marginal")):
        rows = pd.DataFrame(sv.result_rows(state.fits[("os", strategy)], "user", "c.csv"))
        by = dict(zip(rows["measure"], rows["estimand"]))
        rmst = "marginal (ATE)" if strategy == "ps_covariate" else "marginal"
        assert (by["hr"], by["rmst_diff_24"]) == (hr, rmst), strategy
    coll = sv.collapse(*sv.endpoint_columns(cohort.frame, "os"), CUTS)
    from bayes_haic.priors import as_prior_set

    ps, spec = as_prior_set(None), sv.ModelSpec(len(CUTS))
    psm = sv.fit_attrs("os", "psm", CUTS, ps, coll, spec)
    pairs = sv.fit_attrs("os", "psm", CUTS, ps, coll, spec, pair_effect=True)
    assert psm["estimand"] == "marginal (matched set)" == sv.rmst_estimand(psm)
    assert pairs["estimand"] == "conditional" and sv.rmst_estimand(pairs) == "marginal (matched set)"
    assert [marginal_estimand(s, "ATT") for s in ("none", "iptw", "psm", "covariates",
                                                  "ps_covariate")] == [
        "marginal", "marginal (ATT)", "marginal (matched set)", "marginal (ATE)", "marginal (ATE)"]


def test_sections_say_att_and_never_ate(att_run, monkeypatch):
    cohort, design, state = att_run
    figures = []

    def keep(fn):
        def wrapped(*args, **kwargs):
            fig = fn(*args, **kwargs)
            figures.append(fig)
            return fig
        return wrapped

    for module, name in ((report_figures, "forest"), (report_figures, "km_panels"), (report_figures, "love_plot"),
                         (report_figures, "plot_rd")):
        monkeypatch.setattr(module, name, keep(getattr(module, name)))
    sections = [report_main.design_section(cohort, design), report_main.survival_section(cohort, "os", state),
                report_main.response_section(cohort, state)]
    html = visible_text(rp.render("test", sections))
    assert "IPTW (ATT weights)" in html and "marginal (ATT)" in html
    assert "ATT: the treated patients" in html  # the estimand detail of the IPTW notes
    assert not ATE.search(html), ATE.search(html)
    assert len(figures) == 4  # love plot, KM panels, forest, ORR density
    texts = [figure_text(f) for f in figures]
    assert any("after IPT weighting (ATT)" in t for t in texts)  # love plot legend
    assert sum("IPTW (ATT weights)" in t for t in texts) == 3  # forest, KM panels, ORR density
    assert not any(ATE.search(t) for t in texts)


def test_default_estimand_is_ate_and_labelled():
    rng = np.random.default_rng(0)
    n = 60
    frame = pd.DataFrame({"os_time": rng.exponential(12, n), "os_event": rng.integers(0, 2, n),
                          "treatment": np.r_[np.ones(30), np.zeros(30)].astype(int)})
    coll = sv.collapse(*sv.endpoint_columns(frame, "os"), CUTS)
    spec = sv.ModelSpec(len(CUTS))
    from bayes_haic.priors import as_prior_set

    ps = as_prior_set(None)
    assert sv.fit_attrs("os", "iptw", CUTS, ps, coll, spec)["estimand"] == "marginal (ATE)"
    ato = sv.fit_attrs("os", "iptw", CUTS, ps, coll, spec, weights_estimand="ato")
    assert ato["estimand"] == "marginal (ATO)" and "overlap" in ato["estimand_detail"]
    assert sv.fit_attrs("os", "none", CUTS, ps, coll, spec, weights_estimand="ATT")["estimand"] == "marginal"
    with pytest.raises(InputError, match="weights_estimand"):
        sv.fit_attrs("os", "iptw", CUTS, ps, coll, spec, weights_estimand="ATC")
    assert strategy_label("iptw") == "IPTW (ATE weights)"
    assert strategy_label("psm", "ATT") == "PS matching"


# --------------------------------------------------------------------------- the forest plot

HR_ROWS = [
    {"label": "unadjusted", "scale": "marginal", "median": 0.6, "lower": 0.45, "upper": 0.8},
    {"label": "IPTW (ATE weights)", "scale": "marginal", "median": 0.5, "lower": 0.35, "upper": 0.7},
    {"label": "PS spline covariate", "scale": "conditional", "median": 0.45, "lower": 0.3, "upper": 0.65},
    {"label": "covariate adjustment", "scale": "conditional", "median": 0.42, "lower": 0.3, "upper": 0.6},
    {"label": "PS matching", "scale": "marginal", "median": 0.55, "lower": 0.35, "upper": 0.85},
]
RMST_ROWS = [{"label": r["label"], "median": 3.0 + i, "lower": 1.0, "upper": 6.0 + i} for i, r in enumerate(HR_ROWS)]


def panel_labels(ax) -> list[str]:
    return [t.get_text() for t in ax.get_yticklabels()]


def diamonds(ax) -> list:
    return [ln for ln in ax.get_lines() if ln.get_marker() == "D"]


def test_forest_separates_marginal_and_conditional_and_adds_rmst():
    pub = {"study, published IPTW HR 0.49": 0.49}
    fig = report_figures.forest(HR_ROWS, pub, "OS", rmst_rows=RMST_ROWS, rmst_tau=24.0)
    marginal, conditional, rmst = fig.axes
    assert marginal.get_title() == report_figures.HR_PANELS["marginal"]
    assert conditional.get_title() == report_figures.HR_PANELS["conditional"]
    assert "24 months" in rmst.get_title() and "months" in rmst.get_xlabel()
    assert panel_labels(marginal) == ["study, published IPTW HR 0.49", "unadjusted", "IPTW (ATE weights)",
                                      "PS matching"]
    assert panel_labels(conditional) == ["PS spline covariate", "covariate adjustment"]
    assert panel_labels(rmst) == [r["label"] for r in RMST_ROWS]
    assert len(diamonds(marginal)) == 1 and not diamonds(conditional) and not diamonds(rmst)
    assert marginal.get_xscale() == "log" and rmst.get_xscale() == "linear"
    assert marginal.get_xlim() == conditional.get_xlim()  # one HR scale for both panels
    # the RMST panel's intervals are the given ones, in months
    xs = sorted(tuple(ln.get_xdata()) for ln in rmst.get_lines() if len(ln.get_xdata()) == 2)
    assert (1.0, 6.0) in xs and (1.0, 10.0) in xs


def test_forest_without_published_has_no_diamond():
    fig = report_figures.forest(HR_ROWS[:2], None, rmst_rows=RMST_ROWS[:2])
    assert [ax.get_title() for ax in fig.axes] == [report_figures.HR_PANELS["marginal"], fig.axes[1].get_title()]
    assert not any(diamonds(ax) for ax in fig.axes)
    with pytest.raises(ValueError, match="scale"):
        report_figures.forest([{**HR_ROWS[0], "scale": "both"}])


def test_survival_section_marks_the_published_hr_for_the_synthetic_cohort_only(att_run, monkeypatch):
    cohort, _, state = att_run
    seen = []
    monkeypatch.setattr(report_figures, "forest", lambda *a, **k: seen.append((a, k)) or report_figures.Figure())
    user = report_main.survival_section(cohort, "os", state)
    (rows, pub, _), kw = seen[-1]
    assert pub == {}
    by_label = {r["label"]: r["scale"] for r in rows}
    assert by_label == {"unadjusted": "marginal", "IPTW (ATT weights)": "marginal",
                        "PS spline covariate": "conditional"}
    assert [r["label"] for r in kw["rmst_rows"]] == list(by_label) and kw["rmst_tau"] == 24.0
    assert "diamond" not in visible_text(rp.render("t", [user]))

    class Synthetic:
        def __getattr__(self, name):
            return "synthetic" if name == "data_tier" else getattr(cohort, name)

    synthetic = report_main.survival_section(Synthetic(), "os", state)
    (_, pub, _), _ = seen[-1]
    assert list(pub.values()) == [report_main.published_hr("os")]
    assert "diamond in the marginal panel" in visible_text(rp.render("t", [synthetic]))


def test_survival_section_marks_a_median_beyond_the_longest_follow_up(att_run, monkeypatch):
    """A median whose 95% interval reaches beyond the longest follow-up gets a dagger in the
    table and a note under it with the share of draws beyond (here the follow-up is cut, for
    the test, to the posterior median of the unadjusted fit's treated median, so ~half)."""
    cohort, _, state = att_run
    plain = visible_text(rp.render("t", [report_main.survival_section(cohort, "os", state)]))
    assert "†" not in plain and "Extrapolated median" not in plain
    idata = state.fits[("os", "none")]
    _, draws = state.estimands[("os", "none")]
    cut = float(draws["median"].sel(arm="treated").median())
    monkeypatch.setitem(idata.attrs, "max_follow_up", cut)
    monkeypatch.setitem(state.estimands, ("os", "none"), sv.survival_estimands(idata))
    share = state.estimands[("os", "none")][0].query("quantity == 'median' and arm == 'treated'")
    text = visible_text(rp.render("t", [report_main.survival_section(cohort, "os", state)]))
    assert text.count("†") == 2  # the table cell and the note
    assert ("unadjusted, " + cohort.arms[0] + ": "
            + sv.extrapolation_note(share["extrapolated"].item(), cut, short=True)) in text


def test_study_text_only_for_the_study_cohort(att_run):
    """The study's own sentences (its 55 matched pairs) and title belong to its synthetic
    cohort; a user's cohort gets its own arm names instead."""
    cohort, design, _ = att_run

    class Synthetic:
        def __getattr__(self, name):
            return "synthetic" if name == "data_tier" else getattr(cohort, name)

    user = visible_text(rp.render("t", [report_main.design_section(cohort, design)]))
    study = visible_text(rp.render("t", [report_main.design_section(Synthetic(), design)]))
    assert "55 pairs" not in user and "55 pairs" in study
    assert report_main.site_title(cohort) == f"Bayesian analysis: {cohort.arms[0]} vs {cohort.arms[1]}, {cohort.name}"
    assert "HAIC-LEN-P" in report_main.site_title(Synthetic())
