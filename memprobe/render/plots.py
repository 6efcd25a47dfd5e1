"""Plots for the HTML report: matplotlib figures turned into inline SVG strings.

matplotlib is optional (the ``html`` extra): it is imported on first use, with the Agg backend,
and its absence raises :class:`~memprobe.errors.MissingDependency`. Every function takes typed
results (rows, routes, readings) and returns SVG markup ready to paste into a page: no XML
prolog, no metadata that changes from run to run, no comments (matplotlib copies label text
into comments, and a label is app data), text drawn as paths so no font is fetched.
"""
from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import Any

from memprobe.errors import MissingDependency
from memprobe.process.memory import MemoryReading
from memprobe.results.compare import FrameworkResult
from memprobe.results.hunt import RouteResult, WorkerResult

MIB = 2**20
KIB = 1024
#: One colour per series, in order (matplotlib's tab10, readable in print and for most
#: colour-blind readers).
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")

_plt: Any = None


def pyplot() -> Any:
    """matplotlib.pyplot with the Agg backend and reproducible SVG output."""
    global _plt
    if _plt is None:
        try:
            import matplotlib
        except ModuleNotFoundError:
            raise MissingDependency("matplotlib (for HTML reports)", "memprobe[html]") from None
        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt

        plt.rcParams.update({
            "svg.hashsalt": "memprobe",  # stable ids: the same data gives the same file
            "svg.fonttype": "path",  # no font needed to read the page
            "text.parse_math": False,  # a "$" in a route is a dollar, not TeX
            "font.size": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "legend.frameon": False,
        })
        _plt = plt
    return _plt


_PROLOG = re.compile(r"^.*?(?=<svg\b)", re.S)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)
_COMMENT = re.compile(r"<!--.*?-->\s*", re.S)


def to_svg(fig: Any, label: str) -> str:
    """The figure as inline SVG markup (and the figure closed); ``label`` becomes its
    accessible name (``role="img"``, ``aria-label``), escaped."""
    from html import escape

    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    pyplot().close(fig)
    svg = _COMMENT.sub("", _METADATA.sub("", _PROLOG.sub("", buf.getvalue(), count=1)))
    # A fixed width in pt would overflow narrow windows and printed pages; the viewBox keeps
    # the proportions.
    svg = re.sub(r'<svg([^>]*?) width="[^"]*" height="[^"]*"',
                 rf'<svg\1 class="plot" role="img" aria-label="{escape(label, quote=True)}"', svg,
                 count=1)
    return svg.strip()


def _figure(width: float, height: float, cols: int = 1) -> tuple[Any, Any]:
    plt = pyplot()
    fig, axes = plt.subplots(1, cols, figsize=(width, height), squeeze=False)
    return fig, list(axes[0])


def colour(i: int) -> str:
    """The ``i``-th series colour."""
    return PALETTE[i % len(PALETTE)]


def _short(label: str, limit: int = 28) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


# -- compare ----------------------------------------------------------------------------------

def memory_bars(names: Sequence[str], first: Sequence[MemoryReading | None],
                second: Sequence[MemoryReading | None], fields: Sequence[str] = ("rss", "uss", "pss"),
                labels: tuple[str, str] = ("before", "after")) -> str:
    """One panel per metric: a pair of bars (a reading of ``first`` and of ``second``) per
    framework, in MiB."""
    fig, axes = _figure(3.4 * len(fields), 3.0, cols=len(fields))
    shown = [_short(n, 14) for n in names]
    xs = list(range(len(names)))
    for ax, field in zip(axes, fields):
        one = [(getattr(r, field) or 0) if r is not None else 0 for r in first]
        two = [(getattr(r, field) or 0) if r is not None else 0 for r in second]
        ax.bar([x - 0.2 for x in xs], [v / MIB for v in one], 0.4, label=labels[0], color="#9ecae1")
        ax.bar([x + 0.2 for x in xs], [v / MIB for v in two], 0.4, label=labels[1], color="#08519c")
        ax.set_title(field.upper())
        ax.set_ylabel("MiB")
        ax.set_xticks(xs)
        crowded = len(names) > 3
        ax.set_xticklabels(shown, rotation=30 if crowded else 0, ha="right" if crowded else "center")
        ax.grid(axis="x", visible=False)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    handles, names_ = axes[0].get_legend_handles_labels()
    fig.legend(handles, names_, loc="upper center", ncol=2)
    metrics = ", ".join(f.upper() for f in fields)
    return to_svg(fig, f"memory {labels[0]} and {labels[1]} per framework: {metrics}")


