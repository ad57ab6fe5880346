"""Code mode's two pure parts: `settings.code` as the config writes it, and the shape of
what a tool returns as an expansion tells it (`groups.code.shapes`)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from groups.config import CodeSettings, parse_config
from groups.errors import ConfigError


def settings_text(code: object) -> str:
    return json.dumps({"mcpServers": {}, "settings": {"code": code}})


def test_code_mode_is_off_by_default_true_gives_the_defaults_and_an_object_its_limits():
    assert parse_config(json.dumps({"mcpServers": {}})).settings.code_limits is None
    assert parse_config(settings_text(False)).settings.code_limits is None
    assert parse_config(settings_text(True)).settings.code_limits == CodeSettings()
    limits = parse_config(settings_text({"timeout": "5s", "memory": "1MiB"})).settings
    assert limits.code_limits is not None
    assert limits.code_limits.timeout == timedelta(seconds=5)
    assert limits.code_limits.memory == 1024 * 1024
    assert limits.code_limits.max_calls == CodeSettings().max_calls


@pytest.mark.parametrize(
    ("code", "field"),
    [
        ({"max_call": 3}, "settings.code.max_call"),  # a typo is named, without a union tag
        ({"timeout": 0}, "settings.code.timeout"),  # a run needs some time
        ({"max_calls": 0}, "settings.code.max_calls"),
        ({"memory": "lots"}, "settings.code.memory"),
        ("yes", "settings.code"),  # neither a switch nor limits
    ],
)
def test_a_bad_code_setting_names_its_field(code, field):
    with pytest.raises(ConfigError) as caught:
        parse_config(settings_text(code), "cfg.json")
    assert caught.value.field == field
