"""Prior sets as files: every shipped file loads and means what its text says; every kind of bad
file fails with a message naming the file, the key and the expected form; ``--set`` overrides.

The reanalysis tests (tests/test_reanalysis.py) check that the family files are exactly what the
code derives from its stated probabilities; here the *text a user reads* (the description and
the comment above each prior) is parsed and checked numerically against the loaded priors, in
every section (survival, response, published).
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from scipy import stats

from bayes_haic.errors import InputError
from bayes_haic.paths import priors_dir
from bayes_haic.priors import (
    OPTIONAL_KEYS,
    REQUIRED_KEYS,
    Prior,
    load_prior_set,
    resolve_prior_path,
    shipped_prior_names,
)
from bayes_haic.published import load_meta_analyses

SHIPPED = ("reference", "skeptical", "enthusiastic", "pessimistic", "evidence_based")
HR_KEYS = ("survival.log_hr", "published.log_hr_os", "published.log_hr_pfs")


def close(printed: str, value: float, approx: bool = False) -> bool:
    """``value`` rounds to the number as printed (``approx``: within one unit of its last digit)."""
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    unit = 10.0**-decimals
    return abs(value - float(printed)) <= (unit if approx else unit / 2) + 1e-12


def prob(prior: Prior, ratio: str, side: str, threshold: float) -> float:
    """P(ratio <side> threshold) under a prior on log(ratio)."""
    cdf = float(prior.to_scipy().cdf(math.log(threshold)))
    return cdf if side == "<" else 1 - cdf


def comments_by_key(name: str) -> dict[str, str]:
    """The comment lines directly above each ``key = ...`` line, by ``section.key``."""
    out, section, pending = {}, None, []
    for line in (priors_dir() / f"{name}.toml").read_text().splitlines():
        s = line.strip()
        if m := re.match(r"^\[(\w+)\]$", s):
            section, pending = m.group(1), []
        elif s.startswith("#"):
            pending.append(s.lstrip("# "))
        elif section and (m := re.match(r"^(\w+)\s*=", s)):
            out[f"{section}.{m.group(1)}"] = " ".join(pending)
            pending = []
        else:
            pending = []
    return out


# --------------------------------------------------------------------------- shipped files


def test_shipped_names():
    assert tuple(shipped_prior_names()) == SHIPPED
    assert all((priors_dir() / f"{n}.toml").is_file() for n in SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_file_loads_complete_and_documented(name):
    ps = load_prior_set(name)
    assert ps.name == name and ps.label() == name
    assert len(ps.description.split()) >= 20, "the description says in words what the set means"
    required = [f"{s}.{k}" for s, keys in REQUIRED_KEYS.items() for k in keys]
    optional = [f"{s}.{k}" for s, keys in OPTIONAL_KEYS.items() for k in keys]
    assert set(required) <= set(ps.keys()) <= set(required + optional)
    # only the evidence-based set gives PFS its own log-HR prior (the meta-analysis' PFS estimate)
    assert ps.log_hr_key("pfs") == ("survival.log_hr_pfs" if name == "evidence_based" else "survival.log_hr")
    assert ps.log_hr_key("os") == "survival.log_hr"
    # by name and by path give the same set
    assert load_prior_set(priors_dir() / f"{name}.toml").sections == ps.sections
    assert resolve_prior_path(name) == priors_dir() / f"{name}.toml"
    # the first prior of every section has a comment saying what it is
    comments = comments_by_key(name)
    for section, keys in REQUIRED_KEYS.items():
        assert comments[f"{section}.{keys[0]}"], f"{name}: {section}.{keys[0]} has no comment"


MEDIAN_P = re.compile(
    r"median (HR|OR) (?:= )?(?:[\d./]+ = )?(\d+(?:\.\d+)?),? (?:with )?P\((HR|OR) ([<>]) (\d+(?:\.\d+)?)\) = (\d+(?:\.\d+)?)"
)


@pytest.mark.parametrize("name", ["skeptical", "enthusiastic", "pessimistic"])
def test_comment_statements_hold_in_every_section(name):
    """Comments like '# log HR: median HR 0.7, P(HR > 1) = 0.05' above survival.log_hr,
    response.log_or, published.log_hr_os/pfs are true of the prior below them."""
    ps = load_prior_set(name)
    checked = set()
    for key, text in comments_by_key(name).items():
        for ratio, median, ratio2, side, thr, p in MEDIAN_P.findall(text):
            prior = ps.get(key)
            assert ratio == ratio2 == ("OR" if key == "response.log_or" else "HR")
            assert close(median, math.exp(prior.params["mu"])), (key, text)
            assert close(p, prob(prior, ratio, side, float(thr))), (key, text)
            checked.add(key)
    assert checked == {"survival.log_hr", "response.log_or", *HR_KEYS}


@pytest.mark.parametrize("name", ["skeptical", "enthusiastic", "pessimistic"])
def test_description_statements_hold(name):
    """The description's 'median HR = .. with P(HR < ..) = ..' and 'sd = .. on log(OR)' hold for
    the survival and published HR priors and the response log-OR prior."""
    ps = load_prior_set(name)
    text = " ".join(ps.description.split())
    found = MEDIAN_P.findall(text)
    assert {f[0] for f in found} == {"HR", "OR"}
    for ratio, median, _, side, thr, p in found:
        keys = HR_KEYS if ratio == "HR" else ("response.log_or",)
        for key in keys:
            prior = ps.get(key)
            assert close(median, math.exp(prior.params["mu"])), (key, ratio, median)
            assert close(p, prob(prior, ratio, side, float(thr))), (key, ratio, thr, p)
    sds = re.findall(r"sd = (?:[-\w()./]+ = )?(\d+(?:\.\d+)?) on log\((HR|OR)\)", text)
    sds += [(m, "HR") for m in re.findall(r"normal on log\(HR\) with sd = [-\w()./]+ = (\d+(?:\.\d+)?)", text)]
    assert sds
    for sd, ratio in sds:
        for key in HR_KEYS if ratio == "HR" else ("response.log_or",):
            assert close(sd, ps.get(key).params["sigma"]), (key, sd)
    for thr, p in re.findall(r"so P\(HR < (\d+(?:\.\d+)?)\) = (\d+(?:\.\d+)?)", text):
        for key in HR_KEYS:
            assert close(p, prob(ps.get(key), "HR", "<", float(thr)))


def test_evidence_based_text_holds_in_every_section():
    ps = load_prior_set("evidence_based")
    text = " ".join(ps.description.split())
    meta = load_meta_analyses()

    def interval(prior):
        return np.exp(prior.params["mu"] + np.array([-1, 1]) * stats.norm.isf(0.025) * prior.params["sigma"])

    m = re.search(r"median HR (\d+(?:\.\d+)?) for OS \(95% prior interval (\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)\) and "
                  r"(\d+(?:\.\d+)?) for PFS \((\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)\)", text)
    assert m
    for key, (med, lo, hi) in (("published.log_hr_os", m.groups()[:3]),
                               ("survival.log_hr", m.groups()[:3]),
                               ("published.log_hr_pfs", m.groups()[3:])):
        prior = ps.get(key)
        assert close(med, math.exp(prior.params["mu"]))
        got = interval(prior)
        assert close(lo, got[0]) and close(hi, got[1]), (key, got)
    m = re.search(r"95% prior interval of OR (\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)", text)
    got = interval(ps.get("response.log_or"))
    assert close(m.group(1), got[0]) and close(m.group(2), got[1])
    m = re.search(r"ORR of (\d+)% \(OR (\d+(?:\.\d+)?)\)", text)
    assert close(m.group(2), math.exp(ps.get("response.log_or").params["mu"]))
    # comments: 'pooled HR 0.54 (0.45-0.64), power prior a0 = 0.5' above each HR prior
    for key, text in comments_by_key("evidence_based").items():
        c = re.search(r"pooled HR (\d+(?:\.\d+)?) \((\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)\), power prior a0 = (\d+(?:\.\d+)?)", text)
        if not c:
            continue
        est, lo, hi, a0 = map(float, c.groups())
        row = meta[(meta["value"] - est).abs() < 1e-9].iloc[0]
        assert (row.lower, row.upper) == (lo, hi)
        se = (math.log(hi) - math.log(lo)) / (2 * stats.norm.isf(0.025))
        prior = ps.get(key)
        assert prior.params["mu"] == pytest.approx(math.log(est), abs=1e-6)
        assert prior.params["sigma"] == pytest.approx(se / math.sqrt(a0), abs=1e-6)


def test_reference_text_holds():
    ps = load_prior_set("reference")
    text = " ".join(ps.description.split())
    m = re.search(r"Normal\(0, (\d+(?:\.\d+)?)\) puts 95% of its mass on HR between (\d+(?:\.\d+)?) and (\d+(?:\.\d+)?)", text)
    prior = ps.get("survival.log_hr")
    assert prior == Prior("Normal", {"mu": 0.0, "sigma": float(m.group(1))})
    z = stats.norm.isf(0.025)
    assert close(m.group(2), math.exp(-z * prior.params["sigma"]))
    assert close(m.group(3), math.exp(z * prior.params["sigma"]))
    # "essentially flat on log(HR)": the published priors' 95% mass spans HR 1e-8 .. 1e8
    for key in ("published.log_hr_os", "published.log_hr_pfs"):
        p = ps.get(key)
        assert p.params["mu"] == 0 and z * p.params["sigma"] > math.log(1e8)
    assert "per month" in text


@pytest.mark.parametrize("name", SHIPPED)
def test_nuisance_comments_hold(name):
    """'exp(-2.5) = 0.08/month (median ~8.5 months), sd 2 on the log scale' and '(uniform)'."""
    ps = load_prior_set(name)
    comments = comments_by_key(name)
    text = comments["survival.log_baseline_hazard"]
    m = re.search(r"exp\((-?\d+(?:\.\d+)?)\) = (\d+(?:\.\d+)?)/month \(median ~(\d+(?:\.\d+)?) months\), sd (\d+(?:\.\d+)?)", text)
    p = ps.get("survival.log_baseline_hazard")
    assert p.params["mu"] == float(m.group(1)) and p.params["sigma"] == float(m.group(4))
    rate = math.exp(p.params["mu"])
    assert close(m.group(2), rate)
    assert close(m.group(3), math.log(2) / rate, approx=True)  # exponential median, months
    for key in ("response.arm_rate", "published.arm_rate"):
        assert "uniform" in comments[key]
        assert ps.get(key) == Prior("Beta", {"alpha": 1.0, "beta": 1.0})
    for key in ("survival.baseline_rw_sd", "survival.log_hr_rw_sd", "survival.pair_sd"):
        assert ps.get(key).dist == "HalfNormal" and "sd" in comments[key]


def test_ratio_form_means_what_it_says(tmp_path):
    """The plain-words form 'median HR 1, 5% probability of HR < 0.5' is the skeptical prior."""
    path = _write(tmp_path, {"survival.log_hr": '{ dist = "Normal", median_ratio = 1.0, '
                                                 'tail_ratio = 0.5, tail_prob = 0.05 }',
                             "response.log_or": '{ dist = "Normal", median_ratio = 2.45, '
                                                'tail_ratio = 1, tail_prob = 0.05 }'})
    ps = load_prior_set(path)
    sk = load_prior_set("skeptical").get("survival.log_hr")
    got = ps.get("survival.log_hr")
    assert got.params == pytest.approx(sk.params, abs=1e-6)
    assert prob(got, "HR", "<", 0.5) == pytest.approx(0.05)
    assert got.statement == "median ratio 1, P(ratio < 0.5) = 0.05"
    lor = ps.get("response.log_or")
    assert math.exp(lor.params["mu"]) == pytest.approx(2.45)
    assert prob(lor, "OR", "<", 1.0) == pytest.approx(0.05)
    # overrides work on the words, too
    ps2 = load_prior_set(path, ["survival.log_hr.tail_prob=0.2"])
    assert prob(ps2.get("survival.log_hr"), "HR", "<", 0.5) == pytest.approx(0.2)


# --------------------------------------------------------------------------- bad files

REFERENCE = (priors_dir() / "reference.toml").read_text()


def _write(tmp_path, replace: dict | None = None, text: str | None = None, name="my_prior.toml"):
    """reference.toml with the values of some ``section.key`` lines replaced (``None``: line
    deleted), or ``text`` verbatim."""
    if text is None:
        lines, section = [], None
        for line in REFERENCE.splitlines():
            if m := re.match(r"^\[(\w+)\]$", line.strip()):
                section = m.group(1)
            key = re.match(r"^(\w+)\s*=", line.strip())
            dotted = f"{section}.{key.group(1)}" if key and section else None
            if replace and dotted in replace:
                if replace[dotted] is None:
                    continue
                line = f"{key.group(1)} = {replace[dotted]}"
            lines.append(line)
        text = "\n".join(lines) + "\n"
    path = tmp_path / name
    path.write_text(text)
    return path


def _assert_fails(path, *needles, overrides=()):
    with pytest.raises(InputError) as exc:
        load_prior_set(path, overrides)
    msg = str(exc.value)
    assert str(path) in msg, msg  # names the file
    for needle in needles:
        assert needle in msg, f"{needle!r} not in: {msg}"
    return msg


BAD_VALUES = [
    # (id, section.key, value, what the message must say)
    ("not a table", "survival.log_hr", "2.5", ["survival.log_hr", "inline table", 'dist = "Normal"']),
    ("no dist", "survival.log_hr", "{ mu = 0.0, sigma = 1.0 }", ["survival.log_hr", "inline table"]),
    ("unknown dist", "survival.log_hr", '{ dist = "Cauchy", mu = 0, sigma = 1 }',
     ["survival.log_hr", "'Cauchy'", "Normal, StudentT"]),
    ("lower-case dist", "survival.log_hr", '{ dist = "normal", mu = 0, sigma = 1 }',
     ["survival.log_hr", "'normal'", "expected one of"]),
    ("missing param", "survival.log_hr", '{ dist = "Normal", mu = 0.0 }',
     ["survival.log_hr", "Normal takes parameters mu, sigma", "missing sigma"]),
    ("unknown param", "survival.log_hr", '{ dist = "Normal", mu = 0.0, sigma = 1.0, sd = 1.0 }',
     ["survival.log_hr", "unknown sd"]),
    ("string value", "survival.log_hr", '{ dist = "Normal", mu = 0.0, sigma = "1.0" }',
     ["survival.log_hr", "'sigma' must be a finite number", "'1.0'"]),
    ("boolean value", "response.log_or", '{ dist = "Normal", mu = true, sigma = 1.0 }',
     ["response.log_or", "'mu' must be a finite number", "True"]),
    ("array value", "response.intercept", '{ dist = "Normal", mu = [0.0], sigma = 1.0 }',
     ["response.intercept", "'mu' must be a finite number"]),
    ("nan", "survival.log_hr", '{ dist = "Normal", mu = nan, sigma = 1.0 }',
     ["survival.log_hr", "'mu' must be a finite number"]),
    ("inf scale", "survival.log_hr", '{ dist = "Normal", mu = 0.0, sigma = inf }',
     ["survival.log_hr", "'sigma' must be a finite number"]),
    ("negative scale", "survival.log_hr", '{ dist = "Normal", mu = 0.0, sigma = -1.0 }',
     ["survival.log_hr", "'sigma' must be positive", "-1.0"]),
    ("zero scale", "survival.baseline_rw_sd", '{ dist = "HalfNormal", sigma = 0 }',
     ["survival.baseline_rw_sd", "'sigma' must be positive"]),
    ("negative Beta", "published.arm_rate", '{ dist = "Beta", alpha = -1, beta = 1 }',
     ["published.arm_rate", "'alpha' must be positive"]),
    ("zero rate", "survival.pair_sd", '{ dist = "Exponential", lam = 0.0 }',
     ["survival.pair_sd", "'lam' must be positive"]),
    ("negative dof", "survival.log_hr", '{ dist = "StudentT", nu = -3, mu = 0, sigma = 1 }',
     ["survival.log_hr", "'nu' must be positive"]),
    # the plain-words form
    ("probability above 1", "survival.log_hr",
     '{ dist = "Normal", median_ratio = 1.0, tail_ratio = 0.5, tail_prob = 1.5 }',
     ["survival.log_hr", "'tail_prob'", "strictly between 0 and 0.5", "1.5"]),
    ("probability 0", "survival.log_hr",
     '{ dist = "Normal", median_ratio = 1.0, tail_ratio = 0.5, tail_prob = 0 }',
     ["survival.log_hr", "'tail_prob'", "strictly between 0 and 0.5"]),
    ("negative probability", "response.log_or",
     '{ dist = "Normal", median_ratio = 1.0, tail_ratio = 2.45, tail_prob = -0.05 }',
     ["response.log_or", "'tail_prob'", "strictly between 0 and 0.5"]),
    ("tail beyond the median", "survival.log_hr",
     '{ dist = "Normal", median_ratio = 1.0, tail_ratio = 0.5, tail_prob = 0.7 }',
     ["survival.log_hr", "'tail_prob'", "away from the median"]),
    ("negative ratio", "survival.log_hr",
     '{ dist = "Normal", median_ratio = -1.0, tail_ratio = 0.5, tail_prob = 0.05 }',
     ["survival.log_hr", "'median_ratio'", "must be positive"]),
    ("equal ratios", "survival.log_hr",
     '{ dist = "Normal", median_ratio = 1.0, tail_ratio = 1.0, tail_prob = 0.05 }',
     ["survival.log_hr", "'tail_ratio' must differ"]),
    ("incomplete words", "survival.log_hr", '{ dist = "Normal", median_ratio = 1.0, tail_prob = 0.05 }',
     ["survival.log_hr", "median_ratio, tail_ratio, tail_prob", "missing tail_ratio"]),
    ("mixed forms", "survival.log_hr",
     '{ dist = "Normal", mu = 0.0, median_ratio = 1.0, tail_ratio = 0.5, tail_prob = 0.05 }',
     ["survival.log_hr", "unknown mu", "either mu, sigma or"]),
    ("words for a non-Normal", "survival.log_hr",
     '{ dist = "StudentT", median_ratio = 1.0, tail_ratio = 0.5, tail_prob = 0.05 }',
     ["survival.log_hr", "StudentT takes parameters nu, mu, sigma"]),
]


@pytest.mark.parametrize("case", BAD_VALUES, ids=[c[0] for c in BAD_VALUES])
def test_bad_value_fails_clearly(tmp_path, case):
    _, key, value, needles = case
    _assert_fails(_write(tmp_path, {key: value}), *needles)


def test_unknown_key(tmp_path):
    path = _write(tmp_path, text=REFERENCE.replace(
        "[survival]\n", '[survival]\nlog_hazard_ratio = { dist = "Normal", mu = 0.0, sigma = 1.0 }\n'))
    _assert_fails(path, "[survival]", "unknown key(s) log_hazard_ratio", "expected log_hr, log_baseline_hazard")


def test_unknown_section(tmp_path):
    path = _write(tmp_path, text=REFERENCE + '\n[survial]\nlog_hr = { dist = "Normal", mu = 0, sigma = 1 }\n')
    _assert_fails(path, "unknown section [survial]", "expected survival, response, published")


def test_section_not_a_table(tmp_path):
    text = REFERENCE.split("[survival]")[0] + "survival = 3\n" + "[response]" + REFERENCE.split("[response]")[1]
    _assert_fails(_write(tmp_path, text=text), "[survival] must be a table of priors")


def test_missing_key_in_the_reference_set(tmp_path):
    """The reference set is the base of partial files, so it must itself be complete."""
    _assert_fails(_write(tmp_path, {"response.log_or": None}, name="reference.toml"),
                  "[response] is missing response.log_or", "every prior set defines every prior",
                  "the reference set itself must be complete")


def test_missing_section_in_the_reference_set(tmp_path):
    text = REFERENCE.split("[published]")[0]
    _assert_fails(_write(tmp_path, text=text, name="reference.toml"),
                  "[published] is missing published.log_hr_os")


def test_partial_file_takes_the_other_keys_from_the_reference_set(tmp_path):
    """Only the keys a file changes; the rest key by key from reference; recorded."""
    path = _write(tmp_path, text='name = "tight"\n[survival]\n'
                  'log_hr = { dist = "Normal", mu = 0.0, sigma = 0.3 }\n')
    ps = load_prior_set(path)
    ref = load_prior_set("reference")
    assert ps.name == "tight" and ps.keys() == ref.keys()
    assert ps.get("survival.log_hr").params == {"mu": 0.0, "sigma": 0.3}
    for key in ref.keys():
        if key != "survival.log_hr":
            assert ps.get(key) == ref.get(key), key
            assert key in ps.inherited
    assert "survival.log_hr" not in ps.inherited
    assert ps.base == str(priors_dir() / "reference.toml")
    table = {r["parameter"]: r for r in ps.table()}
    assert table["survival.log_hr"]["from"] == "my_prior.toml"
    assert table["response.log_or"]["from"] == "reference.toml"
    # overrides reach inherited keys too, and an unknown key is still an error
    ps2 = load_prior_set(path, ["response.log_or.sigma=0.7"])
    assert ps2.get("response.log_or").params["sigma"] == 0.7
    _assert_fails(_write(tmp_path, text='[survival]\nlog_hrr = { dist = "Normal", mu = 0, sigma = 1 }\n',
                         name="typo.toml"), "unknown key(s) log_hrr")


def test_partial_file_with_a_named_base_in_its_own_folder(tmp_path):
    """``base`` names another set: looked up next to the file first, then among the shipped."""
    (tmp_path / "mine.toml").write_text('name = "mine"\nbase = "skeptical"\n[response]\n'
                                        'log_or = { dist = "Normal", mu = 0.0, sigma = 9.0 }\n')
    ps = load_prior_set(tmp_path / "mine.toml")
    sk = load_prior_set("skeptical")
    assert ps.get("survival.log_hr") == sk.get("survival.log_hr")
    assert ps.get("response.log_or").params["sigma"] == 9.0
    # a local 'skeptical.toml' (itself partial over reference) wins over the shipped one
    (tmp_path / "skeptical.toml").write_text('[survival]\nlog_hr = { dist = "Normal", mu = 0.0, sigma = 0.1 }\n')
    ps = load_prior_set(tmp_path / "mine.toml")
    assert ps.get("survival.log_hr").params["sigma"] == 0.1
    assert ps.get("published.log_hr_os") == load_prior_set("reference").get("published.log_hr_os")
    # by name, from a folder searched before the shipped sets
    assert load_prior_set("mine", folders=[tmp_path]).name == "mine"
    (tmp_path / "loop.toml").write_text('base = "loop.toml"\n')
    _assert_fails(tmp_path / "loop.toml", "refers back to this file")
    (tmp_path / "nobase.toml").write_text('base = "nothing_like_it"\n')
    _assert_fails(tmp_path / "nobase.toml", "base prior set 'nothing_like_it' not found")


def test_name_and_description_must_be_strings(tmp_path):
    text = REFERENCE.replace('name = "reference"', "name = 3")
    _assert_fails(_write(tmp_path, text=text), "'name' and 'description' must be strings")


def test_not_toml(tmp_path):
    _assert_fails(_write(tmp_path, text="[survival\nlog_hr = {"), "not valid TOML")


def test_missing_file_lists_shipped_names(tmp_path):
    with pytest.raises(InputError) as exc:
        load_prior_set("skeptic")
    msg = str(exc.value)
    assert "skeptic.toml: prior set not found" in msg
    assert all(name in msg for name in SHIPPED)
    with pytest.raises(InputError, match="prior set not found"):
        load_prior_set(tmp_path / "nowhere.toml")


def test_a_user_file_with_its_own_words_loads(tmp_path):
    """A user's own file: any name, a description, and priors in either form."""
    text = REFERENCE.replace('name = "reference"', 'name = "mine"').replace(
        'log_hr = { dist = "Normal", mu = 0.0, sigma = 2.5 }',
        'log_hr = { dist = "StudentT", nu = 3, mu = 0.0, sigma = 0.5 }')
    ps = load_prior_set(_write(tmp_path, text=text))
    assert ps.name == "mine" and str(ps.get("survival.log_hr")) == "StudentT(nu: 3, mu: 0, sigma: 0.5)"


