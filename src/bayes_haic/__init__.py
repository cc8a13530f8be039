"""bayes-haic: Bayesian reanalysis of HAIC-LEN-P vs LEN-P in HCC with extrahepatic metastases,
and a toolkit for cohort studies like it.

Two data tiers, and every output says which one it is:

* ``published`` -- the real published evidence of the study (summary statistics and counts);
* ``synthetic`` -- patient-level models on a seeded synthetic cohort calibrated to the publication;
* ``user`` -- patient-level models on a user's own (real or reconstructed) cohort in the same schema.

Time is in months throughout. The Python API (:mod:`bayes_haic.api`)::

    import bayes_haic as bh
    res = bh.fit(df, endpoint="os", adjust="iptw", covariates=["age", "nodes"],
                 prior="skeptical", columns={"treatment": "hormon", "os_time": "dtime"})
    res.summary(); res.idata; res.plot(); res.to_netcdf("fit.nc")
    bh.balance(df, covariates=[...]).table
    bh.reanalyse(measure="hr", estimate=0.75, ci=(0.55, 1.02)).summary()

``import bayes_haic`` stays light: PyMC, ArviZ and pandas are imported on first use.
"""

__version__ = "0.1.0"

__all__ = ["fit", "balance", "reanalyse", "load_data", "FitResult", "BalanceResult",
           "InputError", "__version__"]

_API = {"fit", "balance", "reanalyse", "load_data", "FitResult", "BalanceResult"}


def __getattr__(name):  # PEP 562: the API is imported on first use
    if name == "balance":  # the module bayes_haic.balance is callable: bh.balance(df, ...)
        import importlib

        return importlib.import_module(".balance", __name__)
    if name in _API:
        from . import api

        return getattr(api, name)
    if name == "InputError":
        from .errors import InputError

        return InputError
    raise AttributeError(f"module 'bayes_haic' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_API) + ["InputError"])
