"""The analysis configuration: a TOML file users edit (``models/main.toml`` for the main job).

Validated with pydantic; a mistake (unknown key, wrong type, impossible value) becomes an
:class:`~bayes_haic.errors.InputError` naming the file, the key and the expected form.

Without ``--config`` the shipped default is used (``models/main.toml`` in a checkout, the same
file as package data after ``pip install``; :mod:`bayes_haic.paths`). Relative paths in a
configuration file are resolved against the current folder if they exist there, then against
the configuration file's own folder, then against the shipped files (so the default
``data/synthetic/cohort.csv`` works anywhere). Prior sets named in ``[priors]`` are looked up in
``<config folder>/priors/`` first, then among the shipped sets.

A key a file leaves out takes its default here, which is the shipped file's value for every
setting of the analysis (strategies, cut points, design, sensitivity study), with three
exceptions: the package's own study is reanalysed from its published numbers only where a file
says ``[published] enabled = true``, the sensitivity study's prior family has the
``evidence_based`` set (a meta-analysis of HAIC-LEN-P vs LEN-P cohorts) only where a file names
it (the shipped file does both: it is that study's configuration), and ``[sampler] tune`` is
1000 (the shipped file's 500 was measured enough on the default cohort;
:class:`~bayes_haic.sampler_settings.SamplerSettings`). So a file with only a ``[data]`` table is
a whole analysis of that cohort, of that study alone (``tests/test_config.py`` keeps the two in
step).

``[data.columns]`` maps the schema's column names to a cohort file's own (``treatment =
"chemo"``), ``[data] time_unit`` converts its times to months, ``[data.arms]`` names the
arms in reports and ``[data.endpoint_names]`` the survival endpoints (``pfs = {short = "RFS",
long = "relapse-free survival"}``; :class:`DataConfig`).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import InputError
from .paths import models_dir, priors_dir, shipped
from .sampler_settings import BACKENDS, SamplerSettings

Strategy = Literal["none", "ps_covariate", "iptw", "psm", "covariates"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


TimeUnit = Literal["days", "weeks", "months", "years"]


class ArmLabels(_Strict):
    """Names of the arms in reports: ``treated`` is treatment = 1, ``control`` treatment = 0."""

    treated: str = Field(min_length=1, max_length=60)
    control: str = Field(min_length=1, max_length=60)


class EndpointName(_Strict):
    """Report names of a survival endpoint, e.g. ``short = "RFS"``, ``long = "relapse-free
    survival"`` for a cohort whose ``pfs_time``/``pfs_event`` hold relapse-free survival."""

    short: str = Field(min_length=1, max_length=12)
    long: str = Field(min_length=1, max_length=60)


class DataConfig(_Strict):
    cohort: str = "data/synthetic/cohort.csv"
    covariates: list[str] | None = None  # None: the cohort sidecar's list
    # a cohort written by `bayes-haic reconstruct` from the study's published Kaplan-Meier
    # figures (e.g. its PSM OS and PFS curves); "" = none. Adds a reconstructed-data section.
    reconstructed: str = ""
    # schema column -> the cohort file's own column, e.g. {"treatment": "chemo", "os_time": "dtime"}
    columns: dict[str, str] = {}
    time_unit: TimeUnit = "months"  # unit of os_time / pfs_time in the file (converted to months)
    arms: ArmLabels | None = None  # None: the cohort sidecar's names, else defaults
    # names of the endpoints in reports (keys os, pfs, orr); unnamed: the sidecar's, else OS/PFS/ORR
    endpoint_names: dict[Literal["os", "pfs", "orr"], EndpointName] = {}

    @field_validator("columns")
    @classmethod
    def _schema_columns(cls, v):
        from .schema import REQUIRED_COLUMNS

        unknown = [k for k in v if k not in REQUIRED_COLUMNS]
        if unknown:
            raise ValueError(f"unknown schema column(s) {', '.join(map(repr, unknown))}; the keys "
                             f"are the schema's names ({', '.join(REQUIRED_COLUMNS)}) and the "
                             "values your file's column names, e.g. treatment = \"chemo\"")
        return v

    def cohort_options(self) -> dict:
        """Keyword arguments of :func:`bayes_haic.schema.load_cohort` from this table."""
        return {"columns": dict(self.columns), "time_unit": self.time_unit,
                "arms": (self.arms.treated, self.arms.control) if self.arms else None,
                "endpoint_names": {k: (v.short, v.long) for k, v in self.endpoint_names.items()}
                or None}


