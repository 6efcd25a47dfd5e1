"""The agent's answers as the parent reads them: one frozen dataclass per answer, each read from
the wire in one place, its ``from_wire``.

The agent (:class:`memprobe.agent.control.Agent`) answers each command with one JSON object;
:class:`memprobe.agent.control.AgentClient` hands it to the matching ``from_wire``, the only code
that reads the dict. An absent key takes its default (an agent that does not count requests
sends no ``served``; untraced rounds no ``traced``); an answer that is not an object, a key of the
wrong type, or a missing key that has no default is an :class:`~memprobe.errors.AgentError`
naming the command and the key. Keys the parent does not read are ignored.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from memprobe.errors import AgentError
from memprobe.results.hunt import Holder, Site


def malformed(cmd: str, detail: str) -> AgentError:
    """The error for an answer to ``cmd`` the parent cannot read."""
    return AgentError(f"the agent's answer to {cmd} is malformed: {detail}")


class _Keys:
    """One answer's keys, read with their types checked; errors name the command and the key."""

    def __init__(self, cmd: str, data: object) -> None:
        if not isinstance(data, Mapping):
            raise malformed(cmd, f"a JSON object was expected, not {type(data).__name__}")
        self.cmd = cmd
        self.data: Mapping[str, Any] = data

    def _wrong(self, key: str, wanted: str) -> AgentError:
        value = repr(self.data[key])
        return malformed(self.cmd, f"{key!r} should be {wanted}, not {value[:60]}")

    def integer(self, key: str, default: int | None = None, required: bool = False) -> int | None:
        """An int (a bool is not one); ``default`` when absent or null."""
        value = self.data.get(key)
        if value is None:
            if required:
                raise malformed(self.cmd, f"{key!r} is missing")
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._wrong(key, "an integer")
        return value

    def count(self, key: str) -> int:
        """An int that is 0 when absent."""
        value = self.integer(key, 0)
        assert value is not None
        return value

    def number(self, key: str, default: float = 0.0) -> float:
        """An int or a float, as a float."""
        value = self.data.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._wrong(key, "a number")
        return float(value)

    def text(self, key: str, default: str | None = None) -> str | None:
        """A string; ``default`` when absent or null."""
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self._wrong(key, "a string")
        return value

    def items(self, key: str) -> list[Any]:
        """A list; empty when absent or null."""
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._wrong(key, "a list")
        return value

    def objects(self, key: str) -> list[dict[str, Any]]:
        """A list of JSON objects; empty when absent or null."""
        found = self.items(key)
        for item in found:
            if not isinstance(item, dict):
                raise malformed(self.cmd, f"every item of {key!r} should be an object, not "
                                          f"{repr(item)[:60]}")
        return found

    def mapping(self, key: str) -> dict[str, Any] | None:
        """An object; None when absent or null."""
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self._wrong(key, "an object")
        return value


@dataclass(frozen=True)
class Hello:
    """The answer to ``hello``: which process, what app, its routes."""

    pid: int
    #: ``wsgi``, ``asgi``, ``tornado``; None for an app memprobe does not know (an attached
    #: process whose ``__main__`` names none)
    kind: str | None = None
    framework: str | None = None
    routes: tuple[str, ...] = ()
    #: requests the process served so far, where it counts them (an injected worker)
    served: int | None = None
    ppid: int | None = None
    #: the attribution round's traceback depth
    frames: int | None = None
    python: str = ""
    #: where the routes came from, or that none could be found (a line for the hunt's notes)
    routes_note: str = ""

    @classmethod
    def from_wire(cls, data: object, cmd: str = "hello") -> Hello:
        """Read the agent's answer; AgentError when it is malformed (``pid`` is required)."""
        keys = _Keys(cmd, data)
        routes = keys.items("routes")
        if not all(isinstance(r, str) for r in routes):
            raise malformed(cmd, "every route should be a string")
        pid = keys.integer("pid", required=True)
        assert pid is not None
        return cls(pid, keys.text("kind"), keys.text("framework"), tuple(routes),
                   keys.integer("served"), keys.integer("ppid"), keys.integer("frames"),
                   keys.text("python", "") or "", keys.text("routes_note", "") or "")


@dataclass(frozen=True)
class HeapReading:
    """The heap as the agent read it after collecting garbage: the answer to ``baseline`` and
    ``measure`` (``begin`` and ``deepen`` answer the same keys, without ``served``)."""

    #: the traced heap in bytes; None when the rounds run untraced (a zero would read as flat)
    traced: int | None = None
    #: tracemalloc's own tables, which are not the app's: the parent subtracts them from USS
    overhead: int = 0
    #: ``sys.getallocatedblocks()``
    blocks: int | None = None
    #: the objects the collector tracks, when ``begin`` asked for them
    objects: int | None = None
    #: requests the process served, read before the collection (where it counts them)
    served: int | None = None

    @classmethod
    def from_wire(cls, data: object, cmd: str = "measure") -> HeapReading:
        """Read the agent's answer; AgentError when it is malformed."""
        return cls(**_heap(_Keys(cmd, data)))


