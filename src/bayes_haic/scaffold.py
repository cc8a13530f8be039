"""``bayes-haic init DIR``: a ready-to-edit analysis folder for a new study.

The folder holds ``main.toml`` (the shipped configuration, with the ``[data]`` table set up for
the user's own cohort file: its path, column mapping, time unit and arm names), ``priors/``
(copies of the shipped prior sets, which this configuration finds first, plus an example of a
partial prior file) and a ``README.md`` saying what to edit. Nothing is overwritten.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import InputError
from .paths import models_dir, priors_dir
from .results import atomic_write_text

DATA_TABLE = '''[data]
# Your cohort: one row per patient (a path relative to this file, or absolute).
cohort = "cohort.csv"
# covariates = ["age", "stage", "ecog"]   # default: every column that is not mapped below
time_unit = "months"    # unit of the time columns in your file: days, weeks, months or years

# Your file's own column names (schema name = "your column"); delete the lines you don't need.
# A file without a response column is a survival-only cohort (the ORR models are skipped);
# one without PFS columns (or without OS columns) is analysed for the other endpoint only.
[data.columns]
# id = "patient_id"
# treatment = "arm"        # 1 = the treatment of interest, 0 = the comparator
# os_time = "os_months"
# os_event = "death"
# pfs_time = "pfs_months"
# pfs_event = "progression"
# response = "objective_response"

# How the arms are named in the reports (treatment = 1, treatment = 0).
[data.arms]
treated = "treated"
control = "control"

# If pfs_time/pfs_event hold another endpoint (relapse-, disease- or event-free survival) or
# response is not objective response, name them for the reports (results.csv keeps the keys):
# [data.endpoint_names]
# pfs = { short = "RFS", long = "relapse-free survival" }
# orr = { short = "CR", long = "complete response" }
'''

PARTIAL_EXAMPLE = '''# An example of a partial prior file: it defines only the priors it changes; every other prior
# comes from its base set ("reference", looked up in this folder first, then the shipped sets).
# Use it with --prior my_prior (or set = "my_prior" in main.toml).
name = "my_prior"
description = """Reference priors, except a moderately skeptical treatment effect on survival:
log HR ~ Normal(0, 0.5), i.e. 95% prior probability that the HR lies between 0.38 and 2.7."""
base = "reference"

[survival]
log_hr = { dist = "Normal", mu = 0.0, sigma = 0.5 }
'''

README = '''# {name}: a bayes-haic analysis folder

Made by `bayes-haic init`. Edit, then run from anywhere:

```bash
bayes-haic check-cohort {folder}/cohort.csv --config {folder}/main.toml   # validate, per-arm summary
bayes-haic run --config {folder}/main.toml --out {folder}/reports
bayes-haic fit --config {folder}/main.toml --cohort {folder}/cohort.csv --endpoint os --adjust iptw --out {folder}/os_iptw
```

What to edit:

1. **`cohort.csv`**: put your cohort here (or point `[data] cohort` in `main.toml` at it). One
   row per patient; 0/1 treatment; times and 0/1 event indicators for OS and PFS (a cohort
   without progression data leaves `pfs_time`/`pfs_event` out: its analyses are of OS only,
   and the reports say so); an optional 0/1 `response`; numeric baseline covariates.
2. **`main.toml`, `[data]`**: your file's column names under `[data.columns]`, the unit of its
   times (`time_unit`; converted to months), the arm names for the reports (`[data.arms]`), the
   names of your endpoints if they are not PFS and ORR (`[data.endpoint_names]`, e.g. RFS, CR),
   the covariates of the propensity model. The rest (adjustment strategies, cut points, sampler)
   has working defaults; every key is validated.
3. **`priors/`**: the prior sets this folder's configuration uses; a name given with `--prior`
   or in `[priors]` is looked up here first, then among the shipped sets. A prior file may
   define only the priors it changes (`priors/my_prior.toml`); the others come from the
   reference set. The effective set is recorded with every result. The baseline-hazard prior
   (`survival.log_baseline_hazard`, the log hazard per month) is centred on the package's
   study's disease: Normal(-2.5, 2), 0.08 per month (median survival ~8.5 months). Centre it
   on yours (e.g. `mu = -5.0` for ~0.007 per month) in a partial prior file or with
   `--set survival.log_baseline_hazard.mu=...`: the sensitivity page's baseline-prior check
   says whether, and why, it informs your hazard ratios.

This folder's main job analyses your cohort only: `[published] enabled = false` leaves out the
package's own study (HAIC-LEN-P vs LEN-P), whose published numbers the shipped configuration
reanalyses, and the prior family leaves out its evidence-based set. For your study's published
results use `bayes-haic reanalyse --measure hr --estimate HR --ci LOWER UPPER --out DIR` or
`--published your_evidence.csv`.
'''


def write_analysis_folder(folder, *, cohort: str | None = None, force: bool = False) -> list[Path]:
    """Write ``main.toml``, ``priors/*.toml`` and ``README.md`` into ``folder``; returns the
    paths written. Existing files are an error unless ``force``."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: exists and is not a folder; give a new or empty folder.")
    shipped_main = (models_dir() / "main.toml").read_text()
    end = shipped_main.index("[design]")
    data = DATA_TABLE if cohort is None else DATA_TABLE.replace('"cohort.csv"', _toml_str(cohort))
    header = ("# The analysis configuration of this folder (made by `bayes-haic init`).\n"
              "# bayes-haic run --config main.toml. Every key is validated. Times are in months.\n\n")
    main_text = header + data + "\n" + shipped_main[end:]
    main_text = main_text.replace("# a file in models/priors/ or a path to one",
                                  "# a file in priors/ next to this file, a shipped set, or a path")
    main_text = _replace_once(main_text, STUDY_PRIOR_FAMILY, OWN_PRIOR_FAMILY)
    main_text = _replace_once(main_text, STUDY_PUBLISHED, OWN_PUBLISHED)
    files = {folder / "main.toml": main_text,
             folder / "README.md": README.format(name=folder.name or "analysis", folder=folder)}
    for p in sorted(priors_dir().glob("*.toml")):
        files[folder / "priors" / p.name] = p.read_text()
    files[folder / "priors" / "my_prior.toml"] = PARTIAL_EXAMPLE
    existing = [str(p) for p in files if p.exists()]
    if existing and not force:
        raise InputError(f"{folder}: would overwrite {', '.join(existing)}; choose a new folder "
                         "or pass --force.")
    for path, text in files.items():
        atomic_write_text(path, text)
    return list(files)


# The shipped configuration's lines that belong to the package's own study, and what a new
# study's folder gets instead: the study's published numbers are not reanalysed, and the
# evidence-based prior (a meta-analysis of HAIC-LEN-P vs LEN-P cohorts) is not in the family.
STUDY_PRIOR_FAMILY = ('published_sets = ["reference", "skeptical", "enthusiastic", "pessimistic", '
                      '"evidence_based"]\n')
OWN_PRIOR_FAMILY = ('published_sets = ["reference", "skeptical", "enthusiastic", "pessimistic"]\n'
                    "# (the shipped evidence_based set pools HAIC-LEN-P vs LEN-P cohorts: write "
                    "your own from your field's evidence)\n")
STUDY_PUBLISHED = "[published]\nenabled = true "
OWN_PUBLISHED = "[published]\nenabled = false"


def _replace_once(text: str, old: str, new: str) -> str:
    if text.count(old) != 1:  # the shipped main.toml changed: keep this file in step with it
        raise RuntimeError(f"bayes-haic init: expected one {old!r} in the shipped main.toml")
    return text.replace(old, new)


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a TOML basic string: JSON's escapes are TOML's
