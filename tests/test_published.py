"""Published evidence file: loader, validation messages, internal consistency of the numbers."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
from scipy import stats

from bayes_haic.errors import InputError
from bayes_haic.published import (
    CONTROL,
    TREATED,
    load_meta_analyses,
    load_published,
    parse_p_value,
    study_path,
)


@pytest.fixture(scope="module")
def ev():
    return load_published()


def test_lookups(ev):
    assert ev.value("hr_os", analysis_set="IPTW") == 0.384
    assert ev.value("hr_pfs", analysis_set="IPTW") == 0.507
    assert ev.value("median_os", analysis_set="PSM", arm=TREATED) == 27.0
    assert ev.value("median_pfs", analysis_set="PSM", arm=CONTROL) == 3.0
    assert ev.value("n_patients", analysis_set="all", arm=TREATED) == 127
    assert ev.value("n_patients", analysis_set="all", arm=CONTROL) == 103
    assert ev.get("hr_os", analysis_set="IPTW").p() == ("<", 0.001)
    assert ev.get("median_pfs", analysis_set="PSM", arm=TREATED).p() == ("=", 0.001)
    assert ev.get("ae_grade34").p() == (">", 0.05)
    assert math.isnan(ev.get("ae_grade34").value)
    assert not ev.get("hr_os", analysis_set="IPTW").has_ci
    with pytest.raises(InputError, match="2 published numbers match"):
        ev.value("orr", analysis_set="PSM")
    with pytest.raises(InputError, match="no published number"):
        ev.value("hr_os", analysis_set="PSM")


def test_derived_rows_are_marked(ev):
    derived = {n.id for n in ev.numbers if n.provenance == "derived"}
    assert derived == {
        "n_psm_haic",
        "n_psm_lenp",
        "responders_psm_haic",
        "responders_psm_lenp",
        "se_bound_os_iptw",
        "se_bound_pfs_iptw",
    }
    for n in ev.numbers:
        if n.provenance == "derived":
            assert n.source.startswith("Derived")


def test_psm_arms_equal_and_percentages_reproduced(ev):
    n1 = ev.value("n_patients", analysis_set="PSM", arm=TREATED)
    n0 = ev.value("n_patients", analysis_set="PSM", arm=CONTROL)
    assert n1 == n0 == 55
    for arm in (TREATED, CONTROL):
        r = ev.value("responders", analysis_set="PSM", arm=arm)
        pct = ev.value("orr", analysis_set="PSM", arm=arm)
        assert round(100 * r / n1, 1) == pct


def test_psm_denominator_is_unique():
    """55 is the only equal-arm denominator up to 103 reproducing both 67.3% and 29.1%."""
    hits = [
        n
        for n in range(1, 104)
        if any(round(100 * k / n, 1) == 67.3 for k in range(n + 1))
        and any(round(100 * k / n, 1) == 29.1 for k in range(n + 1))
    ]
    assert hits == [55]


def test_psm_arm_not_larger_than_cohort(ev):
    for arm in (TREATED, CONTROL):
        assert ev.value("n_patients", analysis_set="PSM", arm=arm) <= min(
            ev.value("n_patients", analysis_set="all", arm=TREATED),
            ev.value("n_patients", analysis_set="all", arm=CONTROL),
        )


@pytest.mark.parametrize("endpoint", ["os", "pfs"])
def test_se_bound_as_derived(ev, endpoint):
    hr = ev.get(f"hr_{endpoint}", analysis_set="IPTW")
    rel, p = hr.p()
    assert rel == "<"
    z = stats.norm.isf(p / 2)
    assert z == pytest.approx(3.29, abs=0.001)
    bound = abs(np.log(hr.value)) / z
    assert round(bound, 3) == ev.value("se_log_hr_bound", endpoint=endpoint)
    # the numbers printed in published.md
    assert round(bound, 3) == {"os": 0.291, "pfs": 0.206}[endpoint]


def test_parse_p_value():
    assert parse_p_value("< 0.001") == ("<", 0.001)
    assert parse_p_value(">0.05") == (">", 0.05)
    assert parse_p_value("0.038") == ("=", 0.038)
    with pytest.raises(ValueError):
        parse_p_value("n.s.")


def test_meta_analyses():
    meta = load_meta_analyses()
    assert meta.loc["zhao2025_hr_os", ["value", "lower", "upper"]].tolist() == [0.54, 0.45, 0.64]
    assert meta.loc["zhao2025_hr_pfs", "value"] == 0.64
    assert meta.loc["zhao2025_rr_orr", "value"] == 2.15
    assert (meta["includes_study"] == "likely").all()


def _edit(tmp_path, old, new):
    text = study_path().read_text()
    assert old in text
    p = tmp_path / "study.csv"
    p.write_text(text.replace(old, new, 1))
    return p


@pytest.mark.parametrize(
    "old,new,pattern",
    [
        ("hr_os_iptw,hr_os,os,IPTW,contrast,0.384", "hr_os_iptw,hr_os,os,IPTW,contrast,abc",
         r"study.csv: column 'value', row 7: expected a finite number or empty, found 'abc'"),
        ("hr_os_iptw,hr_os,os,IPTW,contrast,0.384", "hr_os_iptw,hr_os,os,ITT,contrast,0.384",
         r"column 'analysis_set', row 7: expected one of all, PSM, IPTW"),
        ("0.384,,,ratio", "0.384,,,months", r"column 'unit', row 7: unit does not fit"),
        ("0.384,,,ratio,< 0.001", "0.384,,,ratio,<< 0.001", r"column 'p_value', row 7"),
        ("0.384,,,ratio", "0.384,0.5,0.9,ratio", r"column 'lower', row 7: the interval"),
        ("orr_psm_haic,orr,orr,PSM,HAIC-LEN-P,67.3", "orr_psm_haic,orr,orr,PSM,HAIC-LEN-P,167.3",
         r"column 'value', row 9: expected a percentage"),
        ("n_psm_lenp,", "n_psm_haic,", r"column 'id', rows 14, 15: duplicate ids"),
        (",derived,", ",guessed,", r"column 'provenance', row 14"),
    ],
)
def test_validation_messages(tmp_path, old, new, pattern):
    with pytest.raises(InputError, match=pattern):
        load_published(_edit(tmp_path, old, new))


def test_missing_column_and_file(tmp_path):
    p = tmp_path / "study.csv"
    shutil.copy(study_path(), p)
    frame = p.read_text().splitlines()
    frame[0] = frame[0].replace("p_value", "pvalue")
    p.write_text("\n".join(frame))
    with pytest.raises(InputError, match="missing column"):
        load_published(p)
    with pytest.raises(InputError, match="file not found"):
        load_published(tmp_path / "nope.csv")
