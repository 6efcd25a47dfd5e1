"""Readings of a process's memory from the outside, with psutil.

``rss``/``vms`` are cheap (``/proc/PID/statm``). ``uss``/``pss``/``swap`` walk the address space
(``smaps_rollup``, ~0.4 ms for a small server here, far more on older kernels without it), so the
full reading is taken at phase boundaries and by the background :class:`Sampler` only when it is
measured to be cheap.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import psutil

from memprobe.errors import EnvironmentProblem, MemprobeError, TargetError

#: The fields of a full reading, in bytes.
FIELDS = ("rss", "vms", "uss", "pss", "swap")


@dataclass(frozen=True)
class MemoryReading:
    """One process's memory at one moment, in bytes; ``uss``/``pss``/``swap`` are ``None``
    where the platform or the permissions do not give them."""

    rss: int
    vms: int
    uss: int | None = None
    pss: int | None = None
    swap: int | None = None
    t: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The reading as the JSON contract has it (bytes, and ``t`` in monotonic seconds)."""
        return dataclasses.asdict(self)

    def delta(self, later: MemoryReading) -> dict[str, int | None]:
        """``later - self`` per field (None where either side lacks it)."""
        out: dict[str, int | None] = {}
        for name in FIELDS:
            a, b = getattr(self, name), getattr(later, name)
            out[name] = None if a is None or b is None else b - a
        return out


def _full(proc: psutil.Process) -> tuple[int | None, int | None, int | None]:
    # psutil 8 deprecates memory_full_info() in favour of memory_footprint().
    footprint = getattr(proc, "memory_footprint", None)
    info = footprint() if footprint is not None else proc.memory_full_info()
    return getattr(info, "uss", None), getattr(info, "pss", None), getattr(info, "swap", None)


def read_memory(pid: int, full: bool = True) -> MemoryReading:
    """Read process ``pid``'s memory; ``full=False`` skips the costly uss/pss/swap."""
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            info = proc.memory_info()
            uss = pss = swap = None
            if full:
                try:
                    uss, pss, swap = _full(proc)
                except psutil.AccessDenied:
                    pass
        return MemoryReading(info.rss, info.vms, uss, pss, swap, time.monotonic())
    except psutil.NoSuchProcess:
        raise TargetError(f"process {pid} is gone") from None
    except psutil.AccessDenied:
        raise EnvironmentProblem(f"not allowed to read the memory of process {pid}") from None


@dataclass(frozen=True)
class TreeReading:
    """A process and its descendants (a gunicorn master and its workers)."""

    root: int
    processes: dict[int, MemoryReading]

    @property
    def total(self) -> MemoryReading:
        """Field-wise sum over the tree. RSS double-counts shared pages; PSS does not."""
        sums: dict[str, int | None] = {}
        for name in FIELDS:
            values = [getattr(r, name) for r in self.processes.values()]
            sums[name] = None if any(v is None for v in values) else sum(values)
        return MemoryReading(t=max((r.t for r in self.processes.values()), default=0.0), **sums)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        """JSON form: the total plus one entry per process."""
        return {
            "total": self.total.to_dict(),
            "processes": {str(pid): r.to_dict() for pid, r in self.processes.items()},
        }


def read_tree(pid: int, full: bool = True) -> TreeReading:
    """Read ``pid`` and every descendant still alive."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        raise TargetError(f"process {pid} is gone") from None
    readings = {pid: read_memory(pid, full)}
    for child in children:
        try:
            readings[child.pid] = read_memory(child.pid, full)
        except TargetError:
            continue  # a worker that exited between listing and reading
    return TreeReading(pid, readings)


@dataclass
class Series:
    """A bounded time series of readings: when full, every other point is dropped and the
    sampling stride doubles, so a run of any length costs the same memory."""

    capacity: int = 1024
    t: list[float] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)
    uss: list[int | None] = field(default_factory=list)
    stride: int = 1
    _skipped: int = 0

    def add(self, t: float, requests: int, rss: int, uss: int | None) -> None:
        """Append one point (or skip it, following the current stride)."""
        self._skipped += 1
        if self._skipped < self.stride:
            return
        self._skipped = 0
        self.t.append(t)
        self.requests.append(requests)
        self.rss.append(rss)
        self.uss.append(uss)
        if len(self.t) >= self.capacity:
            for column in (self.t, self.requests, self.rss, self.uss):
                del column[1::2]
            self.stride *= 2

    def to_dict(self) -> dict[str, Any]:
        """Columns: ``t_s`` seconds since the first point, ``requests`` done, ``rss``/``uss`` bytes;
        ``started``: the first point's time, in seconds since the epoch (None with no point)."""
        t0 = self.t[0] if self.t else 0.0
        started = round(time.time() - (time.monotonic() - t0), 4) if self.t else None
        return {
            "started": started,
            "t_s": [round(x - t0, 4) for x in self.t],
            "requests": list(self.requests),
            "rss": list(self.rss),
            "uss": list(self.uss),
        }


