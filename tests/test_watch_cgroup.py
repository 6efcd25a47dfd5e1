"""The server's memory cgroup, read from fixture folders laid out as v2 and v1 mount them, and
once from this machine's real /proc/self."""
from __future__ import annotations

from pathlib import Path

from memprobe.watch.cgroup import read_cgroup


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def proc_with(tmp_path: Path, cgroup: str) -> Path:
    proc = tmp_path / "proc"
    write(proc, {"4242/cgroup": cgroup})
    return proc


def test_v2_limit_usage_breakdown_and_events(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    write(root, {
        "cgroup.controllers": "cpu memory pids\n",
        "system.slice/memory.max": "1073741824\n",  # the parent's limit binds the child's "max"
        "system.slice/app.service/memory.max": "max\n",
        "system.slice/app.service/memory.current": "536870912\n",
        "system.slice/app.service/memory.stat": "anon 400000000\nfile 100000000\nkernel 20000000\nsock 4096\n"
                                                "shmem 0\nfile_mapped 8192\npgfault 12\n",
        "system.slice/app.service/memory.events": "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n",
    })
    cg = read_cgroup(4242, proc_with(tmp_path, "0::/system.slice/app.service\n"), root)
    assert (cg.version, cg.path, cg.limit, cg.usage, cg.reason) == (2, "/system.slice/app.service",
                                                                    1073741824, 536870912, "")
    assert cg.breakdown == {"anon": 400000000, "file": 100000000, "kernel": 20000000, "sock": 4096,
                            "shmem": 0, "file_mapped": 8192}
    assert cg.events["oom_kill"] == 1 and cg.events["max"] == 3


def test_v2_without_a_kernel_key_sums_its_parts(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    write(root, {"cgroup.controllers": "memory\n", "memory.current": "100\n", "memory.max": "max\n",
                 "memory.stat": "anon 60\nfile 20\nkernel_stack 4\npagetables 6\nslab 10\n"})
    cg = read_cgroup(4242, proc_with(tmp_path, "0::/\n"), root)
    assert cg.limit is None and cg.usage == 100 and cg.breakdown["kernel"] == 20


def test_v1_limit_usage_breakdown_and_oom_kills(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    write(root, {
        "memory/docker/abc/memory.limit_in_bytes": "268435456\n",
        "memory/docker/abc/memory.usage_in_bytes": "134217728\n",
        "memory/docker/abc/memory.stat": "cache 1000\nrss 2000\ntotal_cache 30000000\ntotal_rss 90000000\n"
                                         "total_shmem 0\ntotal_mapped_file 4096\n"
                                         "hierarchical_memory_limit 9223372036854771712\n",
        "memory/docker/abc/memory.kmem.usage_in_bytes": "5000000\n",
        "memory/docker/abc/memory.kmem.tcp.usage_in_bytes": "8192\n",
        "memory/docker/abc/memory.failcnt": "7\n",
        "memory/docker/abc/memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
    })
    cg = read_cgroup(4242, proc_with(tmp_path, "12:pids:/docker/abc\n4:memory:/docker/abc\n0::/\n"), root)
    assert (cg.version, cg.limit, cg.usage) == (1, 268435456, 134217728)
    assert cg.breakdown == {"anon": 90000000, "file": 30000000, "shmem": 0, "file_mapped": 4096,
                            "kernel": 5000000, "sock": 8192}
    assert cg.events == {"max": 7, "oom_kill": 2, "under_oom": 0}


def test_a_group_of_another_namespace_reads_the_mounts_root(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    write(root, {"memory/memory.limit_in_bytes": "9223372036854771712\n", "memory/memory.usage_in_bytes": "42\n",
                 "memory/memory.stat": "hierarchical_memory_limit 1048576\n"})
    cg = read_cgroup(4242, proc_with(tmp_path, "4:memory:/elsewhere/abc\n"), root)
    assert cg.usage == 42 and cg.limit == 1048576  # the limit set above the namespace binds


def test_no_cgroup_files_say_why(tmp_path: Path) -> None:
    missing = read_cgroup(4242, tmp_path / "proc", tmp_path / "cgroup")
    assert missing.usage is None and "cannot read" in missing.reason
    unmounted = read_cgroup(4242, proc_with(tmp_path, "0::/app\n"), tmp_path / "nothing")
    assert unmounted.usage is None and "not mounted" in unmounted.reason


def test_this_machines_own_cgroup() -> None:
    cg = read_cgroup()  # the real /proc/self/cgroup and /sys/fs/cgroup
    if cg.reason:
        assert cg.usage is None
    else:
        assert cg.version in (1, 2) and cg.usage is not None and cg.usage > 0
        assert cg.limit is None or cg.limit > 0
        assert "anon" in cg.breakdown
