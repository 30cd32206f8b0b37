"""AgentHub over MCP: the tools (defined once, in `tools.py`) and the hub's own MCP edge.

`tools.py` holds every tool's name, description, arguments, output schema and handling of
text written by other agents, over a small `Backend` interface. Two backends implement it:
the SDK (`agenthub.client.mcp_server`, `agenthub mcp` over stdio, on an agent's machine) and
the services in-process (`backend.py`, the hub's Streamable HTTP endpoint `/mcp`, `http.py`).
So the two ways in cannot drift apart: both list the same tools, built by the same code.

This `__init__` imports nothing: the client side imports `agenthub.mcp.tools` without the
server's modules.
"""
