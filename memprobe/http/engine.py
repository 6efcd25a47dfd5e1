"""Which engine sends a load: the one place memprobe chooses between its own hammer and Locust."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from memprobe.http.hammer import Hammer
from memprobe.http.load import LoadSender

if TYPE_CHECKING:
    from memprobe.http.locust_engine import LocustEngine


def sender(url: str, n: int | None = None, *, engine: LocustEngine | None = None, **options: Any) -> LoadSender:
    """The one place where the load's engine is chosen: memprobe's own
    :class:`~memprobe.http.hammer.Hammer` (``engine`` None), or Locust's workers through a
    started :class:`~memprobe.http.locust_engine.LocustEngine`; ``options`` mean the same to
    both (``concurrency``, ``timeout``, ``mode``, ``first``, ``method``, ``body``...)."""
    if engine is None:
        return Hammer(url, n, **options)
    from memprobe.http.locust_engine import LocustHammer

    return LocustHammer(url, n, engine=engine, **options)
