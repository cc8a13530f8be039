"""The ``bayes-haic`` command line: thin wrappers over the library.

User mistakes (:class:`~bayes_haic.errors.InputError`, bad options) are printed as one paragraph
on standard error with exit code 2, never as a traceback.
"""

from __future__ import annotations

import sys
import textwrap

import click

from . import process
from .errors import InputError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="bayes-haic")
def cli():
    """Bayesian reanalysis of HAIC-LEN-P vs LEN-P (Int J Surg 2024, PMID 38549220).

    Every output states its data tier: 'published' (the study's real summary evidence),
    'synthetic' (the seeded synthetic cohort calibrated to the publication), 'user'
    (your own cohort file in the same schema) or 'reconstructed' (pseudo-patients rebuilt from
    a published Kaplan-Meier figure by 'reconstruct'). Time is in months.
    """


def _covariate_list(value):
    if value is None:
        return None
    return [c.strip() for c in value.split(",") if c.strip()]


def data_options(f):
    """``--column``, ``--time-unit``, ``--arms`` and ``--endpoint-name``: read a cohort file with
    its own column names, times in another unit, and name its arms and endpoints in reports."""
    opts = [
        click.option("--column", "columns", multiple=True, metavar="SCHEMA=COLUMN",
                     help="Map a schema column to the file's own, e.g. --column treatment=chemo "
                     "--column os_time=dtime (repeatable; adds to [data.columns])."),
        click.option("--time-unit", type=click.Choice(["days", "weeks", "months", "years"]),
                     default=None, help="Unit of the file's os_time/pfs_time (converted to "
                     "months; default: [data] time_unit, else months)."),
        click.option("--arms", default=None, metavar="TREATED,CONTROL",
                     help="Names of the arms in reports (treatment = 1, then 0), e.g. "
                     "--arms 'chemo,no chemo'."),
        click.option("--endpoint-name", "endpoint_names", multiple=True,
                     metavar="ENDPOINT=SHORT,LONG",
                     help="Name an endpoint (os, pfs, orr) in reports, e.g. --endpoint-name "
                     "'pfs=RFS,relapse-free survival' when pfs_time/pfs_event hold relapse-free "
                     "survival, 'orr=CR,complete response' (repeatable; adds to "
                     "[data.endpoint_names])."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def _column_map(items) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InputError(f"--column {item!r}: expected SCHEMA=COLUMN, e.g. --column "
                             "treatment=chemo (the schema's name, then the file's).")
        out[key.strip()] = value.strip()
    return out


def _arm_pair(value):
    if value is None:
        return None
    parts = [p.strip() for p in value.split(",")]
    if len(parts) != 2 or not all(parts) or parts[0] == parts[1]:
        raise InputError(f"--arms {value!r}: expected two different names, treated then control, "
                         "e.g. --arms 'chemo,no chemo'.")
    return tuple(parts)


def _endpoint_name_map(items) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        parts = [p.strip() for p in value.split(",", 1)]
        if not sep or len(parts) != 2 or not all(parts):
            raise InputError(f"--endpoint-name {item!r}: expected ENDPOINT=SHORT,LONG, e.g. "
                             "--endpoint-name 'pfs=RFS,relapse-free survival'.")
        out[key.strip()] = {"short": parts[0], "long": parts[1]}
    return out


def _configured(config_path, columns=(), time_unit=None, arms=None, endpoint_names=()):
    """The configuration (file or shipped default) with the command line's data options."""
    from pydantic import ValidationError

    from .config import DataConfig, load_config

    cfg = load_config(config_path)
    data = cfg.data.model_dump()
    data["columns"] = {**data["columns"], **_column_map(columns)}
    if time_unit:
        data["time_unit"] = time_unit
    pair = _arm_pair(arms)
    if pair:
        data["arms"] = {"treated": pair[0], "control": pair[1]}
    data["endpoint_names"] = {**data["endpoint_names"], **_endpoint_name_map(endpoint_names)}
    try:
        new = DataConfig.model_validate(data)
    except ValidationError as exc:  # say which option
        msg = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise InputError(f"--column / --arms / --endpoint-name: {msg}.") from None
    return cfg.model_copy(update={"data": new})


def _prior_name(prior, cfg):
    """A --prior name: the configuration's own priors/ folder first, then the shipped sets."""
    from .config import resolve_prior_name

    return resolve_prior_name(prior, cfg.folder())


@cli.command("check-cohort")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@click.option("--cohort", "cohort_option", default=None, type=click.Path(dir_okay=False),
              help="The cohort CSV, as FILE (spelled as in fit and balance); default: the "
              "configuration's [data] cohort.")
@click.option("--covariates", help="Comma-separated covariate columns (default: the file's "
              "sidecar list, else every extra column).")
@click.option("--config", "config_path", default=None, type=click.Path(dir_okay=False),
              help="Configuration TOML whose [data] column mapping, time unit, arm names and "
              "covariates apply.")
@data_options
def check_cohort(file, cohort_option, covariates, config_path, columns, time_unit, arms,
                 endpoint_names):
    """Validate a cohort CSV (FILE or --cohort; default: the configuration's) and print a
    per-arm summary table."""
    from .schema import ENDPOINT_COLUMNS, load_cohort, summarise_cohort

    process.settle()
    if file and cohort_option and file != cohort_option:
        raise InputError(f"check-cohort: two cohort files given, FILE {file!r} and --cohort "
                         f"{cohort_option!r}; expected one of them (they mean the same).")
    cfg = _configured(config_path, columns, time_unit, arms, endpoint_names)
    cohort = load_cohort(file or cohort_option or cfg.cohort_path(),
                         cfg.chosen_covariates(_covariate_list(covariates)),
                         **cfg.data.cohort_options())
    table = summarise_cohort(cohort)
    label = {e: names[0] for e, names in cohort.endpoint_names.items()}
    click.echo(f"{cohort.path}: valid cohort, data tier '{cohort.data_tier}'"
               + (" (SYNTHETIC data, not the study's patients)" if cohort.data_tier == "synthetic"
                  else "")
               + (" (RECONSTRUCTED from a published Kaplan-Meier figure, not the study's "
                  "patients)" if cohort.data_tier == "reconstructed" else "")
               + (f"; {len(cohort.frame)} patients" if cohort.data_tier != "reconstructed" else
                  "; " + ", ".join(f"{cohort.frame[e + '_time'].notna().sum()} {label[e]} rows"
                                   for e in cohort.endpoints)
                  + " (separate pseudo-patients per endpoint)")
               + (f"; survival endpoints: {' and '.join(label[e] for e in cohort.endpoints)} "
                  "only (no " + " or ".join(label[e] for e in ENDPOINT_COLUMNS
                                            if e not in cohort.endpoints) + " data)"
                  if len(cohort.endpoints) < len(ENDPOINT_COLUMNS)
                  and cohort.data_tier != "reconstructed" else "")
               + "; covariates: "
               + (", ".join(cohort.covariates) or "(none)"))
    from .report.pages import format_value  # as the report shows it: "not reached", "–"

    click.echo(table.map(lambda v: format_value(v, digits=4)).to_string())


@cli.command()
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="CSV to write (default: data/synthetic/cohort.csv); a .meta.json sidecar is "
              "written beside it.")
@click.option("--settings", default=None, type=click.Path(dir_okay=False),
              help="Generator settings TOML (default: data/synthetic/generator.toml).")
@click.option("--seed", default=None, type=int, help="Seed (default: the settings' cohort seed).")
def synthesize(out, settings, seed):
    """Regenerate the SYNTHETIC default cohort (byte for byte with the default settings)."""
    from .paths import default_cohort_path
    from .synthetic import load_settings, write_cohort

    process.settle()
    path = write_cohort(out or default_cohort_path(), load_settings(settings), seed)
    click.echo(f"wrote {path} (SYNTHETIC cohort, not the study's patients) and its .meta.json")


def _parse_events(values, endpoints) -> dict:
    """``--events [ENDPOINT:]ARM=N`` values as ``{endpoint: {arm: N}}``."""
    import re

    out = {e: {} for e in endpoints}
    for v in values:
        m = re.fullmatch(r"(?:(os|pfs):)?(.+)=\s*(\d+)\s*", v)
        if not m:
            raise InputError(f"--events {v!r}: expected ARM=N (total events of an arm, a whole "
                             "number), or ENDPOINT:ARM=N with two figures, e.g. os:LEN-P=61.")
        endpoint = m.group(1) or (endpoints[0] if len(endpoints) == 1 else None)
        if endpoint not in out:
            raise InputError(f"--events {v!r}: expected the endpoint prefix (one of "
                             f"{', '.join(e + ':' for e in endpoints)}) with several figures.")
        out[endpoint][m.group(2).strip()] = int(m.group(3))
    return out


@cli.command()
@click.option("--points", "points", multiple=True, required=True,
              type=click.Path(dir_okay=False),
              help="Digitised Kaplan-Meier points, CSV arm,time,survival (survival as a "
              "proportion, or in percent when its largest value exceeds 1.5). Repeat with "
              "--at-risk and --endpoint for a second figure.")
@click.option("--at-risk", "at_risk", multiple=True, required=True,
              type=click.Path(dir_okay=False),
              help="Numbers at risk, CSV arm,time,n_risk (a row at time 0 per arm; only that "
              "row when the figure has no table). One per --points, in the same order.")
@click.option("--endpoint", "endpoints", multiple=True, type=click.Choice(["os", "pfs"]),
              help="Endpoint of each figure, in the order of --points (default: os).")
@click.option("--events", "events", multiple=True, metavar="[ENDPOINT:]ARM=N",
              help="Total events of an arm, when published (improves the last interval).")
@click.option("--treated", default=None, help="The arm coded treatment = 1 (default: the arm "
              "named HAIC-LEN-P).")
@click.option("--time-unit", default="months", show_default=True,
              type=click.Choice(["months", "days", "weeks", "years"]),
              help="Unit of the time axis of both files (converted to months).")
@click.option("--figure", default="", help="The source figure, e.g. 'Int J Surg 2024, "
              "Fig. 3A (PSM set)'; recorded in the sidecar and the report.")
@click.option("--population", default="", help="What population the curves show, e.g. "
              "'psm-matched' (then --adjust none is labelled the matched-set comparison).")
@click.option("--endpoint-name", "endpoint_names", multiple=True,
              metavar="ENDPOINT=SHORT,LONG",
              help="Name an endpoint in the sidecar, so that every analysis of the cohort uses "
              "it, e.g. --endpoint-name 'pfs=RFS,relapse-free survival' for a figure of "
              "relapse-free survival read as --endpoint pfs (repeatable).")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Cohort CSV to write; <out>.meta.json, <out>.accuracy.html and "
              "<out>.accuracy.csv are written beside it.")
