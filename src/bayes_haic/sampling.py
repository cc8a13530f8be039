"""Running MCMC: one place for sampler settings, seeding and convergence diagnostics.

Every model in the package is sampled through :func:`sample`, so a fit with the same
:class:`SamplerSettings` (same seed) gives the same numbers, and every fit carries the same
diagnostics (:func:`convergence`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import weakref
from dataclasses import dataclass

import arviz as az
import numpy as np
import pymc as pm

from .diagnostics import arviz_numpy as _arviz_numpy
# the settings live in a module without the modelling libraries (the configuration and the
# validation study read them without importing PyMC)
from .sampler_settings import BACKENDS, SamplerSettings


# --------------------------------------------------------------------------- nutpie


@dataclass
class _NutpieEntry:
    """A model's nutpie compilation and the PyMC shared variables (``pm.Data``) it reads."""

    compiled: object
    shared: dict


_NUTPIE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_NUTPIE_NUMBA: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
# how many nutpie compilations this process made, per backend (for tests and benchmarks)
# ("nutpie-numba from disk": how many of the "nutpie-numba" ones came from a manifest)
COMPILATIONS = {"nutpie": 0, "nutpie-numba": 0, "nutpie-numba from disk": 0}


def compile_nutpie(model: pm.Model):
    """nutpie's model for ``model``: logp + gradient and the trace expansion compiled by PyTensor's
    numba backend and called by nutpie as Python functions.

    PyTensor caches its numba functions on disk (``~/.pytensor/numba``), so this costs ~1 s once
    that cache is warm; nutpie's Rust -> Python calls then cost ~25 us per gradient on top of the
    density (:func:`compile_nutpie_numba` avoids them). Cached per model object: the model's ``pm.Data``
    values are read at every :func:`sample`, so :func:`set_data` + ``sample`` refits without
    recompiling.
    """
    entry = _NUTPIE.get(model)
    if entry is not None:
        return entry
    from nutpie.compile_pymc import _make_functions, _prepare_dims_and_coords
    from nutpie.compiled_pyfunc import from_pyfunc
    from pymc.initial_point import make_initial_point_fn

    ipf = make_initial_point_fn(
        model=model, jitter_rvs=set(model.free_RVs), default_strategy="support_point", return_transformed=True
    )
    n_dim, _, logp_pt, expand_pt, init_fn, shape_info = _make_functions(
        model, mode="NUMBA", compute_grad=True, join_expanded=False, pymc_initial_point_fn=ipf
    )
    logp_fn, expand_fn = logp_pt.vm.jit_fn, expand_pt.vm.jit_fn
    shared = {v.name: v for v in [*logp_pt.get_shared(), *expand_pt.get_shared()]}
    logp_names = [v.name for v in logp_pt.get_shared()]
    expand_names = [v.name for v in expand_pt.get_shared()]
    names, _, shapes = shape_info

    def make_logp():
        def logp(x, **data):
            value, grad = logp_fn(x, *[data[k] for k in logp_names])
            return float(value), grad

        return logp

    def make_expand(seed1, seed2, chain):
        def expand(x, **data):
            values = expand_fn(x, *[data[k] for k in expand_names])
            return {k: np.asarray(v, dtype="float64").reshape(s) for k, v, s in zip(names, values, shapes)}

        return expand

    dims, coords = _prepare_dims_and_coords(model, shape_info)
    compiled = from_pyfunc(
        n_dim,
        make_logp,
        make_expand,
        [np.dtype("float64")] * len(names),
        shapes,
        names,
        coords=coords,
        dims=dims,
        shared_data={k: np.asarray(v.get_value()) for k, v in shared.items()},
        make_initial_point_fn=init_fn,
    )
    entry = _NutpieEntry(compiled, shared)
    _NUTPIE[model] = entry
    COMPILATIONS["nutpie"] += 1
    return entry


