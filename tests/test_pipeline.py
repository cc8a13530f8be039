"""The main job and the fit command end to end, on small settings (fast, not for inference)."""

import html
import re

import numpy as np
import pandas as pd
import pytest

from bayes_haic.cli import main
from bayes_haic.errors import InputError
from bayes_haic.paths import default_cohort_path
from bayes_haic.pipeline import run_fit, run_main
from bayes_haic.results import RESULT_COLUMNS

FAST = """
[data]
cohort = "{cohort}"
{covariates}
[survival]
strategies = ["none", "iptw"]
n_intervals = 5
bootstrap_draws = 30
[response]
strategies = ["none"]
[priors]
published_sets = ["reference", "skeptical"]
[published]
enabled = true
[sensitivity]
cut_sets = []
strategies = ["none", "iptw"]
orr_strategies = []
[sampler]
draws = 200
tune = 300
chains = 2
seed = 11
"""


def not_the_study(text: str) -> str:
    """A FAST configuration's text without the package's study's published tier (as
    ``bayes-haic init`` writes, and as a file that leaves [published] out means)."""
    return text.replace("[published]\nenabled = true\n", "[published]\nenabled = false\n")


def fast_config(tmp_path, cohort, covariates=None):
    cov = f"covariates = {covariates!r}".replace("'", '"') if covariates else ""
    path = tmp_path / "fast.toml"
    path.write_text(FAST.format(cohort=cohort, covariates=cov))
    return path


@pytest.fixture(scope="module")
def main_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("main")
    cfg = fast_config(tmp, default_cohort_path())
    state = run_main(cfg, tmp / "out", echo=lambda m: None)
    return tmp / "out", state


def test_main_job_numbers_do_not_depend_on_the_worker_processes(main_run, tmp_path):
    """The main job's blocks run in worker processes ([run] processes, 2 by default, as in
    ``main_run``); in one process it gives the same results.csv, row for row (every fit is
    seeded), and the same sensitivity rows although that study ran in parts."""
    out, state = main_run
    text = fast_config(tmp_path, default_cohort_path()).read_text() + "[run]\nprocesses = 1\n"
    cfg = tmp_path / "one.toml"
    cfg.write_text(text)
    run_main(cfg, tmp_path / "one", echo=lambda m: None)
    a = pd.read_csv(out / "results.csv")
    b = pd.read_csv(tmp_path / "one" / "results.csv")
    pd.testing.assert_frame_equal(a, b)
    assert (a["analysis"] == "sensitivity").any()
    # the checks (run per block as blocks end, then merged) and the sensitivity page too
    for page in ("checks.html", "sensitivity.html", "os.html"):
        assert (out / page).read_text() == (tmp_path / "one" / page).read_text(), page


def test_block_lanes_keep_blocks_of_the_same_structures_in_one_process():
    from bayes_haic.pipeline import Block, block_lanes

    blocks = [Block("survival", "os"), Block("survival", "pfs"), Block("response", "orr"),
              Block("sensitivity", "os"), Block("sensitivity", "pfs"), Block("sensitivity", "orr")]
    assert block_lanes(blocks, 2) == [[2, 0, 1, 5], [3, 4]]
    assert block_lanes(blocks, 1) == [[0, 1, 2, 3, 4, 5]]
    # three: the costlier lane (ORR 1 + survival 2 x 3 + ORR sensitivity 2 against sensitivity
    # 2 x 2) is split
    assert block_lanes(blocks, 3) == [[3, 4], [2, 1], [0, 5]]
    assert sorted(block_lanes(blocks, 8)) == [[0], [1], [2], [3], [4], [5]]
    assert block_lanes([Block("survival", "os")], 2) == [[0]]
    # with an empty compile cache: the survival fits' structures in one lane, the rest in the other
    assert block_lanes(blocks, 2, cold=True) == [[0, 1], [2, 5, 3, 4]]
    assert block_lanes(blocks, 1, cold=True) == [[0, 1, 2, 3, 4, 5]]


