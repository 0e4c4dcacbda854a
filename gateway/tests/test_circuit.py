"""The circuit breaker's state machine (pure; the clock is passed in)."""

from __future__ import annotations

from gateway.pipeline.circuit import CircuitBreaker


def test_opens_after_consecutive_failures_and_recovers_through_one_trial() -> None:
    breaker = CircuitBreaker(threshold=3, open_seconds=10)
    for t in range(2):
        breaker.record_failure(float(t))
    assert breaker.state(2.0) == "closed" and breaker.allow(2.0)
    breaker.record_failure(2.0)
    assert breaker.state(3.0) == "open" and not breaker.allow(3.0)
    assert breaker.retry_after(3.0) == 9
    # After the open period one trial goes through; the others wait for its outcome.
    assert breaker.state(12.5) == "half-open"
    assert breaker.allow(12.5) and not breaker.allow(12.6)
    breaker.record_success()
    assert breaker.state(12.7) == "closed" and breaker.allow(12.7)


def test_a_failed_trial_opens_again_and_success_resets_the_count() -> None:
    breaker = CircuitBreaker(threshold=2, open_seconds=5)
    breaker.record_failure(0.0)
    breaker.record_success()
    breaker.record_failure(1.0)
    assert breaker.state(1.0) == "closed"  # the count restarted
    breaker.record_failure(1.5)
    assert breaker.allow(7.0)  # the trial
    breaker.record_failure(7.1)
    assert breaker.state(7.2) == "open" and not breaker.allow(11.0)
