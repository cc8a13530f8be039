"""Balance: SMDs and variance ratios against direct computation and MatchIt; plots."""

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from bayes_haic.balance import balance_table, weighted_variance
from bayes_haic.report.figures import love_plot, overlap_plot
from bayes_haic.errors import InputError
from bayes_haic.matching import match_nearest

REF = Path(__file__).parent / "reference"
LALONDE_BALANCE = ["age", "educ", "black", "hispan", "white", "married", "nodegree", "re74", "re75"]


def small_frame():
    return pd.DataFrame({
        "id": ["a", "b", "c", "d", "e", "f"],
        "treatment": [1, 1, 1, 0, 0, 0],
        "x": [1.0, 2.0, 3.0, 2.0, 4.0, 6.0],
        "b": [1, 1, 0, 0, 0, 1],
    })


def test_smd_and_variance_ratio_by_hand():
    tab = balance_table(small_frame(), ["x", "b"]).set_index("covariate")
    # x: means 2 and 4, sample variances 1 and 4, pooled SD sqrt(2.5)
    assert tab.loc["x", "smd_before"] == pytest.approx(-2 / np.sqrt(2.5))
    assert tab.loc["x", "vr_before"] == pytest.approx(0.25)
    assert tab.loc["x", "kind"] == "continuous"
    # b: proportions 2/3 and 1/3, variances p(1-p) = 2/9 each
    assert tab.loc["b", "smd_before"] == pytest.approx((1 / 3) / np.sqrt(2 / 9))
    assert np.isnan(tab.loc["b", "vr_before"]) and tab.loc["b", "kind"] == "binary"
    assert bool(tab.loc["x", "flag_before"]) and bool(tab.loc["b", "flag_before"])
    assert tab["smd_matched"].isna().all() and tab["flag_weighted"].isna().all()


def test_weighted_and_matched_smd_equal_a_direct_computation():
    rng = np.random.default_rng(3)
    n = 200
    t = rng.binomial(1, 0.4, n)
    frame = pd.DataFrame({
        "id": np.arange(n), "treatment": t,
        "age": rng.normal(55 + 4 * t, 9), "mvi": rng.binomial(1, 0.3 + 0.2 * t),
    })
    w = rng.gamma(2.0, 1.0, n)
    matched = rng.random(n) < 0.5
    tab = balance_table(frame, ["age", "mvi"], weights=w, matched=matched).set_index("covariate")

    x = frame["age"].to_numpy()
    x1, x0, w1, w0 = x[t == 1], x[t == 0], w[t == 1], w[t == 0]
    sd = np.sqrt((np.var(x1, ddof=1) + np.var(x0, ddof=1)) / 2)  # unweighted full cohort
    assert tab.loc["age", "smd_before"] == pytest.approx((x1.mean() - x0.mean()) / sd)
    assert tab.loc["age", "smd_weighted"] == pytest.approx(
        (np.average(x1, weights=w1) - np.average(x0, weights=w0)) / sd)
    m1, m0 = matched[t == 1], matched[t == 0]
    assert tab.loc["age", "smd_matched"] == pytest.approx((x1[m1].mean() - x0[m0].mean()) / sd)
    assert tab.loc["age", "vr_matched"] == pytest.approx(np.var(x1[m1], ddof=1) / np.var(x0[m0], ddof=1))

    def wvar(v, ww):  # unbiased weighted ("reliability") variance, written out
        mu = np.average(v, weights=ww)
        return np.sum(ww * (v - mu) ** 2) * ww.sum() / (ww.sum() ** 2 - np.sum(ww**2))

    assert tab.loc["age", "vr_weighted"] == pytest.approx(wvar(x1, w1) / wvar(x0, w0))

    b = frame["mvi"].to_numpy()
    p1, p0 = b[t == 1].mean(), b[t == 0].mean()
    sd_b = np.sqrt((p1 * (1 - p1) + p0 * (1 - p0)) / 2)
    assert tab.loc["mvi", "smd_before"] == pytest.approx((p1 - p0) / sd_b)
    assert tab.loc["mvi", "smd_weighted"] == pytest.approx(
        (np.average(b[t == 1], weights=w1) - np.average(b[t == 0], weights=w0)) / sd_b)
    assert tab.loc["age", "mean_treated_weighted"] == pytest.approx(np.average(x1, weights=w1))
    assert tab.attrs["n_treated_matched"] == int(m1.sum())


def test_weighted_variance_formulas():
    x = np.array([1.0, 3.0, 7.0])
    assert weighted_variance(x) == pytest.approx(np.var(x, ddof=1))
    assert weighted_variance(x, [2.0, 2.0, 2.0]) == pytest.approx(np.var(x, ddof=1))
    assert weighted_variance(np.array([1, 0, 0, 1])) == pytest.approx(0.25)


def test_matchit_summary_on_lalonde_is_reproduced():
    # MatchIt's summary(standardize = TRUE) for the ATT: SD of the treated in the full sample
    lal = pd.read_csv(REF / "matchit_lalonde.csv")
    ref = pd.read_csv(REF / "matchit_lalonde_balance.csv").set_index("covariate")
    pairs = pd.read_csv(REF / "matchit_pairs.csv").query("config == 'lalonde_largest_0.2'")
    matched = lal["id"].isin(pd.concat([pairs["treated_id"], pairs["control_id"]])).to_numpy()
    tab = balance_table(lal, LALONDE_BALANCE, matched=matched, denominator="treated")
    tab = tab.set_index("covariate")
    for ours, theirs in [("smd_before", "smd_before"), ("smd_matched", "smd_matched"),
                         ("vr_before", "vr_before"), ("vr_matched", "vr_matched")]:
        np.testing.assert_allclose(tab[ours].to_numpy(float), ref[theirs].to_numpy(float),
                                   rtol=1e-10, atol=1e-12, err_msg=ours)


