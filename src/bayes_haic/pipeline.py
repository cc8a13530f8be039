"""The main job: the full default analysis, from published evidence to patient-level models.

:func:`run_main` reads the configuration (``models/main.toml``), analyses

1. the study's **published** evidence (tier ``published``: the real numbers, reanalysed exactly),
2. the configured cohort (tier ``synthetic`` for the shipped default cohort, ``user`` otherwise):
   propensity design, PWE survival models for OS and PFS, and ORR models,

and writes ``results.csv`` and the report's pages (``index.html`` and one page per section) to
the output folder. Nothing is written until everything has been computed, and each file is
written atomically. The pages are laid out by :mod:`bayes_haic.report.main`; this module runs
the fits and hands the results over. :func:`run_fit` and :func:`run_balance` are the
``bayes-haic fit`` and ``balance`` jobs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from . import reconstruct
from . import report as rp
from .config import MainConfig, load_config
from .errors import InputError
from .priors import load_prior_set
from .provenance import package_versions
from .report import main as report_main
from .results import atomic_write, atomic_write_bytes, write_results
from .sampler_settings import TIME_VARYING_MIN_DRAWS, TIME_VARYING_MIN_TUNE
from .schema import Cohort, endpoint_label, load_cohort, name_endpoints, naming_scope


@dataclass
class Progress:
    """Prints which step runs and how many are left (to standard error)."""

    total: int
    echo: callable = print
    done: int = 0
    started: float = field(default_factory=time.perf_counter)

    def step(self, what: str, n: int = 1) -> None:
        """Count ``n`` steps done (or starting) and print ``what``."""
        self.done += n
        elapsed = time.perf_counter() - self.started
        self.echo(f"[{self.done}/{self.total}, {elapsed:5.1f} s] {what}")


@dataclass
class RunState:
    """Everything the main job produced: result rows, report sections, diagnostics alerts."""

    config: MainConfig
    cohort: Cohort | None = None
    design: object = None
    rows: list = field(default_factory=list)
    sections: dict = field(default_factory=dict)
    alerts: list = field(default_factory=list)
    fits: dict = field(default_factory=dict)
    hr_t: dict = field(default_factory=dict)  # endpoint -> time-varying fit
    reconstructed: dict = field(default_factory=dict)  # endpoint -> fit on [data] reconstructed
    estimands: dict = field(default_factory=dict)  # fit key -> its estimands (summarise)
    km: dict = field(default_factory=dict)  # survival fit key -> its observed Kaplan-Meier curves
    # the baseline-hazard prior check of the main fits (check_baseline_prior), a DataFrame
    baseline_check: object = None

    def add_survival_fit(self, key: tuple, idata, *, cut_set: str | None = None) -> list[dict]:
        """Add the OS/PFS fit ``key`` = ``(endpoint, strategy)``: its estimands and observed
        Kaplan-Meier curves (as :meth:`summarise`) are computed once here, and its
        ``results.csv`` rows (:func:`bayes_haic.survival.result_rows`) come from the same
        draws; returns the rows (also added to :attr:`rows`)."""
        from . import survival

        self.fits[key] = idata
        self._summarise_fit(key, idata)
        rows = survival.result_rows(idata, self.cohort.data_tier, self.cohort.name, cut_set=cut_set,
                                    rmst_tau=self.config.survival.rmst_months,
                                    draws=self.estimands[key][1])
        self.rows.extend(rows)
        return rows

    def summarise(self) -> "RunState":
        """Compute the estimands of every fit not yet summarised, for the report: the
        ``(summary, draws)`` of :func:`bayes_haic.survival.survival_estimands` and the observed
        Kaplan-Meier curves of the fit's data (:func:`bayes_haic.checks.fit_km`) for OS/PFS fits,
        :func:`bayes_haic.response.response_summary` for ORR fits; returns ``self``."""
        for key, idata in self.fits.items():
            if key not in self.estimands:
                self._summarise_fit(key, idata)
        return self

    def _summarise_fit(self, key: tuple, idata) -> None:
        from . import checks, response, survival

        if key[0] == "orr":
            self.estimands[key] = response.response_summary(
                idata, important=self.config.response.important_difference)
        else:
            self.estimands[key] = survival.survival_estimands(
                idata, rmst_tau=self.config.survival.rmst_months,
                hr_thresholds=(1.0, self.config.survival.important_hr))
            self.km[key] = checks.fit_km(idata)


# ------------------------------------------------------------------------------ the main job


def about_the_study(cfg: MainConfig, cohort: Cohort) -> bool:
    """Whether a main job concerns the package's own study (Int J Surg 2024, PMID 38549220): it
    reanalyses the study's published numbers (``[published] enabled``), analyses the synthetic
    cohort calibrated to them, or compares pseudo-patients rebuilt from the study's figures
    (``[data] reconstructed``). Only then do its pages cite the study, list the study's own
    limitations and say how its curves are (or could be) reconstructed; a user's or another
    study's reconstructed cohort, with ``[published]`` disabled, gets none of these."""
    return cfg.published.enabled or cohort.data_tier == "synthetic" or bool(cfg.data.reconstructed)


