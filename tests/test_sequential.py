"""When the sequential protocol stops a route, on fake series read after each small round
(no processes): the rule of :mod:`memprobe.hunt.sequential`, reading by reading."""
from __future__ import annotations

import random
from collections.abc import Callable

from memprobe.hunt.sequential import Decision, clean_requests, decide
from memprobe.results.hunt import Reading

ROUND = 250
#: The noise of a reading here: a clean Flask route's traced heap moves by a few hundred
#: bytes between readings, its USS by a few pages.
TRACED_NOISE, USS_NOISE = 300.0, 8192.0


def run(traced: Callable[[int], float], uss: Callable[[int], float] = lambda n: 0.0,
        rounds: int = 40, seed: int = 1) -> tuple[int, Decision | None]:
    """Feed one reading per round to ``decide`` until it answers: the requests it took and
    its decision (None when it never did within ``rounds``). ``traced``, ``uss``: bytes grown
    after n requests."""
    rng = random.Random(seed)
    readings = [Reading(0, 1_000_000, 30_000_000)]
    for i in range(1, rounds + 1):
        n = i * ROUND
        readings.append(Reading(n, 1_000_000 + int(traced(n) + rng.gauss(0, TRACED_NOISE)),
                                30_000_000 + int(uss(n) + rng.gauss(0, USS_NOISE))))
        decision = decide(readings)
        if decision is not None:
            return n, decision
    return rounds * ROUND, None


def test_a_flat_route_is_clean_once_a_leak_at_the_target_would_have_shown() -> None:
    n, decision = run(lambda n: 0.0)
    assert decision is not None and decision.because == "clean"
    assert clean_requests() <= n <= 2 * clean_requests()


def test_one_small_int_per_request_is_a_leak_soon_after_the_requests_a_clean_verdict_needs() -> None:
    n, decision = run(lambda n: 36.0 * n)
    assert decision is not None and (decision.because, decision.judgement.kind) == ("leak", "python")
    assert n <= 2 * clean_requests()


def test_a_native_leak_is_called_on_uss_while_the_heap_stays_flat() -> None:
    _, decision = run(lambda n: 0.0, lambda n: 1024.0 * n)
    assert decision is not None and (decision.because, decision.judgement.kind) == ("leak", "native")


def test_a_cache_that_fills_for_its_first_3000_requests_is_never_called_a_leak() -> None:
    # Tornado's re cache churning 2,000 patterns: +12 B/request, then flat (~36 KiB in all).
    n, decision = run(lambda n: 12.0 * min(n, 3000), rounds=60)
    assert decision is None or decision.because != "leak", (n, decision)


def test_one_pointer_per_request_is_never_called_clean() -> None:
    # _seen.append(None): 8 B/request, below the target but not flat.
    for seed in range(5):
        n, decision = run(lambda n: 8.0 * n, rounds=40, seed=seed)
        assert decision is None or decision.because == "leak", (seed, n, decision)


def test_a_signal_at_three_standard_errors_keeps_a_clear_leak_measuring() -> None:
    # A clear USS leak, and a traced heap whose slope the judge counts as a leak too but
    # not clearly: called now, the kind would be "mixed" on noise. More readings settle it.
    readings = [Reading(0, 1_000_000, 30_000_000)]
    rng = random.Random(3)
    for i in range(1, 11):
        n = i * ROUND
        readings.append(Reading(n, 1_000_000 + int(17 * n + rng.gauss(0, 6000)),
                                30_000_000 + 1024 * n))
    decision = decide(readings)
    fits = decision.judgement if decision else None
    assert decision is None, (fits.traced if fits else None)
