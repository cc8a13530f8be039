"""The command-line jobs other than the main job (:mod:`bayes_haic.pipeline`): each computes
with the statistics modules, lays the results out with :mod:`bayes_haic.report`, and writes
every file atomically, only after everything has been computed.

* :func:`write_sensitivity`: ``bayes-haic sensitivity``;
* :func:`write_reanalysis`: ``bayes-haic reanalyse``;
* :func:`write_reconstruction`: ``bayes-haic reconstruct``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from typing import TYPE_CHECKING

import pandas as pd

from . import report as rp
from .config import load_config
from .provenance import package_versions, run_info
from .report.pages import tier_banner
from .results import atomic_write_text, write_results
from .schema import check_endpoint_names, endpoint_label, load_cohort, name_endpoints, naming_scope

if TYPE_CHECKING:
    from .evidence import EvidenceReanalysis
    from .reconstruct import Reconstruction
    from .sensitivity import SensitivityStudy

SENSITIVITY_PUBLISHED_NOTE = ("Only the parts labelled PUBLISHED TIER use the study's real "
                              "(published) numbers.")


@naming_scope
def write_sensitivity(cohort_path, out_dir, *, endpoints=None, prior_names=None,
                      overrides=(), threshold: float | None = None, seed=None, covariates=None,
                      cut_sets=None, config_path=None, argv=None, echo=print) -> SensitivityStudy:
    """The ``bayes-haic sensitivity`` job: run the study on a cohort file and write
    ``out_dir/results.csv`` (results rows of the cohort's tier, and the published tier's
    tipping points when the configuration's ``[published]`` is enabled),
    ``out_dir/sensitivity.csv`` (the tidy table), ``out_dir/tipping.csv`` (the tipping curves of
    both tiers), ``out_dir/baseline_prior.csv`` (the baseline-hazard prior check) and
    ``out_dir/report.html`` (the section), each atomically and only after
    everything has been computed.

    Cut points, baseline, sampler and the prior family (unless ``prior_names``) come from the
    configuration file (default ``models/main.toml``; for a cohort other than its own, without
    the package's study's parts: :meth:`~bayes_haic.config.MainConfig.for_cohort`): its cut
    points are the main cut set, the other default cut sets follow. ``seed`` overrides the
    configured seed. (With the configured nutpie backends refits reuse the compiled model; the
    PyMC backend recompiles it for every refit.)
    """
    from . import analysis
    from .report.sensitivity import sensitivity_section
    from .sensitivity import DEFAULT_THRESHOLD, SENSITIVITY_METHOD, cut_sets_with_main, run_sensitivity

    threshold = DEFAULT_THRESHOLD if threshold is None else threshold

    cfg = load_config(config_path).for_cohort(cohort_path)  # the shipped file's study parts
    settings = cfg.sampler.settings()                         # stay with its own cohort
    sampler = replace(settings, seed=int(seed) if seed is not None else settings.seed)
    cohort = load_cohort(cohort_path, cfg.chosen_covariates(covariates),
                         **cfg.data.cohort_options())
    name_endpoints(cohort.endpoint_names)
    endpoints = tuple(endpoints or cohort.endpoints)  # default: every endpoint it has
    main = cfg.survival.cuts if cfg.survival.cuts != "quantile" else cfg.survival.n_intervals
    strategies = tuple(cfg.sensitivity.strategies)
    orr_strategies = tuple(cfg.sensitivity.orr_strategies) if cohort.has_response else ()
    design = None
    if {"iptw", "psm", "ps_covariate"} & set(strategies + orr_strategies):
        design = analysis.make_design(cohort, cfg.design)
    study = run_sensitivity(
        cohort, endpoints=tuple(endpoints), overrides=overrides,
        prior_names=prior_names or cfg.priors.published_sets,  # default: the configuration's family
        threshold=threshold, sampler=sampler, baseline=cfg.survival.baseline,
        strategies=strategies, orr_strategies=orr_strategies, design=design,
        n_boot=cfg.survival.bootstrap_draws,
        cut_sets=cut_sets if cut_sets is not None else cut_sets_with_main(main),
        published=cfg.published.enabled, important_hr=cfg.survival.important_hr, echo=echo)
    rows = study.rows() + study.published_rows()
    section = sensitivity_section(study)
    curves = pd.concat([t.frame() for t in (*study.tipping.values(), *study.published_tipping.values())],
                       ignore_index=True)
    title = f"bayes-haic sensitivity: {', '.join(endpoint_label(e) for e in endpoints)}, {cohort.name}"
    html = rp.render(title, [section],
                     banner=tier_banner(cohort, SENSITIVITY_PUBLISHED_NOTE, what="results"),
                     footer=f"{SENSITIVITY_METHOD}; {cohort.name} (tier '{cohort.data_tier}'); "
                            f"seed {sampler.seed}" + (f"; command: {' '.join(argv)}" if argv else "") + ".")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_results(rows, out / "results.csv")
    atomic_write_text(out / "sensitivity.csv", study.table().to_csv(index=False, float_format="%.6g"))
    atomic_write_text(out / "tipping.csv", curves.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(out / "baseline_prior.csv",
                      study.baseline_check.to_csv(index=False, float_format="%.6g"))
    rp.write_report(out / "report.html", html)
    echo(f"wrote {out / 'results.csv'}, {out / 'sensitivity.csv'}, {out / 'tipping.csv'}, "
         f"{out / 'baseline_prior.csv'} and {out / 'report.html'} ({study.timings['fits']} fits, "
         f"{study.timings['total']:.0f} s)")
    return study


def write_reanalysis(results: list[EvidenceReanalysis], out_dir, *, argv=None,
                     echo=print) -> pd.DataFrame:
    """Write ``out_dir/results.csv`` and a self-contained ``out_dir/report.html``, atomically."""
    from .report.published import evidence_section

    rows = [row for res in results for row in res.rows()]
    section = evidence_section(results, "Bayesian reanalysis of published results")
    info = run_info(argv)
    html = rp.render("bayes-haic reanalyse", [section],
                     footer=f"bayes-haic {package_versions()['bayes-haic']}; run "
                            f"{info['run_at_utc']} UTC; command: {info['command']}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frame = write_results(rows, out / "results.csv")
    rp.write_report(out / "report.html", html)
    echo(f"wrote {out / 'results.csv'} ({len(rows)} estimates) and {out / 'report.html'}")
    return frame


@naming_scope
def write_reconstruction(recs: list[Reconstruction], out, *, figure: str = "",
                         population: str = "", endpoint_names=None) -> dict[str, Path]:
    """Write the cohort CSV, its sidecar, ``<stem>.accuracy.html`` and ``<stem>.accuracy.csv``
    beside it; everything is computed first and each file is written atomically.
    ``endpoint_names`` (``{"pfs": {"short": "RFS", "long": ...}}``) go into the sidecar; the
    page uses them too."""
    from .reconstruct import accuracy_table, cohort_frame, output_paths, sidecar
    from .report.reconstruct import accuracy_page

    name_endpoints(check_endpoint_names(endpoint_names, "endpoint names"))
    paths = output_paths(out)
    frame = cohort_frame(recs)
    meta = sidecar(recs, figure=figure, population=population, endpoint_names=endpoint_names)
    tables = [accuracy_table(r) for r in recs]
    html = accuracy_page(recs, tables, paths["cohort"].name, figure=figure)
    csv_cohort = frame.to_csv(index=False, float_format="%.6g", lineterminator="\n")
    csv_acc = pd.concat(tables, ignore_index=True).to_csv(index=False, float_format="%.6g",
                                                          lineterminator="\n")
    atomic_write_text(paths["csv"], csv_acc)
    rp.write_report(paths["html"], html)
    atomic_write_text(paths["sidecar"], json.dumps(meta, indent=2) + "\n")
    atomic_write_text(paths["cohort"], csv_cohort)
    return paths
