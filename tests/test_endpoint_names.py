"""A cohort names its survival endpoints (``[data.endpoint_names]``, the sidecar's
``"endpoint_names"``, ``endpoint_names=`` in the API): a second endpoint that is relapse-free
survival is called RFS on every page, label and message, while the schema keys (``pfs`` in
``results.csv``, the seeds of the checks' replicates) and every number stay as they are."""

import json
import re

import pandas as pd
import pytest

import bayes_haic as bh
from bayes_haic.cli import main
from bayes_haic.errors import InputError
from bayes_haic.paths import default_cohort_path
from bayes_haic.pipeline import run_fit, run_main
from bayes_haic.schema import endpoint_label, load_cohort

from test_pipeline import FAST, not_the_study

COVARIATES = ["age", "ecog_1", "mvi"]
RFS = ('[data.endpoint_names]\npfs = {short = "RFS", long = "relapse-free survival"}\n'
       'orr = {short = "CR", long = "complete response"}\n')
# what a page of a cohort with RFS and complete response must never say, in any case (the
# study's PFS and ORR belong to the published tier, which these runs leave out)
PFS_WORDS = re.compile(r"\bpfs\b|progression|\borr\b|objective response", re.IGNORECASE)


def _user_cohort(tmp_path):
    """The synthetic cohort's rows as a user's file (no sidecar: tier 'user', generic arms)."""
    path = tmp_path / "rfs_cohort.csv"
    pd.read_csv(default_cohort_path()).to_csv(path, index=False)
    return path


def _config(tmp_path, cohort, names: bool, name="fast"):
    text = FAST.format(cohort=cohort, covariates=f"covariates = {json.dumps(COVARIATES)}")
    text = not_the_study(text)
    # PSM in the sensitivity study too (its medians table); two rematched sets keep it quick
    text = text.replace('strategies = ["none", "iptw"]\norr_strategies = []',
                        'strategies = ["none", "iptw", "psm"]\norr_strategies = []')
    text = text.replace("[response]", "psm_design_draws = 2\nimportant_hr = 0.8\n[response]", 1)
    text = text.replace("[survival]", (RFS if names else "") + "[survival]", 1)
    path = tmp_path / f"{name}{'_rfs' if names else ''}.toml"
    path.write_text(text)
    return path


def _visible_text(html: str) -> str:
    """What a reader sees of a page: its text without tags (links to ``pfs.html`` and embedded
    images are not read), styles or scripts."""
    html = re.sub(r"<(style|script)\b.*?</\1>", " ", html, flags=re.DOTALL)
    return re.sub(r"<[^>]*>", " ", html)


def test_names_come_from_the_sidecar_then_the_configuration(tmp_path):
    path = _user_cohort(tmp_path)
    assert load_cohort(path).endpoint_names["pfs"] == ("PFS", "progression-free survival")
    path.with_name("rfs_cohort.meta.json").write_text(json.dumps(
        {"endpoint_names": {"pfs": {"short": "DFS", "long": "disease-free survival"}}}))
    assert load_cohort(path).endpoint_names["pfs"] == ("DFS", "disease-free survival")
    given = load_cohort(path, endpoint_names={"pfs": ("RFS", "relapse-free survival")})
    assert given.endpoint_names == {"os": ("OS", "overall survival"),
                                    "pfs": ("RFS", "relapse-free survival"),
                                    "orr": ("ORR", "objective response")}


@pytest.mark.parametrize("names, expected", [
    ({"dfs": ("DFS", "disease-free survival")}, "'dfs'"),
    ({"pfs": ("", "relapse-free survival")}, "short name (1-12 characters)"),
    ({"pfs": ("OS", "overall survival again")}, "different short names"),
    ({"pfs": "RFS"}, "found 'pfs' = 'RFS'"),
])
def test_bad_names_are_one_clear_message(tmp_path, names, expected):
    path = _user_cohort(tmp_path)
    with pytest.raises(InputError) as err:
        load_cohort(path, endpoint_names=names)
    msg = " ".join(str(err.value).split())
    assert str(path) in msg and expected in msg