def _cut_sets(cfg: MainConfig, sensitivity) -> tuple:
    """The main cut points first, then the configured alternatives (duplicates dropped)."""
    main = cfg.survival.cuts if cfg.survival.cuts != "quantile" else cfg.survival.n_intervals
    sets = [sensitivity.as_cut_set(main)]
    for c in cfg.sensitivity.cut_sets:
        cs = sensitivity.as_cut_set(c)
        if cs not in sets:
            sets.append(cs)
    return tuple(sets)


def main_cut_label(cfg: MainConfig) -> str:
    """The label of the configured (main) cut points, as the sensitivity study names cut sets."""
    from .sensitivity import as_cut_set

    main = cfg.survival.cuts if cfg.survival.cuts != "quantile" else cfg.survival.n_intervals
    return as_cut_set(main).label


def time_varying_sampler(sampler):
    """Sampler settings for configured HR(t) fits (:func:`fit_configured`): the random-walk sd of
    the log-HR mixes slowly (on the default cohort 1000 draws gave bulk ESS 319-459, below the
    checks' 400 in some fits), so these fits use at least ``TIME_VARYING_MIN_DRAWS`` (2000) draws
    after at least ``TIME_VARYING_MIN_TUNE`` (1000) tuning steps (and, as every random-walk fit,
    target_accept 0.99: :func:`bayes_haic.survival.sampler_for`). With nutpie on the default
    cohort, OS and PFS, seeds 1-4: 0 divergences, R-hat <= 1.01, bulk ESS 605-877, tail ESS
    517-1146 (2000 tuning steps gave the same at a third more cost; 500 gave a tail ESS of 317
    in one of 8 fits)."""
    return replace(sampler, tune=max(sampler.tune, TIME_VARYING_MIN_TUNE),
                   draws=max(sampler.draws, TIME_VARYING_MIN_DRAWS))


