"""A request rate learnt from a provider that sends no rate-limit headers: learnt at a breach from
the rate served, paced at, cut on the next breach, climbed back along a cubic curve and probed
beyond; given up for the provider's own limits once it reports them."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

import fanfold as ff
from fanfold._governor import ProviderResource
from fanfold._pacing import Bucket, LearntPace


def serve(resource: ProviderResource, start: float, seconds: float, per_second: float) -> float:
    """Successful answers at ``per_second`` from ``start`` for ``seconds``; the time after."""
    now = start
    for _ in range(round(seconds * per_second)):
        now += 1.0 / per_second
        resource.succeeded(0.5, {}, now)
    return now


def breach(resource: ProviderResource, now: float, count: int = 12) -> float:
    """A burst of 429s (a provider past its limit refuses all that arrives); the time after."""
    for _ in range(count):
        now += 0.01
        resource.throttled(1.0, {}, now)
    return now


def test_without_headers_a_breach_teaches_the_rate_served_and_admissions_are_paced_at_it() -> None:
    resource = ProviderResource("m", ff.RateLimit(), now=0.0)
    assert resource.pace is None  # nothing known: concurrency adapts
    assert not resource.buckets
    now = serve(resource, 0.0, 4.0, per_second=10.0)
    now = breach(resource, now)
    assert resource.pace is not None
    assert math.isclose(resource.pace.peak, 10.0, rel_tol=0.05)  # 40 served in the last 4 s
    rate = resource.buckets["requests"].per_minute / 60
    assert math.isclose(rate, LearntPace.DECREASE * resource.pace.peak, rel_tol=0.05)
    assert resource.cap == ff.RateLimit().max_concurrency  # the pace governs, not a concurrency cap
    # After the pause, calls are admitted one by one at the learnt rate, not all at once.
    later = resource.paused_until + 1.0
    admitted = 0
    while resource.wait(None, later) == 0.0:
        resource.take(None)
        admitted += 1
    assert 1 <= admitted <= rate  # what the bucket held: at most a second of the pace
    assert 0 < resource.wait(None, later) <= 1.0 / (rate * 0.9)


def test_a_provider_that_says_its_limits_replaces_the_learnt_pace() -> None:
    resource = ProviderResource("m", ff.RateLimit(), now=0.0)
    breach(resource, serve(resource, 0.0, 4.0, per_second=10.0))
    assert resource.pace is not None
    resource.succeeded(0.5, {"requests": 1_200.0}, now=10.0)
    assert resource.pace is None
    assert resource.buckets["requests"].per_minute == 1_200


def test_configured_limits_are_never_replaced_by_a_learnt_pace() -> None:
    resource = ProviderResource("m", ff.RateLimit(requests_per_minute=600), now=0.0)
    breach(resource, serve(resource, 0.0, 4.0, per_second=10.0))
    assert resource.pace is None
    assert resource.buckets["requests"].per_minute == 600
    assert ProviderResource("m", ff.RateLimit(learn=False), now=0.0).pace is None


def test_while_paced_a_429_after_quiet_answers_is_a_breach_that_cuts_the_pace() -> None:
    resource = ProviderResource("m", ff.RateLimit(), now=0.0)
    now = breach(resource, serve(resource, 0.0, 4.0, per_second=10.0))
    pace = resource.pace
    assert pace is not None
    first = pace.peak
    now = serve(resource, resource.paused_until, 3.0, per_second=8.0)  # quiet answers at the pace
    assert resource.throttled(1.0, {}, now + 0.01) == 1.0  # one 429 is the limit met again: pause
    assert pace.peak < first  # the new peak: what was served since the pause, below the old one
    # Its own echoes (calls sent before the pause was known) do not cut it again.
    peak = pace.peak
    assert resource.throttled(1.0, {}, now + 0.02) >= 0.0
    assert pace.peak == peak


def test_while_paced_random_429s_among_the_answers_are_judged_by_a_burst() -> None:
    # A storm of random 429s (one answer in four) that once looked like a breach: the pace is
    # learnt, but the 429s that keep coming at random are isolated, and pause nothing.
    resource = ProviderResource("m", ff.RateLimit(), now=0.0)
    now = 0.0
    for _ in range(30):
        now = serve(resource, now, 0.03, per_second=100.0)
        now += 0.01
        resource.throttled(1.0, {}, now)
    now = breach(resource, now)
    assert resource.pace is not None
    now = resource.paused_until
    pauses = []
    for _ in range(30):
        now = serve(resource, now, 0.03, per_second=100.0)
        now += 0.01
        pauses.append(resource.throttled(1.0, {}, now))
    assert pauses == [0.0] * 30


@given(peak=st.floats(0.1, 10_000.0), elapsed=st.floats(0.0, 60.0), more=st.floats(0.0, 60.0))
def test_the_pace_climbs_back_to_its_peak_then_probes_beyond_ever_faster(
    peak: float, elapsed: float, more: float
) -> None:
    pace = LearntPace(peak, now=0.0)
    assert math.isclose(pace.per_second(0.0), LearntPace.DECREASE * peak)
    assert math.isclose(pace.per_second(LearntPace.PLATEAU), peak)
    assert pace.per_second(elapsed + more) >= pace.per_second(elapsed)  # it never falls without a breach
    # A limit raised to twice the last peak (a restored limit) is reached within 10 s of a breach.
    assert pace.per_second(10.0) >= 2 * peak


def test_a_level_a_rounding_error_short_of_a_call_admits_it() -> None:
    # A resized bucket can be left at 0.9999999999999999: the wait for the rest is shorter than
    # any clock can pass, and a waiter woken for it would never be admitted (a run hung so).
    bucket = Bucket(per_minute=600, burst=1.0, now=0.0)
    bucket.level = 0.9999999999999999
    assert bucket.wait(1.0, 0.0) == 0.0
    bucket.level = 0.99
    assert bucket.wait(1.0, 0.0) > 0.0
