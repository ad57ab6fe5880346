"""Which store a config chooses: `$DYNAMIC_MCP_STORE` or `settings.store`, and its key.

    store = use_configured_store(config, path, redactor)    # at start-up, before any use

Guarantees: the environment wins over the config, setting by setting (`$DYNAMIC_MCP_STORE`
over `"store"`, `$DYNAMIC_MCP_STORE_KEY` over `"store_key"`; a `.env` beside the config
counts as environment, as for `${VAR}`), so an operator points one replica elsewhere
without editing a shared file; `${VAR}` and `${file:PATH}` in the settings resolve as in a
group's entry; the key and the URL's password are taught to the `Redactor` before anything
could show them; a setting that cannot be resolved is a `StoreSettingError` naming it.
With neither set, the store is the local files, as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from groups.config.model import Config
from groups.config.variables import UnresolvedError, interpolate, variables_for
from groups.errors import StoreSettingError
from groups.storage.default import STORE_ENV_VAR, STORE_KEY_ENV_VAR, choose_store
from groups.storage.store import Store

if TYPE_CHECKING:
    from groups.secrets import Redactor

__all__ = ["use_configured_store"]


def use_configured_store(config: Config, config_path: Path | None, redactor: Redactor) -> Store:
    """Choose this process's store from the environment and `config`'s settings.

    Raises:
        StoreSettingError: a setting cannot be resolved, names no Redis, or has no key.
    """
    variables = variables_for(config_path)
    settings = config.settings
    url = _setting(STORE_ENV_VAR, "store", settings.store, variables, redactor)
    key = _setting(STORE_KEY_ENV_VAR, "store_key", settings.store_key, variables, redactor)
    if url:
        redactor.add_literal_url(url)
    if key:
        redactor.add(key)
    return choose_store(url, key)


def _setting(
    env_var: str,
    name: str,
    written: str | None,
    variables: Mapping[str, str],
    redactor: Redactor,
) -> str | None:
    """The environment's value, else the setting's with its references resolved."""
    if variables.get(env_var):
        return variables[env_var]
    if written is None:
        return None
    try:
        return interpolate(written, variables, redactor)
    except UnresolvedError as exc:
        raise StoreSettingError(f"settings.{name}: {exc}") from None