def _cost_of_full_reading(proc: psutil.Process, tries: int = 3) -> float:
    """The fastest of ``tries`` full readings, in seconds: one slow read on a busy machine
    must not decide for the whole run."""
    best = float("inf")
    for _ in range(tries):
        t0 = time.perf_counter()
        _full(proc)
        best = min(best, time.perf_counter() - t0)
    return best


class Sampler:
    """Reads a process's memory every ``interval`` seconds in a background thread.

    ``progress`` tells how many requests are done at each reading, so memory can be plotted
    against requests and not only time. USS is included when one full reading costs less than
    ``uss_budget`` seconds (measured once at start). With ``tree``, each point is the sum over
    the process and its descendants (a gunicorn master and its workers).

    A sampler that stops early (the process died, a bug in ``progress``) keeps the cause in
    :attr:`error` and says so in :attr:`died`; the points read until then stay in the series.
    Put :attr:`died` in the result: a series that ends early must not look complete.
    """

    def __init__(
        self,
        pid: int,
        *,
        interval: float = 0.05,
        progress: Callable[[], int] = lambda: 0,
        uss_budget: float = 0.005,
        capacity: int = 1024,
        tree: bool = False,
    ) -> None:
        self.pid = pid
        self.interval = interval
        self.progress = progress
        self.series = Series(capacity)
        self.tree = tree
        self.error: BaseException | None = None
        self._started = 0.0
        self._stopped_at: float | None = None
        try:
            self._proc = psutil.Process(pid)
        except psutil.NoSuchProcess:
            raise TargetError(f"process {pid} is gone") from None
        try:
            self.with_uss = _cost_of_full_reading(self._proc) < uss_budget
        except (psutil.AccessDenied, psutil.NoSuchProcess):
            self.with_uss = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memprobe-sampler", daemon=True)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                rss, uss = self._read()
                self.series.add(time.monotonic(), self.progress(), rss, uss)
                self._stop.wait(self.interval)
        except psutil.NoSuchProcess:
            self._fail(TargetError(f"process {self.pid} is gone"))
        except psutil.AccessDenied:
            self._fail(EnvironmentProblem(f"not allowed to read the memory of process {self.pid}"))
        except Exception as err:  # a bug must not vanish with its thread: died reports it
            self._fail(err)

    def _fail(self, err: BaseException) -> None:
        self.error = err
        self._stopped_at = time.monotonic()

    @property
    def stopped(self) -> dict[str, Any] | None:
        """When and why the sampler stopped before it was asked to, or None if it did not:
        ``t_s`` on the series' own clock (seconds since its first point), ``points`` kept,
        ``why``. This is what results keep as ``samples.stopped``."""
        if self.error is None:
            return None
        err = self.error
        why = str(err) if isinstance(err, MemprobeError) else f"{type(err).__name__}: {err}"
        t0 = self.series.t[0] if self.series.t else self._started
        at = (self._stopped_at or time.monotonic()) - t0
        return {"t_s": round(at, 3), "points": len(self.series.t), "why": why}

    @property
    def died(self) -> str | None:
        """:attr:`stopped` in words, or None if the sampler did not stop early."""
        stopped = self.stopped
        if stopped is None:
            return None
        return (f"the memory sampler stopped at t={stopped['t_s']:.1f} s after {stopped['points']} points: "
                f"{stopped['why']}")

    def join(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` s for the sampling thread to end by itself; whether it did."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _read(self) -> tuple[int, int | None]:
        procs = [self._proc]
        if self.tree:
            procs += self._proc.children(recursive=True)
        rss, uss = 0, 0 if self.with_uss else None
        for proc in procs:
            try:
                rss += proc.memory_info().rss
                if uss is not None:
                    uss += _full(proc)[0] or 0
            except psutil.NoSuchProcess:
                if proc is self._proc:
                    raise
        return rss, uss

    def __enter__(self) -> Sampler:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class _Stillness:
    """The settle rule, written once: a value is settled when a reading at least ``quiet_s``
    after its last change (the first reading counts as a change) saw it unchanged."""

    def __init__(self, quiet_s: float) -> None:
        self.quiet_s = quiet_s
        self.last: int | None = None
        self.changed_at = 0.0
        self.confirmed_at = 0.0

    def observe(self, value: int, t: float) -> None:
        """One reading, taken at ``t``."""
        if value != self.last:
            self.last, self.changed_at = value, t
        self.confirmed_at = t

    def still(self) -> bool:
        """Whether the readings so far show the value unchanged for ``quiet_s``."""
        return self.last is not None and self.confirmed_at - self.changed_at >= self.quiet_s


def _rss(pid: int, proc: psutil.Process, tree: bool) -> int:
    return read_tree(pid, full=False).total.rss if tree else int(proc.memory_info().rss)


def settle(pid: int, max_s: float, quiet_s: float = 0.3, poll_s: float = 0.05,
           tree: bool = False) -> float:
    """Wait until ``pid``'s RSS (with ``tree``, summed with its descendants') has not changed
    for ``quiet_s`` seconds, at most ``max_s``.

    A fixed sleep (the seed's 2 s) is either too short for a server still importing or wasted
    time for one that is idle; returns the seconds waited. :class:`SettleWatch` applies the
    same rule while the caller does something else.
    """
    start = time.monotonic()
    proc = psutil.Process(pid)
    rule = _Stillness(quiet_s)
    while True:
        now = time.monotonic()
        if now - start >= max_s:
            return now - start
        try:
            rss = _rss(pid, proc, tree)
        except psutil.NoSuchProcess:
            raise TargetError(f"process {pid} is gone") from None
        rule.observe(rss, now)
        if rule.still():
            return now - start
        time.sleep(poll_s)


class SettleWatch:
    """:func:`settle`'s rule for one process, watched by a background thread, so that the quiet
    time can pass while the caller measures another process.

    The thread reads RSS every ``poll_s`` seconds. :meth:`restart` begins a new settle (after
    readiness, a warm-up, a load: nothing read before it counts as quiet); :meth:`wait` then
    returns as :func:`settle` called at the restart would have: once a reading at least
    ``quiet_s`` after the last change saw the same RSS, or ``max_s`` after the restart. The
    thread only reads RSS (``/proc/PID/statm``): it costs the process it watches nothing.
    """

    def __init__(self, pid: int, *, quiet_s: float = 0.3, poll_s: float = 0.05, tree: bool = False) -> None:
        self.pid = pid
        self.quiet_s = quiet_s
        self.poll_s = poll_s
        self.tree = tree
        try:
            self._proc = psutil.Process(pid)
        except psutil.NoSuchProcess:
            raise TargetError(f"process {pid} is gone") from None
        self._rule = _Stillness(quiet_s)
        self._restarted = time.monotonic()
        self._error: MemprobeError | None = None
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"memprobe-settle-{pid}", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            t = time.monotonic()
            try:
                rss = _rss(self.pid, self._proc, self.tree)
            except (psutil.NoSuchProcess, TargetError):
                self._fail(TargetError(f"process {self.pid} is gone"))
                return
            except psutil.AccessDenied:
                self._fail(EnvironmentProblem(f"not allowed to read the memory of process {self.pid}"))
                return
            with self._changed:
                if t >= self._restarted:  # a reading begun before a restart belongs to the old settle
                    self._rule.observe(rss, t)
                    self._changed.notify_all()
            self._stop.wait(self.poll_s)

    def _fail(self, err: MemprobeError) -> None:
        with self._changed:
            self._error = err
            self._changed.notify_all()

    def restart(self) -> None:
        """Begin a new settle now: only readings from now on can show the process quiet."""
        with self._changed:
            self._rule = _Stillness(self.quiet_s)
            self._restarted = time.monotonic()

    def wait(self, max_s: float) -> float:
        """Block until the process has settled since the last :meth:`restart`, or until
        ``max_s`` seconds after it; the seconds since the restart. :class:`TargetError` if the
        process is gone."""
        with self._changed:
            while True:
                if self._error is not None:
                    raise self._error
                if self._stop.is_set():
                    raise TargetError(f"stopped watching process {self.pid}")
                waited = time.monotonic() - self._restarted
                if self._rule.still() or waited >= max_s:
                    return waited
                self._changed.wait(max(0.0, min(self.poll_s * 2, max_s - waited)))

    def __enter__(self) -> SettleWatch:
        self.restart()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        with self._changed:
            self._changed.notify_all()  # a wait() in another thread ends now
        self._thread.join()