class DesignConfig(_Strict):
    estimand: Literal["ATE", "ATT", "ATO"] = "ATE"
    stabilized: bool = True
    truncate: tuple[float, float] | None = None  # percentiles in (0, 1), e.g. [0.01, 0.99]
    caliper: float = Field(0.2, gt=0)  # in SDs of the logit propensity score

    @field_validator("truncate")
    @classmethod
    def _percentiles(cls, v):
        if v is not None and not (0 <= v[0] < v[1] <= 1):
            raise ValueError("expected two percentiles 0 <= low < high <= 1, e.g. [0.01, 0.99]")
        return v


#: every adjustment strategy, in the reports' order: the default of a file's strategy lists
STRATEGIES: list[Strategy] = ["none", "ps_covariate", "iptw", "psm", "covariates"]


class SurvivalConfig(_Strict):
    endpoints: list[Literal["os", "pfs"]] = ["os", "pfs"]
    strategies: list[Strategy] = STRATEGIES
    cuts: Literal["quantile"] | list[float] = "quantile"
    n_intervals: int = Field(8, ge=1, le=50)
    # horizon of the standardised restricted-mean-survival difference (months), reported with
    # every survival fit as rmst_diff_<months> (a choice about the study's follow-up)
    rmst_months: float = Field(24.0, gt=0, le=600)
    # the clinically important hazard ratio: reports give P(HR < it) beside P(HR < 1)
    important_hr: float = Field(0.7, gt=0, lt=1)
    # independent: each interval's log baseline hazard has its own prior (the default: no
    # hierarchical funnel, 0 divergences on the default cohort); rw: random-walk smoothing
    # (for many intervals; its non-centred funnel gives a few divergent transitions here)
    baseline: Literal["rw", "independent"] = "independent"
    bootstrap_draws: int = Field(400, ge=20)
    time_varying: bool = False  # interval-specific HR(t) with a random-walk prior (not IPTW)
    # the main job's HR(t) figure: a time-varying fit under this strategy ("" = none)
    time_varying_strategy: Literal["", "none", "ps_covariate", "psm", "covariates"] = "ps_covariate"
    psm_pair_effect: bool = False  # matched-pair random effect in the PSM model
    # rematched sets pooled by the PSM fit (design uncertainty; 1 = the one matched set)
    psm_design_draws: int = Field(8, ge=1, le=200)


class ResponseConfig(_Strict):
    strategies: list[Strategy] = STRATEGIES
    # the clinically important risk difference (a proportion): reports give P(RD > it)
    important_difference: float = Field(0.2, gt=0, lt=1)


class SensitivityConfig(_Strict):
    enabled: bool = True
    # the crude comparison and what the study reported: IPTW hazard ratios, PSM medians
    strategies: list[Strategy] = ["none", "iptw", "psm"]
    # response models refitted under every prior set (the study's ORR under PSM and IPTW)
    orr_strategies: list[Strategy] = ["psm", "iptw"]
    threshold: float = Field(0.95, gt=0, lt=1)  # tipping point: P(HR < 1) below this
    # extra cut-point sets besides the main one: numbers of quantile intervals or grids (months)
    cut_sets: list[int | list[float]] = [4, 12, [0, 3, 6, 9, 12, 18, 24]]


class PriorConfig(_Strict):
    set: str = "reference"
    overrides: list[str] = []
    # the sensitivity study's (and the published tier's) prior family; the shipped file adds
    # evidence_based, a meta-analysis of the package's study's comparison
    published_sets: list[str] = ["reference", "skeptical", "enthusiastic", "pessimistic"]


class PublishedConfig(_Strict):
    # the main job's published tier: the package's study (HAIC-LEN-P vs LEN-P, Int J Surg 2024,
    # data/published/study.csv) reanalysed from its published numbers, with its tipping points;
    # on only where a file says so (the shipped models/main.toml), never for another study's file
    enabled: bool = False


_SAMPLER = SamplerSettings()  # the defaults of a key the [sampler] table leaves out


class SamplerConfig(_Strict):
    draws: int = Field(_SAMPLER.draws, ge=100)
    tune: int = Field(_SAMPLER.tune, ge=100)
    chains: int = Field(_SAMPLER.chains, ge=1, le=8)
    seed: int = _SAMPLER.seed
    target_accept: float = Field(_SAMPLER.target_accept, gt=0.5, lt=1)
    backend: Literal[BACKENDS] = _SAMPLER.backend

    def settings(self) -> SamplerSettings:
        return SamplerSettings(**self.model_dump())


