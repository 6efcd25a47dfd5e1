"""The whole server's attribution from its workers' own: sites, types, holders and what the
allocators hold, added up.

Each worker names what grew per request *it* served; the server's figure for a site (a holder,
a type) is the sum of what grew in every worker, per request any of them served. A worker that
served more weighs more, as it should. A holder keeps what the workers said of it (who holds it
when no Python object does, its cap or its timers): each worker has its own copy of a capped
cache, so the server's cap is the sum of theirs.
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
    atts = [a for a, _ in parts]
    return Attribution(_sites(atts, attributed), _types(atts, measured or 1),
                       _holders(atts, measured or 1),
                       allocator=allocator([a.allocator for a in atts if a.allocator is not None]))


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
    each: dict[tuple[str, ...], list[Holder]] = {}
    for att in parts:
        for h in att.holders:
            key = tuple(h.chain)
            got = merged.get(key)
            if got is None:
                merged[key] = Holder("", list(h.chain), h.type, 0, 0, 0.0, h.source, h.note)
                got = merged[key]
            got.entries_before += h.entries_before
            got.entries += h.entries
            got.note = got.note or h.note
            each.setdefault(key, []).append(h)
    for key, h in merged.items():
        h.entries_per_request = (h.entries - h.entries_before) / requests
        h.bounds = _bounds(each[key])
        h.description = describe(h.chain, h.type, h.entries) + (
            f" summed over {len(each[key])} workers" if len(parts) > 1 else "")
    return sorted(merged.values(), key=lambda h: -(h.entries - h.entries_before))


def _bounds(holders: list[Holder]) -> dict[str, Any] | None:
    """What bounds the server's holder: the workers' caps summed (each has its own cache), or
    their timers counted together, the first due first and the last due last."""
    found = [h.bounds for h in holders if h.bounds]
    if not found:
        return None
    if len(found) == 1:
        return dict(found[0])
    caps = [b for b in found if b.get("cap")]
    if caps:
        out: dict[str, Any] = {"cap": sum(int(b["cap"]) for b in caps), "by": caps[0].get("by", "a cap")}
        if len(caps) > 1:
            same = len({b["cap"] for b in caps}) == 1
            out["by"] += (f", {caps[0]['cap']:,} in each of {len(caps)} workers" if same
                          else f", summed over {len(caps)} workers")
        sizes = [(b["bytes_per_entry"], h.entries) for b, h in zip(found, holders)
                 if b.get("cap") and b.get("bytes_per_entry") is not None]
        if sizes:
            weight = sum(n for _, n in sizes)
            out["bytes_per_entry"] = (sum(per * n for per, n in sizes) / weight if weight
                                      else sum(per for per, _ in sizes) / len(sizes))
        return out
    timed = [b for b in found if b.get("timers")]
    if not timed:
        return dict(found[0])
    biggest = max(timed, key=lambda b: b["timers"])
    return {"timers": sum(int(b["timers"]) for b in timed),
            "due_first_s": min(b.get("due_first_s", 0.0) for b in timed),
            # the median of the worker holding the most: the medians of parts do not add up
            "due_median_s": biggest.get("due_median_s", 0.0),
            "due_last_s": max(b.get("due_last_s", 0.0) for b in timed)}


def allocator(parts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The workers' allocator figures (:func:`memprobe.agent.allocator.compare`) as one
    server's: bytes and requests summed (each worker's own requests: the server's in all),
    ``glibc`` only when every worker runs on it (None when no worker read them)."""
    if not parts:
        return None
    if len(parts) == 1:
        return dict(parts[0])
    out = _summed(parts)
    out["glibc"] = all(bool(p.get("glibc")) for p in parts)
    out["processes"] = len(parts)
    return out


def _summed(parts: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in dict.fromkeys(k for p in parts for k in p):
        values = [p.get(key) for p in parts]
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if numbers:
            out[key] = sum(numbers)
        elif any(isinstance(v, dict) for v in values):
            out[key] = _summed([v for v in values if isinstance(v, dict)])
        else:
            out[key] = next((v for v in values if v is not None), None)
    return out