def reconstruct(points, at_risk, endpoints, events, treated, time_unit, figure, population,
                endpoint_names, out):
    """Rebuild pseudo-patient data from digitised Kaplan-Meier curves and numbers at risk
    (Guyot et al. 2012), with an accuracy report. Tier 'reconstructed': never the study's
    patient data."""
    from . import reconstruct as rc
    from .jobs import write_reconstruction
    from .schema import check_endpoint_names

    process.settle()
    names = _endpoint_name_map(endpoint_names)
    label = {e: short for e, (short, _) in check_endpoint_names(names, "--endpoint-name").items()}
    endpoints = list(endpoints) or (["os"] if len(points) == 1 else [])
    if not (len(points) == len(at_risk) == len(endpoints)):
        raise InputError(f"--points, --at-risk, --endpoint: expected one of each per figure, "
                         f"in the same order; found {len(points)}, {len(at_risk)} and "
                         f"{len(endpoints)}.")
    if len(set(endpoints)) < len(endpoints):
        raise InputError(f"--endpoint: expected each endpoint once; found {', '.join(endpoints)}.")
    totals = _parse_events(events, endpoints)
    recs = [rc.reconstruct_figure(p, r, endpoint=e, treated=treated, events=totals[e],
                                  time_unit=time_unit)
            for p, r, e in zip(points, at_risk, endpoints)]
    paths = write_reconstruction(recs, out, figure=figure, population=population,
                                 endpoint_names=names)
    for rec in recs:
        acc = rc.accuracy_table(rec)
        for arm, r in rec.arms.items():
            a = acc[acc["arm"] == arm].set_index("quantity")["reconstructed"]
            risk = acc[(acc["arm"] == arm) & (acc["quantity"] == "n_risk")]
            off = int((risk["difference"] != 0).sum())
            click.echo(f"{label[rec.endpoint]} {arm} (treatment = {rec.codes[arm]}): "
                       f"{len(r.ipd)} pseudo-patients, {int(r.ipd['event'].sum())} events; "
                       f"max |KM - digitised| {a['max_abs_diff_survival']:.3f}, mean "
                       f"{a['mean_abs_diff_survival']:.4f}; numbers at risk reproduced at "
                       f"{len(risk) - off} of {len(risk)} times")
    click.echo(f"wrote {paths['cohort']} (tier 'reconstructed': pseudo-patients from a "
               f"published figure, not the study's patient data), {paths['sidecar'].name}, "
               f"{paths['html'].name} and {paths['csv'].name}")