def compile_nutpie_numba(model: pm.Model) -> _NutpieEntry:
    """nutpie's model for ``model`` with the logp + gradient and the trace expansion as numba C
    callbacks, which nutpie's Rust sampler calls without entering Python (~5 us per gradient of
    the collapsed PWE model against ~35 us through :func:`compile_nutpie`'s Python callbacks).

    Two disk caches make a model structure cost its compilation once per machine, not per
    process:

    * the callbacks are cached by numba (:func:`_c_callback`): ~6 s the first time on the 2-core
      project machine, ~0.1 s afterwards (``nutpie.compile_pymc_model`` compiles them in every
      process: 15-30 s per structure);
    * for a model whose builder declared its structure (:func:`register_structure`), what PyTensor's
      rewriting of the graph produced (the callbacks' cache keys, the variables' names, shapes and
      order: a small JSON *manifest*, :func:`_manifest_path`) is kept too, so a later process loads
      the callbacks without rewriting and compiling the graph again (~0.5-1.2 s per structure).
      If the manifest or a callback cannot be used, the model is compiled as the first time.

    The density, the expansion and the initialisation (support point, jittered) are nutpie's
    (``_make_functions``), the same as :func:`compile_nutpie`'s, so a seed gives bit-identical
    draws with either backend, and with or without the manifest. Cached per model object;
    :func:`sample` passes the model's current ``pm.Data`` values with ``compiled.with_data`` at
    every fit, so :func:`set_data` + ``sample`` refits without recompiling.
    """
    entry = _NUTPIE_NUMBA.get(model)
    if entry is not None:
        return entry
    from pymc.initial_point import make_initial_point_fn

    ipf = make_initial_point_fn(
        model=model, jitter_rvs=set(model.free_RVs), default_strategy="support_point", return_transformed=True
    )
    path = _manifest_path(model)
    entry = _from_manifest(model, ipf, path) if path is not None else None
    if entry is None:
        with numba_opt_level():
            entry, manifest = _compile_numba(model, ipf)
        if path is not None and manifest is not None:
            _write_manifest(path, manifest)
    else:
        COMPILATIONS["nutpie-numba from disk"] += 1
    _NUTPIE_NUMBA[model] = entry
    COMPILATIONS["nutpie-numba"] += 1
    return entry


def _compile_numba(model: pm.Model, ipf) -> tuple[_NutpieEntry, dict | None]:
    """:func:`compile_nutpie_numba` without a manifest: PyTensor rewrites and compiles the graph
    (nutpie's ``_make_functions``) and the C callbacks are compiled or loaded from numba's cache.
    Returns the entry and the manifest that lets a later process skip this (None if a callback
    could not be cached)."""
    from nutpie.compile_pymc import _make_functions

    n_dim, n_expanded, logp_pt, expand_pt, _, shape_info = _make_functions(
        model, mode="NUMBA", compute_grad=True, join_expanded=True, pymc_initial_point_fn=ipf
    )
    shared = {}
    for v in [*logp_pt.get_shared(), *expand_pt.get_shared()]:
        if v.name in shared and shared[v.name] is not v:
            raise ValueError(f"compile_nutpie_numba: two shared variables are named {v.name!r}.")
        shared[v.name] = v
    names = {"logp": [v.name for v in logp_pt.get_shared()], "expand": [v.name for v in expand_pt.get_shared()]}
    layout = _Layout(model, shared, n_dim, n_expanded, shape_info)
    logp, logp_key = _c_callback("logp", logp_pt.vm.jit_fn, names["logp"], layout)
    expand, expand_key = _c_callback("expand", expand_pt.vm.jit_fn, names["expand"], layout)
    entry = layout.entry(ipf, logp, expand, logp_pt, expand_pt)
    manifest = None
    named = all(model.named_vars.get(k) is v for k, v in shared.items())
    if logp_key is not None and expand_key is not None and named:
        manifest = {
            "n_dim": int(n_dim), "n_expanded": int(n_expanded), "n_free": len(model.free_RVs),
            "names": list(shape_info[0]), "slices": [[int(s.start), int(s.stop)] for s in shape_info[1]],
            "shapes": [list(map(int, s)) for s in shape_info[2]],
            "shared": [[k, str(layout.data[k].dtype), layout.data[k].ndim] for k in shared],
            "callbacks": {"logp": [names["logp"], logp_key], "expand": [names["expand"], expand_key]},
        }
    return entry, manifest


