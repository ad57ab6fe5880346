"""The dynamic-mcp.json config: its model, how it is found and read, and `${VAR}` in it.

config = load_config(resolve_config_path(None))
identity = launch_identity(config.servers["time"], variables_for(path))
"""

from groups.config.identity import IN_PLACE, launch_identity
from groups.config.loading import DEFAULT_CONFIG, load_config, parse_config, resolve_config_path
from groups.config.model import (
    GROUP_NAME_RULE,
    CodeSettings,
    Config,
    Duration,
    Features,
    HttpServer,
    HttpSettings,
    ServerConfig,
    Settings,
    SseServer,
    StdioServer,
    Timeouts,
    ToolFilter,
    parse_duration,
    plain_group_name,
)
from groups.config.shared_store import use_configured_store
from groups.config.variables import (
    SecretFileError,
    UnresolvedError,
    UnsetVariableError,
    interpolate,
    read_secret_file,
    referenced_values,
    variables_for,
)

__all__ = [
    "DEFAULT_CONFIG",
    "GROUP_NAME_RULE",
    "IN_PLACE",
    "CodeSettings",
    "Config",
    "Duration",
    "Features",
    "HttpServer",
    "HttpSettings",
    "SecretFileError",
    "ServerConfig",
    "Settings",
    "SseServer",
    "StdioServer",
    "Timeouts",
    "ToolFilter",
    "UnresolvedError",
    "UnsetVariableError",
    "interpolate",
    "launch_identity",
    "load_config",
    "parse_config",
    "parse_duration",
    "plain_group_name",
    "read_secret_file",
    "referenced_values",
    "resolve_config_path",
    "use_configured_store",
    "variables_for",
]
