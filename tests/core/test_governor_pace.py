"""A limit learnt from a provider that sends no rate-limit headers.

Its 429s are judged by when the refused calls were sent: calls refused in a row (longer than
chance gives at the share of 429s seen) are the limit met, a burst of them too, and while paced
the first 429 after quiet; random ones are scattered among served calls at any rate. At each
breach a request rate is learnt from what the provider let through; it paces admissions, is
cut on the next breach, climbs back along a cubic curve and probes beyond; it is given up for
the provider's own limits once it reports them.
"""

from __future__ import annotations

import asyncio
import math
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fanfold as ff
from fanfold._governor import ProviderResource
from fanfold._limits import Admission, ConcurrencyLimiter
from fanfold._pacing import Bucket, LearntPace, Sends
from fanfold.testing import VirtualClock

EXAMPLES = int(os.environ.get("FANFOLD_EXAMPLES", "60"))


def serve(resource: ProviderResource, start: float, seconds: float, per_second: float) -> float:
    """Calls sent at ``per_second`` from ``start`` for ``seconds``, each answered at once; the
    time after."""
    now = start
    for _ in range(round(seconds * per_second)):
        now += 1.0 / per_second
        resource.take(None, now)
        resource.succeeded(0.5, {}, now)
        resource.release(None, None)
    return now


def refuse(resource: ProviderResource, now: float, retry_after: float = 1.0, sent: float | None = None) -> float:
    """A call sent at ``sent`` (default: ``now``) and answered 429 at ``now``: the pause it
    brought everyone (0: none)."""
    if sent is None:
        resource.take(None, now)
    pause = resource.throttled(retry_after, {}, now, sent=now if sent is None else sent)
    resource.release(None, {"rejected": 1.0})
    return pause


def breach(resource: ProviderResource, now: float, retry_after: float = 1.0) -> float:
    """Calls sent and refused in a row (a provider past its limit refuses all that arrives)
    until the resource pauses; the time it did."""
    breaches = resource.breaches
    while resource.breaches == breaches:
        now += 0.01
        refuse(resource, now, retry_after)
    return now


def paced(peak: float = 10.0, retry_after: float = 1.0) -> tuple[ProviderResource, float]:
    """A resource that learnt a pace at a breach after 4 s served at ``peak``; the time its
    pause ended."""
    resource = ProviderResource("m", ff.RateLimit(), now=0.0)
    breach(resource, serve(resource, 0.0, 4.0, per_second=peak), retry_after)
    assert resource.pace is not None
    return resource, resource.paused_until


def test_without_headers_a_breach_teaches_the_rate_served_and_admissions_are_paced_at_it() -> None:
    resource = ProviderResource("m", ff.RateLimit(), now=0.0)
    assert resource.pace is None  # nothing known: concurrency adapts
    assert not resource.buckets
    now = serve(resource, 0.0, 4.0, per_second=10.0)
    assert refuse(resource, now + 0.01) == 0.0  # one 429: it may be a random one
    breach(resource, now + 0.01)
    assert resource.pace is not None
    assert math.isclose(resource.pace.peak, 10.0, rel_tol=0.05)  # 40 served in the last 4 s
    rate = resource.buckets["requests"].per_minute / 60
    assert math.isclose(rate, LearntPace.DECREASE * resource.pace.peak, rel_tol=0.05)
    assert resource.cap == ff.RateLimit().max_concurrency  # the pace governs, not a concurrency cap
    # After the pause, calls are admitted one by one at the learnt rate, not all at once.
    later = resource.paused_until + 1.0
    admitted = 0
    while resource.wait(None, later) == 0.0:
        resource.take(None, later)
        admitted += 1
    assert 1 <= admitted <= rate  # what the bucket held: at most a second of the pace
    assert 0 < resource.wait(None, later) <= 1.0 / (rate * 0.9)


def test_a_provider_that_says_its_limits_replaces_the_learnt_pace() -> None:
    resource, _ = paced()
    resource.succeeded(0.5, {"requests": 1_200.0}, now=10.0)
    assert resource.pace is None
    assert resource.buckets["requests"].per_minute == 1_200


def test_configured_limits_are_never_replaced_by_a_learnt_pace() -> None:
    resource = ProviderResource("m", ff.RateLimit(requests_per_minute=600), now=0.0)
    breach(resource, serve(resource, 0.0, 4.0, per_second=10.0))
    assert resource.pace is None
    assert resource.buckets["requests"].per_minute == 600
    assert ProviderResource("m", ff.RateLimit(learn=False), now=0.0).pace is None


