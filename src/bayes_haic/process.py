"""What a short-lived ``bayes-haic`` command-line process does differently from a Python session.

A command runs once and exits, so costs that a long session pays once matter per command: the
garbage collector scanning the ~10^6 objects that PyMC, PyTensor, ArviZ and the figure library
create at import, the final collection at exit, glibc handing freed memory back to the system,
and imports and compilations that a command never uses. The console script's entry points
(:func:`bayes_haic.cli.run`, :func:`bayes_haic.cli.script`) call :func:`start` first and
:func:`end` last; nothing here runs when the library is imported or ``cli.main`` is called from
Python. None of it changes a number: the same seed gives the same draws
(``tests/test_process.py``). Timings: ``benchmarks/bench_targets.py`` (one fit) and
``benchmarks/bench_main.py`` (the main job).
"""

from __future__ import annotations

import gc
import importlib.abc
import importlib.machinery
import sys
import warnings

# Set by start(), never at import: the tuning below is for a command-line process only.
_OWN_PROCESS = False

#: ArviZ 0.23.4's notice, printed as a FutureWarning by the first import of ArviZ each day on each
#: machine ("ArviZ is undergoing a major refactor ..."): about ArviZ 1.0, which this package does
#: not install (pyproject.toml bounds ArviZ below 0.24). A command's first lines are its progress
#: and its one-paragraph errors, so the command line does not print it; a Python session (the
#: API, the tests' warning filter aside) still sees it, as ArviZ intends.
ARVIZ_DAILY_NOTICE = r"\s*ArviZ is undergoing a major refactor"

# ArviZ's one numba function that is compiled when ArviZ is imported (see _LazyArvizUfunc).
ARVIZ_EAGER_UFUNC_MODULE = "arviz.stats.ecdf_utils"


def start() -> None:
    """Entry points: turn the cyclic garbage collector off while the command imports PyMC,
    PyTensor, ArviZ and the figure library; their ~10^6 long-lived objects would otherwise trigger
    repeated full collections (~0.45 s per process). :func:`settle` turns it back on. Also hides
    packages the command does not use (:func:`hide_unused`), defers ArviZ's import-time compilation
    (:class:`_LazyArvizUfunc`) and silences ArviZ's daily notice (:data:`ARVIZ_DAILY_NOTICE`)."""
    global _OWN_PROCESS
    _OWN_PROCESS = True
    gc.disable()
    hide_unused()
    warnings.filterwarnings("ignore", message=ARVIZ_DAILY_NOTICE, category=FutureWarning)
    if ARVIZ_EAGER_UFUNC_MODULE not in sys.modules:
        sys.meta_path.insert(0, _LazyArvizUfunc())


def settle() -> None:
    """Call once a command has imported its libraries. In a command-line process the imported
    objects are frozen (``gc.freeze``: moved out of the collector's view; refcounting still frees
    them) and the collector is turned back on, so the command runs with normal garbage
    collection that scans only what it allocates."""
    if _OWN_PROCESS:
        gc.freeze()
        gc.enable()


def keep_freed_memory() -> None:
    """The main job, in a command-line process on glibc (Linux): keep freed memory for reuse
    instead of handing it back to the system at once (``mallopt``: arrays up to 32 MB come from
    the heap, which is trimmed only when 512 MB lie free at its top). The job allocates and frees
    its draw-sized arrays thousands of times; by default glibc unmaps each and the next one
    page-faults fresh zeroed memory: ~900,000 page faults and ~13 s of system CPU per run. With
    this ~460,000 and ~6.5 s; the wall time fell ~6 s, the peak resident memory rose ~10%
    (0.9 -> 1.0 GB; measured on the 2-core project machine). No-op elsewhere; the worker
    processes (forked) inherit it."""
    if not _OWN_PROCESS or not sys.platform.startswith("linux"):
        return
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl): leave the allocator alone
        return
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3  # glibc's malloc.h
    mallopt(m_mmap_threshold, 32 << 20)
    mallopt(m_trim_threshold, 512 << 20)
    mallopt(m_top_pad, 64 << 20)


def end(code: int):
    """Interpreter shutdown would run a final full collection over every object the libraries
    made (~0.6-0.9 s after a fit); freezing them skips that pass. atexit handlers still run, and
    every output file is already closed and renamed into place."""
    gc.freeze()
    gc.enable()
    sys.exit(code)


#: Packages a command-line process marks as absent (:func:`hide_unused`); ``validate`` needs dask.
UNUSED_PACKAGES = ("dask", "numcodecs", "zarr")


def hide_unused() -> None:
    """Mark installed packages that a command other than ``validate`` never uses as absent
    (``sys.modules[name] = None``, Python's documented way to make an import fail), so that the
    libraries' optional imports of them answer "not available" at once, which is the truth for
    such a process:

    * dask (installed for the validation study): xarray imports ``dask.array`` at its first
      array, to recognise dask arrays, and ``dask.distributed`` at its first netCDF write, to ask
      which scheduler is active: ~0.3 s per ``fit``;
    * numcodecs and zarr (installed for nutpie's zarr storage, which we do not use): PyMC 5.28
      imports both for its zarr trace backend and then finds that zarr 3 lacks what the backend
      needs (``zarr.storage.BaseStore``), so the backend is unavailable either way
      (``tests/test_process.py`` checks that): ~0.1-0.2 s per command.

    ``validate`` undoes it (:func:`allow_unused`) before it imports anything. A package already
    imported is left alone."""
    for name in UNUSED_PACKAGES:
        sys.modules.setdefault(name, None)


def allow_unused() -> None:
    """Undo :func:`hide_unused` (the ``validate`` command, which runs on Dask)."""
    for name in UNUSED_PACKAGES:
        if name in sys.modules and sys.modules[name] is None:
            del sys.modules[name]


class _LazyArvizUfunc(importlib.abc.MetaPathFinder):
    """ArviZ 0.23 compiles one numba ufunc when it is imported (``_binom_pmf`` in
    ``arviz.stats.ecdf_utils``, for its ECDF confidence bands, which this package never draws):
    ``@vectorize`` with an explicit signature compiles at once, uncached, ~0.15-0.4 s per process.
    While that one module executes, ``numba.vectorize`` given signatures returns numba's lazily
    compiled ufunc instead (``vectorize()`` without signatures: compiled for the argument types at
    its first call), so the function is the same and is compiled only if it is ever called. Every
    other numba function, and ``numba.vectorize`` itself afterwards, are untouched; the finder
    removes itself at its one use."""

    def find_spec(self, fullname, path, target=None):
        if fullname != ARVIZ_EAGER_UFUNC_MODULE:
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_with_lazy_vectorize(module):
            try:
                import numba
            except ImportError:  # ArviZ then compiles nothing either
                return exec_module(module)
            eager = numba.vectorize

            def vectorize(ftylist_or_function=(), **kws):
                if isinstance(ftylist_or_function, (list, tuple)):  # signatures: compile later
                    return eager(**kws)
                return eager(ftylist_or_function, **kws)

            numba.vectorize = vectorize
            try:
                exec_module(module)
            finally:
                numba.vectorize = eager

        spec.loader.exec_module = exec_with_lazy_vectorize
        return spec
