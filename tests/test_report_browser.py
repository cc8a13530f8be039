"""The HTML report as a person sees it, in a real headless browser (Debian's Chromium, driven
by Playwright).

By default a fixture report is rendered with :func:`bayes_haic.report.render` into a temporary
folder: several sections, tables, two matplotlib figures, and hostile strings standing in for
titles, cells and captions that come from data or configuration. When ``BAYES_HAIC_REPORT`` names
an HTML file (CI: ``reports/index.html`` after the main job) that file is checked instead.

The page is opened once by file:// URL (no server) and everything a reader would meet is
recorded: console errors, uncaught page errors, dialogs, every request, the images, each nav link
clicked in turn (and every linked .html page of the report opened). The tests below then assert
on that record, one concern each. A full-page screenshot of the first screen, as the page opens,
is saved as ``summary.png`` beside the checked report.

Skipped (not failed) when playwright is not importable or /usr/bin/chromium is missing.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse
from urllib.request import url2pathname

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}
TIMEOUT_MS = 10_000  # any single browser action; a hang fails fast instead of stalling CI
MAX_PAGES = 50  # linked .html pages of one report that are opened, at most
ENV_REPORT = "BAYES_HAIC_REPORT"
ALLOWED_SCHEMES = ("file:", "data:")

# Hostile strings as they could arrive from data or configuration. They must be shown as text.
XSS_SCRIPT = "<script>alert(1)</script>"
XSS_IMG = '"><img src=x onerror=alert(1)>'
XSS_TITLE = "</title><script>alert(2)</script>"
XSS_ATTR = "' onmouseover='alert(3)' x='"
XSS_FOOTER = "</footer><script>alert(4)</script>"
DOUBLE_ESCAPE = "R&D &amp; co"  # must show literally, "&amp;" included
TEMPLATE_LIKE = "{{ 7*7 }} {% raw %}"

# Active content that the report template never emits; any of it in a page came from data.
INJECTED_JS = r"""() => {
  const out = [];
  for (const el of document.querySelectorAll(
      'script, iframe, frame, object, embed, base, meta[http-equiv]'))
    out.push('<' + el.tagName.toLowerCase() + '> ' + el.outerHTML.slice(0, 120));
  for (const el of document.querySelectorAll('img')) {
    const src = el.getAttribute('src') || '';
    if (!src.startsWith('data:image/'))
      out.push('<img> with src="' + src.slice(0, 80) + '" (expected an embedded data:image)');
  }
  for (const el of document.querySelectorAll('*'))
    for (const a of el.attributes)
      if (a.name.toLowerCase().startsWith('on'))
        out.push('<' + el.tagName.toLowerCase() + '> has event handler ' + a.name + '="' + a.value + '"');
  for (const el of document.querySelectorAll('[href], [src], [action], [formaction]'))
    for (const n of ['href', 'src', 'action', 'formaction']) {
      const v = (el.getAttribute(n) || '').trim().toLowerCase();
      if (v.startsWith('javascript:'))
        out.push('<' + el.tagName.toLowerCase() + '> ' + n + '="' + v.slice(0, 80) + '"');
    }
  return out;
}"""

BROKEN_IMAGES_JS = r"""() => Array.from(document.images)
  .map((img, i) => ({i, ok: img.complete && img.naturalWidth > 0,
                     alt: img.getAttribute('alt') || '', src: (img.getAttribute('src') || '').slice(0, 60)}))
  .filter(r => !r.ok)
  .map(r => 'image #' + r.i + ' (alt="' + r.alt + '", src="' + r.src + '...") did not load')"""

DUPLICATE_IDS_JS = r"""() => {
  const seen = new Map();
  for (const el of document.querySelectorAll('[id]')) seen.set(el.id, (seen.get(el.id) || 0) + 1);
  return Array.from(seen).filter(([, n]) => n > 1).map(([id, n]) => id + ' (' + n + 'x)');
}"""

# Horizontal overflow of the page itself (a wide table should scroll inside .table-wrap).
OVERFLOW_JS = r"""() => {
  const d = document.scrollingElement || document.documentElement;
  return d.scrollWidth > d.clientWidth + 1 ? [d.scrollWidth, d.clientWidth] : null;
}"""

# Wait until the page has stopped scrolling (allows for smooth scrolling; at most ~3 s of frames).
SCROLL_SETTLED_JS = r"""() => new Promise(done => {
  let last = null, same = 0, frames = 0;
  const tick = () => {
    const y = window.scrollY;
    same = (y === last) ? same + 1 : 0;
    last = y;
    if (same >= 3 || ++frames > 180) done(y); else requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
})"""

# Where the reader's eye lands after following an in-page link. ``in_view``: some of the target is
# in the window and not covered (by the sticky header or anything else). ``heading``: its heading
# (first h1-h6, else the element itself) is in the window and not covered.
TARGET_SEEN_JS = r"""(id) => {
  const t = document.getElementById(id);
  if (!t) return {in_view: false, heading: false, why: 'no element with this id'};
  const vh = window.innerHeight, vw = window.innerWidth;
  const owns = (x, y) => { const e = document.elementFromPoint(x, y); return !!e && (e === t || t.contains(e)); };
  const coverer = (x, y) => { const e = document.elementFromPoint(x, y);
    return e ? '<' + e.tagName.toLowerCase() + (e.className ? '.' + e.className : '') + '>' : 'nothing'; };
  const r = t.getBoundingClientRect();
  if (r.width === 0 || r.height === 0) return {in_view: false, heading: false, why: 'target has no size (hidden?)'};
  const x = Math.min(Math.max(r.left + 4, 0), vw - 1);
  let in_view = false;
  for (let y = Math.max(r.top, 0) + 2; y < Math.min(r.bottom, vh); y += 16) if (owns(x, y)) { in_view = true; break; }
  const h = t.querySelector('h1, h2, h3, h4, h5, h6') || t;
  const hr = h.getBoundingClientRect();
  const hx = Math.min(Math.max(hr.left + 4, 0), vw - 1), hy = hr.top + Math.min(hr.height / 2, 12);
  let why = '';
  if (hy < 0 || hy >= vh) why = 'heading at y=' + Math.round(hr.top) + 'px, window height ' + vh + 'px';
  else if (!owns(hx, hy)) why = 'heading at y=' + Math.round(hr.top) + 'px is covered by ' + coverer(hx, hy);
  return {in_view, heading: !why, why};
}"""


# ---------------------------------------------------------------------------------------------
# The report under test
# ---------------------------------------------------------------------------------------------

def _figure(kind: str):
    import numpy as np
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(6.4, 3.6))
    ax = fig.add_subplot()
    t = np.linspace(0, 36, 200)
    if kind == "km":
        ax.step(t, np.exp(-t / 20), where="post", label="HAIC + lenvatinib + PD-1")
        ax.step(t, np.exp(-t / 12), where="post", label="lenvatinib + PD-1")
        ax.set_xlabel("months")
        ax.set_ylabel("overall survival")
        ax.legend()
    else:
        x = np.linspace(0.2, 1.4, 300)
        ax.plot(x, np.exp(-0.5 * ((np.log(x) - np.log(0.6)) / 0.15) ** 2))
        ax.axvline(1.0, ls="--", color="grey")
        ax.set_xlabel("hazard ratio")
        ax.set_title(f"posterior {XSS_SCRIPT}")  # drawn into the PNG, harmless
    return fig


def _render_fixture(folder: Path) -> Path:
    import pandas as pd

    from bayes_haic import report as r

    summary = r.Section("summary", "Summary", tier="published").add(
        r.Text("Posterior probability that HAIC adds benefit: 0.97 (HR < 1). " + DOUBLE_ESCAPE),
        r.Text(f"Configured note: {XSS_IMG}", kind="note"),
        r.Table(pd.DataFrame({
            "Estimand": ["HR (OS)", "HR (PFS)", XSS_SCRIPT],
            "Median": [0.52, 0.61, float("nan")],
            "95% CrI": ["0.37–0.73", "0.45–0.83", XSS_IMG],
            "P(HR < 1)": [0.9991, 0.996, None],
        }), caption=f"Headline estimates {XSS_ATTR}"),
    )
    os_ = r.Section("os", f"Overall survival {XSS_IMG}", tier="synthetic").add(
        r.Text("Kaplan–Meier curves of the synthetic cohort. " * 12),
        r.Figure.from_matplotlib(_figure("km"), caption=f"Kaplan–Meier {XSS_ATTR} {XSS_SCRIPT}"),
        r.Text("Warning from configuration: " + XSS_SCRIPT, kind="warning"),
    )
    wide = pd.DataFrame(
        {f"prior {i} {'<i>' if i == 3 else ''}": [0.1234 * i, 1.5 * i, i] for i in range(14)},
        index=pd.Index(["mean", "sd", XSS_IMG], name="stat"),
    )
    priors = r.Section("prior-sensibilité", "Prior sensitivity — π", tier="user").add(
        r.Table(wide, caption=TEMPLATE_LIKE, index=True),
        r.Figure.from_matplotlib(_figure("posterior"), caption="Posterior of the hazard ratio"),
    )
    notes = r.Section("notes", f"Notes {XSS_SCRIPT}").add(
        *[r.Text(f"Paragraph {i}: " + "methods and caveats. " * 30) for i in range(4)],
    )
    html = r.render(
        f"Bayesian reanalysis {XSS_TITLE}",
        [summary, os_, priors, notes],
        banner=f"Pre-registered analysis {XSS_SCRIPT}",
        alerts=[f"Check input {XSS_IMG}", "Second alert " + DOUBLE_ESCAPE],
        footer=f"bayes-haic {XSS_FOOTER}",
    )
    return r.write_report(folder / "index.html", html)


HOSTILE_VISIBLE = [XSS_SCRIPT, XSS_IMG, XSS_ATTR, XSS_FOOTER, DOUBLE_ESCAPE, TEMPLATE_LIKE,
                   f"Pre-registered analysis {XSS_SCRIPT}", f"Overall survival {XSS_IMG}"]


def _report_from_env() -> Path | None:
    value = os.environ.get(ENV_REPORT, "").strip()
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_absolute() and not path.is_file():
        # CI runs from the checkout; also accept a path relative to it when run from elsewhere.
        path = Path(__file__).resolve().parents[1] / path
    if not path.is_file():
        # Checking the fixture instead would hide a missing report behind a green test.
        pytest.fail(f"{ENV_REPORT}={value!r} does not name an existing file")
    return path.resolve()


# ---------------------------------------------------------------------------------------------
# One visit of the report, recorded
# ---------------------------------------------------------------------------------------------

@dataclass
class Visit:
    report: Path
    is_fixture: bool
    screenshot: Path | None = None
    pages: list[str] = field(default_factory=list)  # URLs opened
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    load_failures: list[str] = field(default_factory=list)
    broken_images: list[str] = field(default_factory=list)
    injected: list[str] = field(default_factory=list)
    duplicate_ids: list[str] = field(default_factory=list)
    overflow: list[str] = field(default_factory=list)
    nav_links: list[str] = field(default_factory=list)
    nav_problems: list[str] = field(default_factory=list)
    hidden_headings: list[str] = field(default_factory=list)
    text: str = ""  # visible text of the report's first page
    title: str = ""


def _url_to_path(url: str) -> Path:
    return Path(url2pathname(urlparse(url).path))


def _watch(page, visit: Visit) -> None:
    def where() -> str:
        return Path(unquote(urlparse(page.url).path)).name or page.url

    def on_console(msg) -> None:
        if msg.type == "error":
            loc = msg.location or {}
            visit.console_errors.append(f"{where()}: {msg.text} ({loc.get('url', '')}:{loc.get('lineNumber', '')})")

    def on_dialog(dialog) -> None:
        visit.dialogs.append(f"{where()}: {dialog.type}({dialog.message!r})")
        dialog.dismiss()

    page.on("console", on_console)
    page.on("pageerror", lambda err: visit.page_errors.append(f"{where()}: {err}"))
    page.on("dialog", on_dialog)
    page.on("crash", lambda _: visit.page_errors.append(f"{where()}: page crashed"))
    page.on("websocket", lambda ws: visit.requests.append(ws.url))


def _check_nav(page, url: str, visit: Visit, queue: deque) -> None:
    """Follow every nav link of the open page: click in-page links, queue linked .html pages."""
    links = page.eval_on_selector_all("nav a", "els => els.map(a => a.getAttribute('href') || '')")
    base = urldefrag(url).url
    name = _url_to_path(url).name
    for i, href in enumerate(links):
        label = f"{name}: nav link #{i} href={href!r}"
        visit.nav_links.append(label)
        if not href.strip():
            visit.nav_problems.append(f"{label}: empty href")
            continue
        if href.startswith("#"):
            target = unquote(href[1:])
            page.evaluate("() => window.scrollTo(0, 0)")
            if not page.evaluate("(id) => !!document.getElementById(id)", target):
                visit.nav_problems.append(f"{label}: no element with id {target!r} on the page")
                continue
            page.locator("nav a").nth(i).click()
            page.evaluate(SCROLL_SETTLED_JS)
            seen = page.evaluate(TARGET_SEEN_JS, target)
            if not seen["in_view"]:
                visit.nav_problems.append(f"{label}: after clicking, the section is not in view ({seen['why']})")
            elif not seen["heading"]:
                visit.hidden_headings.append(f"{label}: after clicking, {seen['why']}")
            hash_now = unquote(page.evaluate("() => location.hash"))
            if hash_now != "#" + target:
                visit.nav_problems.append(f"{label}: location.hash is {hash_now!r} after clicking")
            continue
        resolved = page.evaluate("(h) => new URL(h, document.baseURI).href", href)
        if not resolved.startswith("file:"):
            visit.nav_problems.append(f"{label}: leads off the machine ({resolved})")
            continue
        doc, fragment = urldefrag(resolved)
        path = _url_to_path(doc)
        if not path.is_file():
            visit.nav_problems.append(f"{label}: linked file {path} does not exist")
            continue
        if doc == base:  # e.g. "index.html#os" on index.html itself
            if fragment and not page.evaluate("(id) => !!document.getElementById(id)", unquote(fragment)):
                visit.nav_problems.append(f"{label}: no element with id {unquote(fragment)!r} on the page")
        elif path.suffix.lower() in (".html", ".htm"):
            queue.append((doc, unquote(fragment), label))
        # any other local file (a CSV, say) only has to exist


def _visit(report: Path, is_fixture: bool, screenshot: Path) -> Visit:
    from playwright.sync_api import sync_playwright

    visit = Visit(report=report, is_fixture=is_fixture)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=VIEWPORT, service_workers="block")
            context.set_default_timeout(TIMEOUT_MS)
            context.on("request", lambda req: visit.requests.append(req.url))
            # Anything not local is recorded above and aborted here, so nothing leaves the machine.
            context.route(lambda u: not u.startswith(ALLOWED_SCHEMES), lambda route: route.abort())

            start = report.as_uri()
            queue: deque = deque([(start, "", "start")])
            opened: dict[str, object] = {}
            while queue and len(opened) < MAX_PAGES:
                doc, fragment, via = queue.popleft()
                if doc in opened:
                    page = opened[doc]
                else:
                    page = context.new_page()
                    _watch(page, visit)
                    opened[doc] = page
                    visit.pages.append(doc)
                    response = page.goto(doc, wait_until="load")
                    if response is not None and not response.ok:
                        visit.load_failures.append(f"{doc}: status {response.status}")
                    if doc == start:
                        page.screenshot(path=str(screenshot), full_page=True)
                        visit.screenshot = screenshot
                        visit.text = page.inner_text("body")
                        visit.title = page.title()
                    name = _url_to_path(doc).name
                    visit.broken_images += [f"{name}: {m}" for m in page.evaluate(BROKEN_IMAGES_JS)]
                    visit.injected += [f"{name}: {m}" for m in page.evaluate(INJECTED_JS)]
                    visit.duplicate_ids += [f"{name}: {m}" for m in page.evaluate(DUPLICATE_IDS_JS)]
                    wide = page.evaluate(OVERFLOW_JS)
                    if wide:
                        visit.overflow.append(f"{name}: page is {wide[0]}px wide in a {wide[1]}px window")
                    _check_nav(page, doc, visit, queue)
                if fragment and not page.evaluate("(id) => !!document.getElementById(id)", fragment):
                    visit.nav_problems.append(f"{via}: no element with id {fragment!r} in {doc}")
            if queue:
                visit.nav_problems.append(f"more than {MAX_PAGES} linked pages; stopped following links")
        finally:
            browser.close()
    return visit


@pytest.fixture(scope="module")
def visit(tmp_path_factory) -> Visit:
    pytest.importorskip("playwright.sync_api", reason="playwright is not importable (pip install playwright)",
                        exc_type=ImportError)
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    report = _report_from_env()
    is_fixture = report is None
    if is_fixture:
        report = _render_fixture(tmp_path_factory.mktemp("report"))
    return _visit(report, is_fixture, report.parent / "summary.png")


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------

def _fmt(items) -> str:
    return "\n  " + "\n  ".join(items)


def test_page_loads_without_errors(visit):
    assert visit.pages, "no page was opened"
    problems = visit.load_failures + visit.console_errors + visit.page_errors
    assert not problems, f"errors while showing {visit.report}:{_fmt(problems)}"


def test_no_dialog_fires(visit):
    dialogs = visit.dialogs
    assert not dialogs, f"dialogs opened (script from data ran?):{_fmt(dialogs)}"


def test_all_images_loaded(visit):
    broken = visit.broken_images
    assert not broken, f"images not shown:{_fmt(broken)}"


def test_nav_links_reach_their_sections(visit):
    assert visit.nav_links, f"{visit.report} has no <nav> links"
    problems = visit.nav_problems + [f"duplicate id {d}" for d in visit.duplicate_ids]
    assert not problems, f"navigation:{_fmt(problems)}"


def test_nav_link_heading_not_hidden_under_header(visit):
    hidden = visit.hidden_headings
    assert not hidden, f"headings hidden after following a nav link:{_fmt(hidden)}"


def test_data_is_shown_as_text_not_markup(visit):
    injected = visit.injected
    assert not injected, f"elements that came from data:{_fmt(injected)}"
    if visit.is_fixture:
        missing = [s for s in HOSTILE_VISIBLE if s not in visit.text]
        assert not missing, f"not shown literally as visible text:{_fmt(missing)}"
        assert visit.title == f"Bayesian reanalysis {XSS_TITLE}"


def test_no_request_leaves_the_machine(visit):
    outside = sorted({u for u in visit.requests if not u.startswith(ALLOWED_SCHEMES)})
    assert not outside, f"requests to outside the machine (aborted):{_fmt(outside)}"


def test_page_is_not_wider_than_the_window(visit):
    overflow = visit.overflow
    assert not overflow, f"horizontal scrolling:{_fmt(overflow)}"


def test_summary_screenshot_saved(visit):
    shot = visit.screenshot
    assert shot is not None and shot.is_file(), "summary.png was not written"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
