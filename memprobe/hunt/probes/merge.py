"""The whole server's attribution from its workers' own: sites, types and holders added up.

Each worker names what grew per request *it* served; the server's figure for a site (a holder,
a type) is the sum of what grew in every worker, per request any of them served. A worker that
served more weighs more, as it should.
"""
from __future__ import annotations

from typing import Any

from memprobe.agent.holders import describe
from memprobe.hunt.probes import Attribution
from memprobe.results.hunt import Holder, Site


def merge(parts: list[tuple[Attribution, int]], measured: int) -> Attribution:
    """``parts``: each worker's attribution with the requests of its attribution round;
    ``measured``: the server's measured requests (holders and types grew over those)."""
    attributed = sum(n for _, n in parts) or 1
    return Attribution(_sites([a for a, _ in parts], attributed),
                       _types([a for a, _ in parts], measured or 1),
                       _holders([a for a, _ in parts], measured or 1))


def _sites(parts: list[Attribution], requests: int) -> list[Site]:
    merged: dict[tuple[str, int], Site] = {}
    biggest: dict[tuple[str, int], int] = {}
    for att in parts:
        for s in att.sites:
            key = (s.file, s.line)
            got = merged.get(key)
            if got is None:
                merged[key] = Site(s.file, s.line, 0.0, 0.0, 0, 0, list(s.traceback), s.user, s.code)
                got = merged[key]
            got.size_diff += s.size_diff
            got.count_diff += s.count_diff
            if s.size_diff > biggest.get(key, -1):
                biggest[key] = s.size_diff
                got.traceback = list(s.traceback)
    for site in merged.values():
        site.bytes_per_request = site.size_diff / requests
        site.count_per_request = site.count_diff / requests
    return sorted(merged.values(), key=lambda s: (not s.user, -s.size_diff))[:10]


def _types(parts: list[Attribution], requests: int) -> list[dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for att in parts:
        for t in att.types:
            got = merged.setdefault(t["type"], {"type": t["type"], "count_before": 0, "count": 0,
                                                "bytes_before": 0, "bytes": 0})
            for name in ("count_before", "count", "bytes_before", "bytes"):
                got[name] += int(t.get(name) or 0)
    for t in merged.values():
        t["count_per_request"] = (t["count"] - t["count_before"]) / requests
        t["bytes_per_request"] = (t["bytes"] - t["bytes_before"]) / requests
    return sorted(merged.values(), key=lambda t: -(t["bytes"] - t["bytes_before"]))[:10]


def _holders(parts: list[Attribution], requests: int) -> list[Holder]:
    merged: dict[tuple[str, ...], Holder] = {}
    for att in parts:
        for h in att.holders:
            key = tuple(h.chain)
            got = merged.get(key)
            if got is None:
                merged[key] = Holder("", list(h.chain), h.type, 0, 0, 0.0, h.source)
                got = merged[key]
            got.entries_before += h.entries_before
            got.entries += h.entries
    for h in merged.values():
        h.entries_per_request = (h.entries - h.entries_before) / requests
        h.description = describe(h.chain, h.type, h.entries) + (
            f" summed over {sum(1 for a in parts if any(tuple(x.chain) == tuple(h.chain) for x in a.holders))} "
            "workers" if len(parts) > 1 else "")
    return sorted(merged.values(), key=lambda h: -(h.entries - h.entries_before))