@cli.command("run")
@click.option("--config", "config_path", default=None, type=click.Path(dir_okay=False),
              help="Analysis configuration TOML (default: models/main.toml).")
@click.option("--out", default="reports", show_default=True, type=click.Path(file_okay=False),
              help="Folder for index.html and results.csv.")
@click.option("--strict", is_flag=True, help="Exit with code 1 when any fit fails a "
              "convergence check (the report is still written, with the failures on top).")
@data_options
def run_cmd(config_path, out, strict, columns, time_unit, arms, endpoint_names):
    """The main job: published-evidence reanalysis plus patient-level models, HTML report."""
    from .pipeline import run_main

    process.settle()
    process.keep_freed_memory()
    cfg = _configured(config_path, columns, time_unit, arms, endpoint_names)
    state = run_main(cfg, out, argv=sys.argv, echo=lambda m: click.echo(m, err=True))
    if state.alerts:
        for alert in state.alerts:
            click.echo("warning: " + alert, err=True)
        if strict:
            raise SystemExit(1)


@cli.command()
@click.option("--config", "config_path", default=None, type=click.Path(dir_okay=False),
              help="Validation study TOML (default: models/validation.toml).")
@click.option("--replicates", type=click.IntRange(min=1), default=None,
              help="Replicates per scenario (default: the configuration's); more than are stored "
              "extends the study.")
