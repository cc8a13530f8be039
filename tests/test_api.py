"""The Python API (``import bayes_haic as bh``) on data frames, and the worked example on the
real Rotterdam cohort (examples/rotterdam.py)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pytest

import bayes_haic as bh
from bayes_haic.cli import main
from bayes_haic.errors import InputError
from bayes_haic.results import RESULT_COLUMNS

ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC = ROOT / "data" / "synthetic" / "cohort.csv"
OWN = {"id": "patient", "treatment": "haic", "os_time": "os_weeks", "os_event": "dead",
       "pfs_time": "pfs_weeks", "pfs_event": "progressed", "response": "responder"}
LIGHT = "[sampler]\ndraws = 300\ntune = 300\nchains = 2\nseed = 11\n"


def own_frame():
    """The synthetic cohort under other column names, times in weeks."""
    df = pd.read_csv(SYNTHETIC).rename(columns=OWN)
    for col in ("os_weeks", "pfs_weeks"):
        df[col] = df[col] * 365.25 / 12 / 7
    return df


def test_import_is_light():
    code = "import sys, bayes_haic as bh; print(sorted(m for m in ('pymc', 'arviz', 'pandas') if m in sys.modules)); print(callable(bh.fit))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[:2] == ["[]", "True"]


def test_fit_on_a_data_frame_matches_the_command_line(tmp_path):
    """bh.fit on a frame with its own names and units = bayes-haic fit on the file."""
    cfg = tmp_path / "light.toml"
    cfg.write_text(LIGHT)
    covs = ["age", "ecog_1", "mvi"]
    res = bh.fit(own_frame(), endpoint="os", adjust="none", covariates=covs, columns=OWN,
                 time_unit="weeks", arms=("HAIC arm", "control arm"), config=cfg)
    s = res.summary()
    assert list(s.columns) == RESULT_COLUMNS
    assert list(s["measure"]) == ["hr", "median_treated", "median_control", "rmst_diff_24"]
    assert (s["data_tier"] == "user").all() and (s["source"] == "data frame").all()
    assert main(["fit", "--cohort", str(SYNTHETIC), "--endpoint", "os", "--covariates",
                 ",".join(covs), "--config", str(cfg), "--out", str(tmp_path / "cli")]) == 0
    cli = pd.read_csv(tmp_path / "cli" / "results.csv")
    np.testing.assert_allclose(s[["median", "lower", "upper"]].to_numpy(float),
                               cli[["median", "lower", "upper"]].to_numpy(float), rtol=1e-4)
    # the posterior, its file and the figure
    assert "log_hr" in res.idata.posterior and res.idata.attrs["adjustment"] == "none"
    path = res.to_netcdf(tmp_path / "fit.nc")
    back = az.from_netcdf(path)
    np.testing.assert_array_equal(back.posterior["log_hr"].values, res.idata.posterior["log_hr"].values)
    # one log-likelihood entry per patient, and the fit's labels as typed fields
    assert back.log_likelihood["survival"].sizes["patient"] == 230
    assert res.info.inference == "nuts" and res.info.estimand == "marginal" and res.info.n_treated == 127
    assert res.spec.layout == "collapsed" and res.spec.n_intervals == len(res.idata.attrs["cuts"])
    fig = res.plot()
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(t.startswith("HAIC arm (n = 127)") for t in legend)
    assert any(t.startswith("control arm (n = 103)") for t in legend)
    assert res.hr["median"] == s.iloc[0]["median"]


def test_prior_and_overrides_reach_the_fit(tmp_path):
    cfg = tmp_path / "light.toml"
    cfg.write_text(LIGHT)
    df = pd.read_csv(SYNTHETIC)
    tight = bh.fit(df, endpoint="pfs", covariates=[], prior="skeptical",
                   overrides=["survival.log_hr.sigma=0.05"], config=cfg)
    s = tight.summary()
    assert s.iloc[0]["prior"] == "skeptical+survival.log_hr.sigma=0.05"
    assert 0.85 < s.iloc[0]["median"] < 1.05  # a prior this tight holds the HR near 1


def test_orr_and_balance_on_a_frame(tmp_path):
    cfg = tmp_path / "light.toml"
    cfg.write_text(LIGHT)
    df = own_frame()
    res = bh.fit(df, endpoint="orr", covariates=["age"], columns=OWN, time_unit="weeks",
                 config=cfg)
    assert list(res.summary()["measure"]) == ["rd", "rr", "or"]
    assert res.plot().axes[0].get_xlabel().startswith("ORR risk difference, treated - control")
    with pytest.raises(InputError, match="no response data"):
        bh.fit(df.drop(columns=["responder"]), endpoint="orr", columns={k: v for k, v in OWN.items() if k != "response"},
               time_unit="weeks", config=cfg)
    bal = bh.balance(df, covariates=["age", "ecog_1", "mvi"], columns=OWN, time_unit="weeks")
    assert list(bal.table["covariate"]) == ["age", "ecog_1", "mvi"]
    assert bal.summary()["n_pairs"] > 50
    assert main(["balance", "--cohort", str(SYNTHETIC), "--covariates", "age,ecog_1,mvi",
                 "--out", str(tmp_path / "b")]) == 0
    cli = pd.read_csv(tmp_path / "b" / "balance.csv")
    np.testing.assert_allclose(bal.table["smd_before"], cli["smd_before"], rtol=1e-5)
    np.testing.assert_allclose(bal.table["smd_weighted"], cli["smd_weighted"], rtol=1e-5)
    with pytest.raises(InputError, match="column 'os_weeks' \\(mapped to os_time\\), row 3"):
        bad = df.copy()
        bad.loc[2, "os_weeks"] = -1
        bh.balance(bad, covariates=["age"], columns=OWN, time_unit="weeks")


def test_worked_example_on_the_rotterdam_cohort(tmp_path, capsys):
    """examples/rotterdam.py runs (light sampling) and finds what the data are known to show:
    the crude HR of hormonal therapy is confounded by indication (> 1); weighting moves it below
    the crude one."""
    spec = importlib.util.spec_from_file_location("rotterdam_example", ROOT / "examples" / "rotterdam.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    results = example.main(tmp_path, draws=200, n_boot=20)
    hr = results[results["measure"] == "hr"].set_index("adjustment")
    assert hr.loc["none", "lower"] > 1.0
    assert hr.loc["iptw", "median"] < hr.loc["none", "median"]
    assert (results["n_treated"] == 339).all() and (results["n_control"] == 2643).all()
    assert {"reference", "skeptical"} <= set(results["prior"])
    assert (tmp_path / "km_iptw.png").stat().st_size > 10_000
    out = capsys.readouterr().out
    assert "2982 patients" in out and "hormonal therapy" in out
    left = out.split("left imbalanced by the ATE weights")[1].split("overlap (ATO)")[0]
    assert left.split("\n")[2].split()[0] == "chemo"  # the largest |SMD| first
    # the IPTW FitResult says so too (its repr; .imbalance() is the table above)
    assert "design: 6 covariate(s) left imbalanced by the IPT weights, largest chemo" in out
    assert out.count("covariate(s) left imbalanced") == 1  # not the unadjusted or covariate fits


def test_a_cohort_with_os_only_fits_os_exactly_as_with_pfs_and_refuses_pfs(tmp_path):
    """Leaving the PFS columns out changes nothing of an OS analysis (same seeded draws as the
    same cohort with them, the propensity design included), and a PFS fit is a clear error
    naming what the cohort has."""
    cfg = tmp_path / "light.toml"
    cfg.write_text(LIGHT)
    full = pd.read_csv(SYNTHETIC)
    os_only = full.drop(columns=["pfs_time", "pfs_event"])
    covs = ["age", "ecog_1", "mvi"]
    a = bh.fit(full, endpoint="os", adjust="ps_covariate", covariates=covs, config=cfg)
    b = bh.fit(os_only, endpoint="os", adjust="ps_covariate", covariates=covs, config=cfg)
    np.testing.assert_array_equal(a.idata.posterior["log_hr"].values, b.idata.posterior["log_hr"].values)
    assert b.cohort.endpoints == ("os",)
    with pytest.raises(InputError) as err:
        bh.fit(os_only, endpoint="pfs", adjust="none", covariates=covs, config=cfg)
    msg = " ".join(str(err.value).split())
    assert "no progression-free survival (PFS) data" in msg and "has OS only" in msg
    assert main(["fit", "--cohort", str(_csv(tmp_path, os_only)), "--endpoint", "pfs",
                 "--config", str(cfg), "--out", str(tmp_path / "pfs")]) == 2
    assert not (tmp_path / "pfs").exists()


def _csv(tmp_path, frame):
    path = tmp_path / "cohort.csv"
    frame.to_csv(path, index=False)
    return path


def test_fit_describes_the_data_as_its_configuration_does(tmp_path):
    """bh.fit(df, config=C) reads the data as the command line reads it with --config C: C's
    [data] columns, time unit, arm and endpoint names and covariates, each unless given. The
    same draws as with every description given explicitly; an explicit one wins."""
    import json

    cfg = tmp_path / "own.toml"
    cfg.write_text(LIGHT + "[data]\ntime_unit = \"weeks\"\ncovariates = [\"age\", \"ecog_1\", \"mvi\"]\n"
                   "[data.columns]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in OWN.items())
                   + "[data.arms]\ntreated = \"HAIC\"\ncontrol = \"no HAIC\"\n")
    df = own_frame().assign(noise=1.0)  # an extra column the configuration leaves out
    from_config = bh.fit(df, endpoint="os", adjust="iptw", config=cfg, n_boot=30)
    explicit = bh.fit(df, endpoint="os", adjust="iptw", config=cfg, n_boot=30, columns=OWN,
                      time_unit="weeks", arms=("HAIC", "no HAIC"), covariates=["age", "ecog_1", "mvi"])
    assert from_config.cohort.covariates == ["age", "ecog_1", "mvi"]
    assert from_config.cohort.arms == ("HAIC", "no HAIC")
    np.testing.assert_array_equal(from_config.idata.posterior["log_hr"].values,
                                  explicit.idata.posterior["log_hr"].values)
    renamed = bh.fit(df, endpoint="os", adjust="none", config=cfg, arms=("A", "B"))
    assert renamed.cohort.arms == ("A", "B")
