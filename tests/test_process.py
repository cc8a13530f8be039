"""The command-line process's own tuning (``bayes_haic.process``) changes no number.

Each test runs a fresh interpreter: the tuning acts on a whole process (its imports, its garbage
collector), which the test process, having imported everything already, cannot show.
"""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

from bayes_haic.paths import default_cohort_path
from bayes_haic.pipeline import run_fit

from test_pipeline import fast_config  # noqa: E402

# A fit in a process tuned as the console script tunes it, then what the tuning left behind.
PROBE = r"""
import json, sys
from bayes_haic import process
process.start()
from bayes_haic.pipeline import run_fit
process.settle()
cohort, cfg, out = sys.argv[1:4]
run_fit(cohort, "os", "none", out, seed=5, config_path=cfg, echo=lambda m: None)
import numba
from arviz.stats import ecdf_utils
import numpy as np
from scipy import stats
k = np.arange(8)
compiled_before = list(ecdf_utils._binom_pmf.types)
pmf = ecdf_utils._binom_pmf(k, 7, 0.3, 0)
print(json.dumps({
    "hidden": [m for m in process.UNUSED_PACKAGES if m in sys.modules and sys.modules[m] is None],
    "ufunc_compiled_at_import": compiled_before,
    "ufunc_equals_scipy": bool(np.allclose(pmf, stats.binom.pmf(k, 7, 0.3), rtol=1e-12)),
    "vectorize_restored": numba.vectorize.__module__ == "numba.np.ufunc.decorators",
    "finder_left": [type(f).__name__ for f in sys.meta_path if "Arviz" in type(f).__name__],
}))
process.end(0)
"""


def test_tuned_process_gives_the_same_fit_and_leaves_no_trace(tmp_path):
    """A ``fit`` in a process tuned like the console script's (collector frozen, unused packages hidden,
    ArviZ's import-time ufunc compiled lazily) writes the same results as the same seeded fit in
    this (untuned) process, and a posterior file that reads back; ArviZ's ufunc was not compiled
    at import, still equals the binomial pmf when called, and numba is left as it was."""
    cfg = fast_config(tmp_path, default_cohort_path())
    done = subprocess.run([sys.executable, "-c", PROBE, str(default_cohort_path()), str(cfg),
                           str(tmp_path / "cli")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {"hidden": ["dask", "numcodecs", "zarr"], "ufunc_compiled_at_import": [],
                    "ufunc_equals_scipy": True, "vectorize_restored": True, "finder_left": []}
    here = run_fit(default_cohort_path(), "os", "none", tmp_path / "here", seed=5, config_path=cfg,
                   echo=lambda m: None)
    there = pd.read_csv(tmp_path / "cli" / "results.csv")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "here" / "results.csv"), there)
    assert len(here) == len(there)

    import arviz as az

    a = az.from_netcdf(tmp_path / "cli" / "posterior.nc").posterior["log_hr"].values
    b = az.from_netcdf(tmp_path / "here" / "posterior.nc").posterior["log_hr"].values
    assert (a == b).all()


def test_hiding_zarr_takes_nothing_from_pymc():
    """The console script hides numcodecs and zarr because PyMC's zarr trace backend cannot use
    the installed zarr anyway; if a PyMC or zarr upgrade makes the backend available, this fails
    and the hiding must be reconsidered (``process.UNUSED_PACKAGES``)."""
    from pymc.backends import zarr as pymc_zarr

    assert pymc_zarr._zarr_available is False


def test_validate_runs_on_dask_from_the_console_script(tmp_path):
    """The console script hides dask from every command but ``validate``, which imports
    ``dask.distributed``: ``validate --report-only`` (computes nothing, but starts from the
    study's truths and its Dask imports) exits 0 and writes its page."""
    exe = Path(sys.executable).with_name("bayes-haic")
    done = subprocess.run([str(exe), "validate", "--report-only", "--no-progress", "--out",
                           str(tmp_path / "v")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "v" / "validation.html").exists()
    assert "ImportError" not in done.stderr and "No module named 'dask" not in done.stderr


NOTICE_PROBE = r"""
import sys
from bayes_haic import process
if sys.argv[1] == "command":
    process.start()
import arviz
"""


def test_the_command_line_does_not_print_arvizs_daily_notice(tmp_path):
    """ArviZ 0.23.4 prints a FutureWarning about its coming 1.0 at its first import of the day
    (remembered in a file of the user's cache folder). A command-line process does not print it;
    a Python session does. Each interpreter gets its own empty cache folder, so both would see
    the notice; the second half shows that the probe can see it at all."""
    def stderr(mode):
        env = {**__import__("os").environ, "XDG_CACHE_HOME": str(tmp_path / mode),
               "PYTHONWARNINGS": "default"}
        return subprocess.run([sys.executable, "-c", NOTICE_PROBE, mode], capture_output=True,
                              text=True, env=env, check=True).stderr

    assert "ArviZ is undergoing" not in stderr("command")
    assert "ArviZ is undergoing" in stderr("session")