#: LLVM optimisation level of the numba code compiled for a model (numba's ``NUMBA_OPT``; its
#: default is 3). See :func:`numba_opt_level`.
NUMBA_OPT = 1


@contextlib.contextmanager
def numba_opt_level():
    """Compile the numba code of a model at LLVM optimisation level :data:`NUMBA_OPT` inside
    this context (numba reads ``NUMBA_OPT`` from the environment at each compilation; outside
    the context its own default applies again). A ``NUMBA_OPT`` the user has set is left alone.

    Why: compiling a model structure is what a run with an empty compile cache spends most of
    its time on, and LLVM's optimisation passes are a large part of it. On the 2-core project
    machine level 1 took the main job with an empty compile cache from 145 s to 129 s (its
    costliest structure, the patient-level PS-spline model, from 47-48 s to 38-40 s in a new
    process); warm runs were unchanged (46-48 s either way, two runs each), and the results
    identical (the same results.csv, byte for byte: without fast-math, LLVM keeps IEEE
    arithmetic at every level; ``test_the_numba_opt_level_does_not_change_the_draws``).
    """
    if "NUMBA_OPT" in os.environ:
        yield
        return
    os.environ["NUMBA_OPT"] = str(NUMBA_OPT)
    try:
        yield
    finally:
        os.environ.pop("NUMBA_OPT", None)


class _Layout:
    """What the C callbacks of a compiled model read: the model's shared variables (``pm.Data``),
    their current values and nutpie's user-data record pointing at them, with the sizes of the
    unconstrained point and the expanded trace and nutpie's ``shape_info`` (names, slices,
    shapes of the trace variables)."""

    def __init__(self, model, shared: dict, n_dim: int, n_expanded: int, shape_info):
        from nutpie.compile_pymc import make_user_data

        self.model, self.shared, self.n_dim, self.n_expanded = model, shared, n_dim, n_expanded
        self.shape_info = shape_info
        self.data = {k: np.array(v.get_value(), order="C", copy=True) for k, v in shared.items()}
        self.user_data = make_user_data(shared, self.data)

    def entry(self, ipf, logp, expand, logp_pt=None, expand_pt=None) -> _NutpieEntry:
        from nutpie.compile_pymc import (CompiledPyMCModel, _prepare_dims_and_coords,
                                         _rv_dict_to_flat_array_wrapper)

        names, _, shapes = self.shape_info
        n_free = len(self.model.free_RVs)
        dims, coords = _prepare_dims_and_coords(self.model, self.shape_info)
        compiled = CompiledPyMCModel(
            _n_dim=self.n_dim,
            dims=dims,
            _coords=coords,
            _shapes={name: tuple(shape) for name, shape in zip(names, shapes)},
            compiled_logp_func=logp,
            compiled_expand_func=expand,
            initial_point_func=_rv_dict_to_flat_array_wrapper(ipf, names=list(names[:n_free]),
                                                              shapes=list(shapes[:n_free])),
            shared_data=self.data,
            user_data=self.user_data,
            n_expanded=self.n_expanded,
            shape_info=self.shape_info,
            logp_func=logp_pt,
            expand_func=expand_pt,
        )
        return _NutpieEntry(compiled, self.shared)


# --------------------------------------------------------------------------- manifests

#: model -> the structure string its builder declared (:func:`register_structure`)
_STRUCTURES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
#: bump when the manifest's contents change meaning
_MANIFEST_VERSION = 1


def register_structure(model: pm.Model, structure: str) -> None:
    """Declare that ``model``'s graph is determined by ``structure`` (a string naming the builder
    and everything it fixes: for a PWE model its :class:`~bayes_haic.survival.ModelSpec` and prior
    families) together with this package's source code, so its compilation may be reused from
    disk by another process (:func:`compile_nutpie_numba`). Only the values of ``pm.Data``
    containers may differ between models declared with the same structure."""
    _STRUCTURES[model] = str(structure)