@click.option("--scheduler", default=None, help="Address of a running Dask scheduler "
              "(tcp://HOST:PORT); default: a local cluster over all cores.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes of the local cluster (default: all cores).")
@click.option("--out", default="reports/validation", show_default=True,
              type=click.Path(file_okay=False), help="Folder of the study (resumed when it exists).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--report-only", is_flag=True, help="Compute nothing: summarise and report what "
              "is stored in --out.")
def validate(config_path, replicates, scheduler, workers, out, no_progress, report_only):
    """Validation study: coverage, bias and SBC on simulated cohorts with known truth (Dask)."""
    process.allow_unused()
    from .validation import collect, load_config, run_study
    from .report.validation import standalone_report

    process.settle()
    cfg = load_config(config_path)
    stats = run_study(cfg, out, replicates=replicates, scheduler=scheduler, n_workers=workers,
                      progress=not no_progress, echo=lambda m: click.echo(m, err=True),
                      compute=not report_only)
    res = collect(cfg, out)
    page = standalone_report(res, out)
    click.echo(f"{stats['done']} of {stats['submitted']} new tasks in {stats['seconds']:.0f} s; "
               f"stored replicates: {res['meta']['replicates_per_scenario']}; wrote {page} and "
               f"{out}/summary.csv")


@cli.command()
@click.option("--cohort", default=None, type=click.Path(dir_okay=False),
              help="Cohort CSV (default: the synthetic cohort data/synthetic/cohort.csv).")
@click.option("--covariates", help="Comma-separated covariate columns for the propensity model.")
@click.option("--config", "config_path", default=None, type=click.Path(dir_okay=False),
              help="Configuration TOML for the design settings (default: models/main.toml).")
@click.option("--out", default="reports/design", show_default=True,
              type=click.Path(file_okay=False), help="Folder for the table and figures.")
@data_options
def balance(cohort, covariates, config_path, out, columns, time_unit, arms, endpoint_names):
    """Propensity design only: PS model, matching, weights and covariate balance."""
    from .pipeline import run_balance

    process.settle()
    cfg = _configured(config_path, columns, time_unit, arms, endpoint_names)
    run_balance(cohort or cfg.cohort_path(), out, covariates=_covariate_list(covariates),
                config_path=cfg, echo=click.echo)


@cli.command()
@click.option("--cohort", default=None, type=click.Path(dir_okay=False),
              help="Cohort CSV (default: the synthetic cohort data/synthetic/cohort.csv).")
@click.option("--endpoint", "endpoints", multiple=True, type=click.Choice(["os", "pfs"]),
              help="Endpoint(s) (default: each the cohort has data for).")
@click.option("--prior", "priors", multiple=True,
              help="Prior set(s): names in models/priors/ or paths (default: the configuration's "
              "[priors] published_sets; evidence_based, a meta-analysis of HAIC-LEN-P vs LEN-P, "
              "only for the study's own cohort or when named; the first is the base the others "
              "are reweighted from).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a prior parameter in every set, e.g. survival.log_hr.sigma=1.0.")
