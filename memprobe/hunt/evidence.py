"""What a verdict may claim, given the evidence behind it (pure: no I/O, no processes).

:func:`memprobe.hunt.model.judge` answers ``leak``, ``bounded`` or ``clean`` from a series
whatever its length. This layer, applied after it, keeps a ``clean`` only where the readings
could have seen the leaks the hunt looks for, by the same test the sequential protocol stops a
flat route on (:func:`memprobe.hunt.sequential.decide`): for every signal read, no slope
:data:`~memprobe.hunt.sequential.LEAK_SIGMAS` standard errors above its floor, the slope's upper
bound under the target and the sensitivity reached (``HuntSettings.sensitivity``, 16 B/request
traced by default; the outside signal's target as many times larger as its bar in total).
A route the sequential protocol stopped as ``clean`` passed that test already and stays clean;
one the maximum (requests, seconds), the fixed rounds or Ctrl-C ended is weighed here:

* **errors** - every answer was an error (401, 404, 5xx...: no 2xx or 3xx at all): the code the
  user meant was not run, whatever the memory did (a leak or bounded growth is still said:
  memory that grows on an error path grows);
* **inconclusive** - the readings could not have seen a leak at the target (too few requests,
  too much noise: "could see 640 B/request or more"), or a signal is growing too little to call
  in the requests measured (+14.8 ± 2.1 B/request, 7 standard errors above zero, under the
  judge's 32 KiB in all): more requests would tell a leak from growth that stops;
* **clean** - the evidence holds. A slope clearly above zero that the test still passes is
  below the target the user set: the reason says so ("grew +6.0 ± 1.0 B/request, under the
  16 B/request this hunt looks for") instead of "no growth beyond noise".
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from memprobe.hunt import model
from memprobe.hunt.sequential import LEAK_SIGMAS, SIGNALS, below, clean_requests, sensitivity
from memprobe.results.hunt import Fit, Judgement, Reading, memory_name
from memprobe.units import format_bytes

__all__ = ["Weighed", "answered_only_errors", "weigh"]


@dataclass(frozen=True)
class Weighed:
    """The judgement as the evidence allows it; ``judged``: the judge's own verdict when this
    layer changed it (else None); ``advice``: the settings that would get the evidence
    (``max_seconds``, ``max_requests``, ``requests``, ``sensitivity``), for an inconclusive route."""

    judgement: Judgement
    judged: str | None = None
    advice: dict[str, Any] = field(default_factory=dict)


def answered_only_errors(statuses: Mapping[str, int]) -> bool:
    """Whether a route answered, and never with 2xx or 3xx."""
    return bool(statuses) and not any(k.startswith(("2", "3")) for k in statuses)


def weigh(judgement: Judgement, readings: Sequence[Reading], *, target: float, stopped: str | None,
          statuses: Mapping[str, int], seconds: float, memory: str = "uss",
          max_seconds: float | None = None, max_requests: int | None = None) -> Weighed:
    """The verdict ``judgement`` may keep given ``readings`` (the baseline first), the target
    (B/request, traced), why the rounds stopped (``RouteResult.stopped_because``), every answer's
    status over the route (``statuses``) and the seconds the route took; ``max_seconds`` and
    ``max_requests``: the sequential protocol's maximum (None for the fixed protocol)."""
    if judgement.verdict != "clean":
        return Weighed(judgement)
    name = memory_name(memory)
    figures = _figures(judgement, name)
    requests = readings[-1].requests - readings[0].requests if readings else 0
    if answered_only_errors(statuses):
        answers = ", ".join(f"{v:,} x {k}" for k, v in sorted(statuses.items()))
        reason = (f"every answer was an error ({answers}): the code behind the route was not "
                  f"exercised, so its memory was not measured ({figures})")
        return Weighed(replace(judgement, verdict="errors", kind=None, reason=reason), "clean")
    if stopped == "clean":
        return Weighed(judgement)  # the sequential protocol stopped on this very test
    xs = [r.requests for r in readings]
    fits = {"traced": judgement.traced, "uss": judgement.uss}
    blind: list[str] = []
    growing: list[str] = []
    unsure: list[str] = []
    for s in SIGNALS:
        ys = s.values(readings)
        if ys is None or len(ys) < 3:
            continue
        label = "traced" if s.name == "traced" else f"in {name}"
        tgt = s.target(target)
        sens = sensitivity(xs, ys, s)
        reached = len(xs) >= 4 and sens <= tgt
        if not reached:
            blind.append(f"{_amount(sens)} B/request or more {label}")
        fit = fits[s.name]
        # a signal whose own fit grew while the route is clean was explained by a later layer
        # (a server's PSS in pages its processes share): only its sensitivity is weighed here
        if fit is None or fit.verdict != "clean":
            continue
        shown = f"{fit.slope:+.1f} ± {fit.error:.1f} B/request {label}"
        if fit.error > 0 and fit.slope - model.SIGMAS * fit.error > s.floor \
                and (not reached or fit.slope - LEAK_SIGMAS * fit.error > s.floor or not below(xs, ys, tgt)):
            growing.append(f"{shown} ({fit.slope / fit.error:.0f} standard errors above zero)")
        elif reached and not below(xs, ys, tgt):
            unsure.append(f"{shown} (up to {fit.slope + model.SIGMAS * fit.error:.1f})")
    took = f"{requests:,} requests in {seconds:.0f} s"
    if not blind and not growing and not unsure:
        return Weighed(_honest(judgement, target, name))
    said = []
    if growing:
        said.append(f"growing {', '.join(growing)}, too little to call a leak or growth that stops in {took} "
                    f"(a leak must grow {format_bytes(model.TRACED_MIN_TOTAL)} in all)")
    if unsure:
        said.append(f"a leak at {_amount(target)} B/request is not ruled out: {', '.join(unsure)}")
    if blind:
        said.append(f"could see {', '.join(blind)}" + ("" if growing else f"; {took}"))
    reason = "; ".join(said) + f" ({figures})"
    advice = _advice(readings, target, requests, seconds, stopped, max_seconds, max_requests, blind)
    return Weighed(replace(judgement, verdict="inconclusive", kind=None, reason=reason), "clean", advice)


