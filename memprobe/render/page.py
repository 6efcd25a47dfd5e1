"""The HTML page every report sits in, and the small pieces the HTML renderers build with.

Everything is escaped by default: a value becomes markup only through :class:`Safe`, which
the helpers here produce from escaped parts. The page needs nothing from the network: styles
are inline, plots are inline SVG, and a Content-Security-Policy forbids scripts and any fetch,
so even markup that slipped through could neither run nor call out.
"""
from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

from memprobe import __version__


class Safe(str):
    """A string that is already HTML (built from escaped parts). Adding anything to it
    escapes that thing, so ``Safe + str`` stays safe and stays ``Safe``."""

    def __add__(self, other: object) -> Safe:
        return Safe(str.__add__(self, esc(other)))

    def __radd__(self, other: object) -> Safe:
        return Safe(str.__add__(esc(other), self))


def esc(value: Any) -> Safe:
    """``value`` as HTML text: ``Safe`` strings pass through, everything else is escaped."""
    if isinstance(value, Safe):
        return value
    return Safe(html.escape("" if value is None else str(value), quote=True))


def tag(name: str, content: Any = "", cls: str = "", **attrs: Any) -> Safe:
    """``<name class=...>content</name>``; ``content`` escaped unless :class:`Safe`."""
    parts = [name] + ([f'class="{esc(cls)}"'] if cls else [])
    parts += [f'{k.rstrip("_").replace("_", "-")}="{esc(v)}"' for k, v in attrs.items() if v is not None]
    return Safe(f"<{' '.join(parts)}>{esc(content)}</{name}>")


def join(items: Iterable[Any], sep: str = "") -> Safe:
    """Escaped items joined with ``sep`` (itself HTML)."""
    return Safe(sep.join(esc(i) for i in items))


def table(header: Sequence[Any], rows: Iterable[Sequence[Any]], numeric: Iterable[int] = (),
          cls: str = "") -> Safe:
    """A table; columns whose index is in ``numeric`` are right-aligned."""
    num = set(numeric)
    head = join(tag("th", h, cls="num" if i in num else "") for i, h in enumerate(header))
    body = join(
        tag("tr", join(tag("td", c, cls="num" if i in num else "") for i, c in enumerate(row)))
        for row in rows)
    inner = tag("table", Safe(f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody>"), cls=cls)
    return tag("div", inner, cls="wide")


def badge(word: str, kind: str | None = None) -> Safe:
    """A coloured word: ``leak``, ``clean``, ``fail``, ``pass``..."""
    return tag("span", word, cls=f"badge b-{kind or word}".replace("/", ""))


def definition_list(pairs: Iterable[tuple[str, Any]]) -> Safe:
    """``<dl>`` of label/value pairs (values escaped unless Safe)."""
    return tag("dl", join(Safe(tag("dt", k) + tag("dd", v)) for k, v in pairs if v not in (None, "")))


def figure(svg: str | None, caption: str) -> Safe:
    """An inline SVG plot (made by memprobe.render.plots, so already clean) with a caption."""
    if not svg:
        return Safe("")
    return Safe(f'<figure>{svg}<figcaption>{esc(caption)}</figcaption></figure>')


CSS = """
:root { --fg:#1b1f24; --muted:#57606a; --line:#d0d7de; --bg:#ffffff; --soft:#f6f8fa;
        --red:#b42318; --amber:#9a6700; --green:#1a7f37; --blue:#0b4f9c; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--fg); background: var(--bg); margin: 0 auto; padding: 24px 32px; max-width: 1200px; }
h1 { font-size: 22px; margin: 0 0 4px; word-break: break-word; }
h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px;
     word-break: break-word; }
h3 { font-size: 15px; margin: 18px 0 6px; }
p, ul, ol { margin: 6px 0; }
.muted, figcaption, .foot { color: var(--muted); }
.foot { margin-top: 32px; font-size: 12px; border-top: 1px solid var(--line); padding-top: 8px; }
code, pre, .mono { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace;
                   font-size: 12.5px; }
pre { background: var(--soft); padding: 6px 8px; border-radius: 4px; white-space: pre-wrap;
      word-break: break-word; margin: 4px 0; }
table { border-collapse: collapse; margin: 8px 0 12px; width: 100%; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 6px; text-align: left; vertical-align: top; }
th { background: var(--soft); font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td { word-break: break-word; }
div.wide { overflow-x: auto; }
.small { font-size: 12px; }
.nowrap { white-space: nowrap; }
td > b:first-child { white-space: nowrap; }
.badge { display: inline-block; padding: 0 7px; border-radius: 10px; font-weight: 600; font-size: 12px;
         border: 1px solid currentColor; white-space: nowrap; }
.b-leak, .b-fail, .b-worse, .b-failed-to-start, .b-crashed { color: var(--red); }
.b-bounded, .b-warn, .b-changed, .b-unavailable, .b-not-installed { color: var(--amber); }
.b-clean, .b-pass, .b-better, .b-ok { color: var(--green); }
.b-info, .b-same, .b-ignored, .b-na { color: var(--muted); }
.verdict { font-size: 17px; padding: 10px 14px; border-left: 5px solid var(--muted); background: var(--soft);
           margin: 12px 0; }
.verdict.leak, .verdict.fail { border-color: var(--red); }
.verdict.bounded, .verdict.warn { border-color: var(--amber); }
.verdict.clean, .verdict.pass { border-color: var(--green); }
.worse { color: var(--red); } .better { color: var(--green); } .changed { color: var(--amber); }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 8px 0; }
dt { color: var(--muted); } dd { margin: 0; word-break: break-word; }
figure { margin: 10px 0 18px; }
svg.plot { width: 100%; height: auto; max-width: 1100px; display: block; }
details summary { cursor: pointer; color: var(--blue); }
ol.chain { margin: 4px 0 4px 18px; padding: 0; }
section.route { page-break-inside: auto; }
@media print {
  body { max-width: none; padding: 0; font-size: 11px; }
  h2 { page-break-after: avoid; }
  figure, table, tr, .verdict { page-break-inside: avoid; }
  div.wide { overflow: visible; }
  a { color: inherit; text-decoration: none; }
  th { background: #eee !important; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""

# No script may run and nothing may be fetched: the report is data, not an app.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"


def page(title: str, body: Any, subtitle: Any = "") -> str:
    """A complete HTML document: ``title`` (escaped) and ``body`` (escaped unless Safe)."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<link rel="icon" href="data:,">\n'
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f"<header>{tag('h1', title)}{tag('p', subtitle, cls='muted') if subtitle else ''}</header>\n"
        f"<main>\n{esc(body)}\n</main>\n"
        f'<footer class="foot">memprobe {esc(__version__)} · a self-contained report: '
        "no scripts, nothing fetched.</footer>\n</body>\n</html>\n"
    )
