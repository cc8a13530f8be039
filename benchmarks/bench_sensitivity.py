"""Benchmark: wall time of the default prior sensitivity study on the synthetic cohort.

Run: ``python benchmarks/bench_sensitivity.py [--repeats 3] [--refit-all] [--pymc]``.

The default study (``sensitivity.run_sensitivity`` with its defaults): OS and PFS, strategy
``none``, the five shipped prior sets, four cut sets (8, 4, 12 quantile intervals and the grid
0-24 months), power-scaling diagnostics, patient-level and published tipping points; nutpie,
1000 tune + 1000 draws x 2 chains, sequential chains. Printed:

* the first study in a fresh process, which compiles one model per number of intervals
  (about 4 structures), with its number of fits;
* the median over ``--repeats`` further studies in the same process (compiled models reused:
  the cost of rerunning, e.g. under other priors or another threshold);
* the parts: one refit (nutpie, compiled), one PSIS reweighting to another prior set, the
  power-scaling diagnostics of one fit, the report section (figures);
* with ``--refit-all``: the same study refitting every posterior instead of reweighting;
* with ``--pymc``: one fit with the PyMC backend, which recompiles at every fit.

Measured on the project machine (2 CPUs, shared with other jobs; load average 1-3), 39 fits
per study (8 x 5 posteriors, 15 of them reweighted, plus the tipping points' refits):

* sampling.py before f6c48334 (nutpie's compile_pymc_model, compiled once per structure):
  fresh process 50-78 s; compiled models reused 19 s (median of 3); one refit 0.42 s;
  without tipping points 17.7 s refitting all 40 posteriors vs 12.1 s reweighting.
* sampling.py at f6c48334 (nutpie from_pyfunc over disk-cached numba functions; two runs,
  load 1-2): fresh process 84-91 s; reused 79-82 s (median of 3); one refit 2.0-2.1 s;
  without tipping points 81 s refitting all vs 52 s reweighting. Compilation is now cheap;
  sampling dominates.
* both: one PSIS reweighting under 0.01 s; power scaling of one fit 0.04 s; report section
  1.1-1.5 s; one PyMC-backend fit (recompiling) 6-20 s.
* ``bayes-haic sensitivity`` with models/main.toml (independent baseline), f6c48334: 41 s.
"""

from __future__ import annotations

import argparse
import os
import time

import matplotlib

matplotlib.use("Agg")

import numpy as np

from bayes_haic import analysis, survival
from bayes_haic import sensitivity as sn
from bayes_haic.paths import default_cohort_path
from bayes_haic.priors import load_prior_set
from bayes_haic.sampling import SamplerSettings
from bayes_haic.schema import load_cohort


def timed(fn, repeats=1):
    out, value = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        value = fn()
        out.append(time.perf_counter() - t0)
    return float(np.median(out)), out, value


def line(label, seconds, extra=""):
    print(f"{label:<58} {seconds:8.2f} s  {extra}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--refit-all", action="store_true", help="also time reweight=False")
    ap.add_argument("--pymc", action="store_true", help="also time one fit with the PyMC backend")
    a = ap.parse_args(argv)
    cohort = load_cohort(default_cohort_path())
    sampler = SamplerSettings(backend="nutpie")
    print(f"{cohort.name}: {cohort.n_treated} + {cohort.n_control} patients; {os.cpu_count()} CPUs; "
          f"nutpie {sampler.tune} tune + {sampler.draws} draws x {sampler.chains} chains")

    first, _, study = timed(lambda: sn.run_sensitivity(cohort))
    line("default study, fresh process (compiles ~4 structures)", first,
         f"{study.timings['fits']} fits, {len(study.posteriors)} posteriors, "
         f"{sum(p.weights is not None for p in study.posteriors)} reweighted")
    warm, runs, study = timed(lambda: sn.run_sensitivity(cohort), a.repeats)
    line(f"default study, compiled models reused (median of {a.repeats})", warm,
         "runs " + ", ".join(f"{r:.1f}" for r in runs))
    for key, value in study.timings.items():
        if key not in ("total", "fits"):
            line(f"  of which {key} (all cut sets, tipping point)", value)
    t_sec, _, _ = timed(study.section)
    line("  report section (tables, 3-4 figures)", t_sec)

    cuts = sn.quantile_cuts(8).cuts(cohort, "os")
    ref, sk = load_prior_set("reference"), load_prior_set("skeptical")
    reps = max(a.repeats, 5)
    t_fit, _, idata = timed(lambda: analysis.fit_survival(cohort, "os", "none", prior_set=sk,
                                                          sampler=sampler, cuts=cuts), reps)
    line(f"one refit, OS, 8 intervals (median of {reps})", t_fit)
    t_rw, _, rw = timed(lambda: sn.psis_reweight(idata, sk, ref), 20)
    line("one PSIS reweighting to another prior set (median of 20)", t_rw, f"k = {rw.k:.2f}")
    t_ps, _, _ = timed(lambda: sn.power_scaling(idata, sk), reps)
    line(f"power-scaling diagnostics of one fit (median of {reps})", t_ps)

    if a.refit_all:
        t_all, _, full = timed(lambda: sn.run_sensitivity(cohort, reweight=False, tipping=False))
        t_rw_study, _, _ = timed(lambda: sn.run_sensitivity(cohort, tipping=False))
        line("study without tipping point, refitting every posterior", t_all,
             f"{full.timings['fits']} fits")
        line("study without tipping point, reweighting where reliable", t_rw_study)
    if a.pymc:
        ps = SamplerSettings(backend="pymc")
        survival.clear_model_cache()
        t_pymc, _, _ = timed(lambda: analysis.fit_survival(cohort, "os", "none", prior_set=sk,
                                                           sampler=ps, cuts=cuts), 2)
        line("one fit with the PyMC backend (recompiles; median of 2)", t_pymc)


if __name__ == "__main__":
    main()
