"""Everything about upstream groups, and the root server that presents them (see server.py).

    config/     the dynamic-mcp.json model, how it is found and read, `${VAR}` in it
    upstream/   one upstream server per group: transport, sessions, health, callbacks
    auth/       OAuth for remote groups: FastMCP's client on our store, the browser sign-in
    storage/    what is kept under ~/.dynamic-mcp: one key-value store, private files
    mounting/   a group's resources and prompts, served through the root
    serving/    how clients reach us: stdio, HTTP access, logs, list_changed
    commands/   check, tools, call, auth from a terminal
    root.py     the root FastMCP server; registry.py, meta_tools.py, catalog.py, reload.py,
                search.py, secrets.py, errors.py, internals.py (every private name we use)

This module itself stays import-light: `dynamic-mcp --help` reads it.
"""

from typing import Literal

__all__ = ["CONFIG_ENV_VAR", "GATEWAY_ENV_VARS", "LOG_LEVEL_ENV_VAR", "LogLevel", "version"]

# Shared by the command line and the config loader; here so `dynamic-mcp --help` can name
# it without importing the config model.
CONFIG_ENV_VAR = "DYNAMIC_MCP_CONFIG"
LOG_LEVEL_ENV_VAR = "DYNAMIC_MCP_LOG_LEVEL"  # every command's --log-level, and `fastmcp run`'s
# Who a team gateway's users are (`groups.serving.users`), by `serve`'s parameter name:
# read by the command line, and by `fastmcp run server.py`, which has no such flags.
GATEWAY_ENV_VARS = {
    "users": "DYNAMIC_MCP_USERS",
    "jwks_url": "DYNAMIC_MCP_JWKS_URL",
    "jwt_public_key": "DYNAMIC_MCP_JWT_PUBLIC_KEY",
    "jwt_issuer": "DYNAMIC_MCP_JWT_ISSUER",
    "jwt_audience": "DYNAMIC_MCP_JWT_AUDIENCE",
    "user_claim": "DYNAMIC_MCP_USER_CLAIM",
    "groups_claim": "DYNAMIC_MCP_GROUPS_CLAIM",
    "jwt_leeway": "DYNAMIC_MCP_JWT_LEEWAY",
    "jwt_max_lifetime": "DYNAMIC_MCP_JWT_MAX_LIFETIME",
    "public_url": "DYNAMIC_MCP_PUBLIC_URL",  # where sign-ins end (`groups.config.public_url`)
}

# The least severe log message written to stderr: the command line's and `fastmcp run`'s.
LogLevel = Literal["debug", "info", "warning", "error"]


def version() -> str:
    """The installed version of dynamic-mcp ("0.0.0" from a checkout never installed)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("dynamic-mcp-server")
    except PackageNotFoundError:
        return "0.0.0"