@functools.lru_cache(maxsize=1)
def _code_stamp() -> str:
    """A hash of everything besides the declared structure that decides the compiled graph: this
    package's source files (any edit invalidates every manifest), the versions of the libraries
    that build, rewrite and compile it, PyTensor's float type and the machine."""
    import platform
    from importlib import metadata
    from pathlib import Path

    import pytensor

    h = hashlib.sha256()
    for f in sorted(Path(__file__).parent.rglob("*.py")):
        h.update(f.relative_to(Path(__file__).parent).as_posix().encode())
        h.update(f.read_bytes())
    libs = ("pymc", "pytensor", "nutpie", "numba", "llvmlite", "numpy")
    h.update(repr([_MANIFEST_VERSION, _C_CALLBACK_VERSION, platform.python_version(), platform.machine(),
                   [metadata.version(k) for k in libs], pytensor.config.floatX]).encode())
    return h.hexdigest()


def _manifest_path(model: pm.Model):
    """Where the manifest of ``model``'s declared structure is kept (in PyTensor's compile folder,
    beside numba's cache of the callbacks), or None when the model declared none or numba's
    cache is off."""
    import pytensor

    structure = _STRUCTURES.get(model)
    if structure is None or not pytensor.config.numba__cache:
        return None
    key = hashlib.sha256(f"{_code_stamp()}\n{structure}".encode()).hexdigest()
    return _manifest_folder() / f"nutpie-{key}.json"


def stamped_path(name: str):
    """The path of a file ``name`` beside the structure manifests, stamped with this package's
    code stamp (any change to the package or to the libraries that compile its models gives a
    new path), or None when numba's disk cache is off. The main job records there that its model
    structures are compiled (:func:`bayes_haic.pipeline.run_blocks`)."""
    import pytensor

    if not pytensor.config.numba__cache:
        return None
    return _manifest_folder() / f"{name}-{_code_stamp()[:16]}"


def recorded(name: str) -> bool:
    """Whether :func:`record` has recorded ``name`` for this code version and compile folder."""
    path = stamped_path(name)
    return path is not None and path.exists()


def record(name: str) -> None:
    """Record ``name`` (an empty file at :func:`stamped_path`). A folder that cannot be written
    only costs what the record would have saved."""
    path = stamped_path(name)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    except OSError:
        pass


def _manifest_folder():
    from pathlib import Path

    import pytensor

    return Path(pytensor.config.base_compiledir) / "bayes_haic"


def _write_manifest(path, manifest: dict) -> None:
    """Write ``manifest`` as JSON to a temporary file beside ``path``, then rename it (another
    process never reads half a manifest). A folder that cannot be written only costs the reuse."""
    import json
    import os
    import tempfile

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    except OSError:
        return
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(manifest, f)
        os.replace(tmp, path)
    except OSError:
        pass
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _from_manifest(model: pm.Model, ipf, path) -> _NutpieEntry | None:
    """The compiled model of ``model`` from its manifest and numba's cached callbacks, or None
    (no manifest, a manifest that does not fit the model, or a callback not in numba's cache)."""
    import json

    try:
        m = json.loads(path.read_text())
        shared = {}
        for name, dtype, ndim in m["shared"]:
            v = model.named_vars.get(name)
            value = None if v is None else getattr(v, "get_value", lambda **_: None)(borrow=True)
            if value is None or str(value.dtype) != dtype or value.ndim != ndim:
                return None
            shared[name] = v
        names = m["names"]
        if [model.rvs_to_values[v].name for v in model.free_RVs] != names[:m["n_free"]]:
            return None
        shape_info = (names, [slice(a, b) for a, b in m["slices"]], [tuple(s) for s in m["shapes"]])
        layout = _Layout(model, shared, int(m["n_dim"]), int(m["n_expanded"]), shape_info)
        logp = _load_c_callback("logp", *m["callbacks"]["logp"], layout)
        expand = _load_c_callback("expand", *m["callbacks"]["expand"], layout)
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None
    if logp is None or expand is None:
        return None
    return layout.entry(ipf, logp, expand)


#: bump when the generated callback source below changes meaning (part of the disk-cache key)
_C_CALLBACK_VERSION = 1

