"""From a capture file to the requests a hunt replays, route by route.

Each route's recorded requests become :class:`~memprobe.http.template.RequestTemplate`\\ s,
sent in turn (request number ``n`` from template ``n % k``). A field whose value varies from
request to request within the route (a query field, a form field, a JSON field at any depth, a
path segment that is an id) is **numbered on**: its value in every replayed request is a new
one of the recorded shape, made from ``n``, so that a cache keyed on it grows under replay as it
did in production instead of filling with the sample and stopping:

* an integer (a JSON number or a string of digits): ``(largest recorded + 1) * 10**4 + n``,
  written ``1078{n:04d}``: above every recorded id, unique to the request;
* a uuid: ``6d656d70-726f-4265-8000-{n:012x}`` (version 4's shape, 6d656d70 726f is "mempro");
* a hex string: ``n`` in hex at the recorded length;
* any other string: the recorded values' common prefix, then ``n`` padded to their length.

A boolean, a float or ``null`` that varies is cycled as recorded (there is nothing to number),
and so is a field with few distinct values (a flag, an enum: see :func:`_varies`). A field that
never varies stays as recorded. A redacted value (``<redacted:TYPE:CLASS>``,
:mod:`memprobe.capture.redact`) is filled with a value of its shape (``str:8-15``: 8 letters,
``int:4-7``: a number of 4 digits). A request recorded with its body cut at the capture's limit
is refused (:class:`~memprobe.capture.format.CaptureFileError`): replay never sends half a body.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, quote, unquote_plus

from memprobe.capture.format import Capture, CapturedRequest, CaptureFileError, read_capture
from memprobe.http.template import RequestTemplate

__all__ = ["Replay", "RouteReplay", "Varied", "load_replay", "replay_of"]

_PLACEHOLDER = re.compile(r"<redacted:(str|int|float|bool|body)(?::(\d+)(?:-(\d+))?)?>")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEX = re.compile(r"[0-9a-f]{8,}|[0-9A-F]{8,}")
_DIGITS = re.compile(r"\d{1,18}")
#: headers the hammer writes itself, or that a replayed request must not repeat as recorded
_DROPPED = frozenset({"host", "content-length", "connection", "transfer-encoding", "user-agent", "accept",
                      "keep-alive", "te", "upgrade", "expect"})
#: JSON sentinels: a varied leaf is written as one, then replaced by its numbered text
_S0, _S1 = "\ue000", "\ue001"


@dataclass(frozen=True)
class Varied:
    """A field numbered on under replay: where (``query``, ``form``, ``json``, ``path``), its
    name (``id``, ``items[0].sku``, ``<int:order_id>``), and the shape of its values."""

    where: str
    name: str
    shape: str

    def __str__(self) -> str:
        return f"{self.where} {self.name} ({self.shape})"

    def to_dict(self) -> dict[str, str]:
        """JSON form."""
        return {"where": self.where, "name": self.name, "shape": self.shape}


@dataclass
class RouteReplay:
    """One route's replayed requests: its templates, the fields numbered on, the redacted
    values filled, and the statuses the capture recorded."""

    route: str
    templates: list[RequestTemplate]
    varied: list[Varied] = field(default_factory=list)
    #: redacted values filled with one of their shape: ``header authorization``, ``json card``
    filled: list[str] = field(default_factory=list)
    #: status -> count over the recorded requests (``"200": 12``)
    recorded: dict[str, int] = field(default_factory=dict)

    @property
    def path(self) -> str:
        """The first recorded request's path, for what needs one (a log, a readiness check)."""
        return self.templates[0].target.split("?")[0]

    def note(self) -> str:
        """What the report says of the route's replay."""
        k = len(self.templates)
        varied = ", ".join(str(v) for v in self.varied) or "none (the recorded values are sent as they are)"
        out = f"{self.route}: replayed {k} recorded request{'s' * (k != 1)}, cycled; fields numbered on: {varied}"
        if self.filled:
            out += f"; redacted values filled with one of their shape: {', '.join(self.filled)}"
        return out

    def with_headers(self, headers: dict[str, str]) -> RouteReplay:
        """The same replay, ``headers`` in every request in place of the recorded ones of the
        same name (``-H 'Authorization: Bearer x'`` for a redacted token)."""
        if not headers:
            return self
        lower = {k.lower() for k in headers}
        templates = [replace(t, headers={**{k: v for k, v in t.headers.items() if k.lower() not in lower},
                                         **headers}) for t in self.templates]
        return replace(self, templates=templates)

    def rejected(self, received: dict[str, int]) -> str:
        """The reason of the ``errors`` verdict of a route whose replayed requests were all
        answered with errors: the statuses received against those recorded."""
        def said(statuses: dict[str, int]) -> str:
            return ", ".join(f"{v:,} x {k}" for k, v in sorted(statuses.items())) or "no status"

        return (f"the app rejected every replayed request ({said(received)}) where the capture recorded "
                f"{said(self.recorded)}: the replayed requests did not reach the code they reached in "
                "production (a redacted token, a session or the app's data may differ; -H adds a header), "
                "so its memory was not measured")

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"requests": len(self.templates), "varied": [v.to_dict() for v in self.varied],
                "filled": list(self.filled), "recorded_statuses": dict(sorted(self.recorded.items()))}