def test_calls_refused_in_a_row_are_the_limit_met_and_a_call_sent_among_them_breaks_the_row() -> None:
    resource = ProviderResource("m", ff.RateLimit(), now=0.0)
    now = serve(resource, 0.0, 5.0, per_second=20.0)  # 100 calls served: 429s are rare here
    assert refuse(resource, now + 0.1) == 0.0  # one alone: a random one
    resource.take(None, now + 0.2)  # a call sent between two refused ones, still in flight
    assert refuse(resource, now + 0.3) == 0.0
    assert refuse(resource, now + 0.4) == 0.0  # two in a row: chance gives that one time in 40
    assert refuse(resource, now + 0.5) == 1.0  # three: the limit is met, everyone pauses
    assert resource.breaches == 1


def test_the_row_that_says_limit_is_longer_where_429s_come_often_at_random() -> None:
    resource = ProviderResource("m", ff.RateLimit(), now=0.0)
    now = 0.0
    for _ in range(25):  # one call in four refused, at random: 25 of the last 100
        now = serve(resource, now, 0.15, per_second=20.0)
        now += 0.05
        assert refuse(resource, now) == 0.0
    now = serve(resource, now, 0.05, per_second=20.0)
    # A row as long as one in four gives by chance more often than once in 500 is no breach
    # (spread out, so that no burst of them decides instead).
    pauses = [refuse(resource, now + 0.2 * (i + 1)) for i in range(6)]
    assert pauses[:4] == [0.0] * 4
    assert 1.0 in pauses[4:]  # 0.25 ** 4 < 1 / 250: five or six in a row are the limit


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    gaps=st.lists(st.sampled_from([0.0, 0.001, 0.01, 0.1]), min_size=1, max_size=200),
    refused=st.lists(st.booleans(), min_size=200, max_size=200),
)
def test_429s_never_two_in_a_row_are_never_a_row(gaps: list[float], refused: list[bool]) -> None:
    sends = Sends()
    now, previous = 1.0, False
    for gap, no in zip(gaps, refused, strict=False):
        now += gap
        sends.add(now)
        if no and not previous:
            sends.refuse(now)
            sends.isolated(now)
            assert sends.in_a_row()[0] <= 1
            assert not sends.limit_met()
        previous = no and not previous


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=st.lists(st.booleans(), max_size=150), row=st.integers(1, 12))
def test_calls_refused_in_a_row_are_counted_whatever_came_before(history: list[bool], row: int) -> None:
    sends = Sends()
    now = 0.0
    for no in history:  # any history, even one where most calls were refused at random
        now += 0.05
        sends.add(now)
        if no:
            sends.refuse(now)
            sends.isolated(now)
    for _ in range(row):
        now += 0.05
        sends.add(now)
        sends.refuse(now)
    assert sends.in_a_row()[0] >= min(row, Sends.LONGEST)
    if row >= Sends.LONGEST:
        assert sends.limit_met()  # the longest row looked for is the limit, however common 429s are


def test_calls_sent_a_moment_apart_are_still_in_a_row_or_not() -> None:
    # An answer frees two places as the window doubles: calls go out in pairs, a moment apart.
    sends = Sends()
    for when in (1.0, 1.0001, 1.2, 1.2001, 1.4, 1.4001):
        sends.add(when)
    for when in (1.0001, 1.2, 1.2001):  # the first of the first pair was served
        sends.refuse(when)
    assert sends.in_a_row() == (3, 1.0001)
    sends.refuse(1.4001)  # the first of the last pair was not refused (yet): a new row
    assert sends.in_a_row() == (1, 1.4001)


def test_the_limiter_stamps_each_call_with_the_send_its_resource_recorded(clock: VirtualClock) -> None:
    # The call tells its resource when it was sent with the provider's answer: the very time
    # the resource recorded, however long its task took to resume after the limiter woke it.
    async def main() -> None:
        limiter = ConcurrencyLimiter(ff.Limits())
        resource = limiter.meter("m")
        resource.cap = 1.0
        first, second = Admission(resources=("m",)), Admission(resources=("m",))
        await limiter.acquire(first)
        async with asyncio.TaskGroup() as group:
            group.create_task(limiter.acquire(second))
            await asyncio.sleep(0.5)
            limiter.release(first)  # wakes the second call, which resumes later
        assert [first.sent, second.sent] == list(resource.sends.sent) == [0.0, 0.5]
        limiter.release(second)

    asyncio.run(main())


def test_a_row_broken_by_a_breach_is_two_rows() -> None:
    # The pause after a breach sends nothing: the first call refused after it must not be
    # counted in one row with those that made the breach (a storm of random 429s would then
    # pause everyone again and again).
    resource, resumed = paced()
    assert refuse(resource, resumed + 0.1) == 0.0
    assert refuse(resource, resumed + 0.2) == 0.0
    assert refuse(resource, resumed + 0.3) == 1.0  # a row of its own