# The C callbacks nutpie's Rust sampler calls (the signatures of nutpie's own): the logp writes
# the log density and its gradient at x; the expansion writes the trace values at x. Both read
# the model's pm.Data arrays through the pointers nutpie keeps in the user-data record. They copy
# with loops: numba compiles ``out[...] = a`` through its general slice assignment, whose
# shape-mismatch error message alone took ~4 s to compile in every new process (the
# PS-spline model's first compilation 52 -> 47-48 s on the 2-core project machine).
_C_LOGP_SRC = """
def {name}(dim, x_, out_, logp_, user_data_):
    if dim != {n_dim}:
        return -1
    x = numba.carray(x_, ({n_dim},))
    out = numba.carray(out_, ({n_dim},))
    logp = numba.carray(logp_, (1,))
    shared = numba.carray(user_data_, (), RECORD)["shared"]
{arrays}
    value, grad = FN(x{args})
    logp[0] = value
    finite = True
    for i in range({n_dim}):
        out[i] = grad[i]
        finite = finite and np.isfinite(grad[i])
    if not finite:
        return 3
    if not np.isfinite(value):
        return 4
    return 0
"""
_C_EXPAND_SRC = """
def {name}(dim, expanded, x_, out_, user_data_):
    if dim != {n_dim}:
        return -1
    if expanded != {n_expanded}:
        return -1
    x = numba.carray(x_, ({n_dim},))
    out = numba.carray(out_, ({n_expanded},))
    shared = numba.carray(user_data_, (), RECORD)["shared"]
{arrays}
    (values,) = FN(x{args})
    for i in range({n_expanded}):
        out[i] = values[i]
    return 0
"""


def _callback_source(kind: str, names: list, layout: _Layout) -> tuple[str, str, dict]:
    """The source, name and global environment (without ``FN``) of the C callback ``kind``
    (``"logp"``/``"expand"``) that reads the shared arrays ``names`` from nutpie's user-data
    record: one line per array, no closures."""
    import numba
    from nutpie.compile_pymc import address_as_void_pointer

    data = layout.data
    lines = []
    for i, nm in enumerate(names):
        shape = "".join(f"int(shared['shape'][{nm!r}][{k}]), " for k in range(data[nm].ndim))
        lines.append(f"    a{i} = numba.carray(void_ptr(shared['data'][{nm!r}][()]), ({shape}), DTYPE{i})")
    name = f"bayes_haic_nutpie_{kind}"
    template = _C_LOGP_SRC if kind == "logp" else _C_EXPAND_SRC
    src = template.format(name=name, n_dim=layout.n_dim, n_expanded=layout.n_expanded,
                          arrays="\n".join(lines), args="".join(f", a{i}" for i in range(len(names))))
    env = {"__name__": __name__, "numba": numba, "np": np, "void_ptr": address_as_void_pointer,
           "RECORD": layout.user_data.dtype}
    env.update({f"DTYPE{i}": data[nm].dtype for i, nm in enumerate(names)})
    return src, name, env


def _callback_signature(kind: str):
    import numba

    t = numba.types
    args = ((t.uint64, t.CPointer(t.double), t.CPointer(t.double), t.CPointer(t.double))
            if kind == "logp" else (t.uint64, t.uint64, t.CPointer(t.double), t.CPointer(t.double)))
    return t.int64(*args, t.voidptr)


def _c_callback(kind: str, fn, names: list, layout: _Layout):
    """A numba C callback (``numba.cfunc``) calling PyTensor's numba function ``fn`` with the
    shared arrays ``names`` read from nutpie's user-data record, and its cache key.

    The wrapper (:func:`_callback_source`) is registered with PyTensor's numba cache
    (``~/.pytensor/numba``) under a key that hashes its source, the record layout, the array
    dtypes and PyTensor's own cache key of ``fn`` (the hash of its graph), so a cached callback is
    only reused for the same graph. If PyTensor gives ``fn`` no key (an Op it cannot cache), the
    callback is compiled without caching and the key is None.
    """
    import numba
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS, compile_numba_function_src

    src, name, env = _callback_source(kind, names, layout)
    inner = CACHED_SRC_FUNCTIONS.get(getattr(fn, "py_func", None))
    key = None
    if inner is not None:
        stamp = [_C_CALLBACK_VERSION, src, repr(layout.user_data.dtype),
                 [str(layout.data[nm].dtype) for nm in names], inner]
        key = hashlib.sha256(repr(stamp).encode()).hexdigest()
    py = compile_numba_function_src(src, name, {**env, "FN": fn}, cache_key=key)
    return numba.cfunc(_callback_signature(kind), cache=key is not None)(py), key


