"""A fresh, non-editable install runs anywhere: the wheel carries the default configuration, the
prior sets and the shipped data, and every command works from a folder outside any checkout
on a survival-only cohort with its own column names and times in days.

Slow (builds a wheel, makes a virtual environment): ``make test-slow``. No network: the wheel
is installed with ``--no-deps`` and the new environment borrows the project environment's
installed dependencies through a ``.pth`` line (which does not activate the project's editable
install of bayes-haic itself).
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
ROTTERDAM = ROOT / "tests" / "reference" / "rotterdam_cohort.csv"
OWN = {"id": "pid", "treatment": "hormon", "os_time": "dtime", "os_event": "death",
       "pfs_time": "rtime", "pfs_event": "recur"}

pytestmark = pytest.mark.slow
pytest.importorskip("setuptools")  # builds the wheel without network (--no-build-isolation)


def _run(args, cwd, env, ok=True):
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if ok and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} exited {proc.returncode}:\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(bin folder, environment) of a fresh virtual environment with the wheel installed."""
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("src", "models", "data"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    wheels = tmp / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
          "-w", str(wheels), str(src)], tmp, os.environ.copy())
    wheel = next(wheels.glob("bayes_haic-*.whl"))
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp, os.environ.copy())
    py = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q",
          str(wheel)], tmp, os.environ.copy())
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     tmp, os.environ.copy()).stdout.strip())
    (site / "zz_project_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("BAYES_HAIC_ROOT", "PYTHONPATH")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    work = tmp / "work"
    work.mkdir()
    return venv / "bin", env, work


def test_installed_package_uses_its_package_data(installed):
    bindir, env, work = installed
    out = _run([str(bindir / "python"), "-c",
                "import bayes_haic, bayes_haic.paths as p, bayes_haic.config as c;"
                "print(bayes_haic.__file__); print(p.checkout_root()); print(c.load_config().cohort_path());"
                "print(p.priors_dir())"], work, env).stdout.split("\n")
    assert str(ROOT) not in out[0] and "site-packages" in out[0]
    assert out[1] == "None"
    assert out[2].endswith("bayes_haic/_data/synthetic/cohort.csv")
    assert out[3].endswith("bayes_haic/_models/priors")
    # the shipped default cohort and configuration, from an empty folder
    _run([str(bindir / "bayes-haic"), "fit", "--endpoint", "os", "--out", "default_fit"], work, env)
    res = pd.read_csv(work / "default_fit" / "results.csv")
    assert res["data_tier"].iloc[0] == "synthetic" and res["source"].iloc[0] == "cohort.csv"
    # the generator settings and the validation study's configuration are package data too
    # (both commands looked for a checkout's data/ folder and stopped in an installed package)
    (work / "syn").mkdir()
    _run([str(bindir / "bayes-haic"), "synthesize", "--out", "syn/cohort.csv"], work, env)
    assert (work / "syn" / "cohort.csv").read_bytes() == (ROOT / "data/synthetic/cohort.csv").read_bytes()
    _run([str(bindir / "bayes-haic"), "validate", "--report-only", "--no-progress", "--out", "v"],
         work, env)
    assert "Validation" in (work / "v" / "validation.html").read_text()


def test_every_command_on_a_users_survival_only_cohort(installed):
    bindir, env, work = installed
    exe = str(bindir / "bayes-haic")
    # the user's file: registry names, days, no response column (600 patients for speed)
    df = pd.read_csv(ROTTERDAM).drop(columns=["response"]).iloc[::5].rename(columns=OWN)
    for col in ("dtime", "rtime"):
        df[col] = (df[col] * 365.25 / 12).round(1)
    _run([exe, "init", "study"], work, env)
    df.to_csv(work / "study" / "cohort.csv", index=False)
    cfg = (work / "study" / "main.toml").read_text()
    mapping = "\n".join(f'{k} = "{v}"' for k, v in OWN.items())
    cfg = cfg.replace("[data.columns]\n", "[data.columns]\n" + mapping + "\n")
    cfg = cfg.replace('time_unit = "months"', 'time_unit = "days"')
    cfg = cfg.replace('# covariates = ["age", "stage", "ecog"]', 'covariates = ["age", "nodes", "grade3", "chemo"]')
    for old, new in (('endpoints = ["os", "pfs"]', 'endpoints = ["os"]'),
                     ('strategies = ["none", "ps_covariate", "iptw", "psm", "covariates"]\ncuts',
                      'strategies = ["none", "iptw"]\ncuts'),
                     ("bootstrap_draws = 400", "bootstrap_draws = 20"),
                     ('time_varying_strategy = "ps_covariate"', 'time_varying_strategy = ""'),
                     ("enabled = true", "enabled = false"), ("draws = 1000", "draws = 300"),
                     ("tune = 500", "tune = 300"), ('set = "reference"', 'set = "my_prior"')):
        assert old in cfg, old
        cfg = cfg.replace(old, new)
    (work / "study" / "main.toml").write_text(cfg)
    assert tomllib.loads(cfg)["data"]["columns"]["treatment"] == "hormon"

    # run --config: the main job on the user's folder (its own priors/ found first)
    _run([exe, "run", "--config", "study/main.toml", "--out", "run"], work, env)
    res = pd.read_csv(work / "run" / "results.csv")
    assert set(res["data_tier"]) == {"user"}  # init's folder: not the package's study's evidence
    user = res[res["data_tier"] == "user"]
    assert set(user["adjustment"]) == {"none", "iptw"} and set(user["endpoint"]) == {"os"}
    assert (user["prior"] == "my_prior").all() and (user["n_treated"] == df["hormon"].sum()).all()
    pages = " ".join(p.read_text() for p in (work / "run").glob("*.html"))
    assert "names the arms &#39;treated&#39; (every patient with treatment = 1)" in pages
    checks = (work / "run" / "checks.html").read_text().split("<main")[1]  # past the site title
    assert "KM p (treated)" in checks and "HAIC-LEN-P" not in checks

    # fit with the options on the command line and the shipped defaults
    columns = [a for k, v in OWN.items() for a in ("--column", f"{k}={v}")]
    _run([exe, "fit", "--cohort", "study/cohort.csv", *columns, "--time-unit", "days",
          "--arms", "hormonal therapy,none", "--endpoint", "os", "--covariates", "age,nodes",
          "--prior", "skeptical", "--out", "fit"], work, env)
    fit = pd.read_csv(work / "fit" / "results.csv")
    assert fit["prior"].iloc[0] == "skeptical" and fit["measure"].iloc[0] == "hr"
    assert "hormonal therapy" in (work / "fit" / "report.html").read_text()

    _run([exe, "balance", "--config", "study/main.toml", "--covariates", "age,nodes,chemo",
          "--out", "balance"], work, env)
    assert list(pd.read_csv(work / "balance" / "balance.csv")["covariate"]) == ["age", "nodes", "chemo"]

    _run([exe, "sensitivity", "--config", "study/main.toml", "--endpoint", "os", "--prior",
          "reference", "--prior", "my_prior", "--out", "sens"], work, env)
    sens = pd.read_csv(work / "sens" / "results.csv")
    assert {"reference", "my_prior"} <= set(sens["prior"])

    _run([exe, "reanalyse", "--measure", "hr", "--estimate", "0.75", "--ci", "0.55", "1.02",
          "--out", "reanalyse"], work, env)
    # the generic prior family (the HAIC-LEN-P meta-analysis prior only when named)
    assert list(pd.read_csv(work / "reanalyse" / "results.csv")["prior"]) == [
        "reference", "skeptical", "enthusiastic", "pessimistic"]

    # bad input: one paragraph, exit 2, no traceback
    bad = _run([exe, "fit", "--cohort", "study/cohort.csv", "--endpoint", "os", "--out", "x"],
               work, env, ok=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "missing required column" in bad.stderr and not (work / "x" / "results.csv").exists()
