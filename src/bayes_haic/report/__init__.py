"""Presentation: figures, report sections and HTML pages. It reads results and draws them; it
computes no statistic, and no statistics module imports it.

=====================  =========================================================================
module                 what it holds
=====================  =========================================================================
``pages``              the page model (:class:`Section`, :class:`Table`, :class:`Figure`,
                       :class:`Text`), Jinja2 rendering (``templates/``), atomic writing
``axes``               shared axis styling: log-scale ratio ticks, the ORR risk-difference axes
``figures``            patient-level figures: Kaplan-Meier vs model, forest plot, HR(t),
                       posterior predictive checks, love plot and PS overlap, ORR difference,
                       reconstruction overlay
``main``               the sections of the main job's report and of ``fit`` / ``balance``
``checks``             the "Model checks" section
``published``          figures and sections of the published-evidence reanalyses
``sensitivity``        figures and section of the prior-sensitivity study
``validation``         the validation study's page
``reconstruct``        the accuracy page of a reconstruction
=====================  =========================================================================

The page model is re-exported here: ``from bayes_haic import report as rp; rp.Section(...)``.
"""

from .pages import (
    SYNTHETIC_BANNER,
    TIER_LABELS,
    Figure,
    Section,
    Table,
    Text,
    format_probability,
    format_value,
    page_name,
    render,
    render_site,
    savefig_bbox,
    synthetic_banner,
    tier_banner,
    write_report,
    write_site,
)

__all__ = ["SYNTHETIC_BANNER", "TIER_LABELS", "Figure", "Section", "Table", "Text",
           "format_probability", "format_value", "page_name", "render", "render_site",
           "savefig_bbox", "synthetic_banner", "tier_banner", "write_report", "write_site"]
