"""No false leak: the five frameworks' hello-worlds (frameworks/) hunted with the defaults."""
from __future__ import annotations

import pytest

from memprobe.compare import frameworks as catalog
from memprobe.hunt import hunt


@pytest.mark.slow
@pytest.mark.parametrize("framework", catalog.DEFAULT_NAMES)
def test_a_hello_world_is_never_called_a_leak(framework: str) -> None:
    fw = catalog.get(framework)
    if not fw.installed():
        pytest.skip(f"{framework} is not installed: {fw.install_hint()}")
    result = hunt(fw.hello_target, routes=["/"], cwd=catalog.frameworks_dir())
    route = result.routes[0]
    assert route.verdict == "clean", route.judgement.reason
    assert route.load["ok"] == route.load["sent"] > 0
    assert not result.leaked
