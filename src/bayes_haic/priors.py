"""Priors as data: a prior is the name of a PyMC distribution plus its parameters.

Prior sets live in TOML files under ``models/priors/`` (one file per named set). A file has a
``name``, a ``description`` and sections (``survival``, ``response``, ``published``) whose keys
are the model parameters, each an inline table naming the distribution::

    [survival]
    log_hr = { dist = "Normal", mu = 0.0, sigma = 2.5 }

A normal prior on a log ratio (log HR, log OR) may instead be stated in plain words, by its
median ratio and one tail probability (Spiegelhalter, Freedman & Parmar 1994)::

    # skeptical: centred on HR = 1, 5% probability of HR < 0.5
    log_hr = { dist = "Normal", median_ratio = 1.0, tail_ratio = 0.5, tail_prob = 0.05 }

which is ``Normal(mu = log(median_ratio), sigma = |log(tail_ratio / median_ratio)| / z)`` with
``z`` the upper ``tail_prob`` quantile of N(0, 1); the tail is the side of ``tail_ratio`` away
from the median. :data:`RATIO_FORM` names the keys.

A complete set defines every key in :data:`REQUIRED_KEYS`. A **partial** prior file defines
only the keys it changes; the others are taken, key by key, from its base set: the file's
``base`` (a name or path; default ``reference``), looked up first in the file's own folder,
then among the shipped sets. The loaded :class:`PriorSet` is always complete (the effective
set, recorded with every result); :attr:`PriorSet.inherited` lists the keys that came from
the base. ``survival.log_hr`` is the treatment
log-HR prior of the patient-level OS and PFS models; a set may give one endpoint its own prior
with ``survival.log_hr_os`` or ``survival.log_hr_pfs`` (:data:`OPTIONAL_KEYS`,
:meth:`PriorSet.log_hr_key`), e.g. an evidence-based set built from separate OS and PFS
estimates.

:func:`load_prior_set` validates every key and value and reports mistakes as
:class:`~bayes_haic.errors.InputError` naming the file, the key and the expected form.
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import special

from .errors import InputError
from .paths import priors_dir

# distribution -> (required parameters, parameters that must be > 0)
DISTRIBUTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "Normal": (("mu", "sigma"), ("sigma",)),
    "StudentT": (("nu", "mu", "sigma"), ("nu", "sigma")),
    "HalfNormal": (("sigma",), ("sigma",)),
    "HalfStudentT": (("nu", "sigma"), ("nu", "sigma")),
    "Exponential": (("lam",), ("lam",)),
    "Gamma": (("alpha", "beta"), ("alpha", "beta")),
    "Beta": (("alpha", "beta"), ("alpha", "beta")),
}

# the plain-words form of a normal prior on a log ratio (converted to mu, sigma on loading)
RATIO_FORM = ("median_ratio", "tail_ratio", "tail_prob")

# section -> keys every complete prior set defines (the parameters the models use)
REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "survival": (
        "log_hr",
        "log_baseline_hazard",
        "baseline_rw_sd",
        "ps_spline",
        "covariate",
        "log_hr_rw_sd",
        "pair_sd",
    ),
    "response": ("intercept", "log_or", "covariate", "arm_rate"),
    "published": ("log_hr_os", "log_hr_pfs", "arm_rate"),
}

# section -> keys a prior set may add: an endpoint's own treatment log-HR prior for the
# patient-level survival models, used for that endpoint instead of survival.log_hr
OPTIONAL_KEYS: dict[str, tuple[str, ...]] = {
    "survival": ("log_hr_os", "log_hr_pfs"),
}


@dataclass(frozen=True)
class Prior:
    """One prior: a PyMC distribution name and its parameters, e.g. ``Normal(mu: 0, sigma: 1)``."""

    dist: str
    params: dict = field(default_factory=dict)
    # the plain-words form it was given in, if any, e.g. "median ratio 1, P(ratio < 0.5) = 0.05"
    statement: str = field(default="", compare=False)

    def __str__(self) -> str:
        inner = ", ".join(f"{k}: {v:g}" for k, v in self.params.items())
        return f"{self.dist}({inner})"

    def to_pymc(self, name: str, **kwargs):
        """Create the PyMC random variable ``name`` (inside a model context)."""
        import pymc as pm

        return getattr(pm, self.dist)(name, **self.params, **kwargs)

    def to_pymc_data(self, name: str, **kwargs):
        """The PyMC random variable ``name`` with its parameters held in ``pm.Data`` containers
        ``<name>__<param>``, so a cached model graph takes other values of them (same family)
        without a rebuild: :meth:`data_values` gives the values to set."""
        import pymc as pm

        params = {k: pm.Data(f"{name}__{k}", float(v)) for k, v in self.params.items()}
        return getattr(pm, self.dist)(name, **params, **kwargs)

    def data_values(self, name: str) -> dict:
        """The ``pm.Data`` values of :meth:`to_pymc_data` for this prior."""
        return {f"{name}__{k}": float(v) for k, v in self.params.items()}

    def logpdf(self, x):
        """Log density at ``x`` (any array shape); ``-inf`` outside the support."""
        if self.dist == "Normal":  # closed form: no frozen scipy object (fast in loops)
            z = (np.asarray(x, float) - self.params["mu"]) / self.params["sigma"]
            return -0.5 * z * z - np.log(self.params["sigma"]) - 0.5 * np.log(2 * np.pi)
        return log_density(self.to_scipy(), x)

    def to_scipy(self):
        """The same distribution as a frozen ``scipy.stats`` object (for plots and closed forms)."""
        from scipy import stats  # imported on use: the design stage never needs it (~1 s)

        p = self.params
        if self.dist == "Normal":
            return stats.norm(p["mu"], p["sigma"])
        if self.dist == "StudentT":
            return stats.t(p["nu"], p["mu"], p["sigma"])
        if self.dist == "HalfNormal":
            return stats.halfnorm(0, p["sigma"])
        if self.dist == "HalfStudentT":
            return _HalfT(p["nu"], p["sigma"])
        if self.dist == "Exponential":
            return stats.expon(0, 1 / p["lam"])
        if self.dist == "Gamma":
            return stats.gamma(p["alpha"], scale=1 / p["beta"])
        if self.dist == "Beta":
            return stats.beta(p["alpha"], p["beta"])
        raise ValueError(self.dist)


def log_density(dist, x):
    """Log density at ``x`` of a frozen distribution of :meth:`Prior.to_scipy` (``-inf`` outside
    its support). Freeze once and call this in loops: freezing costs ~1.4 ms in scipy 1.17."""
    with np.errstate(divide="ignore"):
        if hasattr(dist, "logpdf"):
            return dist.logpdf(x)
        return np.log(dist.pdf(x))


class _HalfT:
    """|T| for a Student-t with ``nu`` degrees of freedom and scale ``sigma``."""

    def __init__(self, nu, sigma):
        from scipy import stats

        self._t = stats.t(nu, 0, sigma)

    def pdf(self, x):
        x = np.asarray(x, float)
        return np.where(x >= 0, 2 * self._t.pdf(x), 0.0)

    def cdf(self, x):
        x = np.asarray(x, float)
        return np.where(x >= 0, 2 * self._t.cdf(x) - 1, 0.0)

    def ppf(self, q):
        return self._t.ppf(0.5 + np.asarray(q) / 2)


@dataclass(frozen=True)
class PriorSet:
    """A named set of priors, as loaded from one TOML file (plus any overrides)."""

    name: str
    description: str
    source: str
    sections: dict  # section -> {key: Prior}
    overrides: tuple = ()
    base: str = ""  # file the keys this set does not define came from ("" for a complete file)
    inherited: tuple = ()  # "section.key" taken from ``base``

    def get(self, dotted: str) -> Prior:
        """The prior at ``"section.key"``, e.g. ``prior_set.get("survival.log_hr")``."""
        section, _, key = dotted.partition(".")
        try:
            return self.sections[section][key]
        except KeyError:
            raise InputError(
                f"{self.source}: prior set '{self.name}' has no prior '{dotted}'; "
                f"expected one of: {', '.join(self.keys())}."
            ) from None

    def families(self, prior_vars: dict) -> dict:
        """``{variable: (family, sorted parameter names)}`` of the priors of ``prior_vars``
        (model variable -> prior key): what a model graph built with ``pm.Data`` prior
        parameters depends on (not the parameters' values). Part of the structure a model
        builder declares (:func:`bayes_haic.sampling.register_structure`)."""
        return {var: (self.get(k).dist, sorted(self.get(k).params)) for var, k in prior_vars.items()}

    def log_hr_key(self, endpoint: str) -> str:
        """The prior key of the treatment log-HR in the patient-level ``endpoint`` model:
        ``survival.log_hr_<endpoint>`` if this set defines it, else ``survival.log_hr``."""
        own = f"log_hr_{endpoint}"
        return f"survival.{own}" if own in self.sections.get("survival", {}) else "survival.log_hr"

    def keys(self) -> list[str]:
        return [f"{s}.{k}" for s, d in self.sections.items() for k in d]

    def table(self) -> list[dict]:
        """Rows ``{"parameter", "prior"}`` for reports and provenance (the effective set; for
        a partial file also ``"from"``: this file or its base set)."""
        if not self.inherited:
            return [{"parameter": k, "prior": str(self.get(k))} for k in self.keys()]
        base = Path(self.base).name
        return [{"parameter": k, "prior": str(self.get(k)),
                 "from": base if k in self.inherited else Path(self.source).name}
                for k in self.keys()]

    def label(self) -> str:
        """Name recorded with every result, e.g. ``reference`` or ``reference+overrides``."""
        return self.name + ("+" + ";".join(self.overrides) if self.overrides else "")

    def with_prior(self, dotted: str, prior: Prior) -> PriorSet:
        """A copy with the prior at ``"section.key"`` replaced (recorded in the label, e.g.
        ``reference+survival.log_hr=Normal(mu: 0, sigma: 0.1)``); the key must exist."""
        self.get(dotted)  # raises for an unknown key
        if not isinstance(prior, Prior) or prior.dist not in DISTRIBUTIONS:
            raise InputError(f"with_prior({dotted!r}): expected a Prior of a known distribution.")
        section, _, key = dotted.partition(".")
        sections = {s: dict(d) for s, d in self.sections.items()}
        sections[section][key] = prior
        return PriorSet(self.name, self.description, self.source, sections,
                        self.overrides + (f"{dotted}={prior}",), self.base, self.inherited)


def _parse_prior(raw, where: str) -> Prior:
    if not isinstance(raw, dict) or "dist" not in raw:
        raise InputError(
            f"{where}: expected an inline table naming a distribution, e.g. "
            f'{{ dist = "Normal", mu = 0.0, sigma = 1.0 }}; found {raw!r}.'
        )
    dist = raw["dist"]
    if dist not in DISTRIBUTIONS:
        raise InputError(
            f"{where}: unknown distribution {dist!r}; expected one of {', '.join(DISTRIBUTIONS)}."
        )
    required, positive = DISTRIBUTIONS[dist]
    params = {k: v for k, v in raw.items() if k != "dist"}
    if dist == "Normal" and any(k in params for k in RATIO_FORM):
        return _parse_ratio_form(params, where)
    _check_names(params, required, f"{where}: {dist} takes parameters {', '.join(required)}")
    clean = {}
    for k in required:
        v = params[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
            raise InputError(f"{where}: parameter '{k}' must be a finite number; found {v!r}.")
        if k in positive and v <= 0:
            raise InputError(f"{where}: parameter '{k}' must be positive; found {v!r}.")
        clean[k] = float(v)
    return Prior(dist, clean)


def _check_names(params: dict, expected, message: str, unknown_hint: str = "") -> None:
    """Raise ``message`` plus the missing and unknown parameter names, if there are any."""
    missing = [k for k in expected if k not in params]
    unknown = [k for k in params if k not in expected]
    if missing or unknown:
        raise InputError(
            message
            + (f"; missing {', '.join(missing)}" if missing else "")
            + (f"; unknown {', '.join(unknown)}{unknown_hint}" if unknown else "")
            + "."
        )


def _parse_ratio_form(params: dict, where: str) -> Prior:
    """``Normal`` given as ``median_ratio``, ``tail_ratio``, ``tail_prob`` (see module docstring)."""
    form = ", ".join(RATIO_FORM)
    _check_names(params, RATIO_FORM, f"{where}: a Normal prior on a log ratio stated in words takes {form}",
                 unknown_hint=f" (give either mu, sigma or {form})")
    for k in RATIO_FORM:
        v = params[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
            raise InputError(f"{where}: parameter '{k}' must be a finite number; found {v!r}.")
    median, tail, prob = (float(params[k]) for k in RATIO_FORM)
    for k, v in (("median_ratio", median), ("tail_ratio", tail)):
        if v <= 0:
            raise InputError(f"{where}: parameter '{k}' is a ratio (HR, OR) and must be positive; "
                             f"found {v!r}.")
    if median == tail:
        raise InputError(f"{where}: 'tail_ratio' must differ from 'median_ratio' (both {median!r}).")
    if not 0 < prob < 0.5:
        raise InputError(
            f"{where}: parameter 'tail_prob' is the probability beyond 'tail_ratio', on the side "
            f"away from the median, so it must be strictly between 0 and 0.5; found {prob!r}."
        )
    side = "<" if tail < median else ">"
    mu = float(np.log(median))
    sigma = float(abs(np.log(tail) - mu) / -special.ndtri(prob))  # the normal's upper prob-quantile
    return Prior("Normal", {"mu": mu, "sigma": sigma},
                 statement=f"median ratio {median:g}, P(ratio {side} {tail:g}) = {prob:g}")


def shipped_prior_names() -> list[str]:
    """Names of the prior sets in ``models/priors/``: ``reference`` first, then the others in
    the order of the reanalysis family (skeptical, enthusiastic, pessimistic, evidence_based),
    then any further files alphabetically."""
    names = sorted(q.stem for q in priors_dir().glob("*.toml"))
    order = ["reference", "skeptical", "enthusiastic", "pessimistic", "evidence_based"]
    return [n for n in order if n in names] + [n for n in names if n not in order]


def resolve_prior_path(name_or_path: str | Path, folders=()) -> Path:
    """A prior set's file: a path to a ``.toml`` file (as given), else the name of a file in
    one of ``folders`` (first hit), else in the shipped ``models/priors/``."""
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.is_file():  # a folder that happens to bear a set's name is no file
        return p
    for folder in folders:
        candidate = Path(folder) / f"{name_or_path}.toml"
        if candidate.is_file():
            return candidate
    return priors_dir() / f"{name_or_path}.toml"


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc}).") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file; expected a TOML prior file.") from None


def _is_complete(raw: dict) -> bool:
    return all(isinstance(raw.get(s), dict) and all(k in raw[s] for k in keys)
               for s, keys in REQUIRED_KEYS.items())


def _with_base(raw: dict, path: Path, seen=()) -> tuple[dict, str, tuple, dict]:
    """Fill the keys a partial file leaves out from its base set (key by key). Returns the
    merged raw tables, the base file ("" if none was needed), the inherited keys and, for each
    inherited key, the file it came from."""
    base = raw.pop("base", None)
    if base is not None and not isinstance(base, str):
        raise InputError(f"{path}: 'base' must be the name or path of a prior set; found {base!r}.")
    if base is None and _is_complete(raw):
        return raw, "", (), {}
    if base is None:
        if path.stem == "reference":  # the reference set itself must be complete
            return raw, "", (), {}
        base = "reference"
    bp = Path(base)
    if bp.suffix == ".toml" or len(bp.parts) > 1:  # a path: relative to this file's folder
        base_path = bp if bp.is_absolute() else path.parent / bp
    else:  # a name: this file's folder, then the shipped sets
        own = path.parent / f"{base}.toml"
        base_path = own if own.is_file() and own.resolve() != path.resolve() \
            else priors_dir() / f"{base}.toml"
    if base_path.resolve() == path.resolve() or base_path.resolve() in seen:
        raise InputError(f"{path}: 'base' = {base!r} refers back to this file; name another "
                         "prior set (e.g. base = \"reference\").")
    if not base_path.is_file():
        raise InputError(f"{path}: base prior set {base!r} not found ({base_path}); give the name "
                         f"of a shipped set ({', '.join(shipped_prior_names())}) or a path.")
    parent = copy.deepcopy(_read_toml(base_path))
    parent, _, _, origin = _with_base(parent, base_path, seen + (path.resolve(),))
    merged = {k: v for k, v in raw.items() if k in ("name", "description")}
    inherited, origins = [], {}
    for section in list(REQUIRED_KEYS) + [s for s in raw if s not in REQUIRED_KEYS]:
        own = raw.get(section)
        theirs = parent.get(section) if isinstance(parent.get(section), dict) else {}
        if section not in raw and not theirs:
            continue
        if own is not None and not isinstance(own, dict):
            merged[section] = own  # reported when the sections are checked
            continue
        table = dict(own or {})
        for key, value in theirs.items():
            if key not in table:
                table[key] = value
                inherited.append(f"{section}.{key}")
                origins[f"{section}.{key}"] = origin.get(f"{section}.{key}", base_path)
        merged[section] = table
    return merged, str(base_path), tuple(inherited), origins


def load_prior_set(name_or_path: str | Path = "reference", overrides=(), folders=()) -> PriorSet:
    """Load and validate a prior set; apply ``overrides`` like ``"survival.log_hr.sigma=1.0"``.

    ``name_or_path`` is a path to a TOML file, or a name looked up in ``folders`` and then among
    the shipped sets. A partial file is completed from its base set (module docstring)."""
    path = resolve_prior_path(name_or_path, folders)
    if not path.is_file():
        available = sorted(q.stem for q in priors_dir().glob("*.toml"))
        raise InputError(
            f"{path}: prior set not found; give a path to a .toml file or one of the shipped "
            f"names: {', '.join(available) or '(none found)'}."
        )
    raw = copy.deepcopy(_read_toml(path))
    raw, base, inherited, origins = _with_base(raw, path)
    for item in overrides:
        _apply_override(raw, item, path)
    name = raw.pop("name", path.stem)
    description = raw.pop("description", "")
    if not isinstance(name, str) or not isinstance(description, str):
        raise InputError(f"{path}: 'name' and 'description' must be strings.")
    sections = {}
    for section, entries in raw.items():
        if section not in REQUIRED_KEYS:
            raise InputError(
                f"{path}: unknown section [{section}]; expected {', '.join(REQUIRED_KEYS)}."
            )
        if not isinstance(entries, dict):
            raise InputError(f"{path}: [{section}] must be a table of priors.")
        allowed = REQUIRED_KEYS[section] + OPTIONAL_KEYS.get(section, ())
        unknown = [k for k in entries if k not in allowed]
        if unknown:
            raise InputError(
                f"{path}: [{section}] has unknown key(s) {', '.join(unknown)}; expected "
                f"{', '.join(REQUIRED_KEYS[section])}"
                + (f" (optional: {', '.join(OPTIONAL_KEYS[section])})" if section in OPTIONAL_KEYS else "")
                + "."
            )
        sections[section] = {
            k: _parse_prior(v, f"{origins.get(f'{section}.{k}', path)}: key '{section}.{k}'"
                            + _overridden(overrides, section, k))
            for k, v in entries.items()
        }
    for section, keys in REQUIRED_KEYS.items():
        missing = [k for k in keys if k not in sections.get(section, {})]
        if missing:
            raise InputError(
                f"{path}: [{section}] is missing {', '.join(section + '.' + k for k in missing)}; "
                "every prior set defines every prior the models use (a partial file takes the "
                "others from its base set, but the reference set itself must be complete)."
            )
    return PriorSet(name, description, str(path), sections, tuple(overrides), base, inherited)


def _overridden(overrides, section: str, key: str) -> str:
    """`` (after --set a=b; ...)`` when ``section.key`` was changed on the command line."""
    hits = [o for o in overrides if o.partition("=")[0].strip().startswith(f"{section}.{key}.")]
    return f" (after --set {'; '.join(hits)})" if hits else ""


def as_prior_set(prior_set=None, overrides=()) -> PriorSet:
    """A :class:`PriorSet` from a PriorSet (returned as it is), a name or a path (``None``: the
    reference set), with ``overrides`` applied to a loaded one."""
    if isinstance(prior_set, PriorSet):
        return prior_set
    return load_prior_set(prior_set or "reference", overrides)


def _apply_override(raw: dict, item: str, path: Path) -> None:
    key, sep, value = item.partition("=")
    parts = key.strip().split(".")
    if not sep or len(parts) != 3:
        raise InputError(
            f"--set {item!r}: expected section.key.parameter=value, e.g. survival.log_hr.sigma=1.0."
        )
    section, name, param = parts
    table = raw.get(section)
    entry = table.get(name) if isinstance(table, dict) else None
    if entry is None:
        raise InputError(f"--set {item!r}: {path} has no prior '{section}.{name}'.")
    if not isinstance(entry, dict):
        return  # not an inline table: reported, naming the file and key, when it is parsed
    value = value.strip()
    if param == "dist":
        entry["dist"] = value
        return
    try:
        entry[param] = float(value)
    except ValueError:
        raise InputError(f"--set {item!r}: '{value}' is not a number.") from None
