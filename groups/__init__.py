"""Everything about upstream groups, and the root server that presents them (see server.py)."""

# Shared by the command line and the config loader; here so `dynamic-mcp --help` can name
# it without importing the config model.
CONFIG_ENV_VAR = "DYNAMIC_MCP_CONFIG"
