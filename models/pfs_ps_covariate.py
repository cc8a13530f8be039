"""Progression-free survival (PFS): hazard ratio from a piecewise-exponential model.

Adjusted for a spline of the logit propensity score (a conditional effect).
Run: python models/pfs_ps_covariate.py --out reports/pfs_ps_covariate [--cohort FILE] [--prior NAME] [--seed N]
"""

from bayes_haic.cli import script

if __name__ == "__main__":
    script(endpoint="pfs", adjust="ps_covariate")
