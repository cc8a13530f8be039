"""The propensity score: its model, inverse-probability-of-treatment weights, and the design stage.

**Model.** For patient ``i`` with covariates ``x_i`` (numeric columns chosen by the caller) the
propensity score is ``e_i = P(treatment_i = 1 | x_i)`` (1 = HAIC-LEN-P, 0 = LEN-P), modelled as

    logit(e_i) = beta_0 + sum_j beta_j x_ij        (Rosenbaum & Rubin 1983, Biometrika 70:41-55).

* :func:`fit_ps` -- maximum likelihood (as the study and R's ``glm`` do), optionally with patient
  weights (a weighted likelihood ``sum_i w_i log p(t_i | x_i)``, e.g. Dirichlet weights for a
  Bayesian bootstrap of the whole design, Saarela et al. 2015, Biometrics 71:279-288).
* :func:`fit_ps_bayes` -- the same model in PyMC with normal priors, giving posterior draws of
  every patient's score so later analyses can propagate the uncertainty of the design.

Covariates are used as given (numeric; 0/1 for binary). Internally they are centred and scaled
to unit SD for numerical stability (ML) and for the priors (Bayes, which are per SD of the
covariate); coefficients are reported on the original scale. Missing or non-finite covariate
values raise :class:`~bayes_haic.errors.InputError` naming the column and rows: patients are
never dropped silently. Impute or exclude them explicitly before calling (and report it).

**Weights** (:func:`ipt_weights`), with ``e`` the propensity score, ``t`` treatment, ``p`` the
proportion treated:

=========  ============================  ==========================================
estimand   treated                       control
=========  ============================  ==========================================
ATE        ``1 / e``                     ``1 / (1 - e)``
ATT        ``1``                         ``e / (1 - e)``
ATO        ``1 - e``                     ``e``  (overlap weights, Li et al. 2018, JASA)
=========  ============================  ==========================================

Stabilised weights (ATE: Robins, Hernan & Brumback 2000, Epidemiology 11:550-560; Xu et al.
2010, Value Health 13:273-277) multiply the treated weights by ``p`` and the control weights by
``1 - p``, so that each arm's weights sum approximately to its size. For the ATT the control
weights are multiplied by ``(1 - p) / p`` for the same purpose. Within an arm this is a constant,
so weighted means and SMDs do not change; weighted totals and model-based variances do.
Overlap weights are bounded and have no stabilised form.

Truncation (Cole & Hernan 2008, Am J Epidemiol 168:656-664) sets weights below the ``lo``
quantile to that quantile and above the ``hi`` quantile to that quantile (quantiles by linear
interpolation, R's type 7); quantiles are of the weights of the arms the estimand reweights:
all patients for ATE and ATO, the controls only for the ATT (treated weights are fixed at 1).

**Effective sample size** per arm (Kish 1965): ``(sum w)^2 / sum w^2``.

:func:`design` runs the whole design stage (ML score, weights, matching from
:mod:`bayes_haic.matching`, balance from :mod:`bayes_haic.balance`) and returns a :class:`Design`;
:func:`make_design` runs it on a loaded cohort with the configuration's ``[design]`` settings.
Nothing here imports PyMC unless :func:`fit_ps_bayes` is called.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import optimize
from scipy.special import expit

from .balance import balance_table
from .errors import InputError, describe_rows
from .matching import MatchResult, match_nearest

if TYPE_CHECKING:  # pragma: no cover
    import arviz as az

    from .config import DesignConfig
    from .sampling import SamplerSettings
    from .schema import Cohort

INTERCEPT = "intercept"
ESTIMANDS = ("ATE", "ATT", "ATO")


# --------------------------------------------------------------------------------------------
# Design matrix and checks
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Design:
    X: np.ndarray  # n x k covariates, original scale
    t: np.ndarray  # n, 0/1
    ids: np.ndarray
    center: np.ndarray
    scale: np.ndarray

    def standardized(self, X=None) -> np.ndarray:
        """``[1, (X - center) / scale]``."""
        X = self.X if X is None else X
        Z = (X - self.center) / self.scale
        return np.column_stack([np.ones(len(Z)), Z])


def _check_covariate_names(frame: pd.DataFrame, covariates) -> list[str]:
    if not isinstance(frame, pd.DataFrame):
        raise InputError(f"propensity model: expected a pandas DataFrame, found {type(frame).__name__}.")
    if isinstance(covariates, str) or covariates is None:
        raise InputError(
            "propensity model: covariates must be a list of column names, e.g. ['age', 'ecog_1']."
        )
    covariates = list(covariates)
    if not covariates:
        raise InputError("propensity model: give at least one covariate.")
    dup = sorted({c for c in covariates if covariates.count(c) > 1})
    if dup:
        raise InputError(f"propensity model: covariate(s) listed twice: {', '.join(dup)}.")
    missing = [c for c in covariates if c not in frame.columns]
    if missing:
        raise InputError(
            f"cohort: no column(s) {', '.join(map(repr, missing))} for the propensity model; "
            f"columns present: {', '.join(map(str, frame.columns))}."
        )
    return covariates


def _covariate_values(frame: pd.DataFrame, covariates: list[str]) -> np.ndarray:
    cols = []
    for c in covariates:
        col = frame[c]
        if col.dtype == bool:
            col = col.astype(int)
        if not pd.api.types.is_numeric_dtype(col):
            values = pd.to_numeric(col, errors="coerce")
            bad = np.flatnonzero(values.isna() & col.notna())
            if bad.size:
                raise InputError(
                    f"cohort: column '{c}', {describe_rows(bad + 1)}: expected a number (code "
                    f"categories as 0/1 columns), found "
                    f"{', '.join(repr(v) for v in col.iloc[bad[:3]])}."
                )
            col = values
        values = col.to_numpy(dtype=float)
        nan = np.flatnonzero(np.isnan(values))
        if nan.size:
            raise InputError(
                f"cohort: column '{c}' is missing at {describe_rows(nan + 1)}. The propensity "
                "model uses complete covariates and does not drop patients silently: impute the "
                "values or exclude these patients explicitly (and report it) before fitting."
            )
        inf = np.flatnonzero(~np.isfinite(values))
        if inf.size:
            raise InputError(f"cohort: column '{c}', {describe_rows(inf + 1)}: value is infinite.")
        cols.append(values)
    return np.column_stack(cols)


def _treatment_values(frame: pd.DataFrame, treatment: str) -> np.ndarray:
    if treatment not in frame.columns:
        raise InputError(f"cohort: no treatment column '{treatment}'.")
    col = frame[treatment]
    t = pd.to_numeric(col.astype(int) if col.dtype == bool else col, errors="coerce").to_numpy()
    bad = np.flatnonzero(~np.isin(t, (0, 1)))
    if bad.size:
        raise InputError(
            f"cohort: column '{treatment}', {describe_rows(bad + 1)}: expected 1 (HAIC-LEN-P) or "
            f"0 (LEN-P), found {', '.join(repr(v) for v in col.iloc[bad[:3]])}."
        )
    t = t.astype(int)
    if t.min() == t.max():
        raise InputError(
            f"cohort: column '{treatment}': all patients are in arm {t[0]}; a propensity model "
            "needs both arms."
        )
    return t


def _id_values(frame: pd.DataFrame, id_col: str) -> np.ndarray:
    if id_col not in frame.columns:
        raise InputError(f"cohort: no id column '{id_col}'.")
    ids = frame[id_col]
    dup = np.flatnonzero(ids.duplicated(keep=False).to_numpy())
    if dup.size:
        raise InputError(f"cohort: column '{id_col}', {describe_rows(dup + 1)}: ids must be unique.")
    if ids.isna().any():
        raise InputError(
            f"cohort: column '{id_col}' is missing at {describe_rows(np.flatnonzero(ids.isna()) + 1)}."
        )
    return ids.to_numpy()


def _build_design(frame, covariates, treatment, id_col) -> tuple[_Design, list[str]]:
    covariates = _check_covariate_names(frame, covariates)
    t = _treatment_values(frame, treatment)
    ids = _id_values(frame, id_col)
    X = _covariate_values(frame, covariates)
    center = X.mean(axis=0)
    scale = X.std(axis=0)
    const = [c for c, s in zip(covariates, scale) if s == 0]
    if const:
        raise InputError(
            f"cohort: covariate(s) {', '.join(map(repr, const))} take a single value in every "
            "patient; their coefficients cannot be estimated. Remove them from the model."
        )
    design = _Design(X=X, t=t, ids=ids, center=center, scale=scale)
    Z = design.standardized()
    rank = 1
    for j, c in enumerate(covariates):
        r = np.linalg.matrix_rank(Z[:, : j + 2])
        if r == rank:
            earlier = ", ".join(covariates[:j]) or "none"
            raise InputError(
                f"propensity model: covariate '{c}' is a linear combination of the intercept and "
                f"earlier covariates ({earlier}); e.g. a full set of category indicators. Drop one "
                "(the reference category)."
            )
        rank = r
    if len(t) <= Z.shape[1]:
        raise InputError(
            f"propensity model: {Z.shape[1]} coefficients cannot be estimated from {len(t)} patients."
        )
    return design, covariates


def _check_sample_weight(sample_weight, n: int) -> np.ndarray | None:
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight, dtype=float)
    if w.shape != (n,):
        raise InputError(f"sample_weight: expected {n} values (one per patient), found shape {w.shape}.")
    bad = np.flatnonzero(~np.isfinite(w) | (w < 0))
    if bad.size:
        raise InputError(f"sample_weight: must be finite and >= 0; not so at {describe_rows(bad + 1)}.")
    if w.sum() <= 0:
        raise InputError("sample_weight: all weights are zero.")
    return w


def _separating_direction(Z: np.ndarray, t: np.ndarray) -> np.ndarray | None:
    """A direction ``b`` with ``(2t - 1) * Z b >= 0`` for all rows and ``> 0`` for some, if any.

    Such a direction exists exactly when the data show complete or quasi-complete separation,
    i.e. when the maximum-likelihood estimate does not exist (Albert & Anderson 1984,
    Biometrika 71:1-10). Found by a linear programme (Konis 2007, DPhil thesis, Oxford):
    maximise ``sum_i s_i z_i'b`` subject to ``s_i z_i'b >= 0`` and ``-1 <= b <= 1``.
    """
    s = 2.0 * t - 1.0
    A = s[:, None] * Z
    res = optimize.linprog(
        c=-A.sum(axis=0), A_ub=-A, b_ub=np.zeros(len(A)), bounds=[(-1, 1)] * Z.shape[1],
        method="highs",
    )
    if res.status != 0:  # pragma: no cover - the LP is always feasible (b = 0) and bounded
        return None
    if -res.fun > 1e-7 * max(1.0, len(A)):
        return res.x
    return None


def _separation_message(design: _Design, covariates: list[str], direction: np.ndarray, rows) -> str:
    involved = [c for c, b in zip(covariates, direction[1:]) if abs(b) > 1e-6]
    detail = []
    for c in involved:
        j = covariates.index(c)
        x = design.X[rows, j]
        if np.all((x == 0) | (x == 1)):
            t = design.t[rows]
            for level in (0, 1):
                n1 = int(np.sum((x == level) & (t == 1)))
                n0 = int(np.sum((x == level) & (t == 0)))
                if n1 == 0 or n0 == 0:
                    detail.append(f"{c} = {level}: {n1} treated, {n0} control")
    names = ", ".join(involved) if involved else "the intercept"
    more = f" ({'; '.join(detail)})" if detail else ""
    return (
        f"propensity model: treatment is perfectly predicted by {names}{more} (complete or "
        "quasi-complete separation), so the maximum-likelihood propensity score does not exist "
        "(some patients would get a score of exactly 0 or 1 and there is no overlap between the "
        "arms there). Remove or merge these covariates, restrict the cohort to the region of "
        "overlap, or use fit_ps_bayes(), whose prior keeps the coefficients finite."
    )


# --------------------------------------------------------------------------------------------
# Maximum likelihood
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PSFit:
    """A fitted propensity-score model (maximum likelihood).

    Attributes
    ----------
    coef, se
        Coefficients (log-odds of HAIC-LEN-P per unit of each covariate) and their standard
        errors, indexed ``intercept`` then the covariates; original covariate scale.
    cov
        Covariance matrix of ``coef`` (inverse observed information).
    ps, logit_ps
        Each patient's estimated score ``e_i`` and ``logit(e_i)``, in row order of the cohort.
    ids
        Patient ids, row order.
    covariates, treatment, id_col
        What the model was fitted on; with ``center`` and ``scale`` (the internal
        standardisation, population SD) this is the design-matrix information needed to refit
        or predict (:meth:`refit`, :meth:`predict`).
    sample_weight
        Patient weights of the likelihood, or None.
    loglik
        Maximised (weighted) log-likelihood.
    iterations
        Newton-Raphson iterations used.
    """

    coef: pd.Series
    se: pd.Series
    cov: pd.DataFrame
    ps: np.ndarray
    logit_ps: np.ndarray
    ids: np.ndarray
    covariates: tuple[str, ...]
    treatment: str
    id_col: str
    center: pd.Series
    scale: pd.Series
    sample_weight: np.ndarray | None
    loglik: float
    iterations: int
    method: str = "ml"

    def predict(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``(ps, logit_ps)`` for the patients in ``frame`` (same covariate columns)."""
        covariates = _check_covariate_names(frame, self.covariates)
        X = _covariate_values(frame, covariates)
        eta = self.coef[INTERCEPT] + X @ self.coef[list(covariates)].to_numpy()
        return expit(eta), eta

    def refit(self, frame: pd.DataFrame, sample_weight=None) -> PSFit:
        """The same model fitted again on ``frame`` with patient weights ``sample_weight``.

        A Bayesian-bootstrap refit (``frame`` the patients this fit was made on, in the same
        order, every weight positive) reuses what does not depend on the weights: the design
        checks (constant or collinear covariates) and the separation check are those of the
        unweighted fit (the linear programme only sees which rows have positive weight), and
        Newton-Raphson starts from this fit's coefficients; it converges to the same maximum as
        a fit from scratch (same tolerance). Any other call is a fit from scratch."""
        w = None if sample_weight is None else np.asarray(sample_weight, dtype=float)
        same = (w is not None and w.shape == (len(self.ids),) and len(frame) == len(self.ids)
                and bool(np.all(np.isfinite(w) & (w > 0)))
                and self.id_col in frame.columns
                and np.array_equal(frame[self.id_col].to_numpy(), self.ids))
        start = self._standardised_coef() if same else None
        return fit_ps(
            frame, list(self.covariates), treatment=self.treatment, id_col=self.id_col,
            sample_weight=sample_weight, _start=start,
        )

    def refit_logit_ps_many(self, frame: pd.DataFrame, sample_weights, max_iter: int = 50,
                            tol: float = 1e-10) -> np.ndarray:
        """``logit(ps)`` (replicates, patients) of the model refitted with each row of
        ``sample_weights`` (replicates x patients, every weight positive) on the patients this
        fit was made on (``frame``, same order): the maximum of each weighted likelihood, as
        :meth:`refit` finds it (Newton-Raphson from this fit's coefficients, same tolerance),
        for a block of replicates at once. Each iteration is a few matrix products over the
        patients for the whole block (the information matrices of all replicates are one
        product with the patients' pairwise covariate products), so a Bayesian bootstrap of a
        large cohort costs seconds, not one full fit per replicate. A replicate that does not
        converge is refitted alone by :meth:`refit` (which raises the usual error)."""
        G = np.atleast_2d(np.asarray(sample_weights, dtype=float))
        n = len(self.ids)
        # one BLAS thread: these tall, thin products (patients x a few columns) gain nothing from
        # threads, and OpenBLAS's threads made them 3-100x slower on a busy 2-core machine
        # (measured: 2.5 s vs 6-14 s per block of 50 replicates at 100,000 patients)
        from threadpoolctl import threadpool_limits  # a dependency of PyMC

        with threadpool_limits(limits=1, user_api="blas"):
            return self._refit_logit_ps_block(frame, G, n, max_iter, tol)

    def _refit_logit_ps_block(self, frame, G, n, max_iter, tol) -> np.ndarray:
        if G.shape[1] != n or len(frame) != n or not np.all(np.isfinite(G) & (G > 0)) \
                or not np.array_equal(frame[self.id_col].to_numpy(), self.ids):
            return np.stack([self.refit(frame, g).logit_ps for g in G])
        cov = list(self.covariates)
        X = _covariate_values(frame, cov)
        design = _Design(X=X, t=_treatment_values(frame, self.treatment), ids=self.ids,
                         center=X.mean(axis=0), scale=X.std(axis=0))
        Z = design.standardized()  # (n, k)
        t = design.t.astype(float)[:, None]
        k = Z.shape[1]
        iu = np.triu_indices(k)
        ZZ = Z[:, iu[0]] * Z[:, iu[1]]  # (n, k(k+1)/2): the information's pairwise products
        W = np.ascontiguousarray(G.T)  # (n, b)
        theta = np.tile(self._standardised_coef(), (G.shape[0], 1))  # (b, k)

        def loglik(th, m):  # the weighted log-likelihood of the replicates in mask m at th[m]
            eta = Z @ th[m].T
            soft = np.logaddexp(0.0, eta)
            eta *= t
            eta -= soft
            eta *= W if m.all() else W[:, m]
            return eta.sum(axis=0)

        ll = np.full(G.shape[0], np.nan)  # computed where a step needs the halving check
        done = np.zeros(G.shape[0], dtype=bool)
        mu = np.empty(W.shape)  # buffers, reused by every iteration (n x b each)
        r = np.empty(W.shape)
        for _ in range(int(max_iter)):
            np.matmul(Z, theta.T, out=mu)
            expit(mu, out=mu)  # (n, b)
            np.subtract(t, mu, out=r)
            r *= W
            grad = r.T @ Z  # (b, k); (not (Z.T @ r).T: OpenBLAS threads that product badly)
            np.subtract(1.0, mu, out=r)
            r *= mu
            r *= W
            packed = r.T @ ZZ  # (b, k(k+1)/2)
            info = np.empty((G.shape[0], k, k))
            info[:, iu[0], iu[1]] = packed
            info[:, iu[1], iu[0]] = packed
            try:
                step = np.linalg.solve(info, grad[..., None])[..., 0]
            except np.linalg.LinAlgError:
                break
            step[done] = 0.0
            new = theta + step
            # step halving where the likelihood went down; steps below 1e-6 (the last, quadratically
            # converging ones) change it by less than its rounding and are not checked
            check = np.max(np.abs(step), axis=1) > 1e-6
            new_ll = np.full(G.shape[0], np.nan)
            if check.any():
                stale = check & np.isnan(ll)
                if stale.any():
                    ll[stale] = loglik(theta, stale)
                new_ll[check] = loglik(new, check)
            for _h in range(30):
                worse = check & (new_ll < ll - 1e-12 * np.abs(ll))
                if not worse.any():
                    break
                step[worse] /= 2
                new[worse] = theta[worse] + step[worse]
                new_ll[worse] = loglik(new, worse)
            theta, ll = new, new_ll
            done |= np.max(np.abs(step), axis=1) < tol * (1.0 + np.max(np.abs(theta), axis=1))
            if done.all():
                break
        out = Z @ theta.T  # (n, b)
        out = out.T.copy()
        for r in np.flatnonzero(~done):  # not converged: refitted alone (raises the usual error)
            out[r] = self.refit(frame, G[r]).logit_ps
        return out

    def _standardised_coef(self) -> np.ndarray:
        """The coefficients on the internal standardised design (intercept first)."""
        cov = list(self.covariates)
        theta = self.coef[cov].to_numpy() * self.scale[cov].to_numpy()
        intercept = self.coef[INTERCEPT] + float(np.sum(self.coef[cov].to_numpy() * self.center[cov].to_numpy()))
        return np.concatenate([[intercept], theta])

    def summary(self) -> pd.DataFrame:
        """Coefficient table: ``coef``, ``se``, ``z``, ``odds_ratio``."""
        return pd.DataFrame(
            {"coef": self.coef, "se": self.se, "z": self.coef / self.se,
             "odds_ratio": np.exp(self.coef)}
        )