@dataclass
class Replay:
    """What a capture file replays: its path and, per route (in the order first recorded), a
    :class:`RouteReplay`."""

    path: str
    routes: dict[str, RouteReplay]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"file": self.path, "routes": {k: v.to_dict() for k, v in self.routes.items()}}


def load_replay(path: str | os.PathLike[str], routes: Sequence[str] | None = None) -> Replay:
    """The replay of the capture file at ``path`` (``routes``: only those; see
    :func:`replay_of`); CaptureFileError (exit 2) for a file that cannot be replayed."""
    return replay_of(read_capture(path), routes)


def replay_of(capture: Capture, routes: Sequence[str] | None = None) -> Replay:
    """Each route's templates and varied fields. ``routes`` narrows them: a route as the
    capture names it (``POST /orders``) or its path alone (``/orders``: every method of it);
    CaptureFileError for one the capture does not have, or for a request of a chosen route that
    was recorded with its body cut short."""
    recorded = capture.routes()
    chosen = list(recorded)
    if routes:
        chosen = []
        for wanted in routes:
            hits = [r for r in recorded if r == wanted or r.partition(" ")[2] == wanted]
            if not hits:
                raise CaptureFileError(f"{capture.path}: no request of route {wanted!r} recorded; it has "
                                       + ", ".join(recorded))
            chosen += [h for h in hits if h not in chosen]
    for i, r in enumerate(capture.requests, 1):
        if r.route in chosen and r.body_truncated:
            limit = capture.header.limits.get("body")
            raise CaptureFileError(
                f"{capture.path}: request {i} ({r.method} {r.target}) was recorded with its body cut at "
                f"{'the capture limit of ' + format(limit, ',') + ' bytes' if limit else 'the capture limit'}; "
                "replay does not send half a body: record again with a larger body limit, or remove its line")
    return Replay(capture.path, {name: route_replay(name, recorded[name]) for name in chosen})


def route_replay(route: str, requests: list[CapturedRequest]) -> RouteReplay:
    """A route's templates from its recorded requests (in the order recorded)."""
    filled: list[str] = []
    varied: list[Varied] = []
    queries = [parse_qsl(r.query, keep_blank_values=True) for r in requests]
    forms = [_form(r) for r in requests]
    bodies = [_json_body(r) for r in requests]
    q_marks = _vary_pairs(queries, "query", varied)
    f_marks = _vary_pairs(forms, "form", varied) if all(f is not None for f in forms) else {}
    j_marks = _vary_json(bodies, varied) if all(b is not _NOT_JSON for b in bodies) else {}
    p_marks = _vary_path(route, [r.path for r in requests], varied)
    templates = []
    for i, r in enumerate(requests):
        headers = {}
        for k, v in r.headers.items():
            if k in _DROPPED:
                continue
            if _PLACEHOLDER.search(v):
                _note(filled, f"header {k}")
                v = _PLACEHOLDER.sub(lambda m: str(_fill(m)), v)
            headers[k] = v
        path = _path_of(r.path, p_marks)
        query = _pairs_text(queries[i], q_marks, "query", filled)
        target = f"{path}?{query}" if query else path
        body = r.body
        if f_marks or (forms[i] and any(_PLACEHOLDER.fullmatch(v) for _, v in forms[i] or ())):
            body = _pairs_text(forms[i] or [], f_marks, "form", filled).encode("utf-8")
        elif bodies[i] is not _NOT_JSON:
            body = _json_text(bodies[i], j_marks, filled).encode("utf-8")
        elif body is not None and (m := _PLACEHOLDER.fullmatch(body.decode("utf-8", "replace"))):
            _note(filled, "body")
            body = str(_fill(m)).encode("utf-8")
        templates.append(RequestTemplate(r.method, target, headers, body))
    statuses: dict[str, int] = {}
    for r in requests:
        if r.status is not None:
            statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
    return RouteReplay(route, templates, varied, filled, statuses)


