"""Objective response (ORR): marginal risk difference, ratio and odds ratio.

Direct regression adjustment for the baseline covariates (a conditional effect).
Run: python models/orr_covariates.py --out reports/orr_covariates [--cohort FILE] [--prior NAME] [--seed N]
"""

from bayes_haic.cli import script

if __name__ == "__main__":
    script(endpoint="orr", adjust="covariates")
