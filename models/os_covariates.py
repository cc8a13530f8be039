"""Overall survival (OS): hazard ratio from a piecewise-exponential model.

Direct regression adjustment for the baseline covariates (a conditional effect).
Run: python models/os_covariates.py --out reports/os_covariates [--cohort FILE] [--prior NAME] [--seed N]
"""

from bayes_haic.cli import script

if __name__ == "__main__":
    script(endpoint="os", adjust="covariates")