def _note(into: list[str], what: str) -> None:
    if what not in into:
        into.append(what)


def _fill(m: re.Match[str]) -> Any:
    """A value of a placeholder's shape: ``str:8-15`` -> 8 letters, ``int:4-7`` -> 1000."""
    kind, low = m.group(1), max(1, int(m.group(2) or 1))
    if kind == "bool":
        return True
    if kind == "int":
        return int("1" + "0" * (low - 1))
    if kind == "float":
        return float("1" + "0" * (low - 1)) + 0.5
    return ("replayed" * (low // 8 + 1))[:low]


# -- the shape of a field's values, and the numbered text of that shape ---------------------------

def _shape(values: list[Any]) -> str | None:
    """``int``, ``digits``, ``uuid``, ``hex`` or ``str``; None for values that cannot be numbered."""
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "int"
    if not all(isinstance(v, str) for v in values):
        return None
    if all(_DIGITS.fullmatch(v) for v in values):
        return "digits"
    if all(_UUID.fullmatch(v) for v in values):
        return "uuid"
    if all(_HEX.fullmatch(v) for v in values) and len({len(v) for v in values}) == 1:
        return "hex"
    return "str"


def _numbered(shape: str, values: list[Any]) -> str:
    """The text of a value of ``shape`` made from ``{n}`` (see the module's docstring)."""
    if shape in ("int", "digits"):
        return f"{max(abs(int(v)) for v in values) + 1}{{n:04d}}"
    if shape == "uuid":
        return "6d656d70-726f-4265-8000-{n:012x}"
    if shape == "hex":
        return f"{{n:0{len(values[0])}x}}"
    texts = [str(v) for v in values]
    prefix = os.path.commonprefix(texts).rstrip("0123456789")
    if not prefix:
        prefix = re.match(r"\D*", texts[0]).group()[:8] or "r"  # type: ignore[union-attr]
    width = max(1, min(len(t) for t in texts) - len(prefix))
    return f"{prefix}{{n:0{width}d}}" if width > 1 else f"{prefix}{{n}}"


def _varies(values: list[Any]) -> bool:
    """Whether a field's recorded values make it an id to number on: they vary, and most of
    them differ (every one, or at least 3 and half as many as the values). A flag or an enum
    (``gift=0``/``gift=1`` over 500 forms) is cycled as recorded: numbering it would send values
    the app never saw, and lose the one that keeps memory."""
    distinct = len({json.dumps(v, sort_keys=True) for v in values})
    return len(values) > 1 and distinct > 1 and (distinct == len(values) or distinct >= max(3, len(values) // 2))


# -- query and form fields ------------------------------------------------------------------------

def _form(r: CapturedRequest) -> list[tuple[str, str]] | None:
    if r.body is None or "application/x-www-form-urlencoded" not in r.headers.get("content-type", ""):
        return None
    try:
        return parse_qsl(r.body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return None


def _vary_pairs(rows: list[list[tuple[str, str]]] | list[list[tuple[str, str]] | None], where: str,
                varied: list[Varied]) -> dict[str, str]:
    """Field name -> its numbered text, for the fields whose values vary across ``rows``."""
    by_name: dict[str, list[str]] = {}
    for row in rows:
        for k, v in row or ():
            if not _PLACEHOLDER.fullmatch(v):
                by_name.setdefault(k, []).append(v)
    marks = {}
    for name, values in by_name.items():
        if _varies(values) and (shape := _shape(values)) is not None:
            marks[name] = _numbered(shape, values)
            varied.append(Varied(where, name, "int" if shape == "digits" else shape))
    return marks


def _pairs_text(pairs: Iterable[tuple[str, str]], marks: dict[str, str], where: str, filled: list[str]) -> str:
    out = []
    for k, v in pairs:
        if k in marks:
            text = marks[k]
        elif m := _PLACEHOLDER.fullmatch(v):
            _note(filled, f"{where} {k}")
            text = quote(str(_fill(m)), safe="")
        else:
            text = quote(v, safe="")
        out.append(f"{quote(k, safe='')}={text}")
    return "&".join(out)


# -- JSON bodies ----------------------------------------------------------------------------------

_NOT_JSON = object()


def _json_body(r: CapturedRequest) -> Any:
    if r.body is None:
        return _NOT_JSON
    ctype = r.headers.get("content-type", "")
    text = r.body.decode("utf-8", "replace").strip()
    if "json" not in ctype and not text.startswith(("{", "[")):
        return _NOT_JSON
    try:
        data = json.loads(text)
    except ValueError:
        return _NOT_JSON
    return data if isinstance(data, (dict, list)) else _NOT_JSON


def _leaves(obj: Any, prefix: str = "") -> Iterable[tuple[str, Any]]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _leaves(v, f"{prefix}[{i}]")
    else:
        yield prefix, obj


def _vary_json(bodies: list[Any], varied: list[Varied]) -> dict[str, tuple[str, bool]]:
    """JSON path -> (its numbered text, whether it is written unquoted: a number)."""
    by_path: dict[str, list[Any]] = {}
    for body in bodies:
        for path, v in _leaves(body):
            if not (isinstance(v, str) and _PLACEHOLDER.fullmatch(v)):
                by_path.setdefault(path, []).append(v)
    marks = {}
    for path, values in by_path.items():
        if _varies(values) and (shape := _shape(values)) is not None:
            marks[path] = (_numbered(shape, values), shape == "int")
            varied.append(Varied("json", path, "int" if shape == "digits" else shape))
    return marks


def _json_text(body: Any, marks: dict[str, tuple[str, bool]], filled: list[str]) -> str:
    """The body with its varied leaves as sentinels, then each sentinel as its numbered text."""
    texts: list[tuple[str, bool]] = []

    def walk(obj: Any, prefix: str) -> Any:
        if isinstance(obj, dict):
            return {k: walk(v, f"{prefix}.{k}" if prefix else str(k)) for k, v in obj.items()}
        if isinstance(obj, list):
            return [walk(v, f"{prefix}[{i}]") for i, v in enumerate(obj)]
        if prefix in marks:
            texts.append(marks[prefix])
            return f"{_S0}{len(texts) - 1}{_S1}"
        if isinstance(obj, str) and (m := _PLACEHOLDER.fullmatch(obj)):
            _note(filled, f"json {prefix}")
            return _fill(m)
        return obj

    out = json.dumps(walk(body, ""), ensure_ascii=False, separators=(",", ":"))
    for i, (text, bare) in enumerate(texts):
        out = out.replace(f'"{_S0}{i}{_S1}"' if bare else f"{_S0}{i}{_S1}", text)
    return out


# -- path segments --------------------------------------------------------------------------------

def _id_like(values: list[str]) -> str | None:
    shape = _shape(values)
    if shape in ("digits", "uuid", "hex"):
        return shape
    if shape == "str" and all(re.search(r"\d", v) and re.fullmatch(r"[\w.~-]+", v) for v in values):
        return "str"
    return None


def _vary_path(route: str, paths: list[str], varied: list[Varied]) -> dict[tuple[int, int], str]:
    """(segment count, position) -> numbered text, for the id segments that vary."""
    names = route.partition(" ")[2].split("/") if " " in route else []
    by_len: dict[int, list[list[str]]] = {}
    for p in paths:
        segs = p.split("/")
        by_len.setdefault(len(segs), []).append(segs)
    marks = {}
    for count, rows in by_len.items():
        for pos in range(count):
            values = [unquote_plus(row[pos]) for row in rows]
            if _varies(values) and (shape := _id_like(values)) is not None:
                marks[(count, pos)] = _numbered(shape, values)
                name = names[pos] if len(names) == count and names[pos] else f"segment {pos}"
                varied.append(Varied("path", name, "int" if shape == "digits" else shape))
    return marks


def _path_of(path: str, marks: dict[tuple[int, int], str]) -> str:
    segs = path.split("/")
    return "/".join(marks.get((len(segs), i), s) for i, s in enumerate(segs))
