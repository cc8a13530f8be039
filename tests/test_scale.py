"""Memory of a fit grows with the number of patients, not with draws x patients.

Per-patient quantities that scale with draws (the pointwise log-likelihood) are stored only up
to survival.LOGLIK_MAX_VALUES; above it a fit keeps O(n) data (its patients' time, event and
treatment) and O(draws) posterior draws. Measured with tracemalloc (numpy reports its buffers
to it), without timing anything: the extra peak memory of a cohort twice as large must stay
far below what one stored (draws x patients) array would cost.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd

from bayes_haic import survival as sv
from bayes_haic.sampling import SamplerSettings

DRAWS = SamplerSettings(draws=200, tune=200, chains=2, seed=5, backend="nutpie")


def _cohort(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, n)
    t_event = rng.exponential(1 / (0.08 * np.exp(-0.5 * x)))
    c = rng.uniform(1, 36, n)
    return pd.DataFrame({"id": np.arange(n), "treatment": x, "os_time": np.minimum(t_event, c).round(3) + 0.001,
                         "os_event": (t_event <= c).astype(int)})


def _peak_bytes(frame: pd.DataFrame) -> tuple[int, object]:
    tracemalloc.start()
    try:
        fit = sv.fit_pwe(frame, "os", cuts=[0, 3, 6, 12, 24], sampler=DRAWS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, fit


def test_peak_memory_per_patient_is_bounded_and_independent_of_draws():
    n = 70_000  # n x 400 draws = 28M > LOGLIK_MAX_VALUES: the log-likelihood is not stored
    sv.fit_pwe(_cohort(500, 1), "os", cuts=[0, 3, 6, 12, 24], sampler=DRAWS)  # compile outside the measurement
    peak_n, fit_n = _peak_bytes(_cohort(n, 2))
    peak_2n, fit_2n = _peak_bytes(_cohort(2 * n, 3))
    draws = DRAWS.draws * DRAWS.chains
    assert n * draws > sv.LOGLIK_MAX_VALUES
    assert "log_likelihood" not in fit_2n.groups() and "not stored" in fit_2n.attrs["log_likelihood"]
    per_patient = (peak_2n - peak_n) / n
    # one stored (draws x patients) float64 array would cost 8 x draws = 3200 bytes per patient;
    # the O(n) work (columns, collapse, stored patient data) costs a few hundred
    assert per_patient < 0.25 * 8 * draws, per_patient
    assert peak_2n < 2 * peak_n + 8 * draws * 1000, (peak_n, peak_2n)
    # and the estimate is unaffected: both cohorts are the same process, so log HR agrees
    assert abs(float(fit_n.posterior["log_hr"].mean()) - float(fit_2n.posterior["log_hr"].mean())) < 0.05
