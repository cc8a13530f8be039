"""Objective response (ORR): marginal risk difference, ratio and odds ratio.

Adjusted for a spline of the logit propensity score (a conditional effect).
Run: python models/orr_ps_covariate.py --out reports/orr_ps_covariate [--cohort FILE] [--prior NAME] [--seed N]
"""

from bayes_haic.cli import script

if __name__ == "__main__":
    script(endpoint="orr", adjust="ps_covariate")
