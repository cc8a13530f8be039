"""Analysis configuration files: the shipped one loads; mistakes name file, key and expectation."""

from pathlib import Path

import pytest

import tomllib

from bayes_haic.config import MainConfig, default_config_path, load_config
from bayes_haic.reanalysis import GENERIC_PRIOR_NAMES, PRIOR_NAMES
from bayes_haic.errors import InputError


def test_shipped_main_config_loads():
    cfg = load_config()
    assert cfg.cohort_path().is_file()
    assert set(cfg.survival.endpoints) == {"os", "pfs"}
    assert cfg.sampler.settings().seed == cfg.sampler.seed


#: where a key left out of a file differs from the shipped models/main.toml, and why (config.py)
STUDY_ONLY = {
    "published.enabled": (False, True),  # the package's study's published tier: opt-in
    "priors.published_sets": (list(GENERIC_PRIOR_NAMES), list(PRIOR_NAMES)),  # + evidence_based
    "sampler.tune": (1000, 500),  # 500 was measured enough on the default cohort only
}


def _leaves(table, prefix=""):
    for key, value in table.items():
        if isinstance(value, dict) and key not in ("columns", "arms", "endpoint_names"):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def test_a_key_left_out_takes_the_shipped_files_value_except_the_studys_own(tmp_path):
    """A file with only a [data] table is the shipped analysis of that cohort, of that study
    alone: every key the shipped main.toml sets has the same default in code, except the three
    in STUDY_ONLY (the package's study's published tier and evidence-based prior, which only
    the shipped file turns on, and the tuning length measured on its cohort)."""
    shipped = dict(_leaves(tomllib.loads(default_config_path().read_text())))
    defaults = dict(_leaves(MainConfig().model_dump()))
    differ = {k: (defaults[k], v) for k, v in shipped.items() if k != "data.cohort"
              and defaults[k] != v}
    assert differ == STUDY_ONLY
    # a [data]-only file: the five strategies, none of the package's study
    (tmp_path / "data_only.toml").write_text("[data]\ncohort = 'x.csv'\n")
    cfg = load_config(tmp_path / "data_only.toml")
    assert cfg.survival.strategies == cfg.response.strategies == load_config().survival.strategies
    assert not cfg.published.enabled and "evidence_based" not in cfg.priors.published_sets


@pytest.mark.parametrize(
    "text, needles",
    [
        ("[survival]\nn_intervals = 0\n", ["survival.n_intervals", "greater than or equal to 1"]),
        ("[survival]\nstrategy = ['none']\n", ["survival.strategy", "Extra inputs"]),
        ("[sampler]\nbackend = 'stan'\n", ["sampler.backend", "'pymc', 'nutpie' or 'nutpie-numba'", "'stan'"]),
        ("[design]\ntruncate = [0.9, 0.1]\n", ["design.truncate", "low < high"]),
        ("[design\n", ["not valid TOML"]),
    ],
)
def test_bad_config_is_a_clear_input_error(tmp_path, text, needles):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        load_config(path)
    msg = str(info.value)
    assert str(path) in msg
    for needle in needles:
        assert needle in msg


# --------------------------------------------------------------------------- user folders


