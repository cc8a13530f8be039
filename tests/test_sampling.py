"""The nutpie path: one compilation per model structure, reused for new data and prior values,
with identical draws for identical settings (seed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bayes_haic import sampling
from bayes_haic import survival as sv
from bayes_haic.priors import load_prior_set

NUTPIE = sampling.SamplerSettings(draws=200, tune=200, chains=2, seed=5, backend="nutpie")


def _cohort(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, n)
    t = rng.exponential(1 / (0.08 * 0.6**x))
    c = rng.uniform(0, 36, n)
    return pd.DataFrame({"treatment": x, "os_time": np.minimum(t, c), "os_event": (t <= c).astype(int),
                         "age": rng.normal(60, 10, n)})


@pytest.mark.parametrize("adjust", ["none", "covariates"])
def test_refit_reuses_the_nutpie_compilation_and_is_reproducible(adjust):
    a_df, b_df = _cohort(150, 1), _cohort(120, 2)
    cuts = [0, 4, 8, 16]
    kw = {"covariates": ["age"]} if adjust == "covariates" else {}
    sv.clear_model_cache()
    start = sampling.COMPILATIONS["nutpie"]
    a = sv.fit_pwe(a_df, "os", adjust=adjust, cuts=cuts, sampler=NUTPIE, **kw)
    assert sampling.COMPILATIONS["nutpie"] == start + 1
    # new data (another size) and new prior values: same structure, no new compilation
    tight = load_prior_set("reference", overrides=("survival.log_hr.mu=0.3", "survival.log_hr.sigma=0.01"))
    b = sv.fit_pwe(b_df, "os", adjust=adjust, cuts=cuts, prior_set=tight, sampler=NUTPIE, **kw)
    assert sampling.COMPILATIONS["nutpie"] == start + 1
    assert float(b.posterior["log_hr"].mean()) == pytest.approx(0.3, abs=0.03)  # the new prior took effect
    assert b.attrs["n_treated"] + b.attrs["n_control"] == 120
    # refitting the first problem gives the same draws as the first fit
    again = sv.fit_pwe(a_df, "os", adjust=adjust, cuts=cuts, sampler=NUTPIE, **kw)
    assert sampling.COMPILATIONS["nutpie"] == start + 1
    np.testing.assert_array_equal(a.posterior["log_hr"].values, again.posterior["log_hr"].values)
    np.testing.assert_array_equal(a.posterior["hazard"].values, again.posterior["hazard"].values)
    # a cleared cache compiles again and still gives the same draws
    sv.clear_model_cache()
    fresh = sv.fit_pwe(a_df, "os", adjust=adjust, cuts=cuts, sampler=NUTPIE, **kw)
    assert sampling.COMPILATIONS["nutpie"] == start + 2
    np.testing.assert_array_equal(a.posterior["log_hr"].values, fresh.posterior["log_hr"].values)
    assert not [v for v in a.posterior.data_vars if "__" in v]
    assert int(a.sample_stats["diverging"].shape[0]) == 2


def test_set_data_casts_keeps_named_dimensions_and_resizes_patient_data():
    """sampling.set_data replaces pm.set_data (which compiles with PyTensor's C backend): values
    are cast to the container's dtype, named (fixed) dimensions cannot change length, patient
    containers (no named dimension) can, and a wrong rank is refused."""
    collapsed = sv.build_pwe_model(sv.collapse(np.array([1.0, 5.0, 9.0]), np.array([1, 0, 1]),
                                               np.array([0, 1, 1]), [0, 4, 8]), "reference", "independent")
    sampling.set_data(collapsed, {"exposure": [[1, 2, 3], [4, 5, 6]]})  # ints into a float container
    got = collapsed["exposure"].get_value()
    assert got.dtype == np.float64 and got[1, 2] == 6.0
    sampling.set_data(collapsed, {"event_counts": np.array([[1.0, 2.0, 0.0], [0.0, 3.0, 1.0]])})  # the Poisson's
    got = collapsed["event_counts"].get_value()
    assert got.dtype.kind == "i" and got[1, 1] == 3
    with pytest.raises(ValueError, match="fixed dimension 'intervals'"):
        sampling.set_data(collapsed, {"exposure": np.zeros((2, 4))})
    with pytest.raises(ValueError, match="needs 2 dimension"):
        sampling.set_data(collapsed, {"exposure": np.zeros(6)})
    df = _cohort(40, 3)
    fit = sv.fit_pwe(df, "os", adjust="covariates", covariates=["age"], cuts=[0, 8], sampler=NUTPIE)
    model = sv._cached(sv.ModelSpec(2, "rw", "patient", False, 1, "survival.covariate", 0),
                       load_prior_set("reference")).model
    assert model["event"].get_value().shape == (40,)  # the patient rows of the last fit
    sampling.set_data(model, {"interval_index": np.array([0.0, 1.0, 1.0])})
    got = model["interval_index"].get_value()
    assert got.dtype == model["interval_index"].dtype and got.dtype.kind == "i" and got.shape == (3,)
    assert fit.attrs["n_treated"] + fit.attrs["n_control"] == 40


def test_convergence_uses_numpy_arviz_and_restores_the_numba_flag():
    """The diagnostics run on ArviZ's NumPy path (no per-process JIT compile) and agree with
    its numba path; ArviZ's global numba setting is left as it was."""
    import arviz as az

    rng = np.random.default_rng(0)
    idata = az.from_dict(posterior={"a": rng.normal(size=(2, 500)), "b": rng.normal(size=(2, 500, 3))},
                         sample_stats={"diverging": np.zeros((2, 500), bool),
                                       "energy": rng.normal(size=(2, 500))})
    before = az.Numba.numba_flag
    fast = sampling.convergence(idata)
    assert az.Numba.numba_flag == before
    summ = az.summary(idata, kind="diagnostics")  # with numba when installed
    assert fast["ess_bulk_min"] == pytest.approx(float(summ["ess_bulk"].min()), rel=1e-9)
    assert fast["rhat_max"] == pytest.approx(float(summ["r_hat"].max()), rel=1e-9)
    assert fast["bfmi_min"] == pytest.approx(float(np.min(az.bfmi(idata))), rel=1e-9)


def test_convergence_values_are_arvizs_rounded_as_its_summary_and_skip_undefined_elements():
    """Each element's R-hat and ESS are ArviZ's (rank-normalised split R-hat, bulk and tail
    ESS), rounded as ``az.summary`` reports them; a constant element (undefined R-hat) is
    skipped as ``az.summary``'s max/min skip it, and a fit of constants only gives NaN."""
    import arviz as az

    rng = np.random.default_rng(1)
    b = rng.normal(size=(2, 400, 3))
    b[1, :, 2] += 1.0  # a poorly mixed element: the largest R-hat
    idata = az.from_dict(posterior={"a": rng.normal(size=(2, 400)), "b": b,
                                    "k": np.ones((2, 400))})
    got = sampling.convergence(idata)
    with sampling._arviz_numpy():
        rhat = max(float(az.rhat(x)) for x in (idata.posterior["a"].values, *np.moveaxis(b, 2, 0)))
        bulk = min(float(az.ess(x, method="bulk")) for x in (idata.posterior["a"].values, *np.moveaxis(b, 2, 0)))
    assert rhat > 1.1
    assert got["rhat_max"] == round(rhat, 2)
    assert got["ess_bulk_min"] == round(bulk)
    assert np.isnan(sampling.convergence(idata, var_names=["k"])["rhat_max"])


def test_raw_trace_conversion_equals_nutpies_own():
    """``trace_to_idata`` gives nutpie's own ArviZ conversion (values, names, dims, coordinates,
    dtypes), without the transformed values and the warmup groups."""
    import nutpie
    import pymc as pm
    import xarray as xr

    with pm.Model(coords={"k": ["a", "b", "c"]}) as m:
        x = pm.Normal("x", 0, 1, dims="k")
        s = pm.HalfNormal("s", 1)
        pm.Normal("z", 0, 1, shape=2)  # unnamed dimension: numbered like ArviZ's
        pm.Deterministic("y", x * s, dims="k")
    entry = sampling.compile_nutpie(m)
    kw = dict(draws=60, tune=40, chains=2, seed=2, progress_bar=False, cores=1)
    ref = nutpie.sample(entry.compiled.with_data(), **kw)
    raw = nutpie.sample(entry.compiled.with_data(), return_raw_trace=True, **kw)
    got = sampling.trace_to_idata(*raw.get_arrow_trace(), coords=entry.compiled.coords)
    assert set(got.groups()) == {"posterior", "sample_stats"}
    post = ref.posterior.drop_vars(["s_log__"])
    xr.testing.assert_identical(post.drop_attrs(), got.posterior.drop_attrs())
    xr.testing.assert_identical(ref.sample_stats.drop_attrs(), got.sample_stats.drop_attrs())
    assert got.posterior["x"].shape == (2, 60, 3)


CALLBACK_PROBE = """
import json, sys
import numpy as np, pandas as pd
from bayes_haic import sampling, survival as sv
rng = np.random.default_rng(4)
x = rng.integers(0, 2, 120)
t = rng.exponential(1 / (0.08 * 0.6**x))
df = pd.DataFrame({"treatment": x, "os_time": np.minimum(t, 30.0), "os_event": (t <= 30.0).astype(int)})
s = sampling.SamplerSettings(draws=100, tune=100, chains=1, seed=3, backend=sys.argv[1])
idata = sv.fit_pwe(df, "os", cuts=[0, 5, 10], baseline="independent", sampler=s)
entry = next(iter(sampling._NUTPIE_NUMBA.values()), None)
hits = None if entry is None else [entry.compiled.compiled_logp_func._cache_hits,
                                   entry.compiled.compiled_expand_func._cache_hits]
print(json.dumps({"hits": hits, "log_hr": idata.posterior["log_hr"].values.ravel().tolist(),
                  "from_disk": sampling.COMPILATIONS["nutpie-numba from disk"]}))
"""


@pytest.mark.slow
def test_c_callbacks_are_compiled_once_per_machine_and_give_nutpies_draws(tmp_path):
    """``nutpie-numba``'s C callbacks go to PyTensor's disk cache: a second process with the same
    compile folder loads them instead of compiling (numba's cache hits), from the structure's
    manifest (PyTensor does not compile the graph again), and the draws equal the
    Python-callback backend's ``nutpie`` for the same seed."""
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ, PYTENSOR_FLAGS=f"base_compiledir={tmp_path / 'cache'}")

    def probe(backend):
        out = subprocess.run([sys.executable, "-c", CALLBACK_PROBE, backend], env=env, check=True,
                             capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    first, second, python = probe("nutpie-numba"), probe("nutpie-numba"), probe("nutpie")
    assert first["hits"] == [0, 0] and second["hits"] == [1, 1]
    assert first["from_disk"] == 0 and second["from_disk"] == 1
    assert len(list((tmp_path / "cache" / "bayes_haic").glob("nutpie-*.json"))) == 1
    assert first["log_hr"] == second["log_hr"] == python["log_hr"]
    assert any((tmp_path / "cache" / "numba").glob("*bayes_haic_nutpie_logp*"))


def _fit_small(seed=3):
    df = _cohort(120, 4)
    s = sampling.SamplerSettings(draws=100, tune=100, chains=1, seed=seed, backend="nutpie-numba")
    return sv.fit_pwe(df, "os", cuts=[0, 5, 10], baseline="independent", sampler=s)


def test_a_declared_structure_is_compiled_once_then_loaded_from_its_manifest(tmp_path, monkeypatch):
    """A model whose builder declared its structure (here the PWE model's) leaves a manifest of
    its compilation; a later compilation of the same structure (here: the in-memory caches
    cleared, as in a new process) loads it and numba's cached callbacks without PyTensor
    rewriting the graph, and gives the same draws. A manifest that does not fit (a callback
    numba has no entry for, a shared array of another type, unreadable JSON) is not used: the
    model is compiled as the first time, with the same draws, and the manifest rewritten."""
    import json

    import nutpie.compile_pymc as ncp

    monkeypatch.setattr(sampling, "_manifest_folder", lambda: tmp_path)
    sv.clear_model_cache()
    start = dict(sampling.COMPILATIONS)
    first = _fit_small()
    assert sampling.COMPILATIONS["nutpie-numba from disk"] == start["nutpie-numba from disk"]
    (path,) = tmp_path.glob("nutpie-*.json")
    manifest = json.loads(path.read_text())
    assert manifest["names"][: manifest["n_free"]] == ["log_lambda", "log_hr"]

    def no_rewriting(*a, **k):
        raise AssertionError("PyTensor compiled the graph although a manifest was there")

    with monkeypatch.context() as m:
        m.setattr(ncp, "_make_functions", no_rewriting)
        sv.clear_model_cache()
        loaded = _fit_small()
    assert sampling.COMPILATIONS["nutpie-numba from disk"] == start["nutpie-numba from disk"] + 1
    np.testing.assert_array_equal(first.posterior["log_hr"].values, loaded.posterior["log_hr"].values)
    np.testing.assert_array_equal(first.posterior["hazard"].values, loaded.posterior["hazard"].values)

    bad_key = json.loads(path.read_text())
    bad_key["callbacks"]["logp"][1] = "0" * 64
    bad_type = json.loads(path.read_text())
    bad_type["shared"][0][1] = "int8"
    for broken in (json.dumps(bad_key), json.dumps(bad_type), "{not json"):
        path.write_text(broken)
        sv.clear_model_cache()
        before = sampling.COMPILATIONS["nutpie-numba from disk"]
        again = _fit_small()
        assert sampling.COMPILATIONS["nutpie-numba from disk"] == before
        np.testing.assert_array_equal(first.posterior["log_hr"].values, again.posterior["log_hr"].values)
        assert json.loads(path.read_text()) == manifest
    assert not list(tmp_path.glob("*.tmp"))


def test_models_without_a_declared_structure_leave_no_manifest(tmp_path, monkeypatch):
    """Only a builder knows what decides its graph: a model nobody declared is compiled in each
    process (no manifest), and different declared structures get different manifests."""
    monkeypatch.setattr(sampling, "_manifest_folder", lambda: tmp_path)
    sampling.clear_compiled()
    model = sv.build_pwe_model(sv.collapse(np.array([1.0, 5.0, 9.0]), np.array([1, 0, 1]),
                                           np.array([0, 1, 1]), [0, 4, 8]), "reference", "independent")
    sampling.compile_nutpie_numba(model)
    assert not list(tmp_path.iterdir())
    ps = load_prior_set("reference")
    a = sv._structure(sv.ModelSpec(3, "independent"), ps)
    assert a == sv._structure(sv.ModelSpec(3, "independent"), load_prior_set("skeptical"))  # values only
    assert a != sv._structure(sv.ModelSpec(4, "independent"), ps)
    assert a != sv._structure(sv.ModelSpec(3, "rw"), ps)
    heavy = tmp_path / "heavy.toml"
    heavy.write_text('base = "reference"\n[survival]\nlog_hr = { dist = "StudentT", nu = 3, mu = 0, sigma = 1 }\n')
    assert a != sv._structure(sv.ModelSpec(3, "independent"), load_prior_set(heavy))


def test_models_compile_at_the_package_numba_opt_level_and_a_users_setting_wins(monkeypatch):
    """Inside :func:`sampling.numba_opt_level` numba compiles at LLVM level ``NUMBA_OPT`` (1), and
    at its own default (3) again after it; a ``NUMBA_OPT`` the user set is left as it is. A
    model's numba code is compiled inside it (that this gives the draws of numba's default
    level: :func:`test_the_numba_opt_level_does_not_change_the_draws`)."""
    import os

    import numba
    import pymc as pm
    from numba.core import config

    monkeypatch.delenv("NUMBA_OPT", raising=False)

    def compile_probe(k):  # a new function, so numba compiles (and re-reads NUMBA_* first)
        numba.njit(lambda x: x + k)(1.0)
        return int(config.OPT)

    outside = compile_probe(1)
    with sampling.numba_opt_level():
        inside = compile_probe(2)
    assert "NUMBA_OPT" not in os.environ
    assert (outside, inside, compile_probe(3)) == (3, sampling.NUMBA_OPT, 3)
    assert sampling.NUMBA_OPT == 1

    monkeypatch.setenv("NUMBA_OPT", "2")
    with sampling.numba_opt_level():
        assert compile_probe(4) == 2
    assert os.environ["NUMBA_OPT"] == "2"
    monkeypatch.delenv("NUMBA_OPT")

    seen = []

    def compile_numba(model, ipf):  # records the level the model would be compiled at
        seen.append(os.environ.get("NUMBA_OPT"))
        return "compiled", None

    monkeypatch.setattr(sampling, "_manifest_path", lambda model: None)
    monkeypatch.setattr(sampling, "_compile_numba", compile_numba)
    with pm.Model() as m:
        pm.Normal("x")
    assert sampling.compile_nutpie_numba(m) == "compiled"
    assert seen == [str(sampling.NUMBA_OPT)] and "NUMBA_OPT" not in os.environ


@pytest.mark.slow
def test_the_numba_opt_level_does_not_change_the_draws(tmp_path):
    """The same fit compiled at the package's LLVM level (1) and at numba's default (3, the user's
    ``NUMBA_OPT`` wins), each in a new process with an empty compile folder, gives bit-identical
    draws (without fast-math, LLVM keeps IEEE arithmetic at every level)."""
    import json
    import os
    import subprocess
    import sys

    def probe(folder, **extra):
        env = dict(os.environ, PYTENSOR_FLAGS=f"base_compiledir={tmp_path / folder}")
        env.pop("NUMBA_OPT", None)
        env.update(extra)
        out = subprocess.run([sys.executable, "-c", CALLBACK_PROBE, "nutpie-numba"], env=env,
                             check=True, capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    package, default = probe("level1"), probe("level3", NUMBA_OPT="3")
    assert package["hits"] == default["hits"] == [0, 0]  # both compiled, none loaded
    assert package["log_hr"] == default["log_hr"]
