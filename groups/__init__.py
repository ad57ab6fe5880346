"""Upstream MCP servers ("groups"): their config, their connections, and the registry of all."""
