"""When a failed group is tried again in the background: 2, 4 and 8 s after a transient
failure, then every 30 s (and every 30 s after a permanent one), or what the settings'
`retry_delays` and `retry_interval` say."""

from __future__ import annotations

import time

import pytest

from groups.config import Config
from groups.errors import GroupUnavailableError
from groups.upstream.health import Health


def delays_after(health: Health, error: GroupUnavailableError, failures: int) -> list[float]:
    """The delay each of `failures` consecutive failures schedules its next attempt after."""
    delays = []
    for _ in range(failures):
        failed_at = time.monotonic()
        health.failed(error)
        delays.append((health.retry_at or 0.0) - failed_at)
    return delays


def schedule_of(settings: dict) -> tuple[tuple[float, ...] | None, float | None]:
    return Config.model_validate({"mcpServers": {}, "settings": settings}).settings.retry_schedule()


TRANSIENT = GroupUnavailableError("g", "the upstream closed the connection")
PERMANENT = GroupUnavailableError("g", "command not found", permanent=True)


def test_by_default_a_failed_group_is_tried_again_after_2_4_8_then_every_30_seconds():
    assert schedule_of({}) == (None, None)
    health = Health("g")
    health.schedule = schedule_of({})

    transient = delays_after(health, TRANSIENT, 5)
    permanent = delays_after(Health("g"), PERMANENT, 2)

    assert transient == pytest.approx([2, 4, 8, 30, 30], abs=0.5)
    assert permanent == pytest.approx([30, 30], abs=0.5)


def test_the_settings_give_the_retry_delays_and_interval():
    settings = {"retry_delays": ["500ms", "1s"], "retry_interval": "1min"}
    health = Health("g")
    health.schedule = schedule_of(settings)
    permanent = Health("g")
    permanent.schedule = schedule_of(settings)

    assert schedule_of(settings) == ((0.5, 1.0), 60.0)
    assert delays_after(health, TRANSIENT, 3) == pytest.approx([0.5, 1, 60], abs=0.25)
    assert delays_after(permanent, PERMANENT, 1) == pytest.approx([60], abs=0.25)
    assert schedule_of({"retry_delays": []})[0] == ()  # straight to the interval
