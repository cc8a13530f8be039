"""Benchmark: the issue-4 speed targets and the main job's fits, per sampler backend.

Run: ``python benchmarks/bench_main.py [--repeats 5] [--backends pymc,nutpie] [--no-cli] [--no-main]``.

Printed, per backend, as medians over repeats (seconds; fresh processes are interleaved across
backends so machine noise hits both alike):

* ``bayes-haic fit --endpoint os --adjust none --out DIR`` as a fresh process: the whole command
  (interpreter start, imports, compile from the on-disk caches, sampling, checks, report,
  writing, exit). Target: under 5 s.
* in a fresh process: the imports, the first fit of the default cohort (compile included;
  target: under 2 s) and a second fit of the same structure (the compiled model reused);
* each of the main job's survival fits (``models/main.toml``: OS/PFS x strategies, plus the
  time-varying HR(t) fit) and ORR fits in one process, in the main job's order, so the first fit
  of a model structure includes its compilation and later ones reuse it; with divergences;

and the ratios pymc / nutpie. Speed is measured here, never in a timed test.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

# Run in a fresh interpreter: times the imports, the first fit (compiling) and a refit.
PROBE = """
import json, sys, time
t0 = time.perf_counter()
from dataclasses import replace
from bayes_haic import analysis
from bayes_haic.config import load_config
from bayes_haic.priors import load_prior_set
from bayes_haic.schema import load_cohort
t1 = time.perf_counter()
cfg = load_config(sys.argv[1])
cohort = load_cohort(cfg.data.cohort, cfg.data.covariates)
prior = load_prior_set(cfg.priors.set, cfg.priors.overrides)
s = replace(cfg.sampler.settings(), backend=sys.argv[2])
cuts = analysis.endpoint_cuts(cohort, "os", cfg.survival.cuts, cfg.survival.n_intervals)
fit = lambda: analysis.fit_survival(cohort, "os", "none", prior_set=prior, sampler=s, cuts=cuts,
                                    baseline=cfg.survival.baseline)
t2 = time.perf_counter(); fit(); t3 = time.perf_counter(); fit(); t4 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "first fit": t3 - t2, "refit": t4 - t3}))
"""


def _config(backend: str, folder: str) -> Path:
    """models/main.toml with the sampler backend set and the cohort path made absolute."""
    text = (ROOT / "models" / "main.toml").read_text()
    text = re.sub(r'^backend = "\w+"', f'backend = "{backend}"', text, flags=re.M)
    text = text.replace('cohort = "data/', f'cohort = "{ROOT}/data/')
    path = Path(folder) / "main.toml"
    path.write_text(text)
    return path


def fresh_processes(backends, repeats: int, cli: bool = True) -> dict:
    """Median seconds per backend: the ``fit`` command as a process, and the probe's phases."""
    exe = Path(sys.executable).with_name("bayes-haic")
    times = {b: {} for b in backends}
    for _ in range(repeats):
        for b in backends:
            with tempfile.TemporaryDirectory() as d:
                cfg = _config(b, d)
                if cli:
                    t0 = time.perf_counter()
                    subprocess.run([str(exe), "fit", "--endpoint", "os", "--adjust", "none",
                                    "--out", d, "--config", str(cfg)], check=True,
                                   capture_output=True, cwd=ROOT)
                    times[b].setdefault("fit command, whole process", []).append(time.perf_counter() - t0)
                out = subprocess.run([sys.executable, "-c", PROBE, str(cfg), b], check=True,
                                     capture_output=True, text=True, cwd=ROOT).stdout
                for k, v in json.loads(out.strip().splitlines()[-1]).items():
                    times[b].setdefault(k, []).append(v)
    return {b: {k: float(np.median(v)) for k, v in t.items()} for b, t in times.items()}


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
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--backends", default="pymc,nutpie")
    ap.add_argument("--no-cli", action="store_true", help="skip the fit command processes")
    ap.add_argument("--no-main", action="store_true", help="skip the main job's fits")
    a = ap.parse_args(argv)
    backends = a.backends.split(",")
    two = len(backends) == 2

    def row(label, values, fmt="{:9.2f}"):
        cells = "".join(f"{fmt.format(values[b]):>16}" for b in backends)
        ratio = f"  {values[backends[0]] / values[backends[1]]:6.1f}x" if two else ""
        print(f"{label:<30}{cells}{ratio}")

    fresh = fresh_processes(backends, a.repeats, cli=not a.no_cli)
    print(f"fresh processes, median of {a.repeats} (s)")
    print(f"{'':<30}" + "".join(f"{b:>16}" for b in backends) + ("   ratio" if two else ""))
    for k in fresh[backends[0]]:
        row(k, {b: fresh[b][k] for b in backends})
    print("targets (issue 4): whole fit process < 5 s; first fit, compile included, < 2 s")
    if a.no_main:
        return
    fits = {b: main_fits(b, a.repeats) for b in backends}
    print(f"\nmain job fits in one process, median of {a.repeats} (s; first fit of a structure "
          "compiles; divergences in brackets)")
    print(f"{'fit':<30}" + "".join(f"{b:>16}" for b in backends) + ("   ratio" if two else ""))
    for k in fits[backends[0]]["wall"]:
        cells = "".join(f"{fits[b]['wall'][k]:9.2f} ({fits[b]['div'].get(k, '-')!s:>3})" for b in backends)
        ratio = f"  {fits[backends[0]]['wall'][k] / fits[backends[1]]['wall'][k]:6.1f}x" if two else ""
        print(f"{k:<30}{cells}{ratio}")


if __name__ == "__main__":
    main()
