"""The accuracy page of a reconstruction from a published Kaplan-Meier figure
(:mod:`bayes_haic.reconstruct`)."""

from __future__ import annotations

import pandas as pd

from ..reconstruct import METHOD, PERCENT_THRESHOLD, RECONSTRUCTED_BANNER, Reconstruction
from ..schema import endpoint_label
from . import figures
from . import pages as rp


def accuracy_section(rec: Reconstruction, table: pd.DataFrame, *, figure: str = "") -> rp.Section:
    """A report section (tier ``reconstructed``) on one figure's reconstruction accuracy."""
    name = endpoint_label(rec.endpoint)
    sec = rp.Section(f"accuracy-{rec.endpoint}", f"{name}: reconstruction accuracy",
                     tier="reconstructed", nav=f"{name} accuracy")
    sec.add(rp.Text(
        f"Pseudo-patients reconstructed from the digitised {name} figure"
        + (f" ({figure})" if figure else "") + f" by {METHOD}. Points: {rec.points_path} "
        f"(survival read as a {rec.scale}: percent when the largest value exceeds "
        f"{PERCENT_THRESHOLD:g}); numbers at risk: {rec.at_risk_path}; times converted from "
        f"{rec.time_unit} to months. These are not the study's patient data.", "warning"))
    for arm, c in rec.curves.items():
        sec.add(rp.Text(f"{arm} (treatment = {rec.codes[arm]}): {c.n_raw} digitised points; "
                        + ("; ".join(c.changes) if c.changes else "no cleaning needed") + ".",
                        "note"))
    summ = table[table["quantity"] != "n_risk"].drop(columns=["endpoint", "time"])
    sec.add(rp.Table(summ, "Digitised curve vs Kaplan-Meier estimate of the reconstructed data "
                     "(absolute differences in survival probability at the digitised times; "
                     "medians in months)", digits=3))
    risk = table[table["quantity"] == "n_risk"].drop(columns=["endpoint", "quantity"])
    sec.add(rp.Table(risk, "Numbers at risk: published vs reproduced by the reconstruction "
                     "(time in months)"))
    sec.add(rp.Figure.from_matplotlib(
        figures.overlay_figure(rec), f"{name}: digitised points (cleaned) and the Kaplan-Meier "
        "estimate of the reconstructed pseudo-patients, per arm."))
    return sec


def accuracy_page(recs: list[Reconstruction], tables: list[pd.DataFrame], name: str, *,
                  figure: str = "") -> str:
    """The HTML of ``<stem>.accuracy.html``: one accuracy section per reconstructed figure."""
    sections = [accuracy_section(r, t, figure=figure) for r, t in zip(recs, tables)]
    return rp.render(f"Reconstructed data: accuracy of {name}", sections,
                     banner=RECONSTRUCTED_BANNER, footer=f"bayes-haic reconstruct; {METHOD}.")
