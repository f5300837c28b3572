"""Fixtures and hypothesis profiles of the reliability suite.

Profiles: `reliability` (bounded, default run) and `reliability-stress` (the `stress`
marker's long runs). Tests pick one by name, so the global hypothesis profile of
other suites is untouched.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings

_COMMON = {
    "deadline": None,  # database round trips vary; speed is measured by benchmarks
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.filter_too_much],
    "derandomize": False,
    "print_blob": True,
}
settings.register_profile(
    "reliability", max_examples=12, stateful_step_count=20, database=None, **_COMMON
)
settings.register_profile(
    "reliability-stress", max_examples=300, stateful_step_count=60, database=None, **_COMMON
)


@pytest.fixture
def no_velocity_limit(settings):
    """Velocity is tested elsewhere; in these workloads it would only hide the races."""
    settings.WALLET_VELOCITY_LIMIT = 10**9
