"""Benchmark: `bayes-haic fit` as a subprocess and the main job's fits, per sampler backend.

Run: ``python benchmarks/bench_main.py [--repeats 3] [--backends pymc,nutpie] [--no-cli]``.

Printed: for each backend, the median wall time (seconds, over repeats) of

* ``bayes-haic fit --endpoint os --adjust none --out DIR`` as a fresh process (import, compile
  from the on-disk caches, sampling, writing);
* each of the main job's survival fits (``models/main.toml``: OS/PFS x strategies, plus the
  time-varying HR(t) fit) and ORR fits in one process, in the main job's order, so the first fit
  of a model structure includes its compilation and later ones reuse it; with divergences;

and the ratios pymc / nutpie. Speed is measured here, never in a timed test.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def cli_fit(backend: str, repeats: int) -> float:
    exe = Path(sys.executable).with_name("bayes-haic")
    out = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as d:
            cfg = Path(d) / "main.toml"
            text = (ROOT / "models" / "main.toml").read_text()
            cfg.write_text(text.replace('backend = "pymc"', f'backend = "{backend}"')
                           .replace('cohort = "data/', f'cohort = "{ROOT}/data/'))
            t0 = time.perf_counter()
            subprocess.run([str(exe), "fit", "--endpoint", "os", "--adjust", "none", "--out", d,
                            "--config", str(cfg)], check=True, capture_output=True, cwd=ROOT)
            out.append(time.perf_counter() - t0)
    return float(np.median(out))


def main_fits(backend: str, repeats: int) -> dict:
    from bayes_haic import analysis, sampling
    from bayes_haic import survival as sv
    from bayes_haic.config import load_config
    from bayes_haic.priors import load_prior_set
    from bayes_haic.schema import load_cohort

    cfg = load_config(ROOT / "models" / "main.toml")
    cohort = load_cohort(ROOT / cfg.data.cohort if not Path(cfg.data.cohort).is_absolute() else cfg.data.cohort,
                         cfg.data.covariates)
    design = analysis.make_design(cohort, cfg.design)
    prior = load_prior_set(cfg.priors.set, cfg.priors.overrides)
    s = replace(cfg.sampler.settings(), backend=backend)
    jobs = []
    for ep in cfg.survival.endpoints:
        cuts = analysis.endpoint_cuts(cohort, ep, cfg.survival.cuts, cfg.survival.n_intervals)
        for st in cfg.survival.strategies:
            jobs.append((f"{ep} {st}", lambda ep=ep, st=st, cuts=cuts: analysis.fit_survival(
                cohort, ep, st, design=design, prior_set=prior, sampler=s, cuts=cuts,
                baseline=cfg.survival.baseline, n_boot=cfg.survival.bootstrap_draws)))
        if cfg.survival.time_varying_strategy:
            jobs.append((f"{ep} HR(t) {cfg.survival.time_varying_strategy}", lambda ep=ep, cuts=cuts: analysis.fit_survival(
                cohort, ep, cfg.survival.time_varying_strategy, design=design, prior_set=prior,
                sampler=s, cuts=cuts, baseline=cfg.survival.baseline, time_varying=True)))
    for st in cfg.response.strategies:
        jobs.append((f"orr {st}", lambda st=st: analysis.fit_orr(cohort, st, design=design, prior_set=prior,
                                                                  sampler=s, n_boot=cfg.survival.bootstrap_draws)))
    times = {k: [] for k, _ in jobs}
    div = {}
    for _ in range(repeats):
        sv.clear_model_cache()
        for k, fn in jobs:
            t0 = time.perf_counter()
            idata = fn()
            times[k].append(time.perf_counter() - t0)
            if "sample_stats" in idata.groups():
                div[k] = int(idata.sample_stats["diverging"].values.sum())
    med = {k: float(np.median(v)) for k, v in times.items()}
    med["TOTAL"] = float(np.median([sum(v[r] for v in times.values()) for r in range(repeats)]))
    return {"wall": med, "div": div, "sampling": sampling}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--backends", default="pymc,nutpie")
    ap.add_argument("--no-cli", action="store_true")
    a = ap.parse_args(argv)
    backends = a.backends.split(",")
    cli, fits = {}, {}
    for b in backends:
        if not a.no_cli:
            cli[b] = cli_fit(b, a.repeats)
            print(f"[{b}] bayes-haic fit --endpoint os --adjust none (subprocess): median {cli[b]:.2f} s", flush=True)
        fits[b] = main_fits(b, a.repeats)
    keys = list(fits[backends[0]]["wall"])
    print(f"\nmain job fits, median of {a.repeats} (s; first fit of a structure compiles; divergences)")
    print(f"{'fit':<26}" + "".join(f"{b:>16}" for b in backends) + ("   ratio" if len(backends) == 2 else ""))
    for k in keys:
        cells = "".join(f"{fits[b]['wall'][k]:9.2f} ({fits[b]['div'].get(k, '-')!s:>3})" for b in backends)
        ratio = f"  {fits[backends[0]]['wall'][k] / fits[backends[1]]['wall'][k]:6.1f}x" if len(backends) == 2 else ""
        print(f"{k:<26}{cells}{ratio}")
    if len(cli) == 2:
        print(f"\nbayes-haic fit subprocess ratio {backends[0]}/{backends[1]}: {cli[backends[0]] / cli[backends[1]]:.1f}x")


if __name__ == "__main__":
    main()