def _heap(keys: _Keys) -> dict[str, Any]:
    return {"traced": keys.integer("traced"), "overhead": keys.count("overhead"),
            "blocks": keys.integer("blocks"), "objects": keys.integer("objects"),
            "served": keys.integer("served")}


@dataclass(frozen=True)
class Growth(HeapReading):
    """The answer to ``growth``: the heap, and how many containers grew since the baseline."""

    holders: int = 0

    @classmethod
    def from_wire(cls, data: object, cmd: str = "growth") -> Growth:
        """Read the agent's answer; AgentError when it is malformed."""
        keys = _Keys(cmd, data)
        return cls(**_heap(keys), holders=keys.count("holders"))


@dataclass(frozen=True)
class AttributeAnswer:
    """The answer to ``attribute``: the growing sites, types and holders, what each step took,
    and what the allocators hold (:func:`memprobe.agent.allocator.compare`). The in-process probe
    reads its :class:`~memprobe.agent.attribution.Attributor`'s dict with the same parser."""

    sites: tuple[Site, ...] = ()
    #: ``{"type", "count_before", "count", ...}`` per growing type (:func:`holders.grown_types`)
    types: tuple[dict[str, Any], ...] = ()
    holders: tuple[Holder, ...] = ()
    timings_s: dict[str, float] = field(default_factory=dict)
    allocator: dict[str, Any] | None = None

    @classmethod
    def from_wire(cls, data: object, cmd: str = "attribute") -> AttributeAnswer:
        """Read the agent's answer; AgentError when it is malformed."""
        keys = _Keys(cmd, data)
        try:
            sites = tuple(Site.from_dict(s) for s in keys.objects("sites"))
        except (KeyError, TypeError, ValueError) as err:
            raise malformed(cmd, f"a site could not be read ({type(err).__name__}: {err})") from None
        holders = []
        for entry in keys.objects("holders"):
            try:
                holder = Holder.from_dict(entry)
            except TypeError as err:  # a required field is missing
                raise malformed(cmd, f"a holder could not be read ({err})") from None
            if not isinstance(holder.description, str) or not isinstance(holder.chain, list):
                raise malformed(cmd, "a holder's description should be a string, its chain a list")
            holders.append(holder)
        timings = _Keys(cmd, keys.mapping("timings_s") or {})
        return cls(sites, tuple(keys.objects("types")), tuple(holders),
                   {name: timings.number(name) for name in timings.data}, keys.mapping("allocator"))


#: what an answer to ``lines`` says when the view ran and no line of it grew
_NO_LINE = ("the native leak's line was not found: {view} ran {calls:,} times under memory_profiler's "
            "line profiler and no line of it, or of the functions it calls in your code, grew RSS "
            "by a page (4 KiB): the memory grows elsewhere (another thread, the framework)")


@dataclass(frozen=True)
class LinesAnswer:
    """The answer to ``lines`` (:func:`memprobe.agent.rsslines.rss_lines`): a native leak's lines
    whose RSS grew under memory_profiler's line profiler, or the note that says why none was
    looked for."""

    #: ``{"file", "line", "code", "bytes_per_request", "rss_bytes", "hits", "calls", "source"}``
    lines: tuple[dict[str, Any], ...] = ()
    calls: int = 0
    #: ``file:line function`` of the route's view
    view: str = ""
    #: the unprofiled calls made first, until RSS grew as fast as USS had
    filled: int = 0
    framework: str = ""
    #: why no line was looked for (memory_profiler missing, no view found)
    note: str | None = None

    @classmethod
    def from_wire(cls, data: object, cmd: str = "lines") -> LinesAnswer:
        """Read the agent's answer; AgentError when it is malformed."""
        keys = _Keys(cmd, data)
        lines = keys.objects("lines")
        for line in lines:
            if not isinstance(line.get("file"), str) or not isinstance(line.get("line"), int):
                raise malformed(cmd, f"a line should name its file and line: {repr(line)[:60]}")
        return cls(tuple(lines), keys.count("calls"), keys.text("view", "") or "", keys.count("filled"),
                   keys.text("framework", "") or "", keys.text("note") or None)

    def found(self) -> tuple[list[dict[str, Any]], str | None]:
        """The lines as a hunt reports them (each with the view and the filling calls), and a
        note when none was looked for or none grew."""
        if self.note:
            return [], self.note
        if not self.lines:
            return [], _NO_LINE.format(view=self.view or "the view", calls=self.calls)
        return [dict(line, view=self.view, filled=self.filled) for line in self.lines], None