def test_the_main_job_schedules_for_an_empty_compile_cache_until_its_blocks_have_run(tmp_path, monkeypatch):
    """The lanes are the cold ones until every block has run once (the record is written only
    then: not after a block's error), the warm ones afterwards. Blocks replaced by a probe."""
    import types

    from bayes_haic import pipeline, sampling
    from bayes_haic.config import load_config

    if pipeline.worker_context().get_start_method() != "fork":
        pytest.skip("the replaced run_block reaches the workers only when they are forked")
    monkeypatch.setattr(sampling, "stamped_path", lambda name: tmp_path / "compile" / name)
    chosen = []
    real = pipeline.block_lanes
    monkeypatch.setattr(pipeline, "block_lanes",
                        lambda b, p, cold=False: chosen.append(cold) or real(b, p, cold=cold))

    def probe(ctx, block, announce=None):
        if block.endpoint == "fail":
            raise ValueError("a block's error")
        return {}

    monkeypatch.setattr(pipeline, "run_block", probe)
    cohort = types.SimpleNamespace(has_response=True)  # what the progress lines read
    ctx = pipeline.BlockContext(load_config(), cohort, None, None, None)
    run = [pipeline.Block("survival", "os"), pipeline.Block("sensitivity", "os")]
    with pytest.raises(ValueError, match="a block's error"):
        pipeline.run_blocks(ctx, run + [pipeline.Block("sensitivity", "fail")], 2,
                            pipeline.Progress(total=3, echo=lambda m: None))
    assert not (tmp_path / "compile" / "main-job-compiled").exists()
    for _ in range(2):
        pipeline.run_blocks(ctx, run, 2, pipeline.Progress(total=2, echo=lambda m: None))
    assert chosen == [True, True, False]
    assert (tmp_path / "compile" / "main-job-compiled").exists()


def test_main_job_writes_labelled_results(main_run):
    out, state = main_run
    res = pd.read_csv(out / "results.csv")
    assert list(res.columns) == RESULT_COLUMNS
    assert set(res["data_tier"]) == {"published", "synthetic"}
    pub = res[res["data_tier"] == "published"]
    # the published tier reanalyses the study's numbers only, never the cohort file
    assert (pub["adjustment"] == "published").all() and not pub["source"].str.contains("cohort.csv").any()
    syn = res[res["data_tier"] == "synthetic"]
    assert set(syn["endpoint"]) == {"os", "pfs", "orr"}
    assert set(syn.loc[syn["endpoint"] == "os", "adjustment"]) == {"none", "iptw"}
    hr = syn[syn["measure"] == "hr"]
    assert ((hr["lower"] < hr["median"]) & (hr["median"] < hr["upper"])).all()
    assert hr["prob_benefit"].between(0, 1).all()
    nuts = syn[(syn["adjustment"] == "none") & syn["measure"].isin(["hr", "rd"])]
    assert nuts["rhat_max"].notna().all() and nuts["ess_bulk_min"].gt(0).all()
    # the sensitivity study: each endpoint's HR under every configured prior set
    sens = syn[(syn["analysis"] == "sensitivity") & (syn["measure"] == "hr")]
    assert set(sens["prior"]) == {"reference", "skeptical"} and set(sens["endpoint"]) == {"os", "pfs"}
    tipping = res[res["measure"] == "tipping_sd_log_hr"]
    assert set(tipping["data_tier"]) == {"published", "synthetic"}
    assert set(tipping.loc[tipping["data_tier"] == "synthetic", "adjustment"]) == {"none", "iptw"}


def test_results_rows_are_unique_and_honestly_labelled(main_run):
    """Every row is identified by the key columns; a row that no prior set changes (the
    published beta-binomial ORR, uniform per-arm prior in every set) appears once, labelled with
    the prior that produced it; rows labelled with different prior sets differ."""
    from bayes_haic.results import KEY_COLUMNS, duplicate_keys

    out, _ = main_run
    res = pd.read_csv(out / "results.csv", keep_default_na=False, na_values=[""])
    assert duplicate_keys(res).empty
    bb = res[(res["data_tier"] == "published") & (res["model"] == "beta-binomial")]
    assert len(bb) == 3 and set(bb["prior"]) == {"Beta(alpha: 1, beta: 1)"}
    # the IPTW HR (sensitivity study) moves with the prior set
    iptw = res[(res["analysis"] == "sensitivity") & (res["adjustment"] == "iptw")
               & (res["measure"] == "hr")]
    for _, g in iptw.groupby(["endpoint", "cut_set"]):
        assert g["median"].nunique() == len(g) == 2
    # no two rows of different prior sets are identical for the same quantity
    others = [c for c in KEY_COLUMNS if c != "prior"]
    for _, g in res.groupby(others, dropna=False):
        if len(g) > 1:
            assert g[["median", "lower", "upper"]].round(12).drop_duplicates().shape[0] == len(g)