def _honest(judgement: Judgement, target: float, name: str) -> Judgement:
    """A clean judgement whose reason says the growth it saw, when a slope is clearly above
    zero but under the target (the judge's words say "no growth beyond noise")."""
    grew = []
    for s in SIGNALS:
        fit: Fit | None = getattr(judgement, s.name)
        if fit is not None and fit.error > 0 and fit.slope - model.SIGMAS * fit.error > s.floor:
            grew.append((s, fit))
    if not grew:
        return judgement
    said = ", ".join(f"{'traced' if s.name == 'traced' else name} {f.slope:+.1f} ± {f.error:.1f} B/request"
                     for s, f in grew)
    targets = ", ".join(f"{_amount(s.target(target))} B/request {'traced' if s.name == 'traced' else name}"
                        for s, _ in grew)
    return replace(judgement, reason=f"grew {said}, under the {targets} this hunt looks for (its "
                                     f"sensitivity); {_figures(judgement, name)}")


def _advice(readings: Sequence[Reading], target: float, requests: int, seconds: float, stopped: str | None,
            max_seconds: float | None, max_requests: int | None, blind: list[str]) -> dict[str, Any]:
    """The settings that would give the evidence: more time (or requests), or a coarser target."""
    need = clean_requests(target)
    factor = max(2.0, need / requests) if requests > 0 else 2.0
    out: dict[str, Any] = {}
    if max_seconds is None:  # the fixed protocol: more requests per round
        out["requests"] = _nice(max(need, requests * factor) / max(1, len(readings) - 1))
    elif stopped == "max_requests" and max_requests is not None:
        out["max_requests"] = _nice(max(need, max_requests * factor))
    else:
        out["max_seconds"] = _nice((max_seconds or seconds) * factor)
        if max_requests is not None and max_requests < need:
            out["max_requests"] = _nice(need)
    if blind:
        xs = [r.requests for r in readings]
        worst = max(sensitivity(xs, ys, s) / s.target(1.0) for s in SIGNALS
                    if (ys := s.values(readings)) is not None and len(ys) >= 3)
        if math.isfinite(worst):
            out["sensitivity"] = math.ceil(worst)
    return out


def _nice(x: float) -> int:
    """``x`` rounded up to two significant digits (4,096 -> 4,100)."""
    x = max(1.0, x)
    step = 10 ** max(0, int(math.log10(x)) - 1)
    return int(math.ceil(x / step) * step)


def _amount(b: float) -> str:
    return "∞" if not math.isfinite(b) else f"{b:,.0f}" if b >= 100 else f"{b:,.1f}"


def _figures(judgement: Judgement, name: str) -> str:
    def show(label: str, f: Fit | None) -> str:
        return f"{label} {f.slope:+.1f} ± {f.error:.1f} B/request" if f else f"{label} n/a"

    return f"{show('traced', judgement.traced)}, {show(name, judgement.uss)}"
