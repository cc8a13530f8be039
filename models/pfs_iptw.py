"""Progression-free survival (PFS): hazard ratio from a piecewise-exponential model.

IPTW (ATE); the propensity model's uncertainty is propagated by a Bayesian bootstrap.
Run: python models/pfs_iptw.py --out reports/pfs_iptw [--cohort FILE] [--prior NAME] [--seed N]
"""

from bayes_haic.cli import script

if __name__ == "__main__":
    script(endpoint="pfs", adjust="iptw")