@click.option("--threshold", default=0.95, show_default=True, type=float,
              help="Tipping point: the P(HR < 1) the skeptical prior must push below.")
@click.option("--covariates", help="Comma-separated covariate columns.")
@click.option("--seed", type=int, default=None, help="Sampler seed.")
@click.option("--config", "config_path", default=None, type=click.Path(dir_okay=False),
              help="Configuration TOML for cut points, baseline and sampler "
              "(default: models/main.toml).")
@click.option("--out", default="reports/sensitivity", show_default=True,
              type=click.Path(file_okay=False), help="Folder for the tables and report.")
@data_options
def sensitivity(cohort, endpoints, priors, overrides, threshold, covariates, seed, config_path,
                out, columns, time_unit, arms, endpoint_names):
    """Prior sensitivity: every prior set and cut-point set, power scaling, tipping points."""
    from .jobs import write_sensitivity

    process.settle()
    cfg = _configured(config_path, columns, time_unit, arms, endpoint_names)
    names = [_prior_name(p, cfg) for p in priors] or None  # None: the configuration's family
    write_sensitivity(cohort or cfg.cohort_path(), out, endpoints=endpoints or None,
                      prior_names=names, overrides=overrides, threshold=threshold,
                      seed=seed, covariates=_covariate_list(covariates), config_path=cfg,
                      argv=sys.argv, echo=lambda m: click.echo(m, err=True))


@cli.command()
@click.option("--measure", type=click.Choice(["hr", "or", "rr", "rd"]), default="hr",
              show_default=True, help="hr/or/rr with --estimate; rd/rr/or with --counts.")
@click.option("--estimate", type=float, help="The published ratio (HR, OR, RR).")
@click.option("--ci", type=float, nargs=2, default=None, metavar="LOWER UPPER",
              help="Its published confidence interval.")
@click.option("--level", type=float, default=0.95, show_default=True,
              help="Confidence level of --ci.")
@click.option("--p-value", "p_value", default=None,
              help="When no interval was published: e.g. 0.03 or '< 0.001' (a bound is read as "
              "equal to it: the largest SE consistent with it).")
@click.option("--se", type=float, default=None, help="SE of the log ratio, if published.")
@click.option("--counts", type=int, nargs=4, default=None, metavar="R1 N1 R0 N0",
              help="Responders and patients, treated arm then control arm.")
@click.option("--n", "n", type=int, nargs=2, default=None, metavar="N1 N0",
              help="Patients per arm (recorded in results.csv).")
@click.option("--endpoint", type=click.Choice(["os", "pfs"]), default="os", show_default=True,
              help="Which HR prior of a set (published.log_hr_os or _pfs).")
@click.option("--prior", default="reference", show_default=True,
              help="The main prior set: a shipped name or a TOML file (partial files are "
              "completed from the reference set).")
@click.option("--family", "family", multiple=True,
              help="Prior sets shown side by side (repeatable; default: reference, skeptical, "
              "enthusiastic, pessimistic; evidence_based, a meta-analysis of HAIC-LEN-P vs "
              "LEN-P, only when named).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a prior parameter, e.g. published.log_hr_os.sigma=0.5.")
@click.option("--threshold", "thresholds", multiple=True, type=float,
              help="Report P(effect < threshold) (repeatable; default e.g. 1, 0.8, 0.7 for HR).")
@click.option("--label", default="", help="Name of the result in the outputs (e.g. the study).")
@click.option("--published", "published", default=None, type=click.Path(dir_okay=False),
              help="A published-evidence file in the format of data/published/study.csv: "
              "every HR and every pair of arm counts in it.")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder for results.csv and report.html.")
def reanalyse(measure, estimate, ci, level, p_value, se, counts, n, endpoint, prior, family,
              overrides, thresholds, label, published, out):
    """Bayesian reanalysis of any published result (an HR with its CI, or counts)."""
    from .evidence import reanalyse_file, reanalyse_result
    from .jobs import write_reanalysis

    process.settle()
    fam = list(family) or None
    if published:
        if estimate is not None or counts is not None:
            raise InputError("--published: the numbers come from the file; leave out "
                             "--estimate and --counts.")
        results = reanalyse_file(published, prior, overrides=overrides, family=fam)
    else:
        results = [reanalyse_result(measure, estimate, ci, p_value=p_value, se=se,
                                    counts=counts, prior=prior, overrides=overrides, family=fam,
                                    endpoint=endpoint, level=level,
                                    thresholds=thresholds or None, label=label, n=n)]
    write_reanalysis(results, out, argv=sys.argv, echo=lambda m: click.echo(m, err=True))
    for res in results:
        click.echo(repr(res))