# --------------------------------------------------------------------------- --set overrides


def test_override_changes_one_parameter_and_is_recorded():
    ref = load_prior_set("reference")
    ps = load_prior_set("reference", ["survival.log_hr.sigma=1.0"])
    assert ps.get("survival.log_hr") == Prior("Normal", {"mu": 0.0, "sigma": 1.0})
    assert ps.label() == "reference+survival.log_hr.sigma=1.0"
    for key in ref.keys():  # noqa: SIM118 (PriorSet.keys is a method, not a dict's)
        if key != "survival.log_hr":
            assert ps.get(key) == ref.get(key)
    # the file itself is untouched
    assert load_prior_set("reference").get("survival.log_hr").params["sigma"] == 2.5


def test_overrides_compose_and_can_change_the_family():
    ps = load_prior_set("skeptical", [" survival.log_hr.dist = StudentT ", "survival.log_hr.nu=4"])
    p = ps.get("survival.log_hr")
    assert p.dist == "StudentT" and p.params["nu"] == 4.0
    assert p.params["sigma"] == pytest.approx(0.421404)
    assert ps.label().startswith("skeptical+")


@pytest.mark.parametrize(
    "item, needles",
    [
        ("survival.log_hr=1.0", ["expected section.key.parameter=value"]),
        ("survival.log_hr.sigma", ["expected section.key.parameter=value"]),
        ("survival.log_hazard.sigma=1", ["has no prior 'survival.log_hazard'"]),
        ("surv.log_hr.sigma=1", ["has no prior 'surv.log_hr'"]),
        ("survival.log_hr.sigma=wide", ["'wide' is not a number"]),
    ],
)
def test_bad_override_syntax(item, needles):
    with pytest.raises(InputError) as exc:
        load_prior_set("reference", [item])
    msg = str(exc.value)
    assert f"--set {item!r}" in msg
    for n in needles:
        assert n in msg


