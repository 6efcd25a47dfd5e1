"""Inside the measured process: which lines allocated what grew."""
from __future__ import annotations

from typing import Any, Iterable, Sequence

from memprobe.results.hunt import Site
from memprobe.target.usercode import is_user_file


def group_sites(diffs: Iterable[tuple[Sequence[tuple[str, int]], int, int]], requests: int,
                limit: int = 10, min_bytes: int = 1024) -> list[Site]:
    """Group traceback diffs by the first frame in the user's code (from the allocation back).

    ``diffs`` holds (frames oldest first as (file, line), size_diff, count_diff). Allocations
    with no user frame are grouped by their most recent frame. Sorted by growth, biggest first,
    the sites in the user's code before the others.
    """
    groups: dict[tuple[str, int], list[Any]] = {}
    for frames, size, count in diffs:
        if not frames:
            continue
        user_index = next((i for i in range(len(frames) - 1, -1, -1)
                           if is_user_file(frames[i][0])), None)
        key = frames[user_index] if user_index is not None else frames[-1]
        entry = groups.setdefault(tuple(key), [0, 0, None, 0, user_index is not None])
        entry[0] += size
        entry[1] += count
        if entry[2] is None or size > entry[3]:
            entry[2], entry[3] = (frames, user_index), size
    sites = []
    per = max(requests, 1)
    for (file, line), (size, count, (frames, user_index), _, user) in groups.items():
        if size < min_bytes:
            continue
        tb = [{"file": f, "line": n, "user": i == user_index} for i, (f, n) in enumerate(frames)]
        sites.append(Site(file, line, size / per, count / per, size, count, tb, user))
    # The user's own lines first: an allocation with no user frame on its stack is the
    # framework's, and often a block first allocated there and reused from a free list for an
    # object the user's code keeps (tracemalloc remembers the first allocation only).
    sites.sort(key=lambda s: (not s.user, -s.size_diff))
    return sites[:limit]