@naming_scope
def run_main(config_path=None, out_dir="reports", *, argv=None, echo=print) -> RunState:
    """Run the full default analysis and write ``out_dir/results.csv`` and ``out_dir/index.html``.

    Returns the :class:`RunState` (rows, sections, fits). Nothing is written until all steps
    have succeeded; each output file is written atomically. The independent blocks (each
    survival endpoint's fits and page, the ORR fits, the sensitivity study per endpoint and for
    ORR) run in ``[run] processes`` worker processes (:func:`run_blocks`); every fit is seeded,
    so the numbers do not depend on how many.
    """
    from . import checks, reanalysis, sensitivity  # heavy imports only when running
    from .report.checks import checks_section, ppc_figures
    from .report.published import published_section
    from .report.sensitivity import sensitivity_section
    from .report.validation import STORED_RESULT, limitations_text, load_stored, validation_sections

    cfg = load_config(config_path)
    out = Path(out_dir)
    state = RunState(cfg)
    prior_set = load_prior_set(cfg.priors.set, cfg.priors.overrides)
    sampler = cfg.sampler.settings()
    n_fits = (len(cfg.survival.endpoints) * (len(cfg.survival.strategies)
                                             + bool(cfg.survival.time_varying_strategy))
              + len(cfg.response.strategies))
    progress = Progress(total=3 + cfg.published.enabled + n_fits + cfg.sensitivity.enabled
                        + bool(cfg.data.reconstructed), echo=echo)

    # 1. the cohort and its propensity design (the blocks below need the design); the step
    # count leaves out the fits of what the cohort has no data for
    cohort = load_cohort(cfg.cohort_path(), cfg.data.covariates, **cfg.data.cohort_options())
    name_endpoints(cohort.endpoint_names)
    refuse_reconstructed_main(cfg, cohort)
    endpoints = survival_endpoints(cfg, cohort)
    missing = [e for e in cfg.survival.endpoints if e not in endpoints]
    progress.total -= len(missing) * (len(cfg.survival.strategies)
                                      + bool(cfg.survival.time_varying_strategy))
    if not cohort.has_response and cfg.response.strategies:
        progress.total -= len(cfg.response.strategies) - 1
    progress.step("cohort: validation and propensity design")
    for e in missing:
        echo(f"{endpoint_label(e)}: not fitted (the cohort has no {endpoint_label(e)} data)")
    state.cohort = cohort
    from . import analysis

    design = analysis.make_design(cohort, cfg.design)
    state.design = design
    state.sections["cohort"] = report_main.cohort_section(cohort)
    state.sections["design"] = report_main.design_section(cohort, design)

    # 2-4. survival models, response models and the prior sensitivity study, in blocks
    blocks = main_blocks(cfg, cohort)
    context = BlockContext(cfg, cohort, design, prior_set, sampler)

    study = about_the_study(cfg, cohort)

    def published_work():  # 5. the published evidence (tier "published"), meanwhile here
        published = None
        if cfg.published.enabled:
            progress.step("published evidence: conjugate reanalysis under each prior set")
            published = reanalysis.run_published(cfg.priors.published_sets, seed=sampler.seed)
            state.sections["published"] = published_section(published)
        # the sections that need no block's result
        state.sections["provenance"] = report_main.provenance_section(cfg, cohort, argv)
        state.sections["limitations"] = report_main.limitations_section(cohort, study)
        if study:
            state.sections["limitations"].add(rp.Text(  # the study's figures: used, or how to
                reconstruct.LIMITATIONS if cfg.data.reconstructed else report_main.HOW_TO_RECONSTRUCT))
        stored = load_stored()  # the stored validation study (not recomputed here)
        other = None if study else cohort.name  # another study's cohort: the page says so
        state.sections["validation"] = validation_sections(stored, where=STORED_RESULT.as_posix(),
                                                           cohort_name=other)[0]
        state.sections["limitations"].add(rp.Text(limitations_text(stored, other)))
        return published

    # As each block ends, this process checks its fits and, once every part of the sensitivity
    # study is in, merges them and lays out its section, while the workers go on.
    sens = [i for i, b in enumerate(blocks) if b.kind == "sensitivity"]
    studies, check_parts, ppc_drawn, done = {}, [], {}, {}

    def on_result(i: int, res: dict) -> None:
        if blocks[i].kind == "sensitivity":
            studies[i] = res
            if len(studies) == len(sens):
                study = sensitivity.merge_studies([studies[j]["study"] for j in sens])
                done["study_rows"] = study.rows() + study.published_rows()
                done["sensitivity"] = sensitivity_section(
                    study, overlays={k: f for j in sens for k, f in studies[j]["figures"].items()})
        elif res.get("fits"):
            part = checks.run_checks(cohort, res["fits"], design=design, time_varying_fits=res.get("hr_t"),
                                     prior_set=prior_set, sampler=sampler, seed=sampler.seed)
            check_parts.append(part)
            ppc_drawn.update(ppc_figures(part, cohort))

    results, published = run_blocks(context, blocks, cfg.run.processes, progress, published_work,
                                    on_result=on_result)
    state.rows.extend(published.rows() if published is not None else [])
    checked = [res["baseline_check"] for res in results
               if res.get("baseline_check") is not None and len(res["baseline_check"])]
    state.baseline_check = pd.concat(checked, ignore_index=True) if checked else None
    for block, res in zip(blocks, results):
        state.rows.extend(res.get("rows", []))
        for key in ("fits", "hr_t", "estimands", "km"):
            getattr(state, key).update(res.get(key, {}))
        if "section" in res:
            state.sections[block.section] = res["section"]

    # 4b. pseudo-patients reconstructed from the study's published figures ([data] reconstructed)
    if cfg.data.reconstructed:
        progress.step("reconstructed data: PWE model on the published figures' pseudo-patients")
        state.sections["reconstructed"] = run_reconstructed(cfg, state, prior_set, sampler)

    if "sensitivity" in done:
        state.rows.extend(done["study_rows"])
        state.sections["sensitivity"] = done["sensitivity"]

    used = report_main.used_priors([*state.fits.values(), *state.hr_t.values(),
                                    *state.reconstructed.values()], published=published is not None)
    state.sections["methods"] = report_main.methods_section(cfg, prior_set, sampler, cohort, used)
    progress.step("model checks: posterior predictive checks, PSIS-LOO, convergence")
    chk = (checks.merge_checks(check_parts, order=checks.diagnostics_order(state.fits, state.hr_t))
           if check_parts else checks.run_checks(cohort, {}, design=design, seed=sampler.seed))
    state.sections["checks"] = checks_section(chk, cohort, state.fits, drawn=ppc_drawn)
    state.alerts = chk.failures + state.alerts  # (+ the reconstructed-data fits' failures)

    progress.step("writing results.csv and the report")
    summary = report_main.summary_section(state)
    order = ["summary", "published", "cohort", "design", *endpoints, "response",
             "reconstructed", "sensitivity", "checks", "validation", "methods", "provenance",
             "limitations"]
    state.sections["summary"] = summary
    pages = rp.render_site(
        report_main.site_title(cohort), [state.sections[k] for k in order if k in state.sections],
        banner=rp.SYNTHETIC_BANNER if cohort.data_tier == "synthetic" else None, alerts=state.alerts,
        footer=f"bayes-haic {package_versions()['bayes-haic']}"
               + ("; Int J Surg 2024, PMID 38549220." if study else "."))
    out.mkdir(parents=True, exist_ok=True)
    write_results(state.rows, out / "results.csv")
    rp.write_site(out, pages)
    echo(f"wrote {out / 'index.html'} and {out / 'results.csv'} ({len(state.rows)} estimates) in "
         f"{time.perf_counter() - progress.started:.0f} s")
    return state


# ------------------------------------------------------------------------------ blocks


@dataclass(frozen=True)
class Block:
    """One independent unit of the main job: ``kind`` is ``"survival"`` (one endpoint's fits,
    HR(t) fit and page), ``"response"`` (the ORR fits and page) or ``"sensitivity"`` (the prior
    sensitivity study of ``endpoint``, or of ORR when ``endpoint`` is ``"orr"``). ``section``
    names the report section it fills; ``steps`` is how many progress steps it counts."""

    kind: str
    endpoint: str = ""
    section: str = ""
    steps: int = 1


@dataclass
class BlockContext:
    """What every block reads: the configuration, cohort, design, prior set and sampler."""

    cfg: MainConfig
    cohort: Cohort
    design: object
    prior_set: object
    sampler: object


def survival_endpoints(cfg: MainConfig, cohort: Cohort) -> list[str]:
    """The survival endpoints the main job analyses: those of ``[survival] endpoints`` that the
    cohort has data for (a cohort with OS only: OS). InputError when it has none of them."""
    endpoints = [e for e in cfg.survival.endpoints if e in cohort.endpoints]
    if not endpoints:
        raise InputError(
            f"{cohort.path}: has data for {', '.join(endpoint_label(e) for e in cohort.endpoints)} only, "
            f"and the configuration's [survival] endpoints are "
            f"{', '.join(endpoint_label(e) for e in cfg.survival.endpoints)}; expected at least one "
            f"endpoint the cohort has (endpoints = {list(cohort.endpoints)!r} in [survival]).")
    return endpoints


