"""Benchmark: issue #16's speed targets, each printed beside what this machine measures.

Run: ``python benchmarks/bench_targets.py [--repeats 3] [--main-repeats 1] [--no-cold] [--no-brms]``.

Measured as fresh processes (interpreter start, imports and the compile caches included), medians
over repeats, seconds:

* the main job, ``bayes-haic run --out DIR`` (what ``make report`` runs), with a warm compile
  cache (target <= 45 s) and with an empty one (target <= 90 s): the empty cache is a new
  PyTensor compile folder (``PYTENSOR_FLAGS=base_compiledir=...``), which holds PyTensor's C and
  numba caches and this package's cached nutpie C callbacks (:mod:`bayes_haic.sampling`);
* one fit, ``bayes-haic fit --endpoint os --adjust none --out DIR`` (target <= 3 s), and the same
  model in brms (R/Stan; the person-interval Poisson form with an offset, the same priors on
  the log HR, 2 chains x 1000 + 1000 iterations, Stan's compilation included) when R and brms are
  installed (``Rscript``; otherwise it says so): target ratio <= 0.07. Beside it, measures
  without a target that show where the one-fit time goes: the *import floors* (a process that
  only imports PyMC, nutpie and pyplot, which every fit needs; and one that imports only what a
  fit would need without PyMC and ArviZ), the same fit with an empty compile cache (its model
  structure compiled by numba, as on a new machine), and a refit under another prior in a
  Python session that has fitted once (``bh.fit``: imports and compilation paid once).

The 100,000- and 1,000,000-patient targets are measured by ``benchmarks/bench_scale.py`` and the
validation study's per-replicate costs by ``benchmarks/bench_validation.py``. Speed is measured
here, never in a timed test.

Earlier runs of this script, session by session: ``benchmarks/HISTORY.md``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import machine  # benchmarks/machine.py

ROOT = Path(__file__).resolve().parents[1]
EXE = Path(sys.executable).with_name("bayes-haic")

BRMS_SCRIPT = r"""
suppressMessages(library(brms))
d <- read.csv("{rows}")
d$interval <- factor(d$interval)
fit <- brm(event ~ 0 + interval + treatment + offset(log(exposure)), family = poisson(), data = d,
           prior = c(set_prior("normal(0, 1)", class = "b", coef = "treatment"),
                     set_prior("normal(-3, 2)", class = "b")),
           chains = 2, iter = 2000, warmup = 1000, seed = 1, refresh = 0, silent = 2, cores = 1)
cat("log_hr", fixef(fit)["treatment", "Estimate"], "\n")
"""


def timed(cmd, env=None, cwd=ROOT) -> float:
    """Wall seconds of one fresh process (raises if it fails)."""
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed:\n{p.stderr[-2000:]}")
    return time.perf_counter() - t0


def main_job(repeats: int, cold: bool) -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as d:
        timed([str(EXE), "run", "--out", f"{d}/warmup"])  # fills the caches
        out["main job, warm cache"] = statistics.median(
            timed([str(EXE), "run", "--out", f"{d}/r{i}"]) for i in range(repeats))
        if cold:
            env = dict(os.environ, PYTENSOR_FLAGS=f"base_compiledir={d}/empty-cache")
            out["main job, empty cache"] = timed([str(EXE), "run", "--out", f"{d}/cold"], env=env)
    return out


def one_fit(repeats: int, cold: bool) -> dict:
    """The one-fit command's median wall seconds with warm caches and, if ``cold``, once with an
    empty compile folder (what a first fit on a new machine costs: its model structure compiles)."""
    out = {}
    with tempfile.TemporaryDirectory() as d:
        cmd = [str(EXE), "fit", "--endpoint", "os", "--adjust", "none", "--out", d]
        timed(cmd)  # warm the caches
        out["warm"] = statistics.median(timed(cmd) for _ in range(repeats))
        if cold:
            env = dict(os.environ, PYTENSOR_FLAGS=f"base_compiledir={d}/empty-cache")
            out["cold"] = timed(cmd, env=env)
    return out


#: what every fit imports today (PyMC imports PyTensor and ArviZ; nutpie imports ArviZ too)
FIT_IMPORTS = "pymc, nutpie, matplotlib.pyplot"
#: what a fit would still import without PyMC, PyTensor, ArviZ and nutpie's Python package: the
#: cohort (pandas), the trace (xarray, pyarrow), cached C callbacks (numba), the figures (pyplot)
#: and the netCDF file (h5netcdf)
BARE_IMPORTS = "pandas, xarray, pyarrow, numba, matplotlib.pyplot, h5netcdf"


def import_floor(repeats: int, modules: str = FIT_IMPORTS) -> float:
    """Median wall seconds of a process that only imports ``modules`` and does nothing else,
    tuned as the ``bayes-haic`` command-line process is (:mod:`bayes_haic.process`: the collector
    off during the imports, dask hidden, ArviZ's import-time ufunc compiled lazily, no final
    collection at exit). With :data:`FIT_IMPORTS`, the floor under the one-fit time on this
    machine before any of this package's code runs; with :data:`BARE_IMPORTS`, the floor under
    any fit written in Python with the design card's other libraries, PyMC and ArviZ left out."""
    cmd = [sys.executable, "-c",
           f"from bayes_haic import process; process.start(); import {modules}; process.end(0)"]
    timed(cmd)  # the file-system cache
    return statistics.median(timed(cmd) for _ in range(repeats))


