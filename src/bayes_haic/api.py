"""The Python API, in the style of lifelines: a data frame in, a result object out.

>>> import bayes_haic as bh
>>> res = bh.fit(df, endpoint="os", adjust="iptw", covariates=["age", "nodes"],
...              prior="skeptical", columns={"treatment": "hormon", "os_time": "dtime"})
>>> res.summary()          # a DataFrame with the results.csv columns
>>> res.idata              # ArviZ InferenceData
>>> res.plot()             # Kaplan-Meier per arm vs the model's posterior survival
>>> res.to_netcdf("os_iptw.nc")
>>> bh.balance(df, covariates=[...], columns={...}).table
>>> bh.reanalyse(measure="hr", estimate=0.75, ci=(0.55, 1.02)).summary()

Everything here wraps the functions the command line uses (:mod:`bayes_haic.analysis`,
:mod:`bayes_haic.survival`, :mod:`bayes_haic.response`, :mod:`bayes_haic.evidence`); the
statistics live there. Times are in months (``time_unit`` converts a frame's times on the way
in). Mistakes in the data or options raise :class:`~bayes_haic.errors.InputError` with a
message naming the column and the rows.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from .errors import InputError
from .schema import name_endpoints, naming_scope, require_endpoint, require_response

__all__ = ["fit", "balance", "reanalyse", "FitResult", "BalanceResult", "load_data"]


def load_data(data, covariates=None, *, columns=None, time_unit: str = "months", arms=None,
              endpoint_names=None):
    """A validated :class:`~bayes_haic.schema.Cohort` from a DataFrame or a CSV path.

    Parameters
    ----------
    data : pandas.DataFrame or str or pathlib.Path
        One row per patient: the cohort schema's columns (``id`` is optional for a frame: the
        row position is used), under the schema's names or mapped by ``columns``.
    covariates : list of str, optional
        Baseline covariate columns (default: every column beyond the schema's).
    columns : dict, optional
        Schema name -> the data's own column name, e.g. ``{"treatment": "chemo"}``.
    time_unit : {"months", "days", "weeks", "years"}
        Unit of the data's times; converted to months.
    arms : tuple of str, optional
        Report names of (treatment = 1, treatment = 0); default ``("treated", "control")``.
    endpoint_names : dict, optional
        Report names (short, long) of the survival endpoints, e.g. ``{"pfs": ("RFS",
        "relapse-free survival")}`` when ``pfs_time``/``pfs_event`` hold relapse-free survival;
        default OS and PFS.

    Returns
    -------
    bayes_haic.schema.Cohort
    """
    from .schema import cohort_from_frame, load_cohort

    if isinstance(data, (str, Path)):
        return load_cohort(data, covariates, columns=columns, time_unit=time_unit, arms=arms,
                           endpoint_names=endpoint_names)
    if isinstance(data, pd.DataFrame):
        id_col = (columns or {}).get("id", "id")
        if id_col not in data.columns:  # a frame without ids: its row positions
            data = data.assign(**{id_col: [f"row{i + 1}" for i in range(len(data))]})
        return cohort_from_frame(data, covariates, columns=columns, time_unit=time_unit,
                                 arms=arms, endpoint_names=endpoint_names)
    raise InputError(f"data: expected a pandas DataFrame or the path of a CSV file; found "
                     f"{type(data).__name__}.")


def _config(config, draws, tune, chains, seed, cuts, n_intervals, baseline, n_boot):
    from .config import load_config

    cfg = load_config(config)
    sampler = cfg.sampler.settings()
    changes = {k: v for k, v in (("draws", draws), ("tune", tune), ("chains", chains),
                                 ("seed", seed)) if v is not None}
    sampler = replace(sampler, **{k: int(v) for k, v in changes.items()})
    surv = cfg.survival
    return cfg, sampler, {
        "cuts": surv.cuts if cuts is None else cuts,
        "n_intervals": surv.n_intervals if n_intervals is None else int(n_intervals),
        "baseline": baseline or surv.baseline,
        "n_boot": surv.bootstrap_draws if n_boot is None else int(n_boot),
    }


#: how a FitResult's repr names the adjusted sample of a strategy (balance.STRATEGY_SAMPLES)
ADJUSTED_SAMPLE_NAMES = {"iptw": "IPT weights", "psm": "matched set"}


@dataclass
class FitResult:
    """One fitted model: an endpoint under an adjustment strategy and a prior set.

    Attributes
    ----------
    idata : arviz.InferenceData
        Posterior draws, sampler statistics and provenance (``idata.attrs``).
    cohort : bayes_haic.schema.Cohort
        The validated data (schema names, months).
    endpoint, adjustment : str
        ``"os"``, ``"pfs"`` or ``"orr"``; ``"none"``, ``"iptw"``, ``"ps_covariate"``, ``"psm"``
        or ``"covariates"``.
    prior_set : bayes_haic.priors.PriorSet
        The effective prior set (complete, overrides applied).
    design : bayes_haic.propensity.Design or None
        The propensity design, for the strategies that use one.
    config : bayes_haic.config.MainConfig or None
        The configuration the fit used; its reporting settings (``[survival] rmst_months`` and
        ``important_hr``, ``[response] important_difference``) shape :meth:`summary` and
        :meth:`plot`. None: the defaults.
    """

    idata: object
    cohort: object
    endpoint: str
    adjustment: str
    prior_set: object
    design: object = None
    config: object = None
    _rows: list = field(default=None, repr=False)
    _estimands: tuple = field(default=None, repr=False)  # survival_estimands, computed once

    @property
    def info(self):
        """What produced this fit (:class:`bayes_haic.fitinfo.FitInfo`: estimand, prior set,
        method, ``inference`` = NUTS / pooled NUTS / Bayesian bootstrap, layout, arm sizes)."""
        from .fitinfo import FitInfo

        return FitInfo.of(self.idata)

    @property
    def spec(self):
        """The PWE model structure of a survival fit (:class:`bayes_haic.survival.ModelSpec`),
        None for ORR fits."""
        from . import survival

        return None if self.endpoint == "orr" else survival.model_spec(self.idata.attrs)

    def summary(self) -> pd.DataFrame:
        """The estimates as a DataFrame with exactly the columns of ``results.csv``
        (:data:`bayes_haic.results.RESULT_COLUMNS`): for OS/PFS the HR, the arm medians and the
        RMST difference to ``[survival] rmst_months``; for ORR the RD, RR and OR."""
        from . import response, survival
        from .results import results_frame

        if self._rows is None:
            if self.endpoint == "orr":
                self._rows = response.response_rows(self.idata, self.cohort.data_tier,
                                                     self.cohort.name)
            else:
                self._rows = survival.result_rows(self.idata, self.cohort.data_tier,
                                                  self.cohort.name,
                                                  rmst_tau=self._settings.survival.rmst_months,
                                                  draws=self._survival_estimands()[1])
        return results_frame(self._rows)

    @property
    def hr(self) -> pd.Series:
        """The hazard-ratio row of :meth:`summary` (OS/PFS fits)."""
        s = self.summary()
        rows = s[s["measure"] == "hr"]
        if rows.empty:
            raise InputError(f"{self.endpoint}: no hazard ratio (a response fit has rd, rr, or).")
        return rows.iloc[0]

    @naming_scope
    def plot(self, title: str | None = None):
        """The Kaplan-Meier-vs-model figure (OS/PFS): Kaplan-Meier per arm (IPT-weighted for
        IPTW, the matched set for PSM) over the posterior survival (median, 95% band); for ORR
        the posterior of the risk difference. Returns a Figure (drawn by
        :mod:`bayes_haic.report.figures`)."""
        from .report import figures

        name_endpoints(self.cohort.endpoint_names)
        label = title or f"{self.endpoint_label}, adjustment '{self.adjustment}'"
        if self.endpoint == "orr":
            return figures.plot_rd({label: self.idata}, arm_names=self.cohort.arms,
                                   important=self._settings.response.important_difference)
        from . import checks

        _, draws = self._survival_estimands()
        return figures.km_vs_model(checks.fit_km(self.idata), self.endpoint, draws, label,
                                   arm_names=self.cohort.arms)

    @property
    def _settings(self):
        """The configuration the fit used (the defaults when none was recorded)."""
        from .config import MainConfig

        return self.config if self.config is not None else MainConfig()

    @property
    def endpoint_label(self) -> str:
        """The endpoint's short name as the cohort names it (``"OS"``, ``"RFS"``, ``"ORR"``)."""
        return self.cohort.endpoint_names.get(self.endpoint, (self.endpoint.upper(),))[0]

    def _survival_estimands(self) -> tuple:
        """:func:`bayes_haic.survival.survival_estimands` of the fit, computed once (the
        results rows and the figure share them)."""
        from . import survival

        if self._estimands is None:
            self._estimands = survival.survival_estimands(
                self.idata, rmst_tau=self._settings.survival.rmst_months,
                hr_thresholds=(1.0, self._settings.survival.important_hr))
        return self._estimands

    def to_netcdf(self, path) -> Path:
        """Save :attr:`idata` (ArviZ netCDF, written atomically); returns the path."""
        from .pipeline import write_netcdf

        path = Path(path)
        write_netcdf(copy.deepcopy(self.idata), path)
        return path

    def __repr__(self) -> str:
        head = (f"FitResult({self.endpoint_label}, adjustment '{self.adjustment}', prior "
                f"'{self.prior_set.label()}', {self.cohort.name}: {self.cohort.n_treated} "
                f"{self.cohort.arms[0]} vs {self.cohort.n_control} {self.cohort.arms[1]})")
        try:
            row = self.summary().iloc[0]
            head += (f"\n  {row['measure']} {row['median']:.3f} (95% CrI {row['lower']:.3f} to "
                     f"{row['upper']:.3f}), P(benefit) = {row['prob_benefit']:.3f}")
        except Exception:  # a repr never fails
            pass
        bad = self.imbalance()
        if len(bad):
            first = bad.iloc[0]
            head += (f"\n  design: {len(bad)} covariate(s) left imbalanced by the "
                     f"{ADJUSTED_SAMPLE_NAMES[self.adjustment]}, largest {first['covariate']} "
                     f"(SMD {first['smd']:+.3f}); see .imbalance()")
        return head

    def imbalance(self) -> pd.DataFrame:
        """The covariates that this fit's adjusted sample (the IPT weights of ``iptw``, the
        matched set of ``psm``) leaves imbalanced: ``|SMD|`` above 0.1 or a variance ratio
        outside 0.5-2 (:func:`bayes_haic.balance.residual_imbalance`); empty for a balanced
        sample and for the strategies that use none."""
        from .balance import strategy_imbalance

        table = self.design.balance if self.design is not None else pd.DataFrame()
        return strategy_imbalance(table, self.adjustment)


def fit(data, endpoint: str = "os", adjust: str = "none", *, covariates=None,
        prior="reference", overrides=(), columns=None, time_unit: str | None = None, arms=None,
        endpoint_names=None, config=None, draws=None, tune=None, chains=None, seed=None, cuts=None,
        n_intervals=None, baseline=None, n_boot=None, time_varying: bool = False) -> FitResult:
    """Fit one endpoint under one adjustment strategy (the ``bayes-haic fit`` command).

    Parameters
    ----------
    data : pandas.DataFrame or str or pathlib.Path
        The cohort (see :func:`load_data`).
    endpoint : {"os", "pfs", "orr"}
    adjust : {"none", "iptw", "ps_covariate", "psm", "covariates"}
        Adjustment strategy; all but ``none`` use ``covariates``.
    covariates : list of str, optional
        Baseline covariates (default: the configuration's ``[data] covariates``, else every
        column beyond the schema's).
    prior : str or path or bayes_haic.priors.PriorSet
        A shipped prior set's name (``"reference"``, ``"skeptical"``, ...), a TOML file (a
        partial file is completed from the reference set) or a loaded set.
    overrides : sequence of str
        Single prior parameters, e.g. ``["survival.log_hr.sigma=0.5"]``.
    columns, time_unit, arms, endpoint_names
        The data's own column names, time unit, arm and endpoint names (see :func:`load_data`;
        each not given: the configuration's ``[data]`` table's, as on the command line).
    config : str or path, optional
        A configuration TOML for the defaults of the data's description above and of
        everything below (default: the shipped one).
    draws, tune, chains, seed : int, optional
        Sampler settings.
    cuts : "quantile" or list of float, optional
        Cut points of the piecewise-exponential baseline (months) or ``"quantile"``.
    n_intervals : int, optional
        Number of quantile intervals.
    baseline : {"independent", "rw"}, optional
    n_boot : int, optional
        Bayesian-bootstrap replicates (IPTW).
    time_varying : bool
        Interval-specific HR(t) (not with IPTW).

    Returns
    -------
    FitResult
    """
    from . import analysis
    from .priors import as_prior_set

    if endpoint not in ("os", "pfs", "orr"):
        raise InputError(f"endpoint: expected 'os', 'pfs' or 'orr'; found {endpoint!r}.")
    if adjust not in analysis.SURVIVAL_STRATEGIES:
        raise InputError(f"adjust: expected one of {', '.join(analysis.SURVIVAL_STRATEGIES)}; "
                         f"found {adjust!r}.")
    cfg, sampler, opts = _config(config, draws, tune, chains, seed, cuts, n_intervals,
                                 baseline, n_boot)
    prior_set = as_prior_set(prior, tuple(overrides))
    if overrides and not isinstance(prior, (str, Path, type(None))):
        prior_set = as_prior_set(prior_set.source, tuple(overrides))
    given = {"columns": columns, "time_unit": time_unit, "arms": arms,
             "endpoint_names": endpoint_names}
    described = {k: v if given[k] is None else given[k]  # the configuration's [data] unless given
                 for k, v in cfg.data.cohort_options().items()}
    cohort = load_data(data, cfg.chosen_covariates(covariates), **described)
    if endpoint == "orr":
        require_response(cohort)
    else:
        require_endpoint(cohort, endpoint)
    design = analysis.make_design(cohort, cfg.design) if adjust in ("iptw", "psm",
                                                                    "ps_covariate") else None
    if endpoint == "orr":
        idata = analysis.fit_orr(cohort, adjust, design=design, prior_set=prior_set,
                                 sampler=sampler, n_boot=opts["n_boot"])
    else:
        cut_points = analysis.endpoint_cuts(cohort, endpoint, opts["cuts"], opts["n_intervals"])
        idata = analysis.fit_survival(cohort, endpoint, adjust, design=design,
                                      prior_set=prior_set, sampler=sampler, cuts=cut_points,
                                      baseline=opts["baseline"], n_boot=opts["n_boot"],
                                      time_varying=time_varying,
                                      pair_effect=cfg.survival.psm_pair_effect)
    return FitResult(idata, cohort, endpoint, adjust, prior_set, design, config=cfg)


@dataclass
class BalanceResult:
    """The propensity design of a cohort: PS model, 1:1 matching, IPT weights, balance.

    Attributes
    ----------
    table : pandas.DataFrame
        Standardised mean differences and variance ratios per covariate, before adjustment, in
        the matched set and under the weights (the ``balance.csv`` of ``bayes-haic balance``).
    design : bayes_haic.propensity.Design
    cohort : bayes_haic.schema.Cohort
    """

    table: pd.DataFrame
    design: object
    cohort: object

    def summary(self) -> dict:
        """Matched pairs, unmatched treated, weights' estimand, Kish effective sample sizes."""
        return self.design.summary()

    def imbalance(self, adjustment: str = "weighted") -> pd.DataFrame:
        """The covariates that ``adjustment`` (``"weighted"``: the IPT weights, ``"matched"``:
        the matched set) leaves imbalanced: ``|SMD|`` above 0.1 or a variance ratio outside
        0.5-2 (:func:`bayes_haic.balance.residual_imbalance`); empty when balanced."""
        from .balance import residual_imbalance

        return residual_imbalance(self.table, adjustment)

    def plot(self):
        """The love plot (absolute SMD per covariate); a Figure."""
        from .report import figures

        return figures.love_plot(self.design.balance)

    def overlap_plot(self):
        """Propensity-score overlap by arm; a Figure."""
        from .report import figures

        t = self.cohort.frame["treatment"].to_numpy()
        return figures.overlap_plot(self.design.ps_fit.ps, t,
                                arm_labels={1: self.cohort.arms[0], 0: self.cohort.arms[1]})


def balance(data, covariates=None, *, columns=None, time_unit: str = "months", arms=None,
            estimand: str = "ATE", stabilized: bool = True, truncate=None,
            caliper: float = 0.2) -> BalanceResult:
    """The design stage only (the ``bayes-haic balance`` command); outcomes are not looked at.

    Parameters
    ----------
    data : pandas.DataFrame or str or pathlib.Path
        The cohort (see :func:`load_data`).
    covariates : list of str, optional
        Covariates of the propensity model (default: every column beyond the schema's).
    columns, time_unit, arms
        See :func:`load_data`.
    estimand : {"ATE", "ATT", "ATO"}
        Target population of the weights.
    stabilized : bool
    truncate : tuple of float, optional
        Percentiles at which to truncate the weights, e.g. ``(0.01, 0.99)``.
    caliper : float
        Matching caliper in SDs of the logit propensity score.

    Returns
    -------
    BalanceResult
    """
    from pydantic import ValidationError

    from .config import DesignConfig
    from .propensity import make_design

    try:
        settings = DesignConfig(estimand=estimand, stabilized=stabilized, truncate=truncate,
                                caliper=caliper)
    except ValidationError as exc:
        raise InputError("balance: " + "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()) + ".") from None
    cohort = load_data(data, covariates, columns=columns, time_unit=time_unit, arms=arms)
    design = make_design(cohort, settings)
    return BalanceResult(design.balance, design, cohort)


def reanalyse(measure: str = "hr", estimate=None, ci=None, *, p_value=None, se=None,
              counts=None, prior="reference", overrides=(), family=None, endpoint: str = "os",
              level: float = 0.95, label: str = ""):
    """Bayesian reanalysis of one published result (the ``bayes-haic reanalyse`` command).

    Parameters
    ----------
    measure : {"hr", "or", "rr", "rd"}
        A ratio (``hr``, ``or``, ``rr``) with ``estimate`` and ``ci`` or ``p_value``; or a
        response contrast from ``counts`` (``or``, ``rr``, ``rd``).
    estimate : float
        The published point estimate (a ratio).
    ci : tuple of float, optional
        The published confidence interval (``level``): SE of the log ratio
        ``(log U - log L) / (2 z)``.
    p_value : float or str, optional
        When no interval was published: ``0.03`` or ``"< 0.001"`` (a bound is read as equal to
        it, the largest SE consistent with it: the most conservative reading).
    se : float, optional
        The SE of the log ratio, if known.
    counts : tuple of int, optional
        ``(events_treated, n_treated, events_control, n_control)`` for a response contrast.
    prior : str or path
        The prior set whose effect prior is the main analysis (``published.log_hr_<endpoint>``
        for HR; ``response.log_or`` for OR/RR; ``published.arm_rate`` and ``response.*`` for
        counts).
    overrides : sequence of str
        Prior parameters, e.g. ``["published.log_hr_os.sigma=0.5"]``.
    family : sequence of str, optional
        Further prior sets reported side by side (default: reference, skeptical,
        enthusiastic, pessimistic; the shipped ``evidence_based`` set, a meta-analysis of
        HAIC-LEN-P vs LEN-P, only when named).
    endpoint : {"os", "pfs"}
        Which HR prior of a set to use.
    level : float
        Confidence level of ``ci``.
    label : str
        A name for the result (e.g. the study), recorded in ``source``.

    Returns
    -------
    bayes_haic.evidence.EvidenceReanalysis
        ``.summary()`` (results.csv columns), ``.table()``, ``.plot()``.
    """
    from . import evidence

    return evidence.reanalyse_result(measure=measure, estimate=estimate, ci=ci, p_value=p_value,
                                     se=se, counts=counts, prior=prior, overrides=overrides,
                                     family=family, endpoint=endpoint, level=level, label=label)