@pytest.mark.parametrize(
    "item, needles",
    [
        ("survival.log_hr.sigma=-1", ["'sigma' must be positive", "after --set survival.log_hr.sigma=-1"]),
        ("survival.log_hr.scale=1", ["unknown scale", "after --set"]),
        ("survival.log_hr.dist=StudentT", ["missing nu", "after --set survival.log_hr.dist=StudentT"]),
        ("survival.log_hr.dist=Gaussian", ["unknown distribution 'Gaussian'"]),
        ("survival.log_hr.sigma=inf", ["'sigma' must be a finite number"]),
    ],
)
def test_bad_override_value_names_file_key_and_the_set(item, needles):
    msg = _assert_fails(priors_dir() / "reference.toml", "survival.log_hr", *needles, overrides=[item])
    assert "reference.toml" in msg


def test_with_prior_replaces_one_prior_and_labels_it():
    ref = load_prior_set("reference")
    p = Prior("Normal", {"mu": 0.0, "sigma": 0.1})
    ps = ref.with_prior("survival.log_hr", p)
    assert ps.get("survival.log_hr") == p and ref.get("survival.log_hr").params["sigma"] == 2.5
    assert ps.label() == "reference+survival.log_hr=Normal(mu: 0, sigma: 0.1)"
    with pytest.raises(InputError, match="no prior 'survival.log_odds'"):
        ref.with_prior("survival.log_odds", p)


