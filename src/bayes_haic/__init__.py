"""bayes-haic: Bayesian reanalysis of HAIC-LEN-P vs LEN-P in HCC with extrahepatic metastases.

Two data tiers, and every output says which one it is:

* ``published`` -- the real published evidence of the study (summary statistics and counts);
* ``synthetic`` -- patient-level models on a seeded synthetic cohort calibrated to the publication;
* ``user`` -- patient-level models on a user's own (real or reconstructed) cohort in the same schema.

Time is in months throughout.
"""

__version__ = "0.1.0"
