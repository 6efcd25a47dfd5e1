"""The server's memory cgroup, v2 or v1: the limit the OOM killer enforces, the usage it counts
(anon, page cache, kernel, socket buffers: what tracemalloc never sees) and how often it struck.

``/proc/PID/cgroup`` names the group (``0::/path`` on v2; ``N:memory:/path`` on v1). Inside a
container with its own cgroup namespace the named path may not exist under the mount: the
mount's root is then the group. A limit is the smallest one on the way up (a parent's limit
binds its children). Where there is nothing to read, the reading says why in ``reason`` and
the rest of the report goes on.
"""
from __future__ import annotations

from pathlib import Path

from memprobe.results.watch import CgroupReading

#: v1 writes "no limit" as a huge number (PAGE_COUNTER_MAX pages); anything above this is none.
UNLIMITED = 2**60
#: v2's memory.stat keys that make up the kernel's share where the "kernel" key is missing
#: (kernels before 5.18)
_KERNEL_PARTS = ("kernel_stack", "pagetables", "slab", "percpu", "sec_pagetables")
#: the breakdown's keys, v2 name -> its v1 memory.stat name
_BREAKDOWN_V1 = {"anon": "total_rss", "file": "total_cache", "shmem": "total_shmem",
                 "file_mapped": "total_mapped_file"}
_BREAKDOWN_V2 = ("anon", "file", "kernel", "sock", "shmem", "file_mapped")


def read_cgroup(pid: int | str = "self", proc: Path | str = "/proc",
                root: Path | str = "/sys/fs/cgroup") -> CgroupReading:
    """The memory cgroup of process ``pid`` (``proc`` and ``root`` are where /proc and the
    cgroup mount are: tests point them at fixture folders)."""
    proc, root = Path(proc), Path(root)
    source = proc / str(pid) / "cgroup"
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        return CgroupReading(reason=f"cannot read {source} ({err.strerror or err})")
    v1 = v2 = None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            v2 = parts[2]
        elif "memory" in parts[1].split(","):
            v1 = parts[2]
    if v1 is not None and (root / "memory").is_dir():
        return _v1(root / "memory", v1)
    if v2 is not None and (root / "cgroup.controllers").exists():
        return _v2(root, v2)
    if v1 is None and v2 is None:
        return CgroupReading(reason=f"{source} names no memory cgroup")
    return CgroupReading(path=v1 or v2 or "", reason=f"no cgroup memory files under {root} "
                                                     "(the memory controller is not mounted here)")


def _group_dir(mount: Path, path: str) -> Path:
    """The group's folder, or the mount's root when the path is another namespace's."""
    here = mount / path.lstrip("/")
    return here if here.is_dir() else mount


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    if text == "max":
        return None
    try:
        value = int(text)
    except ValueError:
        return None
    return None if value >= UNLIMITED else value


def _read_keys(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return out
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def _smallest_limit(group: Path, mount: Path, name: str) -> int | None:
    """The smallest limit from the group up to the mount (a parent's limit binds)."""
    limits = []
    here = group
    while True:
        value = _read_int(here / name)
        if value is not None:
            limits.append(value)
        if here == mount or mount not in here.parents:
            break
        here = here.parent
    return min(limits) if limits else None


def _v2(mount: Path, path: str) -> CgroupReading:
    group = _group_dir(mount, path)
    if not (group / "memory.current").exists():
        return CgroupReading(2, path, reason=f"{group} has no memory.current (the memory controller is "
                                              "not enabled for this group)")
    stat = _read_keys(group / "memory.stat")
    breakdown = {k: stat[k] for k in _BREAKDOWN_V2 if k in stat}
    if "kernel" not in stat and any(k in stat for k in _KERNEL_PARTS):
        breakdown["kernel"] = sum(stat.get(k, 0) for k in _KERNEL_PARTS)
    events = _read_keys(group / "memory.events")
    return CgroupReading(2, path, _smallest_limit(group, mount, "memory.max"), _read_int(group / "memory.current"),
                         breakdown, events)


def _v1(mount: Path, path: str) -> CgroupReading:
    group = _group_dir(mount, path)
    if not (group / "memory.usage_in_bytes").exists():
        return CgroupReading(1, path, reason=f"{group} has no memory.usage_in_bytes")
    stat = _read_keys(group / "memory.stat")
    breakdown = {k: stat[v1] if v1 in stat else stat[v1.replace("total_", "")]
                 for k, v1 in _BREAKDOWN_V1.items() if v1 in stat or v1.replace("total_", "") in stat}
    kernel = _read_int(group / "memory.kmem.usage_in_bytes")
    if kernel is not None:
        breakdown["kernel"] = kernel
    sock = _read_int(group / "memory.kmem.tcp.usage_in_bytes")
    if sock is not None:
        breakdown["sock"] = sock
    events: dict[str, int] = {}
    failcnt = _read_int(group / "memory.failcnt")
    if failcnt is not None:
        events["max"] = failcnt  # times the usage hit the limit, as v2's "max" event counts
    oom = _read_keys(group / "memory.oom_control")
    if "oom_kill" in oom:
        events["oom_kill"] = oom["oom_kill"]
    if "under_oom" in oom:
        events["under_oom"] = oom["under_oom"]
    limit = _smallest_limit(group, mount, "memory.limit_in_bytes")
    inherited = stat.get("hierarchical_memory_limit")  # what binds it, parents above the mount too
    if inherited is not None and inherited < UNLIMITED:
        limit = inherited if limit is None else min(limit, inherited)
    return CgroupReading(1, path, limit, _read_int(group / "memory.usage_in_bytes"), breakdown, events)