def test_a_bad_endpoint_name_in_a_configuration_or_option_is_refused(tmp_path, capsys):
    cohort = _user_cohort(tmp_path)
    cfg = _config(tmp_path, cohort, names=True)
    cfg.write_text(cfg.read_text().replace("pfs = {short", "dfs = {short"))
    assert main(["check-cohort", "--config", str(cfg)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert str(cfg) in err and "data.endpoint_names.dfs" in err and "'os', 'pfs' or 'orr'" in err
    assert main(["check-cohort", str(cohort), "--endpoint-name", "pfs=RFS"]) == 2
    assert "expected ENDPOINT=SHORT,LONG" in capsys.readouterr().err


def test_a_renamed_endpoint_changes_labels_not_numbers(tmp_path, capsys):
    """The same seeded PFS fit (IPTW: its bootstrap and its checks' replicates are seeded) with
    and without the names: results.csv identical; the RFS page and messages say RFS and
    relapse-free survival and never PFS or progression; a response fit says CR, never ORR."""
    cohort = _user_cohort(tmp_path)
    plain = run_fit(cohort, "pfs", "iptw", tmp_path / "plain", config_path=_config(tmp_path, cohort, False),
                    echo=lambda m: None)
    said = []
    named = run_fit(cohort, "pfs", "iptw", tmp_path / "named", config_path=_config(tmp_path, cohort, True),
                    echo=said.append)
    pd.testing.assert_frame_equal(plain, named)
    assert set(named["endpoint"]) == {"pfs"}  # results.csv keeps the schema's key
    page = _visible_text((tmp_path / "named" / "report.html").read_text())
    assert "RFS" in page and "Relapse-free survival" in page
    assert not PFS_WORDS.search(page), PFS_WORDS.search(page).group(0)
    assert any("fitted RFS (iptw)" in m for m in said)
    run_fit(cohort, "orr", "none", tmp_path / "cr", config_path=_config(tmp_path, cohort, True),
            echo=said.append)
    page = _visible_text((tmp_path / "cr" / "report.html").read_text())
    assert "CR risk difference" in page and "Complete response" in page
    assert not PFS_WORDS.search(page), PFS_WORDS.search(page).group(0)
    assert any("fitted CR (none)" in m for m in said)
    # the checks' numbers (seeded by the schema key) are those of the plain page
    page = _visible_text((tmp_path / "named" / "report.html").read_text())
    plain_page = _visible_text((tmp_path / "plain" / "report.html").read_text())
    numbers = re.compile(r"\d+\.\d+")
    assert numbers.findall(page.split("Model checks")[-1])[:40] == \
        numbers.findall(plain_page.split("Model checks")[-1])[:40]
    # outside the run the names are OS and PFS again
    assert endpoint_label("pfs") == "PFS"
    # check-cohort says which endpoints the file has, by their names (configuration or option)
    assert main(["check-cohort", "--config", str(_config(tmp_path, cohort, True))]) == 0
    assert "RFS events" in capsys.readouterr().out
    assert main(["check-cohort", str(cohort), "--endpoint-name", "pfs=EFS,event-free survival"]) == 0
    assert "median EFS (months, KM)" in capsys.readouterr().out


def test_the_api_names_the_endpoint(tmp_path):
    cfg = _config(tmp_path, _user_cohort(tmp_path), names=False)
    frame = pd.read_csv(default_cohort_path()).drop(columns=["os_time", "os_event"])
    fit = bh.fit(frame, endpoint="pfs", adjust="none", covariates=COVARIATES, config=cfg,
                 endpoint_names={"pfs": ("EFS", "event-free survival")})
    assert repr(fit).startswith("FitResult(EFS, adjustment 'none'")
    fig = fit.plot()
    assert fig.axes[0].get_ylabel() == "EFS probability"
    with pytest.raises(InputError) as err:
        bh.fit(frame, endpoint="os", adjust="none", covariates=COVARIATES, config=cfg,
               endpoint_names={"pfs": ("EFS", "event-free survival")})
    msg = " ".join(str(err.value).split())
    assert "has EFS only" in msg and "expected an endpoint it has (pfs = EFS)" in msg


@pytest.mark.slow
def test_the_main_job_of_an_rfs_cohort_never_says_pfs(tmp_path):
    """Every page of the main job (run in worker processes, which name the endpoints too) on a
    cohort whose second endpoint is RFS: no PFS, no progression; results.csv identical to the
    same job without the names."""
    cohort = _user_cohort(tmp_path)
    run_main(_config(tmp_path, cohort, False), tmp_path / "plain", echo=lambda m: None)
    said = []
    run_main(_config(tmp_path, cohort, True), tmp_path / "named", echo=said.append)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "plain" / "results.csv"),
                                  pd.read_csv(tmp_path / "named" / "results.csv"))
    pages = sorted((tmp_path / "named").glob("*.html"))
    assert (tmp_path / "named" / "pfs.html") in pages
    for page in pages:
        text = _visible_text(page.read_text())
        hit = PFS_WORDS.search(text)
        assert hit is None, f"{page.name}: {text[max(hit.start() - 80, 0):hit.end() + 80]}"
    assert "RFS" in (tmp_path / "named" / "pfs.html").read_text()
    assert "Complete response" in (tmp_path / "named" / "response.html").read_text()
    # the configuration's clinically important HR reaches the worker blocks' pages
    for page in ("pfs.html", "sensitivity.html"):
        assert "P(HR &lt; 0.8)" in (tmp_path / "named" / page).read_text(), page
    # a user's cohort: its sensitivity page speaks of its analyses, not of the study's
    assert "the study" not in _visible_text((tmp_path / "named" / "sensitivity.html").read_text())
    assert not any(PFS_WORDS.search(m) for m in said), [m for m in said if PFS_WORDS.search(m)]


def test_the_published_tier_keeps_the_study_s_names_in_a_named_run():
    """In a run that names pfs RFS, the published tier's tipping points (the study's real
    numbers) still say PFS; the cohort's say RFS."""
    import numpy as np

    from bayes_haic.schema import name_endpoints, naming_scope
    from bayes_haic.sensitivity import TippingPoint

    def curve(tier):
        return TippingPoint(tier, "pfs", "iptw", 0.95, np.array([0.5, 1.0]), np.array([0.97, 0.99]),
                            np.zeros(2), ["closed form"] * 2, 0.4)

    @naming_scope
    def texts():
        name_endpoints({"pfs": ("RFS", "relapse-free survival")})
        return curve("published").text(), curve("user").text()

    published, user = texts()
    assert published.startswith("PFS (iptw)") and user.startswith("RFS (iptw)")
    assert endpoint_label("pfs") == "PFS"  # the scope ended with the function
