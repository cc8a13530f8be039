"""The matched set equals R's MatchIt on the same data (see tests/reference/matchit_README.md)."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayes_haic.matching import match_nearest
from bayes_haic.propensity import fit_ps

REF = Path(__file__).parent / "reference"
LALONDE_COVARIATES = ["age", "educ", "black", "hispan", "married", "nodegree", "re74", "re75"]
SIMULATED_COVARIATES = ["age", "male", "hbv", "ecog_1", "afp_400", "tumor_size_cm", "mvi"]
CONFIGS = pd.read_csv(REF / "matchit_configs.csv")
PAIRS = pd.read_csv(REF / "matchit_pairs.csv")


def load(dataset):
    frame = pd.read_csv(REF / f"matchit_{dataset}.csv")
    if dataset == "ties":
        return frame, frame["distance"].to_numpy()
    dist = pd.read_csv(REF / f"matchit_{dataset}_distance.csv")
    assert (dist["id"] == frame["id"]).all()
    return frame, dist["distance"].to_numpy()


def reference_pairs(config):
    ref = PAIRS[PAIRS["config"] == config]
    return set(zip(ref["treated_id"], ref["control_id"]))


def our_pairs(result):
    return set(zip(result.pairs["treated_id"], result.pairs["control_id"]))


def caliper_of(row):
    return None if pd.isna(row.caliper) else float(row.caliper)


@pytest.mark.parametrize("config", CONFIGS["config"].tolist())
def test_same_pairs_as_matchit_from_matchits_distance(config):
    row = CONFIGS.set_index("config").loc[config]
    frame, distance = load(row.dataset)
    res = match_nearest(distance, frame["treatment"], frame["id"], caliper=caliper_of(row),
                        order=row.m_order)
    assert res.n_pairs == row.n_pairs
    assert our_pairs(res) == reference_pairs(config)
    if caliper_of(row) is None:
        assert res.caliper_distance is None
    else:
        assert res.caliper_distance == pytest.approx(float(row.caliper_distance), rel=1e-12)


@pytest.mark.parametrize(
    "config", [c for c in CONFIGS["config"] if not c.startswith("ties")]
)
def test_same_pairs_as_matchit_from_our_own_ps_fit(config):
    row = CONFIGS.set_index("config").loc[config]
    frame, distance = load(row.dataset)
    covariates = LALONDE_COVARIATES if row.dataset == "lalonde" else SIMULATED_COVARIATES
    fit = fit_ps(frame, covariates)
    assert np.max(np.abs(fit.logit_ps - distance)) < 1e-6  # same model as MatchIt's glm
    res = match_nearest(fit.logit_ps, frame["treatment"], frame["id"], caliper=caliper_of(row),
                        order=row.m_order)
    assert our_pairs(res) == reference_pairs(config)


def test_references_exercise_the_tie_rules():
    # the ties data must contain exact ties, or the ties configurations would test nothing
    frame, d = load("ties")
    assert pd.Series(d).duplicated().sum() > 50
    assert frame.groupby("distance")["treatment"].nunique().max() == 2


R_SCRIPT = r"""
suppressPackageStartupMessages(library(MatchIt))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
out <- list()
for (ord in c("largest", "smallest")) for (cal in c(0.2, 0.5)) {
  m <- suppressWarnings(matchit(treatment ~ 1, data = d, method = "nearest", m.order = ord,
                                distance = d$distance * 2^26, caliper = cal, std.caliper = TRUE))
  mm <- m$match.matrix; ok <- !is.na(mm[, 1])
  out[[length(out) + 1]] <- data.frame(order = ord, caliper = cal,
    treated_id = d$id[as.integer(rownames(mm)[ok])], control_id = d$id[as.integer(mm[ok, 1])])
}
write.csv(do.call(rbind, out), args[2], row.names = FALSE)
"""


@pytest.mark.needs_r
@pytest.mark.skipif(shutil.which("Rscript") is None, reason="Rscript not available")
def test_same_pairs_as_live_matchit_on_fresh_random_data(tmp_path):
    # distances on a grid of 1/8 (exact in binary, many ties), so MatchIt's integer abs() is exact
    rng = np.random.default_rng(2024)
    n = 200
    t = rng.binomial(1, 0.45, n)
    d = np.round(8 * rng.normal(0.7 * t, 1.0)) / 8
    frame = pd.DataFrame({"id": [f"R{i:03d}" for i in range(n)], "treatment": t, "distance": d})
    frame.to_csv(tmp_path / "d.csv", index=False)
    (tmp_path / "m.R").write_text(R_SCRIPT)
    subprocess.run(["Rscript", str(tmp_path / "m.R"), str(tmp_path / "d.csv"), str(tmp_path / "p.csv")],
                   check=True, capture_output=True, timeout=120)
    ref = pd.read_csv(tmp_path / "p.csv")
    for (order, cal), group in ref.groupby(["order", "caliper"]):
        res = match_nearest(d, t, frame["id"], caliper=cal, order=order)
        assert our_pairs(res) == set(zip(group["treated_id"], group["control_id"])), (order, cal)
