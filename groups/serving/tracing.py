"""OpenTelemetry spans of what dynamic-mcp does, on top of FastMCP's own.

    configure_tracing()                                   # at start: from the OTEL_* environment
    with span("call", group="github", tool="create_issue", user="alice"):
        ...                                               # "dynamic-mcp call github.create_issue"
    with joining(params.meta): ...                        # a client's request: its trace

Spans: `expand` (get_dynamic_tools), `call` (a tool call through dynamic-mcp, a
program's too), `code` (a run_dynamic_code program: its calls' spans are under it),
`upstream start` (connecting a group: a process started, or a remote session opened) and
`sign-in` (an upstream sign-in's callback), with the attributes `dynamic_mcp.group`,
`gen_ai.tool.name` and `enduser.id` (the gateway user; never a token or an argument).
A client's request that carries a trace context in its `_meta` puts FastMCP's span and
ours under its own; each request to an upstream carries the W3C trace context in its
`_meta` (`traceparent`, `tracestate`: the MCP client's own span puts it there), so an
upstream on FastMCP, or anything that reads it, puts its spans under ours, over HTTP as
over stdio. FastMCP's own spans are on whenever ours are (`FASTMCP_TELEMETRY_MODE` wins).

Guarantees:
- with only the OpenTelemetry API installed (FastMCP's dependency), every span is a
  no-op: nothing is recorded or sent; the SDK is the `otel` extra;
- the SDK is set up only when the environment asks for it, the standard way:
  `OTEL_TRACES_EXPORTER` (`otlp`, the default once an `OTEL_EXPORTER_OTLP_*ENDPOINT` is
  set, or `console`, written to stderr: over stdio, stdout is the protocol's), the OTLP
  exporter's own `OTEL_EXPORTER_OTLP_*` variables, `OTEL_SERVICE_NAME`,
  `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_BSP_*`; `OTEL_SDK_DISABLED=true` turns it off; asked
  for without the SDK installed, one warning says how to install it;
- spans still buffered are sent when the server stops (`shutdown_tracing`).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

if TYPE_CHECKING:
    from opentelemetry.trace import Span

__all__ = ["configure_tracing", "joining", "shutdown_tracing", "span"]

logger = logging.getLogger(__name__)

_tracer = trace.get_tracer("dynamic-mcp")
_provider: Any = None  # the SDK's TracerProvider, when this process set one up


@contextmanager
def span(
    name: str, *, group: str | None = None, tool: str | None = None, user: str | None = None
) -> Iterator[Span]:
    """A span `dynamic-mcp NAME [group[.tool]]` around the block, current inside it; an
    exception ending the block is recorded on it."""
    attributes: dict[str, str] = {}
    if group is not None:
        attributes["dynamic_mcp.group"] = group
    if tool is not None:
        attributes["gen_ai.tool.name"] = tool
    if user is not None:
        attributes["enduser.id"] = user
    target = f"{group}.{tool}" if group and tool else group
    title = f"dynamic-mcp {name} {target}" if target else f"dynamic-mcp {name}"
    with _tracer.start_as_current_span(title, attributes=attributes) as current:
        yield current


@contextmanager
def joining(meta: Mapping[str, Any] | None) -> Iterator[None]:
    """The trace a client's request came in (its `_meta` trace context) as the current
    one inside the block: our spans go under the client's."""
    from fastmcp.telemetry import extract_trace_context
    from opentelemetry import context

    token = context.attach(extract_trace_context(dict(meta) if meta else None))
    try:
        yield
    finally:
        context.detach(token)


def configure_tracing() -> None:
    """Set up the OpenTelemetry SDK as the OTEL_* environment asks, if it asks (see the
    module); calling it again changes nothing."""
    global _provider
    exporter_name = _exporter_asked_for()
    if exporter_name is None or _provider is not None:
        return
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        logger.warning(
            "OTEL_* asks for traces, but the OpenTelemetry SDK is not installed: install "
            "dynamic-mcp-server[otel] (no spans are sent)"
        )
        return
    if exporter_name == "console":
        exporter: Any = ConsoleSpanExporter(out=sys.stderr)  # stdout may be the protocol's
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            logger.warning("OTLP traces need dynamic-mcp-server[otel] (no spans are sent)")
            return
        exporter = OTLPSpanExporter()  # its endpoint, headers… from OTEL_EXPORTER_OTLP_*
    resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": "dynamic-mcp"}))
    _provider = TracerProvider(resource=resource)
    _provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(_provider)
    if "FASTMCP_TELEMETRY_MODE" not in os.environ:
        import fastmcp

        # FastMCP's own spans and propagation, which `quiet_fastmcp` turns off for a
        # process that records none: ours go with them.
        fastmcp.settings.telemetry_mode = "native"
    logger.info("OpenTelemetry traces: %s exporter", exporter_name)


def shutdown_tracing() -> None:
    """Send the spans still buffered, and stop."""
    global _provider
    if _provider is not None:
        _provider.shutdown()
        _provider = None


def _exporter_asked_for() -> str | None:
    """`otlp` or `console` when the environment asks for traces, else None."""
    environ = os.environ
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    named = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if named in ("otlp", "console"):
        return named
    if named:  # "none", or an exporter we do not ship
        if named != "none":
            logger.warning("OTEL_TRACES_EXPORTER=%s: only otlp and console are supported", named)
        return None
    endpoints = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    return "otlp" if any(environ.get(name) for name in endpoints) else None
