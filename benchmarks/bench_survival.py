"""Benchmark: the same unadjusted PWE fit through the collapsed path and a naive per-row model.

Run: ``python benchmarks/bench_survival.py [--n 2000] [--repeats 3] [--draws 1000]
[--baseline independent|rw] [--nutpie]``.

Both models have the same priors, parameters and sampler settings (the baseline given, default
independent as in the main job; 8 quantile intervals);
the collapsed model is ``survival.fit_pwe`` (2J Poisson cells, cached graph), the naive model is
``survival.build_pwe_rows_model`` (one Poisson term per patient-interval) sampled by
``sampling.sample``. Printed per path: median wall time over repeats (seconds, including
PyMC's per-call compilation), bulk ESS of ``log_hr`` and ESS per second; and the speed-up ratio.
With ``--nutpie`` the collapsed path is also timed with nutpie, where the compiled model is
reused across fits (the first, compiling fit is reported separately).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import arviz as az
import numpy as np
import pandas as pd

from bayes_haic import survival as sv
from bayes_haic.sampling import SamplerSettings, sample


def simulate(n: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, n)
    t = rng.exponential(1 / (0.08 * 0.5**x))
    c = rng.uniform(0, 36, n)
    return pd.DataFrame({"treatment": x, "os_time": np.minimum(t, c), "os_event": (t <= c).astype(int)})


def ess(idata) -> float:
    return float(az.ess(idata, var_names=["log_hr"], method="bulk")["log_hr"])


def timed(fn, repeats):
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        idata = fn()
        out.append((time.perf_counter() - t0, ess(idata)))
    return out


def report(label, runs):
    wall = float(np.median([w for w, _ in runs]))
    e = float(np.median([e for _, e in runs]))
    print(f"{label:<34} wall {wall:7.2f} s   ESS_bulk(log_hr) {e:7.0f}   ESS/s {e / wall:8.1f}")
    return wall, e / wall


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--nutpie", action="store_true")
    ap.add_argument("--baseline", default="independent", choices=sv.BASELINES)
    a = ap.parse_args(argv)
    df = simulate(a.n)
    cuts = sv.cut_points(df.os_time, df.os_event)
    # the settings fit_pwe uses (a random-walk baseline raises target_accept), for both paths
    settings = sv.sampler_for(SamplerSettings(draws=a.draws, tune=a.draws, chains=2),
                              baseline=a.baseline, n_intervals=len(cuts))
    fit = lambda s: sv.fit_pwe(df, "os", cuts=cuts, sampler=s, baseline=a.baseline)
    rows = sv.expand_person_intervals(df.os_time, df.os_event, df.treatment, cuts)
    print(f"n = {a.n} patients, {len(rows)} patient-interval rows, {len(cuts)} intervals, "
          f"{a.draws} tune + {a.draws} draws x 2 chains, {a.baseline} baseline, "
          f"target_accept {settings.target_accept}, median of {a.repeats} repeats")
    fit(settings)  # warm the compilation caches once
    c_wall, c_rate = report("collapsed (PyMC NUTS)", timed(lambda: fit(settings), a.repeats))
    naive = lambda: sample(sv.build_pwe_rows_model(rows, len(cuts), baseline=a.baseline), settings)
    r_wall, r_rate = report("per-row (PyMC NUTS)", timed(naive, a.repeats))
    print(f"ratio per-row / collapsed: wall {r_wall / c_wall:.1f}x, ESS/s {c_rate / r_rate:.1f}x")
    if a.nutpie:
        ns = replace(settings, backend="nutpie")
        sv.clear_model_cache()
        report("collapsed (nutpie, first: compile)", timed(lambda: fit(ns), 1))
        n_wall, n_rate = report("collapsed (nutpie, reused)", timed(lambda: fit(ns), a.repeats))
        print(f"ratio per-row (PyMC) / collapsed (nutpie, reused): wall {r_wall / n_wall:.1f}x, "
              f"ESS/s {n_rate / r_rate:.1f}x")


if __name__ == "__main__":
    main()