def _load_c_callback(kind: str, names: list, key: str, layout: _Layout):
    """The C callback of :func:`_c_callback` with cache key ``key``, loaded from numba's cache
    without PyTensor's function (the cached machine code contains it), or None when numba has
    no such entry (it would have to compile, and cannot without the function)."""
    import numba
    from pytensor.link.numba.cache import compile_numba_function_src

    src, name, env = _callback_source(kind, names, layout)
    py = compile_numba_function_src(src, name, {**env, "FN": None}, cache_key=key)
    try:
        return numba.cfunc(_callback_signature(kind), cache=True)(py)
    except numba.core.errors.NumbaError:
        return None


def set_data(model: pm.Model, values: dict) -> None:
    """Write new values into ``model``'s ``pm.Data`` containers, cast to their dtypes.

    Unlike ``pm.set_data`` this never compiles anything: PyMC evaluates each named dimension's
    length with PyTensor's C backend, which costs ~1 s per fresh process (compiler probing)
    in a job that otherwise only uses numba. A container with named dimensions keeps its
    shape (our models never resize those); one without may change length.
    """
    for name, value in values.items():
        shared = model[name]
        arr = np.asarray(value, dtype=shared.dtype)
        old = shared.get_value(borrow=True)
        if arr.ndim != old.ndim:
            raise ValueError(f"set_data: {name!r} needs {old.ndim} dimension(s); got shape {arr.shape}.")
        dims = model.named_vars_to_dims.get(name) or ()
        for axis, dim in enumerate(dims):
            if dim is not None and arr.shape[axis] != old.shape[axis]:
                raise ValueError(f"set_data: {name!r} has fixed dimension {dim!r} of length "
                                 f"{old.shape[axis]}; got {arr.shape[axis]}.")
        shared.set_value(arr)


def clear_compiled() -> None:
    """Forget every cached nutpie compilation (e.g. to time compilation)."""
    _NUTPIE.clear()
    _NUTPIE_NUMBA.clear()


def _sample_nutpie(model: pm.Model, s: SamplerSettings) -> az.InferenceData:
    import nutpie

    entry = compile_nutpie_numba(model) if s.backend == "nutpie-numba" else compile_nutpie(model)
    data = {k: np.array(v.get_value(), order="C", copy=True) for k, v in entry.shared.items()}
    trace = nutpie.sample(
        entry.compiled.with_data(**data),
        draws=s.draws,
        tune=s.tune,
        chains=s.chains,
        seed=s.seed,
        target_accept=s.target_accept,
        progress_bar=False,
        cores=1,
        return_raw_trace=True,
    )
    return trace_to_idata(*trace.get_arrow_trace(), coords=entry.compiled.coords)


#: nutpie's sampler statistics kept in ``sample_stats`` (nutpie's own ArviZ conversion keeps the
#: same ones by default; the gradients, mass matrices and divergence locations are not stored)
NUTPIE_STATS = ("depth", "maxdepth_reached", "index_in_trajectory", "logp", "energy",
                "energy_error", "step_size", "step_size_bar", "mean_tree_accept",
                "mean_tree_accept_sym", "n_steps", "tuning", "diverging")


