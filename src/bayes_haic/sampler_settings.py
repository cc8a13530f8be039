"""Sampler settings: which NUTS sampler runs, how long, with which seed. Kept apart from
:mod:`bayes_haic.sampling` (which runs the samplers) so that the configuration and the
validation study read the defaults without importing PyMC."""

from __future__ import annotations

from dataclasses import asdict, dataclass

DEFAULT_SEED = 20240329  # the study's online publication date

#: sampler backends of :class:`SamplerSettings` (see there)
BACKENDS = ("pymc", "nutpie", "nutpie-numba")
#: the backend every default uses: these settings, the configuration files, the sensitivity and
#: validation studies
DEFAULT_BACKEND = "nutpie-numba"
#: the least ``target_accept`` of a model with a random-walk prior (why:
#: :func:`bayes_haic.survival.sampler_for`)
RANDOM_WALK_TARGET_ACCEPT = 0.99
#: the least draws and tuning steps per chain of a configured HR(t) fit (why:
#: :func:`bayes_haic.pipeline.time_varying_sampler`)
TIME_VARYING_MIN_DRAWS, TIME_VARYING_MIN_TUNE = 2000, 1000


@dataclass(frozen=True)
class SamplerSettings:
    """NUTS settings. ``backend`` is one of :data:`BACKENDS`: ``"pymc"`` (PyMC's NUTS),
    ``"nutpie"`` (nutpie's NUTS calling the numba-compiled density as Python functions) or
    ``"nutpie-numba"`` (the same sampler and model, the density called as a numba C callback:
    ~5-8x faster sampling; the callbacks are compiled once per model structure per machine,
    ~6-40 s, and loaded from the disk cache afterwards:
    :func:`bayes_haic.sampling.compile_nutpie_numba`). The two nutpie backends give
    bit-identical draws.

    Chains run sequentially (``cores=1``): on the 2-core project machines process start-up
    costs more than it saves for models this small, and sequential chains are reproducible.

    These defaults are also the configuration's (:class:`bayes_haic.config.SamplerConfig`) for
    a key a file leaves out. The shipped ``models/main.toml`` tunes 500 steps, measured enough
    on the default analysis; 1000 is the default for data nobody has looked at yet.
    """

    draws: int = 1000
    tune: int = 1000
    chains: int = 2
    seed: int = DEFAULT_SEED
    target_accept: float = 0.9
    backend: str = DEFAULT_BACKEND

    def as_dict(self) -> dict:
        return asdict(self)
