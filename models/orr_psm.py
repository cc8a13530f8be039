"""Objective response (ORR): marginal risk difference, ratio and odds ratio.

On the 1:1 propensity-score-matched set (caliper 0.2 SD of the logit PS).
Run: python models/orr_psm.py --out reports/orr_psm [--cohort FILE] [--prior NAME] [--seed N]
"""

from bayes_haic.cli import script

if __name__ == "__main__":
    script(endpoint="orr", adjust="psm")