def fit_ps(
    frame: pd.DataFrame,
    covariates,
    method: str = "ml",
    *,
    treatment: str = "treatment",
    id_col: str = "id",
    sample_weight=None,
    max_iter: int = 50,
    tol: float = 1e-10,
    _start: np.ndarray | None = None,
) -> PSFit:
    """Fit the logistic propensity-score model by (weighted) maximum likelihood.

    Newton-Raphson on the standardised design until the largest coefficient change is below
    ``tol``; the estimate equals R's ``glm(treatment ~ covariates, family = binomial)`` (with
    ``weights = sample_weight``). Standard errors are from the inverse (weighted) observed
    information; with non-integer ``sample_weight`` they are not a valid frequentist SE (the
    point estimate is what a Bayesian bootstrap uses).

    Raises :class:`InputError` for missing or non-numeric covariates, constant or collinear
    covariates, separation (checked by a linear programme before fitting; the MLE would not
    exist) and non-convergence.
    """
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise InputError(f"fit_ps: max_iter must be a positive integer; found {max_iter!r}.")
    if method != "ml":
        raise InputError(
            f"fit_ps: method must be 'ml'; found {method!r}. For the Bayesian model use fit_ps_bayes()."
        )
    if _start is None:
        design, covariates = _build_design(frame, covariates, treatment, id_col)
    else:  # PSFit.refit of the same patients: the design checks passed when they were fitted
        covariates = list(covariates)
        X = _covariate_values(frame, covariates)
        design = _Design(X=X, t=_treatment_values(frame, treatment), ids=frame[id_col].to_numpy(),
                         center=X.mean(axis=0), scale=X.std(axis=0))
    w = _check_sample_weight(sample_weight, len(design.t))
    Z = design.standardized()
    t = design.t
    weight = np.ones(len(t)) if w is None else w
    rows = np.flatnonzero(weight > 0)
    if design.t[rows].min() == design.t[rows].max():
        raise InputError("propensity model: the patients with positive weight are all in one arm.")

    if _start is None:  # with every weight positive, the refit's programme is the same one
        direction = _separating_direction(Z[rows], t[rows])
        if direction is not None:
            raise InputError(_separation_message(design, covariates, direction, rows))

    pbar = np.sum(weight * t) / np.sum(weight)
    theta = np.zeros(Z.shape[1])
    theta[0] = np.log(pbar / (1 - pbar))
    if _start is not None:
        theta = np.asarray(_start, float).copy()

    def loglik(th):
        eta = Z @ th
        return float(np.sum(weight * (t * eta - np.logaddexp(0.0, eta))))

    ll = loglik(theta)
    converged = False
    for iteration in range(1, max_iter + 1):
        eta = Z @ theta
        mu = expit(eta)
        grad = Z.T @ (weight * (t - mu))
        info = (Z * (weight * mu * (1 - mu))[:, None]).T @ Z
        try:
            step = np.linalg.solve(info, grad)
        except np.linalg.LinAlgError:
            break
        new = theta + step
        new_ll = loglik(new)
        halvings = 0
        while new_ll < ll - 1e-12 * abs(ll) and halvings < 30:
            step /= 2
            new = theta + step
            new_ll = loglik(new)
            halvings += 1
        theta, ll = new, new_ll
        if np.max(np.abs(step)) < tol * (1.0 + np.max(np.abs(theta))):
            converged = True
            break
    if not converged:
        raise InputError(
            f"propensity model: maximum likelihood did not converge in {max_iter} iterations "
            "(coefficients drifting, typically near-separation or very sparse covariate levels). "
            "Simplify the model or use fit_ps_bayes()."
        )

    eta = Z @ theta
    mu = expit(eta)
    info = (Z * (weight * mu * (1 - mu))[:, None]).T @ Z
    cov_theta = np.linalg.inv(info)
    # back to the original scale: beta_j = theta_j / s_j, beta_0 = theta_0 - sum theta_j m_j / s_j
    k = len(covariates)
    A = np.zeros((k + 1, k + 1))
    A[0, 0] = 1.0
    A[0, 1:] = -design.center / design.scale
    A[1:, 1:] = np.diag(1.0 / design.scale)
    beta = A @ theta
    cov_beta = A @ cov_theta @ A.T
    names = [INTERCEPT, *covariates]
    return PSFit(
        coef=pd.Series(beta, index=names, name="coef"),
        se=pd.Series(np.sqrt(np.diag(cov_beta)), index=names, name="se"),
        cov=pd.DataFrame(cov_beta, index=names, columns=names),
        ps=mu,
        logit_ps=eta,
        ids=design.ids,
        covariates=tuple(covariates),
        treatment=treatment,
        id_col=id_col,
        center=pd.Series(design.center, index=covariates),
        scale=pd.Series(design.scale, index=covariates),
        sample_weight=w,
        loglik=ll,
        iterations=iteration,
    )


