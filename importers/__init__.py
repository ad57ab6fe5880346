"""`dynamic-mcp import <tool>`: convert another tool's MCP config into dynamic-mcp.json."""