def main_blocks(cfg: MainConfig, cohort: Cohort) -> list[Block]:
    """The main job's blocks, in the order their results enter ``results.csv`` and the report:
    each survival endpoint the cohort has (:func:`survival_endpoints`), the response models,
    then the sensitivity study's parts (one per endpoint, and ORR)."""
    s = cfg.survival
    endpoints = survival_endpoints(cfg, cohort)
    blocks = [Block("survival", e, e, len(s.strategies) + bool(s.time_varying_strategy))
              for e in endpoints]
    n_orr = len(cfg.response.strategies)
    blocks.append(Block("response", "orr", "response", n_orr if cohort.has_response else min(n_orr, 1)))
    if cfg.sensitivity.enabled:  # one progress step for the whole study (its last part)
        parts = list(endpoints)
        if cohort.has_response and cfg.sensitivity.orr_strategies:
            parts.append("orr")
        blocks.extend(Block("sensitivity", e, steps=int(i == len(parts) - 1))
                      for i, e in enumerate(parts))
    return blocks


@naming_scope
def run_block(ctx: BlockContext, block: Block, announce=None) -> dict:
    """Compute one block; a dict of what it adds to the :class:`RunState` (``rows``, ``fits``,
    ``hr_t``, ``estimands``, ``km``, its ``section``, or the sensitivity ``study``). ``announce``
    (optional) is called with each step's message before the step runs."""
    from . import analysis, response, sensitivity
    from .report.sensitivity import baseline_check_blocks, overlay_figures

    if block.kind not in ("survival", "response", "sensitivity"):
        raise ValueError(f"unknown block kind {block.kind!r}")
    say = announce or (lambda _m: None)
    cfg, cohort, design, prior_set, sampler = ctx.cfg, ctx.cohort, ctx.design, ctx.prior_set, ctx.sampler
    name_endpoints(cohort.endpoint_names)  # also in a worker process
    state = RunState(cfg, cohort=cohort, design=design)
    if block.kind == "survival":
        endpoint = block.endpoint
        cuts = analysis.endpoint_cuts(cohort, endpoint, cfg.survival.cuts, cfg.survival.n_intervals)
        checked = []  # the baseline-hazard prior check of each MCMC fit that uses that prior
        for strategy in cfg.survival.strategies:
            say(f"{endpoint_label(endpoint)}: PWE model, adjustment '{strategy}'")
            idata = fit_configured(cfg, cohort, endpoint, strategy, design, prior_set, sampler, cuts)
            state.add_survival_fit((endpoint, strategy), idata, cut_set=main_cut_label(cfg))
            row = check_baseline_prior(cfg, cohort, endpoint, strategy, design, prior_set,
                                       sampler, cuts, idata)
            checked += [row] if row else []
        tv = cfg.survival.time_varying_strategy
        if tv:
            say(f"{endpoint_label(endpoint)}: time-varying HR(t), adjustment '{tv}'")
            state.hr_t[endpoint] = fit_configured(cfg, cohort, endpoint, tv, design, prior_set,
                                                  sampler, cuts, time_varying=True)
        state.baseline_check = pd.DataFrame(checked)
        section = report_main.survival_section(cohort, endpoint, state.summarise())
        if checked:
            section.add(*baseline_check_blocks(state.baseline_check, main_cut_label(cfg),
                                               base="the configured prior set"))
    elif block.kind == "response":
        if not cohort.has_response and cfg.response.strategies:
            say(f"{endpoint_label('orr')}: not fitted (the cohort has no response data)")
        for strategy in cfg.response.strategies if cohort.has_response else ():
            say(f"{endpoint_label('orr')}: response model, adjustment '{strategy}'")
            idata = analysis.fit_orr(cohort, strategy, design=design, prior_set=prior_set,
                                     sampler=sampler, n_boot=cfg.survival.bootstrap_draws)
            state.fits[("orr", strategy)] = idata
            state.rows.extend(response.response_rows(idata, cohort.data_tier, cohort.name))
        section = report_main.response_section(cohort, state.summarise())
    else:  # sensitivity
        if block.steps:
            say("prior sensitivity: every prior set and cut-point set, tipping points")
        orr = block.endpoint == "orr"
        study = sensitivity.run_sensitivity(
            cohort, endpoints=() if orr else (block.endpoint,), strategies=cfg.sensitivity.strategies,
            orr_strategies=cfg.sensitivity.orr_strategies if orr else (),
            prior_names=cfg.priors.published_sets, overrides=cfg.priors.overrides,
            cut_sets=_cut_sets(cfg, sensitivity),
            sampler=sampler, design=design, threshold=cfg.sensitivity.threshold,
            baseline=cfg.survival.baseline, n_boot=cfg.survival.bootstrap_draws,
            psm_design_draws=cfg.survival.psm_design_draws, published=cfg.published.enabled,
            important_hr=cfg.survival.important_hr, baseline_check=False)  # (the fits' own)
        return {"study": study, "figures": overlay_figures(study)}
    return {"rows": state.rows, "fits": state.fits, "hr_t": state.hr_t,
            "estimands": state.estimands, "km": state.km, "section": section,
            "baseline_check": state.baseline_check}


