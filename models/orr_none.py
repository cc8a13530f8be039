"""Objective response (ORR): marginal risk difference, ratio and odds ratio.

No confounding adjustment (the crude contrast in the cohort).
Run: python models/orr_none.py --out reports/orr_none [--cohort FILE] [--prior NAME] [--seed N]
"""

from bayes_haic.cli import script

if __name__ == "__main__":
    script(endpoint="orr", adjust="none")
