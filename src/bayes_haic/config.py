"""The analysis configuration: a TOML file users edit (``models/main.toml`` for the main job).

Validated with pydantic; a mistake (unknown key, wrong type, impossible value) becomes an
:class:`~bayes_haic.errors.InputError` naming the file, the key and the expected form.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import InputError
from .paths import project_root
from .sampling import DEFAULT_SEED, SamplerSettings

Strategy = Literal["none", "ps_covariate", "iptw", "psm", "covariates"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Strict):
    cohort: str = "data/synthetic/cohort.csv"
    covariates: list[str] | None = None  # None: the cohort sidecar's list
    # a cohort written by `bayes-haic reconstruct` from the study's published Kaplan-Meier
    # figures (e.g. its PSM OS and PFS curves); "" = none. Adds a reconstructed-data section.
    reconstructed: str = ""


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


class SurvivalConfig(_Strict):
    endpoints: list[Literal["os", "pfs"]] = ["os", "pfs"]
    strategies: list[Strategy] = ["none", "iptw"]
    cuts: Literal["quantile"] | list[float] = "quantile"
    n_intervals: int = Field(8, ge=1, le=50)
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
    strategies: list[Strategy] = ["none", "iptw"]


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
    published_sets: list[str] = ["reference", "skeptical", "enthusiastic", "pessimistic",
                                 "evidence_based"]


class SamplerConfig(_Strict):
    draws: int = Field(1000, ge=100)
    tune: int = Field(1000, ge=100)
    chains: int = Field(2, ge=1, le=8)
    seed: int = DEFAULT_SEED
    target_accept: float = Field(0.9, gt=0.5, lt=1)
    backend: Literal["pymc", "nutpie"] = "nutpie"

    def settings(self) -> SamplerSettings:
        return SamplerSettings(**self.model_dump())


class MainConfig(_Strict):
    data: DataConfig = DataConfig()
    design: DesignConfig = DesignConfig()
    survival: SurvivalConfig = SurvivalConfig()
    response: ResponseConfig = ResponseConfig()
    priors: PriorConfig = PriorConfig()
    sensitivity: SensitivityConfig = SensitivityConfig()
    sampler: SamplerConfig = SamplerConfig()
    source: str = ""

    def cohort_path(self) -> Path:
        p = Path(self.data.cohort)
        return p if p.is_absolute() or p.exists() else project_root() / p

    def reconstructed_path(self) -> Path | None:
        """The ``[data] reconstructed`` cohort file (None when not configured)."""
        if not self.data.reconstructed:
            return None
        p = Path(self.data.reconstructed)
        return p if p.is_absolute() or p.exists() else project_root() / p


def default_config_path() -> Path:
    return project_root() / "models" / "main.toml"


def load_config(path: str | Path | None = None) -> MainConfig:
    """Read and validate an analysis configuration file (default ``models/main.toml``)."""
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
    return cfg.model_copy(update={"source": str(path)})
