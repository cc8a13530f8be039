"""Overall survival (OS): hazard ratio from a piecewise-exponential model.

On the 1:1 propensity-score-matched set (caliper 0.2 SD of the logit PS).
Run: python models/os_psm.py --out reports/os_psm [--cohort FILE] [--prior NAME] [--seed N]
"""

from bayes_haic.cli import script

if __name__ == "__main__":
    script(endpoint="os", adjust="psm")