def sample_sets(row: FrameworkResult) -> list[dict[str, Any]]:
    """The series sampled while a row's requests were sent: the row's own, else each round's."""
    figures = row.figures
    if figures is not None and figures.samples:
        return [figures.samples]
    return [r.samples for r in row.rounds if r.samples]


def memory_over_requests(rows: Sequence[FrameworkResult],
                         fields: Sequence[str] = ("rss", "uss")) -> str | None:
    """Memory (MiB) against requests answered during the hammering, one line per framework
    (each round a line when there were several); a panel per field that was sampled (USS is
    slow to read and may be missing); None when nothing was."""
    sets = [(row.name, sample_sets(row)) for row in rows]
    fields = [f for f in fields if any(v is not None for _, ss in sets for s in ss for v in s.get(f) or [])]
    if not fields:
        return None
    fig, axes = _figure(5.2 * len(fields), 3.2, cols=len(fields))
    for ax, field in zip(axes, fields):
        for i, (name, samples_of_row) in enumerate(sets):
            for j, samples in enumerate(samples_of_row):
                ys = samples.get(field) or []
                pts = [(x, y / MIB) for x, y in zip(samples.get("requests") or [], ys) if y is not None]
                if not pts:
                    continue
                ax.plot([p[0] for p in pts], [p[1] for p in pts], color=colour(i),
                        alpha=1.0 if j == 0 else 0.45, linewidth=1.4,
                        label=_short(name, 20) if j == 0 else None)
        ax.set_title(f"{field.upper()} during the hammering")
        ax.set_xlabel("requests answered")
        ax.set_ylabel("MiB")
        ax.legend(loc="best")
    fig.tight_layout()
    return to_svg(fig, "memory over requests during the hammering, one line per framework")


# -- hunt ------------------------------------------------------------------------------------

def _fit_line(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float] | None:
    n = len(xs)
    if n < 2:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if not sxx:
        return None
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    return slope, my - slope * mx


def _memory_title(route: RouteResult) -> str:
    return "USS" if route.memory == "uss" else f"{route.memory_name} summed over the server's processes"


def route_series(route: RouteResult, warmup: int) -> str | None:
    """Growth since the baseline (KiB) of the traced heap and of USS (PSS summed, for a server
    hunted worker by worker) after each round, with the least-squares line (its slope is the
    bytes per request) and the warm-up shaded."""
    xs = [r.requests for r in route.readings]
    series = {"traced": [r.traced for r in route.readings], "uss": [r.uss for r in route.readings]}
    signals = [(name, title) for name, title in (("traced", "traced Python heap"), ("uss", _memory_title(route)))
               if xs and any(v is not None for v in series[name])]
    if not signals:
        return None
    bpr = route.bytes_per_request
    fig, axes = _figure(4.6 * len(signals), 2.9, cols=len(signals))
    for ax, (name, title) in zip(axes, signals):
        pts = [(x, y) for x, y in zip(xs, series[name]) if y is not None]
        base = pts[0][1]
        px = [p[0] for p in pts]
        py = [(p[1] - base) / KIB for p in pts]
        if warmup:
            ax.axvspan(-warmup, 0, color="#bbbbbb", alpha=0.35, linewidth=0,
                       label=f"warm-up ({warmup} requests, not measured)")
        ax.plot(px, py, "o-", color="#08519c", linewidth=1.2, markersize=4, label="after each round")
        fit = _fit_line(px, py)
        if fit:
            slope, icpt = fit
            lo = min(px)
            hi = max(px)
            rate = bpr.get(name)
            text = (f"fit {rate:+.1f} ± {rate.error:.1f} B/request"
                    if rate is not None else f"fit {slope * KIB:+.1f} B/request")
            ax.plot([lo, hi], [icpt + slope * lo, icpt + slope * hi], "--", color="#d62728",
                    linewidth=1.2, label=text)
        _frame(ax, title, "requests after the baseline", "KiB above the baseline", 7.5)
    fig.tight_layout()
    return to_svg(fig, f"memory over requests for route {route.route}")


def _frame(ax: Any, title: str, xlabel: str, ylabel: str, legend_size: float) -> None:
    """A memory-over-requests panel's zero line, title, axis labels and legend."""
    ax.axhline(0, color="#444444", linewidth=0.6)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(loc="upper left", fontsize=legend_size)


