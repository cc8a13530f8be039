"""Progression-free survival (PFS): hazard ratio from a piecewise-exponential model.

No confounding adjustment (the crude contrast in the cohort).
Run: python models/pfs_none.py --out reports/pfs_none [--cohort FILE] [--prior NAME] [--seed N]
"""

from bayes_haic.cli import script

if __name__ == "__main__":
    script(endpoint="pfs", adjust="none")