def trace_to_idata(draw_batches, stat_batches, coords: dict) -> az.InferenceData:
    """An InferenceData (``posterior`` and ``sample_stats``, post-warmup draws) of nutpie's raw
    Arrow trace: one record batch of draws and one of statistics per chain.

    The values, variable names, dims and coordinates are those of nutpie's own conversion
    (``nutpie.sample`` without ``return_raw_trace``; tested) without its per-variable ArviZ
    conversion, which cost ~0.1 s per fit, and without the warmup groups, which nothing reads.
    Transformed values (names ending in ``__``, e.g. ``sd_log__``) are dropped, as PyMC does.
    """
    import pyarrow
    import xarray as xr

    chains = len(draw_batches)
    if chains != len(stat_batches) or chains == 0:
        raise ValueError(f"nutpie trace: {len(draw_batches)} draw and {len(stat_batches)} "
                         "statistics batches; expected one of each per chain")
    starts = [int(np.asarray(st.column("tuning").to_numpy()).sum()) for st in stat_batches]
    n = {b.num_rows - k for b, k in zip(draw_batches, starts)}
    if len(n) != 1:
        raise ValueError(f"nutpie trace: chains of unequal length {sorted(n)}")
    n_draws = n.pop()
    used_dims: set = set()  # (dim, length)

    def group(batches, names) -> dict:
        batches = [pyarrow.record_batch(b).slice(k, n_draws) for b, k in zip(batches, starts)]
        out = {}
        for name in names:
            meta = batches[0].schema.field(name).metadata or {}
            dims = [d for d in meta.get(b"dims", b"").decode().split(",") if d]
            shape = [int(x) for x in meta.get(b"shape", b"").decode().split(",") if x]
            if len(dims) != len(shape):
                dims = [f"{name}_dim_{i}" for i in range(len(shape))]
            parts = []
            for batch in batches:
                col = batch.column(name)
                if col.null_count:
                    raise ValueError(f"nutpie trace: missing values in {name!r}")
                if shape:
                    col = col.flatten()
                parts.append(col.to_numpy(zero_copy_only=False).reshape((n_draws, *shape)))
            out[name] = (("chain", "draw", *dims), np.stack(parts))
            used_dims.update(zip(dims, shape))
        return out

    post = group(draw_batches, [f for f in draw_batches[0].schema.names if not f.endswith("__")])
    stats = group(stat_batches, [f for f in NUTPIE_STATS if f in stat_batches[0].schema.names])
    base = {"chain": np.arange(chains), "draw": np.arange(n_draws)}
    extra = {d: coords[d] if d in coords else np.arange(size) for d, size in sorted(used_dims)}
    return az.InferenceData(posterior=xr.Dataset(post, coords={**base, **extra}),
                            sample_stats=xr.Dataset(stats, coords=base))


def sample(model: pm.Model, settings: SamplerSettings | None = None) -> az.InferenceData:
    """Draw posterior samples from ``model``; returns an InferenceData with sample_stats.

    ``backend="nutpie"`` / ``"nutpie-numba"``: compiled once per model object
    (:func:`compile_nutpie` / :func:`compile_nutpie_numba`), with the model's current
    ``pm.Data`` values. The sampler's settings are stored in ``idata.attrs`` (``sampler_*`` keys).
    """
    s = settings or SamplerSettings()
    if s.backend in ("nutpie", "nutpie-numba"):
        idata = _sample_nutpie(model, s)
    elif s.backend == "pymc":
        logger = logging.getLogger("pymc")
        level = logger.level
        logger.setLevel(logging.ERROR)
        try:
            with model:
                idata = pm.sample(
                    draws=s.draws,
                    tune=s.tune,
                    chains=s.chains,
                    cores=1,
                    random_seed=s.seed,
                    target_accept=s.target_accept,
                    progressbar=False,
                    compute_convergence_checks=False,
                )
        finally:
            logger.setLevel(level)
    else:
        raise ValueError(f"unknown sampler backend {s.backend!r}; expected one of {', '.join(BACKENDS)}")
    for key, value in s.as_dict().items():
        idata.attrs[f"sampler_{key}"] = value
    return idata


def with_groups(idata: az.InferenceData, groups: dict, attrs: dict) -> az.InferenceData:
    """A new InferenceData of ``groups`` that keeps ``idata``'s sampler statistics (if any) and
    sampler settings (``sampler_*`` attrs), with ``attrs`` added."""
    groups = dict(groups)
    if "sample_stats" in idata.groups():
        groups["sample_stats"] = idata.sample_stats
    out = az.InferenceData(**groups, warn_on_custom_groups=False)
    out.attrs.update({k: v for k, v in idata.attrs.items() if k.startswith("sampler_")})
    out.attrs.update(attrs)
    return out