def test_match_result_is_aligned_by_id():
    frame = small_frame()
    res = match_nearest(frame["x"], frame["treatment"], frame["id"], caliper=None)
    shuffled = frame.iloc[[5, 0, 3, 1, 4, 2]].reset_index(drop=True)
    a = balance_table(frame, ["x"], matched=res)
    b = balance_table(shuffled, ["x"], matched=res)
    assert a["smd_matched"].iloc[0] == pytest.approx(b["smd_matched"].iloc[0])


def test_constant_covariate_has_zero_smd():
    frame = small_frame().assign(c=1.0)
    tab = balance_table(frame, ["c"], weights=np.ones(6))
    assert tab["smd_before"].iloc[0] == 0 and tab["smd_weighted"].iloc[0] == 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(covariates=["nope"]), "no covariate column"),
        (dict(weights=np.ones(5)), "one value per cohort row"),
        (dict(weights=-np.ones(6)), "finite and >= 0"),
        (dict(matched=[1, 0, 1, 0, 1, 0]), "boolean array"),
        (dict(matched=np.array([True, True, True, False, False, False])), "no control"),
        (dict(denominator="control"), "denominator must be one of"),
        (dict(treatment="arm"), "no treatment column"),
    ],
)
def test_input_errors(kwargs, message):
    args = dict(frame=small_frame(), covariates=["x", "b"])
    args.update(kwargs)
    with pytest.raises(InputError, match=message):
        balance_table(**args)


def test_missing_covariate_value_is_an_error():
    frame = small_frame()
    frame.loc[2, "x"] = np.nan
    with pytest.raises(InputError, match="column 'x', row 3"):
        balance_table(frame, ["x"])


def test_love_plot_and_overlap_plot_render():
    rng = np.random.default_rng(0)
    n = 120
    t = rng.binomial(1, 0.5, n)
    frame = pd.DataFrame({"id": range(n), "treatment": t, "age": rng.normal(60 + 3 * t, 8),
                          "mvi": rng.binomial(1, 0.3 + 0.2 * t)})
    ps = np.clip(rng.beta(2 + t, 3 - t), 0.01, 0.99)
    tab = balance_table(frame, ["age", "mvi"], weights=rng.gamma(2, 1, n),
                        matched=rng.random(n) < 0.6)
    fig = love_plot(tab)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert [tick.get_text() for tick in ax.get_yticklabels()] == \
        tab.assign(a=tab["smd_before"].abs()).sort_values("a")["covariate"].tolist()
    assert len(ax.collections) == 3  # before, matched, weighted
    assert len(love_plot(balance_table(frame, ["age", "mvi"])).axes[0].collections) == 1
    fig2 = overlap_plot(ps, t, weights=np.ones(n))
    assert isinstance(fig2, Figure)
    for f in (fig, fig2):
        buf = io.BytesIO()
        f.savefig(buf, format="png")
        assert buf.getvalue()[:4] == b"\x89PNG"
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        overlap_plot(ps + 1, t)


def test_the_printed_balance_table_shows_variance_ratios_to_two_decimals_and_none_for_binary():
    """The compact table (``bayes-haic balance``'s printout and the report's table): a variance
    ratio exists for continuous covariates only; a binary one shows a dash, never NaN."""
    from bayes_haic.report.main import compact_balance

    bal = pd.DataFrame({"covariate": ["age", "male"], "kind": ["continuous", "binary"],
                        "smd_before": [0.0361, -0.122], "flag_before": [False, True],
                        "vr_before": [0.989888, np.nan]})
    out = compact_balance(bal)
    assert list(out["SMD before"]) == ["+0.036", "-0.122 *"]
    assert list(out["VR before"]) == ["0.99", "–"]
    assert "NaN" not in out.to_string()


def test_residual_imbalance_flags_smd_beyond_the_threshold_and_spread_outside_half_to_double():
    """residual_imbalance reads a balance table: |SMD| above its threshold, or a variance ratio
    (continuous only) outside 0.5-2; largest |SMD| first; nothing for a sample not computed."""
    from bayes_haic.balance import balance_table, residual_imbalance

    rng = np.random.default_rng(1)
    n = 4000
    t = np.r_[np.ones(n // 2), np.zeros(n // 2)].astype(int)
    frame = pd.DataFrame({
        "treatment": t,
        "shifted": rng.normal(0.3 * t, 1.0),  # SMD ~ 0.3
        "spread": rng.normal(0.0, np.where(t == 1, 2.0, 1.0)),  # SMD ~ 0, variance ratio ~ 4
        "flag": rng.binomial(1, np.where(t == 1, 0.5, 0.4)),  # binary, SMD ~ 0.2, no ratio
        "fine": rng.normal(0.0, 1.0, n),
    })
    weights = np.ones(n)  # "adjusted" by weights that change nothing: the imbalance stays
    table = balance_table(frame, ["shifted", "spread", "flag", "fine"], weights=weights)
    bad = residual_imbalance(table, "weighted")
    assert list(bad["covariate"]) == ["shifted", "flag", "spread"]
    assert list(bad["smd_flag"]) == [True, True, False] and list(bad["vr_flag"]) == [False, False, True]
    assert np.isnan(bad["vr"].iloc[1])
    strict = balance_table(frame, ["shifted", "spread", "flag", "fine"], weights=weights, threshold=0.25)
    assert list(residual_imbalance(strict, "weighted")["covariate"]) == ["shifted", "spread"]
    assert residual_imbalance(table, "matched").empty  # no matched set given
