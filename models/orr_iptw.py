"""Objective response (ORR): marginal risk difference, ratio and odds ratio.

IPTW (ATE); the propensity model's uncertainty is propagated by a Bayesian bootstrap.
Run: python models/orr_iptw.py --out reports/orr_iptw [--cohort FILE] [--prior NAME] [--seed N]
"""

from bayes_haic.cli import script

if __name__ == "__main__":
    script(endpoint="orr", adjust="iptw")