def check_baseline_prior(cfg: MainConfig, cohort: Cohort, endpoint: str, strategy: str, design,
                         prior_set, sampler, cuts, idata, *, time_varying: bool = False) -> dict | None:
    """The baseline-hazard prior check of one configured OS/PFS fit (``idata``), on the main cut
    set (:func:`bayes_haic.sensitivity.baseline_check_fit`; a refit, where PSIS is unreliable,
    with the same settings); None when the fit uses no such prior (IPTW replicates, a set
    without it)."""
    from . import sensitivity

    if not sensitivity.uses_baseline_prior(idata, prior_set):
        return None
    return sensitivity.baseline_check_fit(
        idata, {"endpoint": endpoint, "strategy": strategy, "prior_set": prior_set,
                "cut_set": _cut_sets(cfg, sensitivity)[0]},
        lambda ps: fit_configured(cfg, cohort, endpoint, strategy, design, ps, sampler, cuts,
                                  time_varying=time_varying))


def fit_configured(cfg: MainConfig, cohort: Cohort, endpoint: str, strategy: str, design, prior_set,
                   sampler, cuts, *, time_varying: bool = False):
    """One OS/PFS fit with the configuration's ``[survival]`` settings (baseline, bootstrap
    draws, PSM pair effect and design draws): the main job's and ``bayes-haic fit``'s call of
    :func:`bayes_haic.analysis.fit_survival` (a time-varying HR(t) fit under PSM conditions on
    the one matched set, whatever ``psm_design_draws``, and samples at least as long as
    :func:`time_varying_sampler` says, as the report's methods text states)."""
    from . import analysis

    s = cfg.survival
    if time_varying:
        sampler = time_varying_sampler(sampler)
    return analysis.fit_survival(cohort, endpoint, strategy, design=design, prior_set=prior_set,
                                 sampler=sampler, cuts=cuts, baseline=s.baseline, n_boot=s.bootstrap_draws,
                                 time_varying=time_varying, pair_effect=s.psm_pair_effect,
                                 psm_design_draws=s.psm_design_draws)


def _run_lane(ctx: BlockContext, lane: list, results) -> None:
    """A worker process: :func:`run_block` of each ``(index, block)`` of ``lane`` in turn, each
    result put on the ``results`` queue as ``(index, result, None)``; a failing block puts
    ``(index, None, error)`` and ends the lane (module level, so a ``spawn`` worker can import
    it)."""
    import pickle
    import traceback
    import warnings

    from .errors import BLAS_WARNING

    warnings.filterwarnings("ignore", message=BLAS_WARNING)
    one_blas_thread()  # for this process's whole life (the limit is per process)
    for i, block in lane:
        try:
            res = run_block(ctx, block)
        except BaseException as err:  # noqa: BLE001  (handed to the main process, which raises it)
            tb = "".join(traceback.format_exception(err))
            try:
                pickle.dumps(err)
            except Exception:  # noqa: BLE001
                err = RuntimeError(f"main job block {block}: {err!r}")
            results.put((i, None, (err, tb)))
            return
        results.put((i, res, None))


class WorkerTraceback(Exception):
    """The traceback of an error raised in a worker process (the ``__cause__`` of the error
    :func:`run_blocks` raises)."""


def one_blas_thread():
    """Limit NumPy's BLAS (OpenBLAS) to one thread from now on (threadpoolctl's limiter: a context
    manager, or ``restore_original_limits()``). The main job's worker
    processes and the main process run in it: with two workers and the main process on 2 cores,
    OpenBLAS's own threads only compete for them. On the default analysis (2 processes, the
    2-core project machine, back to back): 63-65 s -> 57.5 s wall and ~112 -> ~99 s of CPU
    (the same results)."""
    from threadpoolctl import threadpool_limits  # a dependency of PyMC

    return threadpool_limits(limits=1, user_api="blas")