def test_report_has_every_section_and_the_synthetic_banner(main_run):
    out, _ = main_run
    index = (out / "index.html").read_text()
    assert '<section id="summary">' in index
    # the study's published numbers side by side with this analysis (PSM median OS 27.0)
    assert "Side by side" in index
    assert "<td>median OS (months), HAIC-LEN-P</td><td>PSM</td><td>27</td>" in index
    for section in ("published", "cohort", "design", "os", "pfs", "response", "sensitivity",
                    "checks", "validation", "methods", "provenance", "limitations"):
        page = (out / f"{section}.html").read_text()
        assert f'<section id="{section}">' in page
        assert f'href="{section}.html"' in index  # linked from the summary page
        assert "SYNTHETIC DATA" in page  # the banner is on every page
        assert "<script" not in page.lower()  # self-contained, no scripts
        assert not re.search(r'src="(?!data:)', page)  # every image embedded
    # the published evidence comes before any patient-level section
    assert index.index('href="published.html"') < index.index('href="cohort.html"')
    # no [data] reconstructed: the Limitations page says how to make the reconstructed files
    assert "bayes-haic reconstruct" in (out / "limitations.html").read_text()
    # the Validation page is read from the stored result (seed and size stated), and the
    # Limitations page says how the coverage compares with 93-97%
    assert "Stored result (data/validation)" in (out / "validation.html").read_text()
    assert "93-97%" in (out / "limitations.html").read_text()


def test_the_methods_page_lists_the_priors_the_main_jobs_models_used(main_run):
    """The union of every fit's ``priors_used`` and the published tier's priors; the rest of the
    set (e.g. the random-walk baseline sd, unused with independent baselines) named as unused."""
    from bayes_haic.reanalysis import PUBLISHED_PRIORS

    out, state = main_run
    fits = [*state.fits.values(), *state.hr_t.values()]
    used = set(PUBLISHED_PRIORS)
    for idata in fits:
        used |= set(idata.attrs["priors_used"].split(", "))
    assert {"survival.log_hr", "survival.log_baseline_hazard", "response.log_or"} <= used
    shown = _methods_priors((out / "methods.html").read_text())
    assert shown["listed"] == used
    assert "survival.baseline_rw_sd" in shown["unused"] and not shown["unused"] & used


