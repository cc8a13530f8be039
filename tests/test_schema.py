"""The cohort validator: every kind of bad input gets a one-paragraph error and exit code 2."""

import json

import pytest

from bayes_haic.cli import main
from bayes_haic.errors import InputError
from bayes_haic.schema import load_cohort, summarise_cohort

GOOD = """id,treatment,os_time,os_event,pfs_time,pfs_event,response,age,mvi
p1,1,10.5,1,5.0,1,1,50,0
p2,1,12.0,0,3.0,1,,60,1
p3,0,4.0,1,2.0,1,0,70,1
p4,0,6.0,0,6.0,0,0,65,0
"""


def write(tmp_path, text, name="cohort.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_good_cohort_loads_with_types_and_default_covariates(tmp_path):
    cohort = load_cohort(write(tmp_path, GOOD))
    assert cohort.covariates == ["age", "mvi"]
    assert cohort.data_tier == "user"
    assert cohort.n_treated == 2 and cohort.n_control == 2
    assert cohort.frame["response"].isna().sum() == 1
    assert cohort.frame["os_event"].dtype.kind == "i"


def test_sidecar_declares_tier_and_covariates(tmp_path):
    path = write(tmp_path, GOOD)
    (tmp_path / "cohort.meta.json").write_text(json.dumps({"data_tier": "synthetic", "covariates": ["mvi"]}))
    cohort = load_cohort(path)
    assert cohort.data_tier == "synthetic" and cohort.covariates == ["mvi"]


def test_summary_matches_direct_computation(tmp_path):
    cohort = load_cohort(write(tmp_path, GOOD))
    table = summarise_cohort(cohort)
    # a user's cohort without arm names: "treated" (treatment = 1) and "control"
    assert list(table.columns) == ["treated", "control"]
    assert table.loc["patients", "treated"] == 2
    assert table.loc["ORR (%)", "treated"] == pytest.approx(100.0)  # 1 of 1 evaluable
    assert table.loc["response not evaluable", "treated"] == 1
    # control OS: death at 4, censored at 6 -> KM drops to 0.5 at t=4, so the median is 4 months
    assert table.loc["median OS (months, KM)", "control"] == pytest.approx(4.0)
    assert table.loc["mean age", "control"] == pytest.approx(67.5)


BAD_CASES = {
    "missing column": (GOOD.replace("os_event", "os_evnt"), ["'os_event'", "os_evnt"]),
    "non-numeric time": (GOOD.replace("4.0,1,2.0", "four,1,2.0"), ["'os_time'", "line 4", "'four'"]),
    "negative time": (GOOD.replace("6.0,0,6.0", "-6.0,0,6.0"), ["'os_time'", "line 5", "non-negative"]),
    "event not 0/1": (GOOD.replace("10.5,1,", "10.5,2,"), ["'os_event'", "line 2", "0 or 1"]),
    "PFS after OS": (GOOD.replace("12.0,0,3.0", "12.0,0,13.0"), ["'pfs_time'", "line 3", "pfs_time <= os_time"]),
    "duplicate id": (GOOD.replace("p4,", "p1,"), ["'id'", "lines 2, 5", "unique"]),
    "column full of missing": (
        GOOD.replace(",50,", ",,").replace(",60,", ",,").replace(",70,", ",,").replace(",65,", ",,"),
        ["'age'", "empty in every row"],
    ),
    "missing covariate value": (GOOD.replace(",50,", ",,"), ["'age'", "line 2", "may not be missing"]),
    "empty arm": (GOOD.replace("p3,0", "p3,1").replace("p4,0", "p4,1"), ["'treatment'", "treatment = 0"]),
    "bad response": (GOOD.replace("3.0,1,,60", "3.0,1,yes,60"), ["'response'", "line 3", "'yes'"]),
    "death not a PFS event": (GOOD.replace("6.0,0,6.0,0", "6.0,1,6.0,0"), ["'pfs_event'", "line 5"]),
    "no rows": ("id,treatment,os_time,os_event,pfs_time,pfs_event,response\n", ["no patient rows"]),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_gets_clear_error_and_exit_2(tmp_path, capsys, case):
    text, expected = BAD_CASES[case]
    path = write(tmp_path, text)
    with pytest.raises(InputError):
        load_cohort(path)
    code = main(["check-cohort", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    assert str(path) in err.replace("\n", " ").replace(" ", "") or path.name in err
    flat = " ".join(err.split())
    for needle in expected:
        assert needle in flat, (needle, flat)


def test_unknown_covariate_suggests_close_name(tmp_path, capsys):
    path = write(tmp_path, GOOD)
    assert main(["check-cohort", str(path), "--covariates", "age,mvii"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "'mvii'" in err and "did you mean 'mvi'" in err


def test_missing_file(tmp_path, capsys):
    assert main(["check-cohort", str(tmp_path / "nope.csv")]) == 2
    assert "no such cohort file" in capsys.readouterr().err


def test_check_cohort_prints_summary(tmp_path, capsys):
    assert main(["check-cohort", str(write(tmp_path, GOOD))]) == 0
    out = capsys.readouterr().out
    assert "valid cohort" in out and "median OS" in out and "treated" in out


def test_check_cohort_takes_the_cohort_as_fit_and_balance_do(tmp_path, capsys):
    """``check-cohort FILE``, ``check-cohort --cohort FILE`` (as ``fit`` and ``balance`` spell
    it) and ``check-cohort --config C`` (the configuration's [data] cohort) check the same
    file; two different files are a user error (exit 2, one paragraph)."""
    path = write(tmp_path, GOOD)
    cfg = tmp_path / "main.toml"
    cfg.write_text(f'[data]\ncohort = "{path.as_posix()}"\n')
    outs = []
    for args in ([str(path)], ["--cohort", str(path)], ["--config", str(cfg)],
                 [str(path), "--cohort", str(path)]):
        assert main(["check-cohort", *args]) == 0
        outs.append(capsys.readouterr().out)
    assert len(set(outs)) == 1 and "valid cohort" in outs[0] and "4 patients" in outs[0]
    other = write(tmp_path, GOOD, name="other.csv")
    assert main(["check-cohort", str(path), "--cohort", str(other)]) == 2
    err = capsys.readouterr().err
    assert "two cohort files" in err and "other.csv" in err and "Traceback" not in err


def test_check_cohort_says_not_reached_and_no_data_rather_than_inf_and_nan(tmp_path, capsys):
    """A Kaplan-Meier median the curve never reaches (every control censored) prints as "not
    reached", an ORR without evaluable responses as a dash, as the report shows them."""
    text = GOOD.replace("p3,0,4.0,1,2.0,1,0", "p3,0,4.0,0,2.0,1,").replace("p4,0,6.0,0,6.0,0,0",
                                                                          "p4,0,6.0,0,6.0,0,")
    assert main(["check-cohort", str(write(tmp_path, text))]) == 0
    lines = {line.split("  ")[0]: line for line in capsys.readouterr().out.splitlines()}
    assert lines["median OS (months, KM)"].split()[-2:] == ["not", "reached"]
    assert lines["median OS (months, KM)"].split()[-3] == "10.5"  # the treated arm's
    assert lines["ORR (%)"].split()[-1] == "–" and "nan" not in lines["ORR (%)"]
    assert "inf" not in lines["median OS (months, KM)"]


def test_sidecar_cannot_claim_published_tier(tmp_path):
    path = write(tmp_path, GOOD)
    (tmp_path / "cohort.meta.json").write_text(json.dumps({"data_tier": "published"}))
    with pytest.raises(InputError, match="data_tier"):
        load_cohort(path)


def test_console_entry_point_exits_2_on_bad_input_and_main_leaves_gc_alone(tmp_path):
    """The console script (which tunes the garbage collector for a short process) still turns a
    user mistake into one paragraph and exit code 2; main() called in a Python session leaves
    the collector as it found it."""
    import gc
    import subprocess
    import sys

    bad = write(tmp_path, BAD_CASES["bad response"][0])
    proc = subprocess.run([sys.executable, "-c", "from bayes_haic.cli import run; run()", "check-cohort",
                           str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "'response'" in proc.stderr
    good = write(tmp_path, GOOD)
    proc = subprocess.run([sys.executable, "-c", "from bayes_haic.cli import run; run()", "check-cohort",
                           str(good)], capture_output=True, text=True)
    assert proc.returncode == 0 and "valid cohort" in proc.stdout
    frozen, enabled = gc.get_freeze_count(), gc.isenabled()
    assert main(["check-cohort", str(good)]) == 0
    assert (gc.get_freeze_count(), gc.isenabled()) == (frozen, enabled)


def test_cohort_without_response_data_is_for_survival_only(tmp_path):
    """An all-empty response column is a survival-only cohort (e.g. a registry); asking it for
    a response model is a clear error."""
    from bayes_haic import analysis

    lines = GOOD.strip().split("\n")
    header = lines[0].split(",")
    k = header.index("response")
    rows = [",".join(v if i != k else "" for i, v in enumerate(line.split(","))) for line in lines[1:]]
    path = write(tmp_path, "\n".join([lines[0], *rows]) + "\n")
    cohort = load_cohort(path)
    assert not cohort.has_response and load_cohort(write(tmp_path, GOOD)).has_response
    with pytest.raises(InputError) as err:
        analysis.fit_orr(cohort, "none")
    msg = " ".join(str(err.value).split())
    assert msg.startswith(f"{path}: no response data (the response column is missing or empty")
    assert "expected a survival endpoint it has (os, pfs)" in msg


# --------------------------------------------------------------------------- own columns, units


OWN = """pid,chemo,dtime,death,rtime,recur,age,mvi
p1,1,300,1,150,1,50,0
p2,1,365.25,0,91.3125,1,60,1
p3,0,120,1,60,1,70,1
p4,0,180,0,180,0,65,0
"""
MAP = {"id": "pid", "treatment": "chemo", "os_time": "dtime", "os_event": "death",
       "pfs_time": "rtime", "pfs_event": "recur"}


def test_own_column_names_days_and_no_response_column(tmp_path):
    """A survival-only file with its own names and times in days: mapped once, at the door."""
    cohort = load_cohort(write(tmp_path, OWN), columns=MAP, time_unit="days",
                         arms=("chemo", "no chemo"))
    f = cohort.frame
    assert set(f.columns) == {"id", "treatment", "os_time", "os_event", "pfs_time",
                              "pfs_event", "response", "age", "mvi"}
    assert cohort.covariates == ["age", "mvi"]
    assert f["os_time"].iloc[1] == pytest.approx(12.0)  # 365.25 days = 12 months
    assert f["pfs_time"].iloc[1] == pytest.approx(3.0)
    assert f["os_time"].iloc[0] == pytest.approx(300 * 12 / 365.25)
    assert not cohort.has_response and f["response"].isna().all()
    assert cohort.arms == ("chemo", "no chemo")
    assert list(summarise_cohort(cohort).columns) == ["chemo", "no chemo"]


@pytest.mark.parametrize("unit, factor", [("weeks", 7 * 12 / 365.25), ("years", 12.0), ("months", 1.0)])
def test_time_units(tmp_path, unit, factor):
    cohort = load_cohort(write(tmp_path, GOOD), time_unit=unit)
    assert cohort.frame["os_time"].iloc[0] == pytest.approx(10.5 * factor)


def test_errors_name_the_files_own_columns(tmp_path):
    path = write(tmp_path, OWN.replace("p3,0,120", "p3,0,soon"))
    with pytest.raises(InputError) as info:
        load_cohort(path, columns=MAP, time_unit="days")
    msg = str(info.value)
    assert str(path) in msg and "column 'dtime' (mapped to os_time)" in msg
    assert "line 4" in msg and "'soon'" in msg and "number of days" in msg
    # a mapped column the file does not have, with a suggestion
    with pytest.raises(InputError, match=r"os_time -> 'dtme' \(did you mean 'dtime'\?\)"):
        load_cohort(write(tmp_path, OWN), columns={**MAP, "os_time": "dtme"})
    with pytest.raises(InputError, match="unknown schema column"):
        load_cohort(write(tmp_path, OWN), columns={**MAP, "arm": "chemo"})
    with pytest.raises(InputError, match="time unit"):
        load_cohort(write(tmp_path, GOOD), time_unit="fortnights")


VETERAN_LIKE = "pid,arm,t,dead,age\n1,1,100,1,60\n2,0,50,1,70\n3,1,20,0,55\n"
VETERAN_MAP = {"id": "pid", "treatment": "arm", "os_time": "t", "os_event": "dead"}


def test_a_cohort_with_os_only_has_no_pfs_and_says_so(tmp_path, capsys):
    """Found on R's veteran data (OS only): a file without PFS columns, or with both left empty
    in every row, is a cohort of OS only. Its PFS cells are empty (never the OS values), its
    per-arm summary has no PFS rows, and check-cohort says which endpoints it has."""
    cohort = load_cohort(write(tmp_path, VETERAN_LIKE), columns=VETERAN_MAP, time_unit="days")
    f = cohort.frame
    assert cohort.endpoints == ("os",) and cohort.covariates == ["age"]
    assert f["pfs_time"].isna().all() and f["pfs_event"].isna().all()
    assert f["os_event"].tolist() == [1, 1, 0] and f["os_event"].dtype == int
    table = summarise_cohort(cohort)
    assert "OS events" in table.index and not table.index.str.contains("PFS").any()
    assert table.loc["OS events"].tolist() == [1, 1]
    # the same cohort with both PFS columns present but empty
    rows = [line.split(",") for line in GOOD.strip().split("\n")]
    for row in rows[1:]:
        row[4] = row[5] = ""  # pfs_time, pfs_event
    empty = write(tmp_path, "\n".join(",".join(r) for r in rows) + "\n", "empty_pfs.csv")
    both = load_cohort(write(tmp_path, GOOD))
    assert both.endpoints == ("os", "pfs")
    one = load_cohort(empty)
    assert one.endpoints == ("os",) and one.frame["pfs_time"].isna().all()
    assert one.frame["os_time"].tolist() == both.frame["os_time"].tolist()
    assert main(["check-cohort", str(empty)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "survival endpoints: OS only (no PFS data)" in out and "PFS events" not in out


def test_a_cohort_with_pfs_only(tmp_path):
    """The OS columns may be left out instead: PFS only, and no check against OS."""
    text = "id,treatment,pfs_time,pfs_event\np1,1,5,1\np2,0,3,0\np3,1,7,0\n"
    cohort = load_cohort(write(tmp_path, text))
    assert cohort.endpoints == ("pfs",) and cohort.frame["os_time"].isna().all()
    assert list(summarise_cohort(cohort).index[:3]) == ["patients", "PFS events",
                                                        "median PFS (months, KM)"]


def test_half_an_endpoint_or_none_at_all_is_an_error(tmp_path):
    """An endpoint needs its time and its event; a cohort needs at least one endpoint."""
    with pytest.raises(InputError) as err:  # pfs_time without pfs_event
        load_cohort(write(tmp_path, "id,treatment,os_time,os_event,pfs_time\np1,1,5,1,3\n"
                                    "p2,0,4,0,2\n"))
    msg = " ".join(str(err.value).split())
    assert "missing required column(s) 'pfs_event';" in msg
    assert "leaves out both of its columns, not one" in msg
    assert "(found 'id', 'treatment', 'os_time', 'os_event', 'pfs_time')" in msg
    with pytest.raises(InputError, match="column 'pfs_event' is empty in every row"):
        load_cohort(write(tmp_path, "id,treatment,os_time,os_event,pfs_time,pfs_event\n"
                                    "p1,1,5,1,3,\np2,0,4,0,2,\n"))
    with pytest.raises(InputError) as err:  # no survival column at all
        load_cohort(write(tmp_path, "pid,arm,t,dead,age\n1,1,100,1,60\n2,0,50,1,70\n"),
                    columns={"id": "pid", "treatment": "arm"})
    msg = " ".join(str(err.value).split())
    assert "'os_time', 'os_event', 'pfs_time', 'pfs_event'" in msg and "at least one survival" in msg
    with pytest.raises(InputError, match="no survival data"):
        load_cohort(write(tmp_path, "id,treatment,os_time,os_event,pfs_time,pfs_event\n"
                                    "p1,1,,,,\np2,0,,,,\n"))


def test_an_endpoint_the_cohort_lacks_is_refused_with_what_it_has(tmp_path):
    from bayes_haic.schema import require_endpoint

    cohort = load_cohort(write(tmp_path, VETERAN_LIKE), columns=VETERAN_MAP)
    require_endpoint(cohort, "os")
    with pytest.raises(InputError) as err:
        require_endpoint(cohort, "pfs")
    msg = " ".join(str(err.value).split())
    assert str(cohort.path) in msg and "no progression-free survival (PFS) data" in msg
    assert "columns pfs_time and pfs_event are missing or empty in every row" in msg
    assert "this cohort has OS only" in msg


def test_missing_columns_without_a_mapping_say_how_to_map(tmp_path, capsys):
    path = write(tmp_path, OWN)
    code = main(["check-cohort", str(path)])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "missing required column(s)" in err and "--column" in err
    assert "Traceback" not in err


def test_check_cohort_maps_columns_on_the_command_line(tmp_path, capsys):
    path = write(tmp_path, OWN)
    args = ["check-cohort", str(path), "--time-unit", "days", "--arms", "chemo,no chemo"]
    for k, v in MAP.items():
        args += ["--column", f"{k}={v}"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "chemo" in out and "no chemo" in out and "4 patients" in out
    assert main(["check-cohort", str(path), "--column", "treatment"]) == 2
    assert "expected SCHEMA=COLUMN" in " ".join(capsys.readouterr().err.split())


def test_data_frame_route_matches_the_file_route(tmp_path):
    import numpy as np
    import pandas as pd

    from bayes_haic.schema import cohort_from_frame

    df = pd.read_csv(write(tmp_path, GOOD))
    a = cohort_from_frame(df)
    b = load_cohort(tmp_path / "cohort.csv")
    pd.testing.assert_frame_equal(a.frame, b.frame)
    assert a.covariates == b.covariates and a.path == "data frame"
    df.loc[2, "os_time"] = np.nan
    with pytest.raises(InputError) as info:
        cohort_from_frame(df)
    assert "data frame: column 'os_time', row 3" in str(info.value)


def test_missing_value_markers_are_missing_values(tmp_path):
    """Found on R's lung data (written by write.csv): NA, NaN and SAS's '.' are missing values
    as an empty cell is: a response of NA is not evaluable, PFS columns of NA only are no PFS
    data, and covariates with missing values are one message naming every such column, its
    lines and how many patients."""
    text = ("id,treatment,os_time,os_event,pfs_time,pfs_event,response,age,ecog\n"
            "p1,1,10.5,1,NA,NA,1,50,0\np2,1,12.0,0,NA,NA,NA,60,NA\n"
            "p3,0,4.0,1,NA,NA,.,NaN,1\np4,0,6.0,0,NA,NA,0,65,NA\n")
    with pytest.raises(InputError) as err:
        load_cohort(write(tmp_path, text))
    msg = " ".join(str(err.value).split())
    assert "column 'age', line 4; column 'ecog', lines 3, 5:" in msg
    assert "drop the 3 patient(s)" in msg and "found a missing value (an empty cell or NA)" in msg
    cohort = load_cohort(write(tmp_path, text), covariates=[])
    assert cohort.endpoints == ("os",)
    assert cohort.frame["response"].isna().tolist() == [False, True, True, False]
    with pytest.raises(InputError, match=r"column 'os_time', line 2: expected a non-negative "
                                         r"number of months; found a missing value"):
        load_cohort(write(tmp_path, text.replace("p1,1,10.5", "p1,1,NA")), covariates=[])