def run_blocks(ctx: BlockContext, blocks: list[Block], processes: int, progress: Progress,
               meanwhile=None, on_result=None) -> tuple[list[dict], object]:
    """Run ``blocks`` (:func:`run_block`); returns their results in the order of ``blocks`` and
    what ``meanwhile()`` returned. ``on_result(i, result)`` (optional) is called in this process
    as each block ``i`` ends.

    ``processes`` <= 1: one after another in this process, announcing each step before it runs,
    ``meanwhile`` first. Otherwise one worker process per lane of :func:`block_lanes`
    (:func:`worker_context`; all started before this process runs ``meanwhile``, so no thread of
    it exists when they fork), each running its blocks in turn; each block's steps are reported
    when it ends. A block's error is raised here at once and the workers are stopped. Every fit
    is seeded, so the results are the same either way (tested). Until the workers have run every
    block once with this code version and compile folder (a record,
    :func:`bayes_haic.sampling.record`, written when they have), the lanes are those for an
    empty compile cache (:func:`block_lanes` with ``cold``); the lanes change the time, never the
    results.
    """
    import queue as queue_mod

    report = on_result or (lambda _i, _res: None)
    if processes <= 1 or len(blocks) <= 1:
        extra = meanwhile() if meanwhile else None
        results = []
        for i, b in enumerate(blocks):
            results.append(run_block(ctx, b, announce=progress.step))
            report(i, results[-1])
        return results, extra
    from . import sampling

    mp = worker_context()
    lanes = block_lanes(blocks, processes, cold=not sampling.recorded(_COMPILED))
    inbox = mp.Queue()
    workers = [mp.Process(target=_run_lane, args=(ctx, [(i, blocks[i]) for i in lane], inbox),
                          daemon=True) for lane in lanes]
    for w in workers:
        w.start()
    results: list = [None] * len(blocks)
    pending = {i for lane in lanes for i in lane}
    limit = one_blas_thread()  # set at once (threadpoolctl starts no thread)
    try:
        extra = meanwhile() if meanwhile else None
        while pending:
            try:
                i, res, err = inbox.get(timeout=1.0)
            except queue_mod.Empty:
                dead = [w for w, lane in zip(workers, lanes)
                        if w.exitcode is not None and pending & set(lane)]
                if dead and inbox.empty():
                    raise RuntimeError(f"a worker process of the main job stopped (exit code "
                                       f"{dead[0].exitcode}) before its blocks were done; "
                                       "rerun with [run] processes = 1 to see why.") from None
                continue
            if err is not None:  # a block's error (e.g. an InputError), raised here at once
                raise err[0] from WorkerTraceback(err[1])
            pending.discard(i)
            results[i] = res
            b = blocks[i]
            what = {"survival": f"{endpoint_label(b.endpoint)}: {b.steps} PWE models done",
                    "response": (f"{endpoint_label('orr')}: {b.steps} response model(s) done"
                                 if ctx.cohort.has_response else f"{endpoint_label('orr')}: not "
                                 "fitted (the cohort has no response data)"),
                    "sensitivity": "prior sensitivity: every prior set and cut-point set, "
                                   "tipping points, done"}[b.kind]
            if b.steps:
                progress.step(what, n=b.steps)
            report(i, results[i])
        sampling.record(_COMPILED)  # every block has run: its structures are compiled
    finally:
        limit.restore_original_limits()
        for w in workers:  # on an error the other blocks are dropped, running ones stopped
            if w.is_alive():
                w.terminate()
            w.join()
        inbox.close()
    return results, extra


#: the record (:func:`bayes_haic.sampling.record`) that the main job's blocks have all run once
_COMPILED = "main-job-compiled"


def block_lanes(blocks: list[Block], processes: int, cold: bool = False) -> list[list[int]]:
    """Which worker process runs which blocks (indices into ``blocks``, in order). Once the model
    structures are compiled: the ORR fits, the survival endpoints' fits and the sensitivity
    study's ORR part in one lane; the sensitivity study's survival parts in another. Blocks
    that fit the same model structures so share a process and build each structure once: OS
    and PFS the same PWE structures, the ORR fits and the study's ORR part the response
    structures, the study's survival parts theirs.
    The ORR block goes first so that this process checks its fits while the workers go on, and
    a sensitivity part ends each lane, so the section is quick to assemble here (its figures are
    drawn in the workers). On the default analysis (2 processes, the 2-core project machine)
    the main job took 44-45 s against 48-53 s with the study's ORR part in the other lane (3
    runs each, back to back; user CPU 72-73 s against 78-82 s).

    ``cold`` (the model structures are not compiled yet: :func:`run_blocks` keeps a record per
    code version): the ORR fits and the study's ORR part go first in the second lane, and the
    first lane keeps the survival endpoints' fits. Compiling the structures is then most of the
    work, and the survival fits' patient-level structures most of that (the PS-spline model and
    the HR(t) model ~30 and ~25 s against ~4-15 s each for the others), so the ORR structures are
    better compiled beside them: with an empty compile cache the main job took 101-107 s (the
    job's own timer, 2 runs) against 129 s with the warm schedule, whose second lane then idled
    for ~60 s; the identical results.csv either way.

    With more processes the costliest lane (:data:`_BLOCK_COST`) is split in two, alternating
    its blocks; with fewer, all in one."""
    orr_part = [i for i, b in enumerate(blocks) if b.kind == "sensitivity" and b.endpoint == "orr"]
    response = [i for i, b in enumerate(blocks) if b.kind not in ("survival", "sensitivity")]
    survival = [i for i, b in enumerate(blocks) if b.kind == "survival"]
    study = [i for i, b in enumerate(blocks) if b.kind == "sensitivity" and i not in orr_part]
    lanes = ([survival, response + orr_part + study] if cold
             else [response + survival + orr_part, study])
    lanes = [lane for lane in lanes if lane]

    def cost(lane):
        return sum(_BLOCK_COST.get(blocks[i].kind, 1) for i in lane)

    while len(lanes) < processes and any(len(lane) > 1 for lane in lanes):
        big = max((lane for lane in lanes if len(lane) > 1), key=cost)
        lanes.remove(big)
        lanes += [big[0::2], big[1::2]]
    if len(lanes) > processes:
        lanes = [sorted(i for lane in lanes for i in lane)]
    return lanes


# relative cost of a block (which lane is split first)
_BLOCK_COST = {"survival": 3, "sensitivity": 2, "response": 1}