class RunConfig(_Strict):
    # worker processes for the main job's independent blocks (survival endpoints, ORR, the
    # sensitivity study's parts); 1 runs everything in the calling process
    processes: int = Field(2, ge=1, le=16)


class MainConfig(_Strict):
    data: DataConfig = DataConfig()
    design: DesignConfig = DesignConfig()
    survival: SurvivalConfig = SurvivalConfig()
    response: ResponseConfig = ResponseConfig()
    priors: PriorConfig = PriorConfig()
    published: PublishedConfig = PublishedConfig()
    sensitivity: SensitivityConfig = SensitivityConfig()
    sampler: SamplerConfig = SamplerConfig()
    run: RunConfig = RunConfig()
    source: str = ""

    def folder(self) -> Path | None:
        """The folder of the configuration file (None for a configuration built in memory)."""
        return Path(self.source).parent if self.source else None

    def chosen_covariates(self, given=None) -> list[str] | None:
        """The covariates a command uses: those it was given (``--covariates``), else the
        ``[data] covariates`` list, else None (the cohort's sidecar list, else every extra
        column: :func:`bayes_haic.schema.load_cohort`)."""
        return list(given) if given else self.data.covariates

    def cohort_path(self) -> Path:
        """The cohort file: absolute, or relative to the current folder, the configuration
        file's folder, or the shipped files (in that order; the first that exists)."""
        return self._data_file(self.data.cohort)

    def _data_file(self, value: str) -> Path:
        p = Path(value)
        if p.is_absolute() or p.exists():
            return p
        folder = self.folder()
        if folder is not None and (folder / p).exists():
            return folder / p
        if p.parts and p.parts[0] in ("data", "models") and shipped(p).exists():
            return shipped(p)
        return folder / p if folder is not None else p  # missing: named where it was expected

    def is_shipped(self) -> bool:
        """Whether this is the shipped configuration file (the package's study's)."""
        return bool(self.source) and Path(self.source).resolve() == default_config_path().resolve()

    def for_cohort(self, path) -> MainConfig:
        """This configuration as it applies to a cohort a command was given (``--cohort``).
        The shipped file is the package's study's configuration: for a cohort other than its
        own, its study parts ([published] enabled, ``evidence_based`` in the prior family)
        become those of any study's file that leaves them out (off). Any other configuration,
        or the shipped file's own cohort, is returned as it is."""
        if not self.is_shipped() or Path(path).resolve() == self.cohort_path().resolve():
            return self
        return self.model_copy(update={
            "published": PublishedConfig(),
            "priors": self.priors.model_copy(
                update={"published_sets": PriorConfig().published_sets})})

    def reconstructed_path(self) -> Path | None:
        """The ``[data] reconstructed`` cohort file (None when not configured)."""
        if not self.data.reconstructed:
            return None
        return self._data_file(self.data.reconstructed)


def default_config_path() -> Path:
    """The shipped default configuration (``models/main.toml``, or its installed copy)."""
    return models_dir() / "main.toml"


def resolve_prior_name(name: str, folder: str | Path | None) -> str:
    """A prior set's name as given (``skeptical``) or its file in ``folder/priors/`` when there
    is one there and that folder is not the shipped one; paths are returned unchanged."""
    p = Path(name)
    if folder is None or p.suffix == ".toml" or p.exists() or len(p.parts) != 1:
        return name
    own = Path(folder) / "priors"
    candidate = own / f"{name}.toml"
    if candidate.is_file() and own.resolve() != priors_dir().resolve():
        return str(candidate)
    return name


def load_config(path: str | Path | MainConfig | None = None) -> MainConfig:
    """Read and validate an analysis configuration file (default: the shipped
    ``models/main.toml``). A :class:`MainConfig` is returned as it is."""
    if isinstance(path, MainConfig):
        return path
    path = Path(path) if path else default_config_path()
    if not path.is_file():
        raise InputError(f"{path}: no such configuration file; expected a TOML file like "
                         "models/main.toml.")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc}).") from None
    try:
        cfg = MainConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"key '{'.'.join(str(p) for p in e['loc'])}': {e['msg']}"
            + (f" (found {e['input']!r})" if e["type"] != "missing" else "")
            for e in exc.errors()
        )
        raise InputError(f"{path}: {problems}.") from None
    # prior sets named in the file: the configuration's own priors/ folder first
    folder = path.parent
    pri = cfg.priors.model_copy(update={
        "set": resolve_prior_name(cfg.priors.set, folder),
        "published_sets": [resolve_prior_name(n, folder) for n in cfg.priors.published_sets]})
    return cfg.model_copy(update={"source": str(path), "priors": pri})
