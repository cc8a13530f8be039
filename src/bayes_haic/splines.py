r"""The spline of the logit propensity score, shared by the survival and response models.

``ps_covariate`` adjusts for a smooth function of :math:`\mathrm{logit}(e)`. Both outcome models
take its basis from :func:`ps_spline_basis`, so ``spline_df`` means the same in both, and the
same as ``df`` in R's ``splines::ns(qlogis(ps), df = k)``:

* a natural cubic spline (cubic between knots, linear beyond the boundary knots);
* boundary knots at the range of :math:`x`;
* ``k - 1`` interior knots at the quantiles ``j / k`` (j = 1..k-1) of *all* values of :math:`x`
  (ties included; R's ``quantile`` type 7, NumPy's default);
* ``k`` non-constant basis functions: together with the model's intercept the columns span the
  space of ``cbind(1, ns(x, df = k))``.

The basis is computed with patsy's ``cr`` (the natural cubic regression spline of mgcv) at those
knots given explicitly: the natural cubic splines with the same knots are the same function
space whatever the parametrisation. (patsy's ``cr(x, df = m)`` places its knots at quantiles of
the *unique* values and counts the constant among its ``m`` columns, so it is not used with
``df``.) The columns are then centred, orthonormalised (QR) and scaled to SD 1: the fitted
functions are unchanged, and a prior on the coefficients is a prior on uncorrelated unit-SD
basis functions. A score with too few distinct values for ``k`` functions (one binary
confounder gives two values) gets as many as it supports (:func:`supported_basis`; with ``m``
values at most ``m - 1``, and with ``m - 1`` the spline stratifies on the score); the fits'
``method`` says so. Checked against R in ``tests/test_real_data.py`` (references made by
``tests/reference/rotterdam_spline_reference.R``).
"""

from __future__ import annotations

import numpy as np

from .errors import InputError

DEFAULT_DF = 3


def check_df(df) -> int:
    """``df`` as an int; InputError unless it is an integer >= 1."""
    if isinstance(df, bool) or not isinstance(df, (int, np.integer)) or df < 1:
        raise InputError(
            f"spline_df: expected an integer >= 1 (the number of non-constant natural-spline basis "
            f"functions, as df in R's ns()); found {df!r}."
        )
    return int(df)


def ns_knots(x, df: int = DEFAULT_DF) -> np.ndarray:
    """All knots of R's ``ns(x, df)``: the minimum, the ``df - 1`` interior knots at the
    quantiles ``j / df`` of ``x`` (type 7, ties included) and the maximum."""
    df = check_df(df)
    x = np.asarray(x, float).ravel()
    if x.size == 0 or not np.all(np.isfinite(x)):
        raise InputError("spline: expected a non-empty array of finite numbers.")
    inner = np.quantile(x, np.arange(1, df) / df) if df > 1 else np.array([])
    return np.concatenate([[x.min()], inner, [x.max()]])


def ps_spline_basis(x, df: int = DEFAULT_DF) -> np.ndarray:
    """The ``df`` columns of the natural cubic spline of ``x`` (e.g. the logit propensity score)
    as R's ``ns(x, df)`` (see the module docstring), centred, orthonormalised and scaled to SD 1.
    InputError if ``x`` has too few distinct values for ``df`` (knots would coincide)."""
    import patsy

    df = check_df(df)
    x = np.asarray(x, float).ravel()
    knots = ns_knots(x, df)
    if np.unique(knots).size != knots.size:
        raise InputError(
            f"spline_df = {df}: the logit propensity scores have too few distinct values for "
            f"{df - 1} interior knots at their quantiles (knots {np.round(knots, 4).tolist()} "
            "coincide); use a smaller spline_df."
        )
    if df == 1:  # no interior knot: the natural spline is linear
        B = x[:, None]
    else:
        B = np.asarray(
            patsy.dmatrix(
                "cr(x, knots=inner, lower_bound=lo, upper_bound=hi) - 1",
                {"x": x, "inner": knots[1:-1], "lo": knots[0], "hi": knots[-1]},
            )
        )
    B = B - B.mean(axis=0)
    # orthonormalise the (centred) columns (QR) and scale to SD 1: same fitted functions, far
    # less posterior correlation between the coefficients, so NUTS needs shorter trajectories
    q, r = np.linalg.qr(B)
    q = q[:, np.abs(np.diag(r)) > 1e-10 * np.abs(r).max()]
    if q.shape[1] != df:
        raise InputError(
            f"spline_df = {df}: the spline of the logit propensity score has rank {q.shape[1]} "
            f"on these {x.size} patients; use a smaller spline_df."
        )
    return q * np.sqrt(len(q))


def supported_basis(x, df: int = DEFAULT_DF) -> tuple[np.ndarray, int]:
    """:func:`ps_spline_basis` with the largest ``d <= df`` it exists for on ``x`` (distinct
    knots, ``d`` columns of full rank), and that ``d``. A score with few distinct values supports
    fewer basis functions (one binary covariate gives two values, hence ``d = 1``); with ``d`` =
    (distinct values - 1) the spline already fits any function of the score, so the adjustment
    is then stratification on it, the most that such a score allows. InputError if ``x`` is
    constant (there is nothing to adjust for)."""
    df = check_df(df)
    x = np.asarray(x, float).ravel()
    if x.size and np.ptp(x) == 0:
        raise InputError(
            "ps_covariate: the propensity scores are all equal (every patient has the same "
            "covariate pattern), so there is nothing to adjust for; expected covariates that vary "
            "between patients, or leave ps_covariate out of the strategies."
        )
    for d in range(df, 1, -1):
        try:
            return ps_spline_basis(x, d), d
        except InputError:
            continue
    return ps_spline_basis(x, 1), 1  # raises its error if even one function is impossible


def reduced_df_note(used: int, asked: int, x) -> str:
    """The method text when :func:`supported_basis` reduced ``asked`` to ``used`` ('' if it did
    not)."""
    if used == asked:
        return ""
    k = np.unique(np.asarray(x, float)).size
    return (f"; PS spline with {used} basis function{'s' if used > 1 else ''} instead of "
            f"{asked}: the propensity score takes only {k} distinct values, so the spline "
            "stratifies on them")