def worker_context():
    """The multiprocessing context of the main job's workers. On Linux: ``fork``, after this
    process has imported the modules the blocks use (PyMC, ArviZ, the report's figures), so a worker
    starts with them instead of importing them again (~6 s each on the 2-core project machine;
    the main job ran 88 s with ``spawn`` and 79 s with ``fork``, identical results.csv). The
    workers fork before this process has sampled anything or started threads of its own
    (:func:`run_blocks`). Elsewhere (macOS, Windows, where forking a process that has loaded
    these libraries is unsafe): ``spawn``, fresh interpreters that import the package; both
    read the compiled models from the disk caches."""
    import multiprocessing
    import sys

    if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods():
        import importlib

        for name in ("analysis", "checks", "sampling", "sensitivity", "report.figures"):
            importlib.import_module(f"{__package__}.{name}")  # imported once, inherited by the workers

        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")



# ------------------------------------------------------------------------------ reconstructed data


def refuse_reconstructed_main(cfg: MainConfig, cohort: Cohort) -> None:
    """The main job's cohort needs covariates (design, adjusted fits): a reconstructed cohort
    belongs under ``[data] reconstructed``."""
    if cohort.data_tier == "reconstructed":
        raise InputError(
            f"{cfg.source}: key 'data.cohort': {cohort.path} is a cohort reconstructed from a "
            "Kaplan-Meier figure (tier 'reconstructed'), which has no covariates for the main "
            "job's propensity design and adjusted models; expected a patient-level cohort there, "
            "and the reconstructed file under [data] as reconstructed = \"...\" (a "
            "reconstructed-data section, unadjusted or matched-set comparison), or "
            "`bayes-haic fit --cohort FILE --adjust none`.")


def run_reconstructed(cfg: MainConfig, state: RunState, prior_set, sampler) -> rp.Section:
    """Fit the unadjusted PWE model (for curves of a matched set: the matched-set comparison)
    to each configured endpoint of the ``[data] reconstructed`` cohort; adds its result rows
    (tier ``reconstructed``) and convergence failures to ``state``; returns its section
    (:func:`bayes_haic.report.main.reconstructed_section`)."""
    from . import analysis, checks, survival
    from .errors import InputError

    path = cfg.reconstructed_path()
    rc = load_cohort(path)
    if rc.data_tier != "reconstructed":
        raise InputError(f"{cfg.source}: key 'data.reconstructed': expected a cohort written by "
                         "`bayes-haic reconstruct` (sidecar data tier 'reconstructed'); "
                         f"{path} has tier {rc.data_tier!r}.")
    endpoints = [e for e in cfg.survival.endpoints if e in rc.endpoints]
    estimands = {}
    for e in endpoints:
        cuts = analysis.endpoint_cuts(rc, e, cfg.survival.cuts, cfg.survival.n_intervals)
        idata = analysis.fit_survival(rc, e, "none", prior_set=prior_set, sampler=sampler,
                                      cuts=cuts, baseline=cfg.survival.baseline)
        state.reconstructed[e] = idata
        estimands[e] = survival.survival_estimands(idata, rmst_tau=cfg.survival.rmst_months)
        state.rows.extend(survival.result_rows(idata, "reconstructed", rc.name,
                                               rmst_tau=cfg.survival.rmst_months, draws=estimands[e][1]))
    diag = None
    if state.reconstructed:
        label = report_main.reconstructed_label(rc)
        diag = checks.diagnostics_table({f"{endpoint_label(e)}, reconstructed, {label}": v
                                         for e, v in state.reconstructed.items()})
        state.alerts.extend(checks.failures(diag))
    km = {e: checks.fit_km(v) for e, v in state.reconstructed.items()}
    return report_main.reconstructed_section(rc, estimands, diag, configured=cfg.survival.endpoints, km=km)


# ------------------------------------------------------------------------------ one fit