API_REFIT = """
import statistics, sys, time
import pandas as pd
import bayes_haic as bh
from bayes_haic.paths import default_cohort_path
df = pd.read_csv(default_cohort_path())
bh.fit(df, endpoint="os", adjust="none")  # imports, compile cache, first fit
times = []
for prior in ("skeptical", "pessimistic", "reference")[:int(sys.argv[1])]:
    t = time.perf_counter()
    bh.fit(df, endpoint="os", adjust="none", prior=prior).summary()
    times.append(time.perf_counter() - t)
print(statistics.median(times))
"""


def api_refit(repeats: int) -> float:
    """Median wall seconds of a refit of the same model under another prior set in a Python
    session that has already fitted it once (``bh.fit(...).summary()``): what an interactive user
    waits for after the first fit, the imports and the compile cache paid once per session."""
    out = subprocess.run([sys.executable, "-c", API_REFIT, str(max(1, min(repeats, 3)))],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return float(out.stdout.split()[-1])


def brms_fit(repeats: int) -> float | str:
    """Median wall seconds of the brms fit as an ``Rscript`` process, or why it was not run."""
    if shutil.which("Rscript") is None:
        return "not measured: Rscript is not installed"
    probe = subprocess.run(["Rscript", "-e", "cat(requireNamespace('brms', quietly=TRUE))"],
                           capture_output=True, text=True)
    if probe.stdout.strip() != "TRUE":
        return "not measured: the R package brms is not installed"
    from bayes_haic import analysis, survival
    from bayes_haic.paths import default_cohort_path
    from bayes_haic.schema import load_cohort

    cohort = load_cohort(default_cohort_path())
    t, d, x = survival.endpoint_columns(cohort.frame, "os")
    cuts = analysis.endpoint_cuts(cohort, "os", "quantile", 8)
    rows = survival.expand_person_intervals(t, d, x, cuts)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.csv"
        rows[rows["exposure"] > 0].to_csv(path, index=False)
        script = Path(tmp) / "fit.R"
        script.write_text(BRMS_SCRIPT.format(rows=path.as_posix()))
        try:
            return statistics.median(timed(["Rscript", str(script)], cwd=tmp) for _ in range(repeats))
        except RuntimeError as err:
            return f"not measured: brms failed ({str(err).splitlines()[-1][:120]})"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="repeats of the one-fit processes")
    ap.add_argument("--main-repeats", type=int, default=1, help="repeats of the warm main job")
    ap.add_argument("--no-cold", action="store_true", help="skip the empty-cache runs (main job, one fit)")
    ap.add_argument("--no-brms", action="store_true", help="skip the brms comparison")
    ap.add_argument("--no-main", action="store_true", help="skip the main job")
    a = ap.parse_args(argv)
    ticks = machine.started("bench_targets")
    rows = []
    if not a.no_main:
        m = main_job(a.main_repeats, cold=not a.no_cold)
        rows.append(("main job, warm compile cache", "<= 45 s", f"{m['main job, warm cache']:.0f} s"))
        if "main job, empty cache" in m:
            rows.append(("main job, empty compile cache", "<= 90 s", f"{m['main job, empty cache']:.0f} s"))
    fits = one_fit(a.repeats, cold=not a.no_cold)
    fit = fits["warm"]
    rows.append(("one fit, whole process", "<= 3 s", f"{fit:.1f} s"))
    floor = import_floor(a.repeats)
    rows.append(("  floor: importing PyMC, nutpie, pyplot", "(none)", f"{floor:.1f} s"))
    rows.append(("  the fit after those imports (difference)", "(none)", f"{fit - floor:.1f} s"))
    rows.append(("  floor without PyMC/ArviZ (see BARE_IMPORTS)", "(none)",
                 f"{import_floor(a.repeats, BARE_IMPORTS):.1f} s"))
    if "cold" in fits:
        rows.append(("  one fit, empty compile cache", "(none)", f"{fits['cold']:.1f} s"))
    rows.append(("  refit under another prior, Python session", "(none)", f"{api_refit(a.repeats):.2f} s"))
    if not a.no_brms:
        b = brms_fit(max(1, min(a.repeats, 2)))
        if isinstance(b, float):
            rows.append(("brms, same model, whole process", "(peer)", f"{b:.1f} s"))
            rows.append(("one fit / brms", "<= 0.07", f"{fit / b:.3f}"))
        else:
            rows.append(("brms, same model", "(peer)", b))
    print(f"{'target':<48}{'goal':>10}   measured (median)")
    for name, goal, value in rows:
        print(f"{name:<48}{goal:>10}   {value}")
    print(f"{machine.ended(ticks)}; 100k/1M patients: "
          "benchmarks/bench_scale.py; validation per-replicate cost: benchmarks/bench_validation.py")


if __name__ == "__main__":
    main()