def test_bad_config_writes_nothing(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[sampler]\ndraws = 'many'\n")
    with pytest.raises(InputError, match="sampler.draws"):
        run_main(cfg, tmp_path / "out", echo=lambda m: None)
    assert not (tmp_path / "out" / "index.html").exists()
    assert not (tmp_path / "out" / "results.csv").exists()


def test_bad_cohort_via_cli_is_exit_2_and_no_report(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text(default_cohort_path().read_text().replace("\n1,", "\n1x,", 1)
                   .replace(",1,", ",7,", 1))
    cfg = fast_config(tmp_path, bad)
    code = main(["run", "--config", str(cfg), "--out", str(tmp_path / "out")])
    assert code == 2
    assert "Traceback" not in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


HOSTILE = '<script>alert(1)</script>'


def test_hostile_labels_are_escaped_in_the_report(tmp_path):
    """Strings from data (a covariate's name) and configuration never become markup."""
    frame = pd.read_csv(default_cohort_path())
    frame = frame.rename(columns={"mvi": HOSTILE})
    cohort = tmp_path / "user <b>cohort.csv"
    frame.to_csv(cohort, index=False)
    run_fit(cohort, "orr", "none", tmp_path / "fit", covariates=["age", HOSTILE],
            config_path=fast_config(tmp_path, cohort), echo=lambda m: None)
    html = (tmp_path / "fit" / "report.html").read_text()
    assert HOSTILE not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>cohort" not in html and "&lt;b&gt;cohort" in html
    assert "SYNTHETIC DATA" not in html  # a user's cohort is tier 'user'
    res = pd.read_csv(tmp_path / "fit" / "results.csv")
    assert set(res["data_tier"]) == {"user"}


def test_fit_is_reproducible_for_a_seed(tmp_path):
    cfg = fast_config(tmp_path, default_cohort_path())
    a = run_fit(default_cohort_path(), "pfs", "none", tmp_path / "a", seed=5, config_path=cfg,
                echo=lambda m: None)
    b = run_fit(default_cohort_path(), "pfs", "none", tmp_path / "b", seed=5, config_path=cfg,
                echo=lambda m: None)
    c = run_fit(default_cohort_path(), "pfs", "none", tmp_path / "c", seed=6, config_path=cfg,
                echo=lambda m: None)
    pd.testing.assert_frame_equal(a, b)
    assert not a["median"].equals(c["median"])


def test_fit_writes_a_readable_posterior(tmp_path):
    import arviz as az

    cfg = fast_config(tmp_path, default_cohort_path())
    run_fit(default_cohort_path(), "os", "none", tmp_path / "fit", config_path=cfg,
            echo=lambda m: None)
    idata = az.from_netcdf(tmp_path / "fit" / "posterior.nc")
    assert "log_hr" in idata.posterior and "log_likelihood" in idata.groups()
    assert idata.attrs["data_tier"] == "synthetic"
    assert idata.attrs["cohort_sha256"]
    # the priors the fit drew on, and the methods page lists those only (a prior that does not
    # enter a computation is not written beside it)
    assert idata.attrs["priors_used"] == "survival.log_baseline_hazard, survival.log_hr"
    methods = _methods_priors((tmp_path / "fit" / "report.html").read_text())
    assert methods["listed"] == {"survival.log_baseline_hazard", "survival.log_hr"}
    assert {"response.log_or", "published.log_hr_os", "survival.pair_sd"} <= methods["unused"]
    # the fit's baseline-hazard prior is checked in its report, as the main job checks its fits
    page = " ".join(html.unescape((tmp_path / "fit" / "report.html").read_text()).split())
    assert "Baseline-hazard prior (5 quantile intervals): the HR under the configured prior set" in page


def _methods_priors(html: str) -> dict:
    """The prior keys a report's methods page lists in its prior table, and those its note names
    as unused."""
    import html as html_mod

    text = html_mod.unescape(re.sub(r"<[^>]+>", " ", html[html.index("Methods (from"):]))
    head, _, tail = text.partition("used by none of this report's models (so not listed):")
    key = r"\b(?:survival|response|published)\.[a-z_]+"
    return {"listed": set(re.findall(key, head)), "unused": set(re.findall(key, tail.split(". ")[0]))}


def test_convergence_failures_are_alerts_and_strict_exits_1(tmp_path, capsys):
    """200 draws x 2 chains cannot reach a bulk ESS of 400: the run says so, and --strict fails."""
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(f"""
[data]
cohort = "{default_cohort_path()}"
[survival]
endpoints = ["os"]
strategies = ["none"]
time_varying_strategy = ""
[response]
strategies = []
[sensitivity]
enabled = false
[priors]
published_sets = ["reference"]
[sampler]
draws = 100
tune = 200
""")
    with pytest.raises(SystemExit) as info:
        main(["run", "--config", str(cfg), "--out", str(tmp_path / "out"), "--strict"])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "bulk ESS" in err
    html = (tmp_path / "out" / "index.html").read_text()
    assert 'role="alert"' in html and "bulk ESS" in html  # shown at the top of the report


def test_models_script_runs_like_fit(tmp_path):
    """A models/ script is the fit command with endpoint and adjustment preset."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    cfg = fast_config(tmp_path, default_cohort_path())
    out = tmp_path / "script"
    done = subprocess.run([sys.executable, str(root / "models" / "orr_none.py"), "--config",
                           str(cfg), "--out", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    res = pd.read_csv(out / "results.csv")
    assert set(res["endpoint"]) == {"orr"} and set(res["adjustment"]) == {"none"}
    bad = subprocess.run([sys.executable, str(root / "models" / "orr_none.py"), "--out",
                          str(out), "--prior", "no_such_prior"], capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "prior set not found" in bad.stderr


@pytest.mark.slow
def test_main_job_on_a_users_cohort_without_response_data(tmp_path):
    """A user's cohort (no sidecar) with an empty response column, configured as another
    study's analysis (``[published] enabled = false``, as ``bayes-haic init`` writes): survival
    analyses only, labelled with the user tier, no synthetic banner, the response page says why
    it is empty, and nothing of the package's own study (its published numbers, their tipping
    points, its limitations, its citation) appears."""
    frame = pd.read_csv(default_cohort_path())
    frame["response"] = ""
    cohort = tmp_path / "survival_only.csv"
    frame.to_csv(cohort, index=False)
    cfg = fast_config(tmp_path, cohort)  # no sidecar: every extra column is a covariate
    cfg.write_text(not_the_study(cfg.read_text()))
    messages = []
    state = run_main(cfg, tmp_path / "out", echo=messages.append)
    res = pd.read_csv(tmp_path / "out" / "results.csv")
    assert set(res["data_tier"]) == {"user"}
    assert set(res["analysis"]) == {"main", "sensitivity", "tipping point"}  # the cohort's own
    assert not (tmp_path / "out" / "published.html").exists()
    pages = "".join(p.read_text() for p in (tmp_path / "out").glob("*.html"))
    for study in ("PMID 38549220", "PUBLISHED TIER", "responder counts (37/55", "data tier 'published'"):
        assert study not in pages, study
    # the package's validation study is shown as the package's, not as one of this cohort
    for page in ("validation", "limitations"):
        text = " ".join((tmp_path / "out" / f"{page}.html").read_text().split())
        assert "survival_only.csv" in text and "validation study" in text, page
    assert not any("published evidence" in m for m in messages)
    assert not ((res["data_tier"] == "user") & (res["endpoint"] == "orr")).any()
    assert set(res.loc[res["data_tier"] == "user", "endpoint"]) == {"os", "pfs"}
    page = (tmp_path / "out" / "response.html").read_text()
    assert "has no response data" in page and "SYNTHETIC DATA" not in page
    cohort_page = (tmp_path / "out" / "cohort.html").read_text()
    assert "user-supplied cohort" in cohort_page and "treatment = 1" in cohort_page
    assert any("ORR: not fitted" in m for m in messages)
    steps = [m for m in messages if m.startswith("[")]
    done, total = steps[-1][1:].split(",")[0].split("/")
    assert done == total and int(total) >= len(steps)  # the step count adds up
    assert state.cohort.data_tier == "user" and not state.cohort.has_response


def test_the_main_job_plans_only_the_endpoints_a_cohort_has(tmp_path):
    """[survival] endpoints that the cohort has no data for get no block (no fit, no page, no
    sensitivity part); none left is a one-paragraph error naming both sides."""
    import types

    from bayes_haic.config import load_config
    from bayes_haic.pipeline import main_blocks, survival_endpoints

    cfg = load_config(fast_config(tmp_path, default_cohort_path()))
    assert cfg.survival.endpoints == ["os", "pfs"]
    os_only = types.SimpleNamespace(endpoints=("os",), has_response=False, path="os.csv")
    assert survival_endpoints(cfg, os_only) == ["os"]
    blocks = main_blocks(cfg, os_only)
    assert [(b.kind, b.endpoint) for b in blocks] == [("survival", "os"), ("response", "orr"),
                                                      ("sensitivity", "os")]
    both = types.SimpleNamespace(endpoints=("os", "pfs"), has_response=True, path="c.csv")
    assert [b.endpoint for b in main_blocks(cfg, both) if b.kind == "survival"] == ["os", "pfs"]
    pfs_cfg = cfg.model_copy(update={"survival": cfg.survival.model_copy(update={"endpoints": ["pfs"]})})
    with pytest.raises(InputError) as err:
        survival_endpoints(pfs_cfg, os_only)
    msg = " ".join(str(err.value).split())
    assert "os.csv: has data for OS only" in msg and "[survival] endpoints are PFS" in msg
    assert "endpoints = ['os']" in msg


@pytest.mark.slow
def test_main_job_on_a_cohort_with_os_only(tmp_path):
    """Found on R's veteran data: a cohort without PFS columns (and without response data) runs
    the main job for OS only. No PFS row, page or sensitivity part; the cohort page and the
    progress lines say why; the OS rows equal those of the same cohort with PFS present (the
    configuration's seed, the same design)."""
    frame = pd.read_csv(default_cohort_path())
    frame["response"] = ""
    full, os_only = tmp_path / "full.csv", tmp_path / "os_only.csv"
    frame.to_csv(full, index=False)
    frame.drop(columns=["pfs_time", "pfs_event"]).to_csv(os_only, index=False)
    results = {}
    for name, cohort in (("full", full), ("os_only", os_only)):
        (tmp_path / name).mkdir()
        cfg = fast_config(tmp_path / name, cohort)
        cfg.write_text(not_the_study(cfg.read_text()))
        messages = []
        state = run_main(cfg, tmp_path / name / "out", echo=messages.append)
        results[name] = pd.read_csv(tmp_path / name / "out" / "results.csv")
    res = results["os_only"]
    assert set(res["endpoint"]) == {"os"} and state.cohort.endpoints == ("os",)
    assert not (tmp_path / "os_only" / "out" / "pfs.html").exists()
    assert (tmp_path / "full" / "out" / "pfs.html").exists()
    cohort_page = (tmp_path / "os_only" / "out" / "cohort.html").read_text()
    assert "has no PFS data" in " ".join(cohort_page.split())
    assert any(m == "PFS: not fitted (the cohort has no PFS data)" for m in messages)
    steps = [m for m in messages if m.startswith("[")]
    done, total = steps[-1][1:].split(",")[0].split("/")
    assert done == total and int(total) >= len(steps)  # the step count adds up
    assert {m[1:].split(",")[0].split("/")[1] for m in steps} == {total}  # from the first step on
    os_full = results["full"][results["full"]["endpoint"] == "os"].reset_index(drop=True)
    cols = ["analysis", "measure", "adjustment", "prior", "median", "lower", "upper"]
    pd.testing.assert_frame_equal(os_full[cols], res[cols])


def test_a_worker_blocks_error_reaches_the_caller():
    """An error inside a block run by a worker process is raised in the main job (so the CLI
    prints it as for any step), and the blocks not yet started are dropped."""
    from bayes_haic.config import load_config
    from bayes_haic.pipeline import Block, BlockContext, Progress, run_blocks

    import multiprocessing

    from bayes_haic.pipeline import WorkerTraceback

    ctx = BlockContext(load_config(), None, None, None, None)
    blocks = [Block("no such kind", "os"), Block("no such kind either", "pfs")]
    with pytest.raises(ValueError, match="unknown block kind") as err:
        run_blocks(ctx, blocks, 2, Progress(total=2, echo=lambda m: None))
    assert isinstance(err.value.__cause__, WorkerTraceback)  # the worker's traceback comes along
    assert "in run_block" in str(err.value.__cause__)
    assert not multiprocessing.active_children()  # every worker stopped and joined


def test_a_worker_that_dies_is_reported_not_waited_for(monkeypatch):
    """A worker process that ends without a result (killed, or a crash in native code) makes
    the main job stop with a message, instead of waiting for ever."""
    import multiprocessing
    import os

    from bayes_haic import pipeline
    from bayes_haic.config import load_config

    if pipeline.worker_context().get_start_method() != "fork":
        pytest.skip("the replaced run_block reaches the workers only when they are forked")
    monkeypatch.setattr(pipeline, "run_block", lambda ctx, block, announce=None: os._exit(3))
    ctx = pipeline.BlockContext(load_config(), None, None, None, None)
    blocks = [pipeline.Block("survival", "os"), pipeline.Block("sensitivity", "os")]
    with pytest.raises(RuntimeError, match="exit code 3"):
        pipeline.run_blocks(ctx, blocks, 2, pipeline.Progress(total=2, echo=lambda m: None))
    assert not multiprocessing.active_children()


def test_configured_hr_t_fits_sample_as_long_as_the_methods_text_says(monkeypatch):
    """Every configured HR(t) fit -- the main job's and ``bayes-haic fit`` with ``time_varying =
    true`` -- samples at least TIME_VARYING_MIN_DRAWS draws after TIME_VARYING_MIN_TUNE tuning
    steps, which the report's methods text states (before, only the main job's did); other fits
    keep the configured settings. The fit itself is replaced by a probe of its arguments."""
    from bayes_haic import analysis, pipeline
    from bayes_haic.config import load_config
    from bayes_haic.priors import load_prior_set
    from bayes_haic.report import main as report_main
    from bayes_haic.sampler_settings import TIME_VARYING_MIN_DRAWS, TIME_VARYING_MIN_TUNE

    seen = []
    monkeypatch.setattr(analysis, "fit_survival", lambda *a, **k: seen.append(k["sampler"]))
    cfg = load_config(None)
    configured = cfg.sampler.settings()
    assert configured.draws < TIME_VARYING_MIN_DRAWS and configured.tune < TIME_VARYING_MIN_TUNE
    for tv in (True, False):
        pipeline.fit_configured(cfg, None, "os", "none", None, None, configured, [0.0], time_varying=tv)
    assert (seen[0].draws, seen[0].tune) == (TIME_VARYING_MIN_DRAWS, TIME_VARYING_MIN_TUNE)
    assert seen[1] == configured
    from bayes_haic.schema import load_cohort

    text = report_main.methods_section(cfg, load_prior_set("reference"), configured,
                                       load_cohort(default_cohort_path()))
    shown = " ".join(getattr(b, "text", "") for b in text.blocks)
    assert f"at least {TIME_VARYING_MIN_TUNE} tuning steps and {TIME_VARYING_MIN_DRAWS} draws" in shown


def test_one_rule_decides_whether_a_run_concerns_the_packages_study(tmp_path):
    """Citation, the study's limitations and the reconstruction note follow one rule
    (``about_the_study``): the published tier enabled, the synthetic cohort, or the study's
    reconstructed curves under ``[data] reconstructed``; a user's cohort with the published tier
    disabled concerns another study."""
    from dataclasses import replace

    from bayes_haic.config import load_config
    from bayes_haic.pipeline import about_the_study
    from bayes_haic.report.main import limitations_section
    from bayes_haic.schema import load_cohort

    synthetic = load_cohort(default_cohort_path())
    user = replace(synthetic, data_tier="user")
    cfg = load_config(fast_config(tmp_path, default_cohort_path()))
    off = cfg.model_copy(update={"published": cfg.published.model_copy(update={"enabled": False})})
    rebuilt = off.model_copy(update={"data": off.data.model_copy(update={"reconstructed": "r.csv"})})
    assert about_the_study(cfg, user) and about_the_study(off, synthetic)
    assert about_the_study(rebuilt, user) and not about_the_study(off, user)

    def text(section):
        return " ".join(b.text for b in section.blocks)

    assert "responder counts (37/55" in text(limitations_section(user, study=True))
    assert "responder counts (37/55" not in text(limitations_section(user, study=False))
    assert "Non-randomised comparison" in text(limitations_section(user, study=False))


def test_the_rmst_horizon_and_important_hr_are_the_configuration_s(tmp_path):
    """``[survival] rmst_months`` sets the horizon of the standardised RMST difference: the
    fit command's row is ``rmst_diff_36`` with the posterior of survival_estimands(..., 36) of
    the same draws, its page says 36 months, and the API's FitResult uses it too;
    ``important_hr`` = 0.8 gives the page's P(HR < 0.8), the share of stored draws below it."""
    import arviz as az

    import bayes_haic as bh
    from bayes_haic import survival

    cfg = fast_config(tmp_path, default_cohort_path())
    cfg.write_text(cfg.read_text().replace("n_intervals = 5",
                                           "n_intervals = 5\nrmst_months = 36\nimportant_hr = 0.8"))
    rows = run_fit(default_cohort_path(), "os", "none", tmp_path / "fit", config_path=cfg,
                   echo=lambda m: None)
    row = rows[rows["measure"] == "rmst_diff_36"].iloc[0]
    idata = az.from_netcdf(tmp_path / "fit" / "posterior.nc")
    _, draws = survival.survival_estimands(idata, rmst_tau=36.0)
    assert row["median"] == pytest.approx(float(np.median(draws["rmst_diff"].values)), rel=1e-5)
    _, draws24 = survival.survival_estimands(idata, rmst_tau=24.0)
    assert abs(row["median"] - float(np.median(draws24["rmst_diff"].values))) > 0.1  # months
    page = (tmp_path / "fit" / "report.html").read_text()
    assert "RMST difference at 36 mo" in page and "survival to 36 months" in page
    assert "24 mo" not in page
    p08 = float(np.mean(idata.posterior["hr"].values < 0.8))
    assert re.search(r"P\(HR &lt; 0\.8\)", page) and "P(HR &lt; 0.7)" not in page
    summary, _ = survival.survival_estimands(idata, rmst_tau=36.0, hr_thresholds=(1.0, 0.8))
    assert summary.loc[summary["quantity"] == "P(HR<0.8)", "probability"].item() == pytest.approx(p08)
    fit = bh.fit(default_cohort_path(), endpoint="os", adjust="none", config=cfg)
    assert "rmst_diff_36" in set(fit.summary()["measure"])


def test_the_important_response_difference_is_the_configuration_s(tmp_path):
    """``[response] important_difference`` is the threshold of the response page's P(RD > d)
    (the share of the stored RD draws above it) and of its figure; the study's 0.2 is only the
    default."""
    import arviz as az

    from bayes_haic import response

    cfg = fast_config(tmp_path, default_cohort_path())
    cfg.write_text(cfg.read_text().replace('[response]\nstrategies = ["none"]',
                                           '[response]\nstrategies = ["none"]\nimportant_difference = 0.1'))
    run_fit(default_cohort_path(), "orr", "none", tmp_path / "fit", config_path=cfg,
            echo=lambda m: None)
    page = (tmp_path / "fit" / "report.html").read_text()
    assert "P(RD &gt; 0.1)" in page and "P(RD &gt; 0.2)" not in page
    rd = az.from_netcdf(tmp_path / "fit" / "posterior.nc").posterior["rd"].values
    s = response.response_summary(az.from_netcdf(tmp_path / "fit" / "posterior.nc"), important=0.1)
    assert s["p_rd_above_important"] == float(np.mean(rd > 0.1)) and s["important_rd"] == 0.1


def test_the_main_job_checks_the_baseline_prior_of_each_of_its_fits(main_run):
    """The baseline-hazard prior check runs on the main job's own fits, every MCMC fit that
    uses that prior (here the unadjusted one; the IPTW replicates are maximum-likelihood fits),
    and is shown on each endpoint's page; the sensitivity study does not repeat it. Its rows are
    the same computation as the sensitivity command's (baseline_check_fit), so the widened HR of
    the unadjusted OS fit equals a direct reweighting of that fit's draws."""
    from bayes_haic import analysis
    from bayes_haic import sensitivity as sn
    from bayes_haic.pipeline import fit_configured
    from bayes_haic.priors import load_prior_set

    out, state = main_run
    check = state.baseline_check
    assert sorted(zip(check["endpoint"], check["strategy"])) == [("os", "none"), ("pfs", "none")]
    cfg, prior_set = state.config, load_prior_set("reference")
    cuts = analysis.endpoint_cuts(state.cohort, "os", cfg.survival.cuts, cfg.survival.n_intervals)
    again = sn.baseline_check_fit(state.fits[("os", "none")], {
        "endpoint": "os", "strategy": "none", "prior_set": prior_set,
        "cut_set": sn.as_cut_set(5)}, refit=lambda ps: fit_configured(
            cfg, state.cohort, "os", "none", state.design, ps, cfg.sampler.settings(), cuts))
    row = check[check["endpoint"] == "os"].iloc[0]
    assert again["median_hr_widened"] == row["median_hr_widened"] and again["method"] == row["method"]
    page = " ".join(html.unescape((out / "os.html").read_text()).split())
    assert "Baseline-hazard prior (5 quantile intervals): the HR under the configured prior set" in page
    sens = " ".join(html.unescape((out / "sensitivity.html").read_text()).split())
    assert "is checked with each main fit, on its endpoint's page" in sens
    assert "Baseline-hazard prior (" not in sens


def test_fit_takes_the_covariates_of_its_configuration(tmp_path):
    """`bayes-haic fit --config C` (and `balance`) without --covariates uses C's [data]
    covariates, as the main job, check-cohort and the sensitivity command do
    (MainConfig.chosen_covariates); they took every extra column, so a column outside the list
    with missing values (pbc's chol) stopped the fit that bayes-haic init suggests."""
    frame = pd.read_csv(default_cohort_path())
    frame["chol"] = np.where(np.arange(len(frame)) % 7 == 0, np.nan, 250.0)
    cohort = tmp_path / "with_chol.csv"
    frame.to_csv(cohort, index=False)
    cfg = fast_config(tmp_path, cohort, covariates=["age", "ecog_1", "mvi"])
    run_fit(cohort, "os", "iptw", tmp_path / "fit", config_path=cfg, echo=lambda m: None)
    methods = " ".join((tmp_path / "fit" / "report.html").read_text().split())
    assert "covariates for the propensity score and covariate adjustment: age, ecog_1, mvi." in methods
    with pytest.raises(InputError, match="column 'chol'"):  # named on the command line: refused
        run_fit(cohort, "os", "iptw", tmp_path / "bad", covariates=["age", "chol"],
                config_path=cfg, echo=lambda m: None)
    from bayes_haic.pipeline import run_balance  # the design stage alone: the same rule

    table = run_balance(cohort, tmp_path / "balance", config_path=cfg, echo=lambda m: None)
    assert list(table["covariate"]) == ["age", "ecog_1", "mvi"]
