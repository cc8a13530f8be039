"""What produced a fit: a typed view of an InferenceData's labelling attrs.

Every fit function (:func:`bayes_haic.survival.fit_pwe`, the IPTW Bayesian bootstrap, the PSM
fit pooled over design draws, :func:`bayes_haic.response.fit_response`) records how its draws
were made in the attr ``inference`` (one of :data:`INFERENCE`). Code that must decide what a
fit is (which diagnostics apply, whether a log-likelihood exists) reads :class:`FitInfo`,
never the human-readable ``method`` text.
"""

from __future__ import annotations

from dataclasses import dataclass

import arviz as az

NUTS = "nuts"                       # one MCMC fit (PyMC or nutpie NUTS)
POOLED = "nuts-pooled-design"       # NUTS fits to rematched design draws, draws pooled
BOOTSTRAP = "bayesian-bootstrap"    # independent Bayesian-bootstrap replicates combined with the prior
INFERENCE = (NUTS, POOLED, BOOTSTRAP)


@dataclass(frozen=True)
class FitInfo:
    """The labels of one fit: model (``pwe`` / ``response``), endpoint, adjustment strategy,
    estimand, prior-set label, method text (for readers), ``inference`` (how the draws were
    made, :data:`INFERENCE`), the model layout (``collapsed`` / ``patient``) and arm sizes."""

    model: str
    endpoint: str
    adjustment: str
    estimand: str
    prior: str
    method: str
    inference: str
    layout: str = "collapsed"
    n_treated: int = 0
    n_control: int = 0

    @classmethod
    def of(cls, idata: az.InferenceData) -> "FitInfo":
        """The labels of ``idata`` (from its attrs)."""
        return cls.from_attrs(idata.attrs)

    @classmethod
    def from_attrs(cls, a) -> "FitInfo":
        """The labels in a fit's attrs mapping."""
        inference = a.get("inference")
        if inference not in INFERENCE:  # fits stored before the attr existed
            if "bootstrap_n" in a:
                inference = BOOTSTRAP
            elif int(a.get("design_draws", 1) or 1) > 1:
                inference = POOLED
            else:
                inference = NUTS
        return cls(str(a.get("model", "")), str(a.get("endpoint", "")), str(a.get("adjustment", "")),
                   str(a.get("estimand", "")), str(a.get("prior", "")), str(a.get("method", "")),
                   inference, str(a.get("layout", "collapsed")), int(a.get("n_treated", 0) or 0),
                   int(a.get("n_control", 0) or 0))

    @property
    def is_bootstrap(self) -> bool:
        """Independent replicates, not a Markov chain: MCMC diagnostics do not apply."""
        return self.inference == BOOTSTRAP

    @property
    def is_mcmc(self) -> bool:
        return self.inference in (NUTS, POOLED)