def _process_label(w: WorkerResult) -> str:
    label = f"pid {w.pid}" + (" (master)" if w.role == "master" else "")
    info = w.respawned or {}
    if "replaces" in info:
        label += f", replaces {info['replaces']}"
    elif info:
        label += ", died"
    return label


def worker_series(route: RouteResult) -> str | None:
    """The workers side by side: growth since each process's own baseline (KiB) of its traced
    heap and of its USS, against the requests it served (the master, which serves none, against
    the server's), one line per process; the server's summed signals dashed. None without
    workers."""
    procs = [w for w in route.workers if w.readings]
    if not procs:
        return None
    panels = [(name, title) for name, title in (("traced", "traced Python heap, per process"),
                                                ("uss", "USS, per process"))
              if any(getattr(r, name) is not None for w in procs for r in w.readings)]
    if not panels:
        return None
    fig, axes = _figure(4.6 * len(panels), 3.1, cols=len(panels))
    whole = {"traced": "server: traced heap summed",
             "uss": f"server: {route.memory_name}{' summed' if route.memory != 'uss' else ''}"}
    for ax, (name, title) in zip(axes, panels):
        for i, w in enumerate(procs):
            pts = [(r.requests, getattr(r, name)) for r in w.readings if getattr(r, name) is not None]
            if not pts:
                continue
            master = w.role == "master"
            ax.plot([p[0] for p in pts], [(p[1] - pts[0][1]) / KIB for p in pts], marker="o",
                    color="#555555" if master else colour(i), linewidth=1.2, markersize=3.5,
                    linestyle=":" if master else "-", label=_process_label(w))
        total = [(r.requests, getattr(r, name)) for r in route.readings if getattr(r, name) is not None]
        if total:
            ax.plot([p[0] for p in total], [(p[1] - total[0][1]) / KIB for p in total], "--",
                    color="#222222", linewidth=1.0, alpha=0.6, label=whole[name])
        _frame(ax, title, "requests served (the master: the server's)", "KiB above its baseline", 7)
    fig.tight_layout()
    return to_svg(fig, f"memory of each process over the requests it served, route {route.route}")


def bytes_per_request(routes: Sequence[RouteResult],
                      labels: tuple[str, str] | None = None,
                      others: Sequence[RouteResult] | None = None) -> str | None:
    """Bytes per request with its error bar, per route: traced heap and USS side by side.
    With ``others`` (routes of a second run, matched by name), each run gets its own marker."""
    runs = [(routes, labels[0] if labels else "")]
    if others is not None:
        runs.append((others, labels[1] if labels else "B"))
    names = list(dict.fromkeys(r.route for run, _ in runs for r in run))
    if not names:
        return None
    height = max(1.9, 1.0 + 0.36 * len(names) * len(runs))
    fig, axes = _figure(9.0, height, cols=2)
    markers = ("o", "s")
    memory = "/".join(dict.fromkeys(r.memory_name for run, _ in runs for r in run)) or "USS"
    for ax, (name, title) in zip(axes, (("traced", "traced heap"), ("uss", memory))):
        for k, (run, label) in enumerate(runs):
            by_name = {r.route: r for r in run}
            offset = (k - (len(runs) - 1) / 2) * 0.3
            labelled = False
            for i, route_name in enumerate(names):
                route = by_name.get(route_name)
                rate = route.bytes_per_request.get(name) if route is not None else None
                if rate is None or route is None:
                    continue
                col = {"leak": "#d62728", "bounded": "#ff7f0e"}.get(route.verdict, "#2ca02c")
                ax.errorbar(float(rate), i + offset, xerr=rate.error or 0, fmt=markers[k % 2],
                            color=col, ecolor="#333333", capsize=3, markersize=5,
                            label=None if labelled or not label else label)
                labelled = True
        ax.axvline(0, color="#444444", linewidth=0.6)
        ax.set_yticks(range(len(names)))
        ax.set_yticklabels([_short(n) for n in names])
        ax.set_ylim(len(names) - 0.5, -0.5)
        ax.set_title(f"{title}: bytes per request (± standard error)")
        ax.set_xlabel("B/request")
        ax.grid(axis="y", visible=False)
    if others is not None:
        axes[0].legend(loc="best", fontsize=7.5)
    fig.tight_layout()
    return to_svg(fig, "bytes per request per route with error bars")