def test_logpdf_matches_scipy_for_every_family():
    x = np.array([0.05, 0.3, 0.9])
    for prior in (Prior("Normal", {"mu": 0.1, "sigma": 2.0}),
                  Prior("StudentT", {"nu": 3.0, "mu": 0.0, "sigma": 1.0}),
                  Prior("HalfNormal", {"sigma": 0.5}),
                  Prior("HalfStudentT", {"nu": 3.0, "sigma": 1.0}),
                  Prior("Exponential", {"lam": 2.0}),
                  Prior("Gamma", {"alpha": 2.0, "beta": 3.0}),
                  Prior("Beta", {"alpha": 2.0, "beta": 3.0})):
        np.testing.assert_allclose(prior.logpdf(x), np.log(prior.to_scipy().pdf(x)), rtol=1e-10)
    assert Prior("HalfNormal", {"sigma": 1.0}).logpdf(-1.0) == -np.inf


def test_unknown_survival_key_names_the_optional_endpoint_keys(tmp_path):
    text = (priors_dir() / "reference.toml").read_text().replace(
        "[survival]\n", '[survival]\nlog_hr_orr = { dist = "Normal", mu = 0.0, sigma = 1.0 }\n')
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(InputError, match=r"unknown key\(s\) log_hr_orr.*optional: log_hr_os, log_hr_pfs"):
        load_prior_set(path)


def test_a_folder_named_like_a_prior_set_does_not_shadow_it(tmp_path, monkeypatch):
    """`bayes-haic fit --prior skeptical --out skeptical` twice: the second run's current folder
    holds a folder 'skeptical', which must not be taken for the prior file."""
    (tmp_path / "skeptical").mkdir()
    monkeypatch.chdir(tmp_path)
    assert load_prior_set("skeptical").name == "skeptical"