def convergence(idata: az.InferenceData, var_names=None) -> dict:
    """Convergence diagnostics over ``var_names`` (default: all posterior variables).

    Returns ``rhat_max`` (rank-normalised split R-hat), ``ess_bulk_min``, ``ess_tail_min``,
    ``divergences`` (count over all chains) and ``bfmi_min`` (energy BFMI, NaN if unavailable).

    A posterior pooled over design draws (attrs ``design_draws`` and
    ``chains_per_design_draw``: consecutive groups of chains, each an MCMC fit to its own
    matched set) is diagnosed per fit, since chains of different targets are not expected to
    agree: ``rhat_max`` is the largest R-hat of any fit, the ESS values are the sums over the
    fits (of each fit's smallest), divergences are summed and ``bfmi_min`` is the smallest.
    """
    groups = int(idata.attrs.get("design_draws", 1) or 1)
    per = int(idata.attrs.get("chains_per_design_draw", 0) or 0)
    if groups > 1 and per > 0 and idata.posterior.sizes["chain"] == groups * per:
        parts = []
        for m in range(groups):
            sel = {"chain": slice(m * per, (m + 1) * per)}
            sub = az.InferenceData(**{g: idata[g].isel(sel) for g in ("posterior", "sample_stats")
                                      if g in idata.groups()})
            parts.append(_convergence(sub, var_names))
        return {
            "rhat_max": max(p["rhat_max"] for p in parts),
            "ess_bulk_min": sum(p["ess_bulk_min"] for p in parts),
            "ess_tail_min": sum(p["ess_tail_min"] for p in parts),
            "divergences": sum(p["divergences"] for p in parts),
            "bfmi_min": min(p["bfmi_min"] for p in parts),
        }
    return _convergence(idata, var_names)


def _convergence(idata: az.InferenceData, var_names=None) -> dict:
    """:func:`convergence` of one MCMC fit: the rank-normalised split R-hat and bulk/tail ESS of
    every scalar element of ``var_names`` (the values of ``az.summary(...,
    kind="diagnostics")``; elements where they are undefined, e.g. a constant, are skipped as
    there), computed for all elements at once by :func:`bayes_haic.diagnostics.rhat_ess` (equal
    to ArviZ's to ~1e-13, ~3x faster than ArviZ element by element and ~6x faster than
    ``az.summary``'s xarray machinery). They are rounded as ``az.summary`` reports them
    (R-hat to two decimals, ESS to whole draws; NumPy's round half to even), the values the
    checks' thresholds and the validation study's failure rule are applied to."""
    from .diagnostics import rhat_ess

    post = idata.posterior
    names = list(post.data_vars) if var_names is None else list(var_names)
    cols = [post[v].transpose("chain", "draw", ...).values for v in names]
    parts = [np.moveaxis(c.reshape(c.shape[0], c.shape[1], -1), 2, 0) for c in cols]
    stacked = np.concatenate(parts) if parts else np.empty((0, 1, 1))  # (elements, chain, draw)
    d = rhat_ess(stacked)
    rhat, bulk, tail = d["rhat"], d["ess_bulk"], d["ess_tail"]
    stats = idata.get("sample_stats")
    div = 0
    bfmi = float("nan")
    with _arviz_numpy():
        if stats is not None:
            if "diverging" in stats:
                div = int(stats["diverging"].values.sum())
            if "energy" in stats:
                bfmi = float(np.min(az.bfmi(stats["energy"].transpose("chain", "draw").values)))
    return {
        "rhat_max": _nan_extreme(np.nanmax, rhat, 2),
        "ess_bulk_min": _nan_extreme(np.nanmin, bulk, 0),
        "ess_tail_min": _nan_extreme(np.nanmin, tail, 0),
        "divergences": div,
        "bfmi_min": bfmi,
    }


def _nan_extreme(fn, values, decimals: int) -> float:
    """``fn`` (``np.nanmax``/``np.nanmin``) of ``values`` rounded to ``decimals``, NaN when
    every value is NaN."""
    v = np.asarray(values, dtype=float)
    return float(np.round(fn(v), decimals)) if np.isfinite(v).any() else float("nan")
