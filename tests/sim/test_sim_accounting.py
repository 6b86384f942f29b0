"""The simulated provider charges tokens as each provider family does, and can leave out its
rate-limit headers."""

from __future__ import annotations

import pytest

from fanfold import UsageError
from fanfold._sim import SimLimits
from fanfold._sim._buckets import ProviderLimiter


def tokens(limiter: ProviderLimiter) -> float:
    return next(b.level for b in limiter.buckets if b.name == "tokens")


def test_reserve_accounting_credits_back_the_unused_output() -> None:
    limiter = ProviderLimiter(SimLimits(requests_per_minute=None, tokens_per_minute=60_000), now=0.0)
    full = tokens(limiter)
    assert limiter.admit(100, 64, now=0.0).admitted
    limiter.settle(64, 10, now=0.0)
    assert tokens(limiter) == full - 110


def test_arrival_accounting_keeps_the_whole_reservation() -> None:
    limits = SimLimits(requests_per_minute=None, tokens_per_minute=60_000, accounting="arrival")
    limiter = ProviderLimiter(limits, now=0.0)
    full = tokens(limiter)
    assert limiter.admit(100, 64, now=0.0).admitted
    limiter.settle(64, 10, now=0.0)
    assert tokens(limiter) == full - 164


def test_usage_accounting_charges_the_prompt_on_arrival_and_the_output_when_known() -> None:
    limits = SimLimits(requests_per_minute=None, tokens_per_minute=60_000, accounting="usage")
    limiter = ProviderLimiter(limits, now=0.0)
    full = tokens(limiter)
    assert limiter.admit(100, 1024, now=0.0).admitted
    assert tokens(limiter) == full - 100
    limiter.settle(1024, 10, now=0.0)
    assert tokens(limiter) == full - 110


@pytest.mark.parametrize("accounting", ["reserve", "arrival", "usage"])
def test_a_request_turned_away_after_admission_is_charged_no_tokens(accounting: str) -> None:
    limits = SimLimits(requests_per_minute=600, tokens_per_minute=60_000, accounting=accounting)  # type: ignore[arg-type]
    limiter = ProviderLimiter(limits, now=0.0)
    full = tokens(limiter)
    assert limiter.admit(100, 64, now=0.0).admitted
    limiter.refund(100, 64, now=0.0)
    assert tokens(limiter) == full


def test_accounting_travels_through_the_control_endpoint_and_a_bad_one_is_named() -> None:
    limits = SimLimits(tokens_per_minute=45_000, accounting="arrival")
    assert SimLimits.from_dict(limits.to_dict()) == limits
    with pytest.raises(UsageError, match=r"accounting='later'.*reserve"):
        SimLimits(accounting="later")  # type: ignore[arg-type]
