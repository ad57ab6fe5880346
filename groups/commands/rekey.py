"""`dynamic-mcp rekey`: write a team gateway's encrypted values again with the newest key.

    # store_key: the new key on its first line, the old one on the next (both read)
    dynamic-mcp rekey                 # every token and registration, under the new key
    # then drop the old key's line, replica by replica

Rotating the store key loses no sign-in: while both keys are given every replica reads
what either wrote and writes with the newest; this command rewrites what the old key
wrote, scope by scope under the lock a token refresh takes, so the old key can go. Only a
shared store (Redis) is encrypted: with the local files there is nothing to do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from cyclopts import Parameter

from groups.commands.arguments import CONFIG_HELP, ConfigOption, LogLevelOption, one_config
from groups.errors import CommandArgumentError

__all__ = ["rekey"]


def rekey(
    config: Annotated[Path | None, Parameter(help=CONFIG_HELP)] = None,
    /,
    *,
    config_option: ConfigOption = None,
    log_level: LogLevelOption = "error",
) -> None:
    """Write every encrypted value of the shared store again with the newest store key."""
    import anyio

    from groups.config import load_config, resolve_config_path, use_configured_store
    from groups.secrets import Redactor
    from groups.serving.logs import configure_logging
    from groups.storage.shared import SharedStore

    redactor = Redactor()
    configure_logging(log_level, redactor)
    path = resolve_config_path(one_config(config, config_option))
    store = use_configured_store(load_config(path), path, redactor)
    if not isinstance(store, SharedStore):
        raise CommandArgumentError(
            "rekey",
            "re-encrypts a shared store (DYNAMIC_MCP_STORE or settings.store): the local "
            "files are not encrypted, there is nothing to rewrite",
        )

    async def run() -> int:
        try:
            return await store.rekey()
        finally:
            await store.aclose()

    written = anyio.run(run)
    newest, *older = store.key_names
    dropped = f"; key {', key '.join(older)} can now be dropped" if older else ""
    values = "value" if written == 1 else "values"
    print(f"Wrote {written} encrypted {values} of {store.shown} with key {newest}{dropped}.")
