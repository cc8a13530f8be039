"""Progression-free survival (PFS): hazard ratio from a piecewise-exponential model.

Direct regression adjustment for the baseline covariates (a conditional effect).
Run: python models/pfs_covariates.py --out reports/pfs_covariates [--cohort FILE] [--prior NAME] [--seed N]
"""

from bayes_haic.cli import script

if __name__ == "__main__":
    script(endpoint="pfs", adjust="covariates")