def test_data_columns_keys_are_schema_names(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[data.columns]\narm = "chemo"\n')
    with pytest.raises(InputError) as info:
        load_config(path)
    msg = str(info.value)
    assert str(path) in msg and "data.columns" in msg and "unknown schema column(s) 'arm'" in msg
    path.write_text('[data]\ntime_unit = "hours"\n')
    with pytest.raises(InputError, match="data.time_unit"):
        load_config(path)


def test_paths_and_prior_names_resolve_next_to_the_configuration(tmp_path, monkeypatch):
    """cohort: cwd, then the config's folder, then shipped; priors: the config's priors/ first."""
    from bayes_haic.paths import default_cohort_path, priors_dir

    monkeypatch.chdir(tmp_path)  # an unrelated current folder
    study = tmp_path / "study"
    (study / "priors").mkdir(parents=True)
    (study / "cohort.csv").write_text("id\n")
    (study / "priors" / "skeptical.toml").write_text('[survival]\nlog_hr = { dist = "Normal", mu = 0, sigma = 0.2 }\n')
    (study / "main.toml").write_text('[data]\ncohort = "cohort.csv"\n[priors]\nset = "skeptical"\n'
                                     'published_sets = ["reference", "skeptical"]\n')
    cfg = load_config(study / "main.toml")
    assert cfg.cohort_path() == study / "cohort.csv"
    assert cfg.priors.set == str(study / "priors" / "skeptical.toml")
    assert cfg.priors.published_sets == ["reference", str(study / "priors" / "skeptical.toml")]
    # the shipped default configuration still finds the shipped cohort and keeps names as names
    default = load_config()
    assert default.cohort_path().resolve() == default_cohort_path().resolve()
    assert default.priors.set == "reference"
    (study / "main.toml").write_text('[data]\ncohort = "data/synthetic/cohort.csv"\n')
    assert load_config(study / "main.toml").cohort_path().resolve() == default_cohort_path().resolve()
    (study / "main.toml").write_text('[data]\ncohort = "missing.csv"\n')
    assert load_config(study / "main.toml").cohort_path() == study / "missing.csv"
    assert priors_dir().is_dir()


def test_init_writes_a_folder_that_loads_and_is_never_overwritten(tmp_path, capsys):
    from bayes_haic.cli import main
    from bayes_haic.priors import load_prior_set

    folder = tmp_path / "new_study"
    assert main(["init", str(folder)]) == 0
    cfg = load_config(folder / "main.toml")
    assert cfg.data.cohort == "cohort.csv" and cfg.data.time_unit == "months"
    assert cfg.cohort_path() == folder / "cohort.csv"
    assert cfg.data.arms.treated == "treated"
    assert cfg.priors.set == str(folder / "priors" / "reference.toml")  # its own copy, first
    mine = load_prior_set(folder / "priors" / "my_prior.toml")
    assert mine.get("survival.log_hr").params["sigma"] == 0.5 and "response.log_or" in mine.inherited
    readme = (folder / "README.md").read_text()
    assert "What to edit" in readme and "survival.log_baseline_hazard.mu" in readme
    # a new study's folder: not the package's study's published numbers, nor its meta-analysis prior
    assert load_config().published.enabled and not cfg.published.enabled
    assert [Path(s).stem for s in cfg.priors.published_sets] == ["reference", "skeptical",
                                                                 "enthusiastic", "pessimistic"]
    assert "evidence_based" in load_config().priors.published_sets
    (folder / "main.toml").write_text("# mine\n")
    capsys.readouterr()
    assert main(["init", str(folder)]) == 2
    assert "would overwrite" in capsys.readouterr().err
    assert (folder / "main.toml").read_text() == "# mine\n"


def test_every_entry_point_defaults_to_the_same_sampler():
    """One definition of the sampler defaults: a configuration that leaves the [sampler] table
    out, library calls without settings, the validation study and its SBC part all sample with
    SamplerSettings' defaults (nutpie's C callbacks), and reading a configuration imports no
    modelling library (the settings live apart from the samplers)."""
    import subprocess
    import sys

    from bayes_haic import calibration, validation
    from bayes_haic.config import SamplerConfig
    from bayes_haic.sampler_settings import BACKENDS, DEFAULT_BACKEND, SamplerSettings

    assert SamplerConfig().settings() == SamplerSettings()
    assert SamplerSettings().backend == DEFAULT_BACKEND == "nutpie-numba" and DEFAULT_BACKEND in BACKENDS
    assert validation.StudyConfig(path="study.toml").sampler["backend"] == DEFAULT_BACKEND
    assert calibration.DEFAULTS["sampler"]["backend"] == DEFAULT_BACKEND
    probe = ("import sys; from bayes_haic.config import load_config; load_config(); "
             "print(sorted(m for m in ('pymc', 'pytensor', 'arviz', 'nutpie') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