def test_while_paced_the_first_429_after_quiet_sends_is_a_breach_that_cuts_the_pace() -> None:
    resource, resumed = paced()
    pace = resource.pace
    assert pace is not None
    first = pace.peak
    now = serve(resource, resumed, 3.0, per_second=8.0)  # 24 calls sent at the pace, none refused
    assert refuse(resource, now + 0.01) == 1.0  # one 429 is the limit met again: pause
    assert pace.peak < first  # the new peak: what was accepted since the last breach
    # Its own echoes (calls sent before the pause was known) do not cut it again.
    peak = pace.peak
    assert refuse(resource, now + 0.02, sent=now) == 0.0
    assert pace.peak == peak


def test_a_429_after_a_pause_is_not_quiet_however_many_answers_came_during_it() -> None:
    # Calls in flight when the limit was met are answered during the pause: 30 answers without
    # a 429, but the calls *sent* last were refused. A random 429 after the pause is no breach.
    resource = ProviderResource("m", ff.RateLimit(), now=0.0)
    now = serve(resource, 0.0, 4.0, per_second=10.0)
    in_flight = [now + 0.01 * i for i in range(30)]
    for sent in in_flight:
        resource.take(None, sent)
    now = breach(resource, in_flight[-1])
    assert resource.pace is not None
    for sent in in_flight:
        resource.succeeded(0.5, {}, sent + 0.5)
        resource.release(None, None)
    assert refuse(resource, resource.paused_until + 0.1) == 0.0


def test_429s_that_come_back_before_the_answers_to_calls_sent_with_them_are_no_burst() -> None:
    # One call in four refused at random, at once, while the others are answered after half a
    # second: in the first half second the answers are all 429s, the calls sent are not.
    resource = ProviderResource("m", ff.RateLimit(), now=0.0)
    answers: list[float] = []
    pauses = []
    for i in range(200):
        now = i / 100
        while answers and answers[0] <= now:
            resource.succeeded(0.5, {}, answers.pop(0))
            resource.release(None, None)
        if i % 4 == 3:
            pauses.append(refuse(resource, now))
        else:
            resource.take(None, now)
            answers.append(now + 0.5)
    assert pauses == [0.0] * 50
    assert resource.breaches == 0


def test_an_echo_of_a_breach_that_asks_a_longer_wait_lengthens_the_pause() -> None:
    resource, resumed = paced()
    now = serve(resource, resumed, 3.0, per_second=8.0)
    assert refuse(resource, now, retry_after=0.2) == 0.2  # the limit met: a pause of 0.2 s
    # A call sent with it, refused a moment later: the limit is in more debt than 0.2 s.
    assert refuse(resource, now + 0.005, retry_after=0.5, sent=now) == 0.0
    assert math.isclose(resource.paused_until, now + 0.505)


def test_a_breach_learns_the_rate_the_provider_accepted_since_the_last_one() -> None:
    # The limit dropped: 20 calls a second are sent, one in three refused (never in a row).
    resource, resumed = paced(peak=20.0, retry_after=0.1)
    pace = resource.pace
    assert pace is not None
    before = LearntPace(pace.peak, pace.breached)
    now = resumed
    for i in range(40):
        now += 1 / 20
        if i % 3 == 1:
            refuse(resource, now)
        else:
            serve(resource, now - 1 / 20, 1 / 20, per_second=20.0)
    met = breach(resource, now)  # then the limit met: refused in a row
    assert met - now >= 0.03
    accepted = (40 - 13) / (met - before.breached)  # the pause after the last breach included
    assert 0.5 * before.per_second(met) < accepted < before.per_second(met)  # neither bound decides
    assert math.isclose(pace.peak, accepted, rel_tol=0.01)


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


@given(peak=st.floats(0.1, 10_000.0), elapsed=st.floats(0.0, 20.0), served=st.floats(0.0, 100_000.0))
def test_a_breach_takes_what_was_served_as_the_peak_but_never_cuts_below_half_the_pace(
    peak: float, elapsed: float, served: float
) -> None:
    pace = LearntPace(peak, now=0.0)
    rate = pace.per_second(elapsed)
    pace.breach(served, elapsed)
    assert 0.5 * rate <= pace.peak <= max(rate, 1 / 60)  # one breach never cuts deeper than half
    if 0.5 * rate <= served <= rate:
        assert pace.peak == served


def test_a_level_a_rounding_error_short_of_a_call_admits_it() -> None:
    # A resized bucket can be left at 0.9999999999999999: the wait for the rest is shorter than
    # any clock can pass, and a waiter woken for it would never be admitted (a run hung so).
    bucket = Bucket(per_minute=600, burst=1.0, now=0.0)
    bucket.level = 0.9999999999999999
    assert bucket.wait(1.0, 0.0) == 0.0
    bucket.level = 0.99
    assert bucket.wait(1.0, 0.0) > 0.0
