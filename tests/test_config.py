"""Analysis configuration files: the shipped one loads; mistakes name file, key and expectation."""

import pytest

from bayes_haic.config import load_config
from bayes_haic.errors import InputError


def test_shipped_main_config_loads():
    cfg = load_config()
    assert cfg.cohort_path().is_file()
    assert set(cfg.survival.endpoints) == {"os", "pfs"}
    assert cfg.sampler.settings().seed == cfg.sampler.seed


@pytest.mark.parametrize(
    "text, needles",
    [
        ("[survival]\nn_intervals = 0\n", ["survival.n_intervals", "greater than or equal to 1"]),
        ("[survival]\nstrategy = ['none']\n", ["survival.strategy", "Extra inputs"]),
        ("[sampler]\nbackend = 'stan'\n", ["sampler.backend", "'pymc' or 'nutpie'", "'stan'"]),
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