# --------------------------------------------------------------------------------------------
# Bayesian
# --------------------------------------------------------------------------------------------


def fit_ps_bayes(
    frame: pd.DataFrame,
    covariates,
    prior_sd: float = 1.0,
    *,
    intercept_sd: float = 2.5,
    treatment: str = "treatment",
    id_col: str = "id",
    sampler: SamplerSettings | None = None,
) -> az.InferenceData:
    """Bayesian logistic propensity model; posterior draws of coefficients and every patient's score.

    Model, with ``z_ij = (x_ij - mean_j) / sd_j`` (population SD over the cohort)::

        alpha   ~ Normal(0, intercept_sd)          log-odds of HAIC-LEN-P at the covariate means
        gamma_j ~ Normal(0, prior_sd)              log-odds ratio per SD of covariate j
        t_i     ~ Bernoulli(logit^-1(alpha + z_i' gamma))

    The default ``prior_sd = 1`` is weakly informative (a 95% prior odds ratio of at most 7 per
    SD of a covariate); it also keeps the coefficients finite under separation.

    Returns an InferenceData with ``posterior`` variables ``alpha``, ``gamma`` (dim
    ``covariate``), ``beta`` (dim ``coef``: ``intercept`` and the covariates, on the original
    covariate scale, comparable with :func:`fit_ps`) and ``ps`` (dim ``patient``, coordinates
    the patient ids); ``posterior_predictive`` and ``log_likelihood`` of ``treatment``;
    ``observed_data``; and in ``attrs`` the model name, covariates, priors (as
    ``Normal(mu: 0, sigma: 1)`` strings), the standardisation and convergence diagnostics.
    Use :func:`posterior_ps` for a draws-by-patients array.
    """
    import pymc as pm
    import pytensor.tensor as pt

    from .priors import Prior
    from .sampling import convergence, sample

    for name, value in (("prior_sd", prior_sd), ("intercept_sd", intercept_sd)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0:
            raise InputError(f"fit_ps_bayes: {name} must be a positive number; found {value!r}.")
    design, covariates = _build_design(frame, covariates, treatment, id_col)
    Z = design.standardized()[:, 1:]
    alpha_prior = Prior("Normal", {"mu": 0.0, "sigma": float(intercept_sd)})
    gamma_prior = Prior("Normal", {"mu": 0.0, "sigma": float(prior_sd)})
    coords = {
        "covariate": covariates,
        "coef": [INTERCEPT, *covariates],
        "patient": [str(i) for i in design.ids],
    }
    with pm.Model(coords=coords) as model:
        alpha = alpha_prior.to_pymc("alpha")
        gamma = gamma_prior.to_pymc("gamma", dims="covariate")
        # data as containers, not constants: the compiled model is then the same for every
        # cohort of these dimensions, so numba caches it on disk (constants cannot be cached)
        z = pm.Data("z", Z, dims=("patient", "covariate"))
        t_obs = pm.Data("treatment_observed", design.t, dims="patient")
        eta = alpha + pt.dot(z, gamma)
        pm.Bernoulli("treatment", logit_p=eta, observed=t_obs, dims="patient")
        pm.Deterministic(
            "beta",
            pt.concatenate(
                [
                    pt.reshape(alpha - pt.sum(gamma * design.center / design.scale), (1,)),
                    gamma / design.scale,
                ]
            ),
            dims="coef",
        )
        pm.Deterministic("ps", pm.math.sigmoid(eta), dims="patient")

    settings = sampler
    if settings is None:
        from .sampling import SamplerSettings

        settings = SamplerSettings()
    idata = sample(model, settings)
    with model:
        pm.compute_log_likelihood(idata, var_names=["treatment"], progressbar=False)
        pm.sample_posterior_predictive(
            idata, var_names=["treatment"], random_seed=settings.seed, progressbar=False,
            extend_inferencedata=True,
        )
    diag = convergence(idata, var_names=["alpha", "gamma"])
    idata.attrs.update(
        {
            "model": "propensity_logistic",
            "treatment_column": treatment,
            "covariates": ", ".join(covariates),
            "n_patients": int(len(design.t)),
            "n_treated": int(design.t.sum()),
            "prior_alpha": str(alpha_prior),
            "prior_gamma": str(gamma_prior),
            "covariate_center": [float(v) for v in design.center],
            "covariate_scale": [float(v) for v in design.scale],
            **{f"convergence_{k}": v for k, v in diag.items()},
        }
    )
    return idata


def posterior_ps(idata, logit: bool = False) -> np.ndarray:
    """Posterior draws of the propensity scores as an array (draws x patients), chains stacked.

    With ``logit=True`` returns ``logit(ps)``. Patient order is the cohort's row order.
    """
    if "posterior" not in idata.groups() or "ps" not in idata.posterior:
        raise InputError("posterior_ps: expected the InferenceData returned by fit_ps_bayes().")
    ps = idata.posterior["ps"].stack(draw_=("chain", "draw")).transpose("draw_", "patient").to_numpy()
    if logit:
        with np.errstate(divide="ignore"):
            return np.log(ps) - np.log1p(-ps)
    return ps


# --------------------------------------------------------------------------------------------
# Weights
# --------------------------------------------------------------------------------------------


def _check_ps_treatment(ps, treatment) -> tuple[np.ndarray, np.ndarray]:
    e = np.asarray(ps, dtype=float)
    t = np.asarray(treatment)
    if e.ndim != 1 or t.shape != e.shape:
        raise InputError(
            f"weights: ps and treatment must be 1-D of equal length; found shapes {e.shape}, {t.shape}."
        )
    bad = np.flatnonzero(~np.isfinite(e) | (e <= 0) | (e >= 1))
    if bad.size:
        raise InputError(
            f"weights: propensity scores must lie strictly between 0 and 1; not so at "
            f"{describe_rows(bad + 1)} (a score of 0 or 1 means no overlap: the weight is infinite)."
        )
    t_num = pd.to_numeric(pd.Series(t), errors="coerce").to_numpy()
    bad = np.flatnonzero(~np.isin(t_num, (0, 1)))
    if bad.size:
        raise InputError(f"weights: treatment must be 0 or 1; not so at {describe_rows(bad + 1)}.")
    t = t_num.astype(int)
    if t.min() == t.max():
        raise InputError("weights: need patients in both arms.")
    return e, t


def ipt_weights(
    ps,
    treatment,
    estimand: str = "ATE",
    stabilized: bool = False,
    truncate: tuple[float, float] | None = None,
) -> np.ndarray:
    """Inverse-probability-of-treatment weights per patient (see the module docstring for formulas).

    Parameters
    ----------
    ps
        Propensity scores, strictly between 0 and 1.
    treatment
        1 (HAIC-LEN-P) or 0 (LEN-P), aligned with ``ps``.
    estimand
        ``"ATE"`` (whole cohort), ``"ATT"`` (treated patients) or ``"ATO"`` (overlap population).
    stabilized
        Multiply by the marginal arm proportions (ATE) or rescale the control weights (ATT).
    truncate
        ``(lo, hi)`` quantile levels in [0, 1], e.g. ``(0.01, 0.99)``: weights outside the
        quantiles are set to them (after stabilisation).

    Returns
    -------
    ndarray of weights, one per patient, in input order.
    """
    e, t = _check_ps_treatment(ps, treatment)
    estimand = str(estimand).upper()
    if estimand not in ESTIMANDS:
        raise InputError(f"weights: estimand must be one of {', '.join(ESTIMANDS)}; found {estimand!r}.")
    p = t.mean()
    if estimand == "ATE":
        w = np.where(t == 1, 1 / e, 1 / (1 - e))
        if stabilized:
            w = w * np.where(t == 1, p, 1 - p)
    elif estimand == "ATT":
        w = np.where(t == 1, 1.0, e / (1 - e))
        if stabilized:
            w = np.where(t == 1, w, w * (1 - p) / p)
    else:
        if stabilized:
            raise InputError(
                "weights: overlap (ATO) weights are bounded in (0, 1) and have no stabilised form; "
                "use stabilized=False."
            )
        w = np.where(t == 1, 1 - e, e)
    if truncate is not None:
        try:
            lo, hi = (float(v) for v in truncate)
        except (TypeError, ValueError):
            raise InputError(
                f"weights: truncate must be a pair of quantile levels like (0.01, 0.99); found {truncate!r}."
            ) from None
        if not (0 <= lo < hi <= 1):
            raise InputError(
                f"weights: truncate levels must satisfy 0 <= lo < hi <= 1 (fractions, not "
                f"percent); found ({lo}, {hi})."
            )
        reweighted = t == 0 if estimand == "ATT" else np.ones(len(t), dtype=bool)
        q_lo, q_hi = np.quantile(w[reweighted], [lo, hi])
        w = np.where(reweighted, np.clip(w, q_lo, q_hi), w)
    return w


def kish_ess(weights, treatment) -> dict:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` per arm: ``{"treated": .., "control": ..}``."""
    w = np.asarray(weights, dtype=float)
    t = np.asarray(treatment)
    if w.ndim != 1 or t.shape != w.shape:
        raise InputError("kish_ess: weights and treatment must be 1-D of equal length.")
    if np.any(~np.isfinite(w) | (w < 0)):
        raise InputError("kish_ess: weights must be finite and >= 0.")
    out = {}
    for arm, label in ((1, "treated"), (0, "control")):
        wa = w[t == arm]
        s2 = np.sum(wa**2)
        out[label] = float(np.sum(wa) ** 2 / s2) if s2 > 0 else 0.0
    return out


# --------------------------------------------------------------------------------------------
# The design stage
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Design:
    """The propensity-score design of a cohort: score model, IPT weights, matched set, balance.

    Attributes: ``ps_fit`` (:class:`PSFit`), ``weights`` (per cohort row), ``weight_settings``
    (``estimand``, ``stabilized``, ``truncate``), ``ess`` (Kish ESS per arm of the weights),
    ``match`` (:class:`~bayes_haic.matching.MatchResult`), ``balance`` (the
    :func:`~bayes_haic.balance.balance_table` before / matched / weighted), ``covariates``,
    ``settings`` (caliper, order, threshold, SMD denominator). Methods: :meth:`matched_frame`
    (matched patients with pair numbers), :meth:`refit_weights` (IPT weights after refitting
    the PS model with patient weights, for a Bayesian bootstrap), :meth:`summary`.
    """

    ps_fit: PSFit
    weights: np.ndarray
    weight_settings: dict
    ess: dict
    match: MatchResult
    balance: pd.DataFrame
    covariates: tuple[str, ...]
    settings: dict = field(default_factory=dict)

    def matched_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The matched patients of ``frame`` with their ``pair`` number (for pair-level models)."""
        return self.match.matched_frame(frame, id_col=self.ps_fit.id_col)

    def refit_weights(self, frame: pd.DataFrame, sample_weight) -> np.ndarray:
        """IPT weights (same settings) from the PS model refitted with patient weights.

        The design step of a Bayesian bootstrap of the whole analysis (Saarela et al. 2015):
        ``sample_weight`` are e.g. Dirichlet(1, ..., 1) * n weights, one per row of ``frame``
        (the cohort the design was made on). Returns one IPT weight per row, *not* multiplied
        by ``sample_weight``.
        """
        fit = self.ps_fit.refit(frame, sample_weight=sample_weight)
        t = frame[self.ps_fit.treatment].to_numpy().astype(int)
        s = self.weight_settings
        return ipt_weights(fit.ps, t, s["estimand"], stabilized=s["stabilized"], truncate=s["truncate"])

    def rematch(self, frame: pd.DataFrame, sample_weight) -> MatchResult:
        """The 1:1 caliper matching (same settings) on the PS model refitted with patient
        weights ``sample_weight`` (one per row of ``frame``): one draw of the matched set under
        the design's uncertainty (a Bayesian bootstrap of the propensity model)."""
        fit = self.ps_fit.refit(frame, sample_weight=sample_weight)
        t = frame[self.ps_fit.treatment].to_numpy().astype(int)
        return match_nearest(fit.logit_ps, t, fit.ids, caliper=self.settings.get("caliper", 0.2),
                             order=self.settings.get("order", "largest"))

    def summary(self) -> dict:
        """Plain numbers for reports and provenance."""
        return {
            "covariates": list(self.covariates),
            **{f"weights_{k}": v for k, v in self.weight_settings.items()},
            "ess_treated": self.ess["treated"],
            "ess_control": self.ess["control"],
            "n_pairs": self.match.n_pairs,
            "n_unmatched_treated": self.match.n_unmatched_treated,
            "caliper_sd": self.match.caliper,
            "caliper_logit": self.match.caliper_distance,
            "match_order": self.match.order,
            "n_flagged_before": int(self.balance["flag_before"].eq(True).sum()),
            "n_flagged_matched": int(self.balance["flag_matched"].eq(True).sum()),
            "n_flagged_weighted": int(self.balance["flag_weighted"].eq(True).sum()),
            "smd_denominator": self.balance.attrs.get("denominator"),
        }


def design(
    frame: pd.DataFrame,
    covariates,
    *,
    treatment: str = "treatment",
    id_col: str = "id",
    estimand: str = "ATE",
    stabilized: bool = True,
    truncate: tuple[float, float] | None = None,
    caliper: float | None = 0.2,
    order: str = "largest",
    threshold: float = 0.1,
    denominator: str = "pooled",
) -> Design:
    """Run the design stage: ML propensity model, IPT weights, 1:1 caliper matching, balance.

    Defaults follow the study (1:1 PSM with a 0.2-SD caliper on the logit; IPTW) with
    stabilised ATE weights. ``stabilized`` applies to ATE and ATT weights; overlap (ATO)
    weights have no stabilised form and are used as they are (``weight_settings`` then records
    ``stabilized=False``). The balance table compares covariates before adjustment, in the
    matched set and under the weights, with SMDs on the pooled SD of the unadjusted cohort.
    """
    fit = fit_ps(frame, covariates, treatment=treatment, id_col=id_col)
    t = frame[treatment].to_numpy().astype(int)
    estimand = str(estimand).upper()
    stabilized = bool(stabilized) and estimand != "ATO"
    w = ipt_weights(fit.ps, t, estimand=estimand, stabilized=stabilized, truncate=truncate)
    m = match_nearest(fit.logit_ps, t, fit.ids, caliper=caliper, order=order)
    bal = balance_table(
        frame, list(fit.covariates), treatment, weights=w, matched=m, id_col=id_col,
        threshold=threshold, denominator=denominator,
    )
    bal.attrs["weights_estimand"] = estimand  # the love plot and report label the weights by it
    return Design(
        ps_fit=fit,
        weights=w,
        weight_settings={"estimand": estimand, "stabilized": stabilized,
                         "truncate": None if truncate is None else tuple(truncate)},
        ess=kish_ess(w, t),
        match=m,
        balance=bal,
        covariates=fit.covariates,
        settings={"caliper": caliper, "order": order, "threshold": threshold,
                  "denominator": denominator},
    )


def make_design(cohort: Cohort, settings: DesignConfig | None = None) -> Design:
    """:func:`design` of a loaded cohort on its chosen covariates, with the configuration's
    ``[design]`` settings (default :class:`~bayes_haic.config.DesignConfig`): what the main
    job, ``fit``, ``balance`` and the sensitivity and validation studies run once per cohort.
    Imports none of the modelling libraries, so the design stage (``bayes-haic balance``) runs
    without PyMC."""
    from .config import DesignConfig
    from .reconstruct import check_strategy

    s = settings or DesignConfig()
    check_strategy(cohort, "the propensity design (PS model, weights, matching)")
    if not cohort.covariates:
        raise InputError(f"{cohort.path}: no covariates chosen; the propensity design needs "
                         "--covariates (or a sidecar list).")
    return design(cohort.frame, list(cohort.covariates), estimand=s.estimand,
                  stabilized=s.stabilized, truncate=s.truncate, caliper=s.caliper)