@naming_scope
def run_fit(cohort_path, endpoint: str, adjust: str, out_dir, *, covariates=None,
            prior="reference", overrides=(), seed=None, argv=None, echo=print,
            config_path=None) -> pd.DataFrame:
    """Fit one endpoint (``os``, ``pfs`` or ``orr``) under one adjustment strategy and write
    ``out_dir/results.csv``, ``out_dir/posterior.nc`` (ArviZ netCDF) and ``out_dir/report.html``.

    Model settings other than those given (covariates, cut points, baseline smoothing,
    sampler, design) come from the configuration file (default ``models/main.toml``).
    """
    from . import analysis, checks, response, sensitivity
    from .report.checks import checks_section
    from .report.sensitivity import baseline_check_blocks

    cfg = load_config(config_path)
    sampler = cfg.sampler.settings()
    if seed is not None:
        sampler = type(sampler)(**{**sampler.as_dict(), "seed": int(seed)})
    prior_set = load_prior_set(prior, overrides)
    cohort = load_cohort(cohort_path, cfg.chosen_covariates(covariates), **cfg.data.cohort_options())
    name_endpoints(cohort.endpoint_names)
    reconstruct.check_strategy(cohort, adjust, endpoint)  # tier 'reconstructed': none only
    cohort = reconstruct.for_endpoint(cohort, endpoint)
    t0 = time.perf_counter()
    needs_design = adjust in ("iptw", "psm", "ps_covariate")
    design = analysis.make_design(cohort, cfg.design) if needs_design else None
    state = RunState(cfg, cohort=cohort, design=design)
    if endpoint == "orr":
        idata = analysis.fit_orr(cohort, adjust, design=design, prior_set=prior_set,
                                 sampler=sampler, n_boot=cfg.survival.bootstrap_draws)
        rows = response.response_rows(idata, cohort.data_tier, cohort.name)
        state.fits[("orr", adjust)] = idata
        section = report_main.response_section(cohort, state.summarise())
    else:
        cuts = analysis.endpoint_cuts(cohort, endpoint, cfg.survival.cuts, cfg.survival.n_intervals)
        idata = fit_configured(cfg, cohort, endpoint, adjust, design, prior_set, sampler, cuts,
                               time_varying=cfg.survival.time_varying)
        rows = state.add_survival_fit((endpoint, adjust), idata, cut_set=main_cut_label(cfg))
        section = report_main.survival_section(cohort, endpoint, state.summarise())
        row = check_baseline_prior(cfg, cohort, endpoint, adjust, design, prior_set, sampler,
                                   cuts, idata, time_varying=cfg.survival.time_varying)
        if row:  # as the main job checks its fits
            section.add(*baseline_check_blocks(pd.DataFrame([row]), main_cut_label(cfg),
                                               base="the configured prior set"))
            if row["influential"]:
                echo(f"warning: the baseline-hazard prior moves this HR ({row['median_hr']:.2f} -> "
                     f"{row['median_hr_widened']:.2f} with it {sensitivity.BASELINE_WIDEN:g}-fold "
                     "wider); see the report.")
    echo(f"fitted {endpoint_label(endpoint)} ({adjust}) in {time.perf_counter() - t0:.1f} s")
    imbalance = report_main.imbalance_warning(design, {adjust})  # (PS matching and IPTW only)
    if imbalance:
        section.blocks.insert(0, rp.Text(imbalance + " (|SMD| > 0.1 or a variance ratio outside "
                                         "0.5-2; bayes-haic balance shows the table).", "warning"))
        echo(f"warning: {imbalance}.")
    state.rows = rows
    chk = checks.run_checks(cohort, state.fits, design=design, prior_set=prior_set,
                            sampler=sampler, seed=sampler.seed)
    alerts = chk.failures
    sections = [section, checks_section(chk, cohort, state.fits),
                report_main.methods_section(cfg, prior_set, sampler, cohort,
                                            report_main.used_priors([idata])),
                report_main.provenance_section(cfg, cohort, argv),
                report_main.limitations_section(cohort, study=cohort.data_tier == "synthetic")]
    html = rp.render(f"bayes-haic fit: {endpoint_label(endpoint)}, adjustment '{adjust}', {cohort.name}",
                     sections, alerts=alerts, banner=rp.tier_banner(cohort))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_netcdf(idata, out / "posterior.nc")
    frame = write_results(rows, out / "results.csv")
    rp.write_report(out / "report.html", html)
    echo(f"wrote {out / 'results.csv'}, {out / 'posterior.nc'} and {out / 'report.html'}")
    return frame


def write_netcdf(idata, path: Path) -> None:
    """Save an InferenceData atomically; attrs that netCDF cannot hold are stored as text."""
    for group in idata.groups():
        ds = idata[group]
        ds.attrs = {k: (v if isinstance(v, (str, int, float)) else repr(v))
                    for k, v in ds.attrs.items()}
    atomic_write(path, lambda tmp: idata.to_netcdf(tmp, engine="h5netcdf"))


# ------------------------------------------------------------------------------ design only


def run_balance(cohort_path, out_dir, *, covariates=None, config_path=None,
                echo=print) -> pd.DataFrame:
    """The design stage alone: fit the propensity model, match and weight, and write
    ``out_dir/balance.csv`` (the full balance table), ``love_plot.png``, ``ps_overlap.png`` and
    ``design.html``. Returns the balance table; the outcome columns are never looked at."""
    import base64

    from .propensity import make_design

    cfg = load_config(config_path)
    cohort = load_cohort(cohort_path, cfg.chosen_covariates(covariates), **cfg.data.cohort_options())
    design = make_design(cohort, cfg.design)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figs = report_main.design_figures(cohort, design)  # drawn once: the PNG files and the page
    for name, fig in figs.items():
        atomic_write_bytes(out / f"{name}.png", base64.b64decode(fig.png_base64))
    section = report_main.design_section(cohort, design, figs)
    html = rp.render(f"bayes-haic balance: {cohort.name}", [section], banner=rp.tier_banner(cohort))
    rp.write_report(out / "design.html", html)
    atomic_write(out / "balance.csv",
                 lambda tmp: design.balance.to_csv(tmp, index=False, float_format="%.6g"))
    s = design.summary()
    study = "; the study's PSM set had 55 pairs, derived" if cohort.data_tier == "synthetic" else ""
    echo(f"{cohort.name} (tier '{cohort.data_tier}'): {s['n_pairs']} matched pairs "
         f"({s['n_unmatched_treated']} treated unmatched{study}); IPTW {s['weights_estimand']} "
         f"weights, Kish ESS {s['ess_treated']:.1f} / {s['ess_control']:.1f}")
    echo(report_main.compact_balance(design.balance).to_string(index=False))
    for clause in report_main.residual_imbalance_clauses(design).values():
        echo(f"residual imbalance {clause}")
    echo(f"wrote {out / 'balance.csv'}, {out / 'love_plot.png'}, {out / 'ps_overlap.png'} and "
         f"{out / 'design.html'}")
    return design.balance
