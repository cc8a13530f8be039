"""Self-contained HTML pages: sections of paragraphs, tables and embedded figures.

The report is built from plain value objects (:class:`Section`, :class:`Table`, :class:`Figure`,
:class:`Text`) and rendered with a Jinja2 template with autoescaping on, so every string that
came from data or configuration is escaped. Figures are embedded as base64 PNG, so the page
opens from disk with no server and no network. Files are written atomically.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd

from ..labels import format_probability  # noqa: F401  (re-exported)
from ..reconstruct import RECONSTRUCTED_BANNER
from ..results import atomic_write_text

TIER_LABELS = {
    "published": "Published evidence (the study's real summary statistics)",
    "synthetic": "SYNTHETIC cohort (simulated patients, not the study's data)",
    "user": "User-supplied cohort",
    "reconstructed": "RECONSTRUCTED from a published Kaplan-Meier figure (pseudo-patients, not "
                     "the study's patient data)",
}


MAIN_PUBLISHED_NOTE = ("Only the section 'Published evidence' reanalyses the study's real "
                       "numbers.")


def synthetic_banner(published_note: str = MAIN_PUBLISHED_NOTE, what: str = "sections") -> str:
    """The banner of every page that shows results of the synthetic cohort; ``what`` names the
    parts of the page that are synthetic, ``published_note`` the parts that are not."""
    return (f"SYNTHETIC DATA: the patient-level {what} of this report analyse a simulated cohort "
            f"calibrated to the published abstract, not the study's patients. {published_note}")


SYNTHETIC_BANNER = synthetic_banner()


def tier_banner(cohort, published_note: str = MAIN_PUBLISHED_NOTE, what: str = "sections") -> str | None:
    """The banner of a page showing patient-level results of ``cohort`` (None for tier user)."""
    return {"synthetic": synthetic_banner(published_note, what),
            "reconstructed": RECONSTRUCTED_BANNER}.get(cohort.data_tier)


@dataclass
class Text:
    """A paragraph (plain text; escaped). ``kind`` is ``"p"``, ``"note"`` or ``"warning"``."""

    text: str
    kind: str = "p"


@dataclass
class Table:
    """A table from a DataFrame; numbers are formatted with ``digits`` significant digits."""

    frame: pd.DataFrame
    caption: str = ""
    digits: int = 3
    index: bool = False

    def header(self) -> list[str]:
        cols = [str(c) for c in self.frame.columns]
        return ([str(self.frame.index.name or "")] + cols) if self.index else cols

    def rows(self) -> list[list[str]]:
        out = []
        for idx, row in self.frame.iterrows():
            cells = [format_value(v, self.digits) for v in row.tolist()]
            out.append(([str(idx)] + cells) if self.index else cells)
        return out


def savefig_bbox(fig) -> dict:
    """``savefig`` keywords for a tight crop: a figure with a layout engine (our figures use
    constrained layout) is already laid out to its edges, and ``bbox_inches="tight"`` would
    draw it a second time just to measure it; others are cropped to their drawn extent."""
    return {} if fig.get_layout_engine() is not None else {"bbox_inches": "tight"}


@dataclass
class Figure:
    """A matplotlib figure, embedded as a base64 PNG."""

    png_base64: str
    caption: str = ""
    alt: str = ""

    @classmethod
    def from_matplotlib(cls, fig, caption: str = "", alt: str = "", dpi: int = 160) -> "Figure":
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, **savefig_bbox(fig))
        if hasattr(fig, "number"):  # made by pyplot: free it from pyplot's registry
            import matplotlib.pyplot as plt

            plt.close(fig)
        return cls(base64.b64encode(buf.getvalue()).decode("ascii"), caption, alt or caption)


@dataclass
class Section:
    """A report section; ``tier`` labels which data tier its numbers come from (or None)."""

    id: str
    title: str
    blocks: list = field(default_factory=list)
    tier: str | None = None
    nav: str = ""  # short label for the navigation bar (default: the title)

    @property
    def nav_label(self) -> str:
        return self.nav or self.title

    def add(self, *blocks) -> "Section":
        self.blocks.extend(blocks)
        return self


def format_value(v, digits: int = 3) -> str:
    """Numbers to short strings (integers as integers, NaN as an en dash); others via str()."""
    if v is None:
        return "–"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        if np.isnan(v):
            return "–"
        if np.isinf(v):
            return "not reached" if v > 0 else "-inf"
        if float(v).is_integer() and abs(v) < 1e6:
            return str(int(v))
        return f"{v:.{digits}g}"
    return str(v)


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("bayes_haic.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _page(title, sections, nav, banner, alerts, footer) -> str:
    tmpl = _environment().get_template("report.html")
    css = (Path(__file__).parent / "templates" / "report.css").read_text()
    return tmpl.render(title=title, sections=sections, nav=nav, banner=banner,
                       alerts=alerts or [], footer=footer, css=css, tier_labels=TIER_LABELS)


def render(title: str, sections: list[Section], *, banner: str | None = None,
           alerts: list[str] | None = None, footer: str = "") -> str:
    """Render all sections as one page (navigation by in-page anchors); an HTML string."""
    nav = [{"href": f"#{s.id}", "label": s.nav_label, "current": False} for s in sections]
    return _page(title, sections, nav, banner, alerts, footer)


def page_name(section: Section, index: int) -> str:
    """File name of a section's page: the first section is ``index.html``."""
    return "index.html" if index == 0 else f"{section.id}.html"


def render_site(title: str, sections: list[Section], *, banner: str | None = None,
                alerts: list[str] | None = None, footer: str = "") -> dict[str, str]:
    """Render one page per section, linked by a shared navigation bar; returns
    ``{file name: html}`` with the first section as ``index.html``. Banner and alerts are on
    every page."""
    names = [page_name(s, i) for i, s in enumerate(sections)]
    pages = {}
    for i, sec in enumerate(sections):
        nav = [{"href": n, "label": s.nav_label, "current": n == names[i]}
               for n, s in zip(names, sections)]
        pages[names[i]] = _page(f"{title}: {sec.nav_label}" if i else title, [sec], nav,
                                banner, alerts, footer)
    return pages


def write_report(path: str | Path, html: str) -> Path:
    """Write the page atomically (temporary file, then rename)."""
    atomic_write_text(path, html)
    return Path(path)


def write_site(folder: str | Path, pages: dict[str, str]) -> list[Path]:
    """Write every page of :func:`render_site` atomically into ``folder``."""
    folder = Path(folder)
    return [write_report(folder / name, html) for name, html in pages.items()]
