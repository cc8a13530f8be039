"""Progression-free survival (PFS): hazard ratio from a piecewise-exponential model.

On the 1:1 propensity-score-matched set (caliper 0.2 SD of the logit PS).
Run: python models/pfs_psm.py --out reports/pfs_psm [--cohort FILE] [--prior NAME] [--seed N]
"""

from bayes_haic.cli import script

if __name__ == "__main__":
    script(endpoint="pfs", adjust="psm")