@cli.command("init")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--cohort", default=None, help="Path of the cohort file to put in main.toml "
              "(default: cohort.csv in the folder).")
@click.option("--force", is_flag=True, help="Overwrite existing files.")
def init_cmd(folder, cohort, force):
    """Write a ready-to-edit analysis folder: main.toml, priors/, README.md."""
    from .scaffold import write_analysis_folder

    paths = write_analysis_folder(folder, cohort=cohort, force=force)
    click.echo(f"wrote {len(paths)} files to {folder}: main.toml (edit [data] first), priors/, "
               f"README.md (what to edit)")


ENDPOINTS = ("os", "pfs", "orr")
STRATEGIES = ("none", "ps_covariate", "iptw", "psm", "covariates")


def fit_options(endpoint=None, adjust=None):
    """The ``fit`` command's options; ``models/`` scripts preset endpoint and adjustment."""

    def decorate(f):
        opts = [
            click.option("--cohort", default=None, type=click.Path(dir_okay=False),
                         help="Cohort CSV (default: the synthetic cohort data/synthetic/cohort.csv)."),
            click.option("--endpoint", type=click.Choice(ENDPOINTS), default=endpoint,
                         required=endpoint is None, show_default=True),
            click.option("--adjust", type=click.Choice(STRATEGIES), default=adjust or "none",
                         show_default=True, help="Adjustment strategy."),
            click.option("--covariates", help="Comma-separated covariate columns."),
            click.option("--prior", default="reference", show_default=True,
                         help="Prior set: a name in models/priors/ or a path to a TOML file."),
            click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                         help="Override a prior parameter, e.g. survival.log_hr.sigma=1.0."),
            click.option("--seed", type=int, default=None, help="Sampler seed."),
            click.option("--config", "config_path", default=None, type=click.Path(dir_okay=False),
                         help="Configuration TOML for cut points, sampler and design "
                         "(default: models/main.toml)."),
            click.option("--out", required=True, type=click.Path(file_okay=False),
                         help="Folder for results.csv, posterior.nc and report.html."),
        ]
        for opt in reversed(opts):
            f = opt(f)
        return data_options(f)

    return decorate


def _fit(cohort, endpoint, adjust, covariates, prior, overrides, seed, config_path, out,
         columns=(), time_unit=None, arms=None, endpoint_names=()):
    from .pipeline import run_fit

    process.settle()
    cfg = _configured(config_path, columns, time_unit, arms, endpoint_names)
    run_fit(cohort or cfg.cohort_path(), endpoint, adjust, out,
            covariates=_covariate_list(covariates), prior=_prior_name(prior, cfg),
            overrides=overrides, seed=seed, config_path=cfg, argv=sys.argv,
            echo=lambda m: click.echo(m, err=True))


@cli.command("fit")
@fit_options()
def fit_cmd(**kwargs):
    """Fit one endpoint under one adjustment strategy; write results, posterior and report."""
    _fit(**kwargs)


def script(endpoint: str, adjust: str) -> None:
    """Entry point for a ``models/`` script: the ``fit`` command with endpoint and adjustment
    preset (both still overridable on the command line)."""

    @click.command(context_settings={"help_option_names": ["-h", "--help"]})
    @fit_options(endpoint, adjust)
    def command(**kwargs):
        _fit(**kwargs)

    process.start()
    try:
        command.main(standalone_mode=False)
    except InputError as exc:
        click.echo("error: " + textwrap.fill(str(exc), width=100, break_long_words=False,
                                             break_on_hyphens=False), err=True)
        process.end(2)
    except click.ClickException as exc:
        exc.show()
        process.end(2)
    process.end(0)


def main(argv=None) -> int:
    """Entry point: run the CLI, turning user errors into a message and exit code 2."""
    import warnings

    from .errors import BLAS_WARNING

    warnings.filterwarnings("ignore", message=BLAS_WARNING)
    try:
        cli.main(args=argv, prog_name="bayes-haic", standalone_mode=False)
    except InputError as exc:
        click.echo("error: " + textwrap.fill(str(exc), width=100, break_long_words=False,
                                             break_on_hyphens=False), err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 1
    except click.ClickException as exc:
        exc.show()
        return 2
    return 0


def run() -> None:  # console-script entry point
    process.start()
    process.end(main())


if __name__ == "__main__":  # pragma: no cover
    run()
