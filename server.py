"""dynamic-mcp: the root FastMCP server, its two meta-tools, and the command line.

    dynamic-mcp dynamic-mcp.json                 # serve over stdio
    dynamic-mcp --transport http --port 8931     # serve streamable HTTP on 127.0.0.1
    fastmcp run server.py                        # $DYNAMIC_MCP_CONFIG or ./dynamic-mcp.json
    dynamic-mcp check | tools G | call G T       # from a terminal (groups.commands)
    dynamic-mcp admin users | revoke USER        # a team gateway's users, across replicas
    dynamic-mcp run-code PROGRAM.py              # a program, as run_dynamic_code runs it
    dynamic-mcp gateway new-user NAME --users F  # a user's token; gateway new-store-key

The client sees two tools (one more each with `settings.search` and `settings.code`).
`get_dynamic_tools(group)` connects the group's upstream on first use and returns its tools
as compact JSON; `call_dynamic_tool` forwards one call and returns the upstream's result
unchanged; `run_dynamic_code(code)` runs a program that calls tools (`groups.code`).
Everything about upstreams lives in `groups/`; this module declares the tools and commands.

Commands that serve nothing (`--version`, `--help`, `import`, `auth --list`) import none of
the server stack: FastMCP is imported where a server is built, on first use, and each
command's module only when that command runs.
"""

# No `from __future__ import annotations`: FastMCP reads the meta-tools' annotations when
# they are declared, and their types are imported inside `build_server`.
import gc
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from cyclopts import App, Parameter

from groups import GATEWAY_ENV_VARS, version
from groups.commands.arguments import CONFIG_HELP, ConfigOption, LogLevelOption, one_config
from groups.commands.terminal import use_builder
from groups.errors import DynamicMcpError

if TYPE_CHECKING:
    from fastmcp import FastMCP

    from groups.config import Config
    from groups.secrets import Redactor
    from groups.serving.users import JwtSettings

__all__ = ["app", "build_server", "main", "mcp"]  # noqa: F822 - `mcp` comes from __getattr__


def build_server(config_path: Path | None = None, **options: Any) -> "FastMCP":
    """The root server for the config at `config_path`, its meta-tools declared.

    Options are `groups.root.RootServer`'s: `config` (already loaded), `registry`,
    `notifier`, `auth` (who may connect over HTTP), `watch` (apply edits while serving),
    `unusable` (why the config was refused: served over stdio, saying so).
    Nothing is read or started until it serves; an upstream starts on its group's first use.
    """
    from mcp_types import CallToolResult

    from groups.config.public_url import public_url
    from groups.root import RootServer

    root = RootServer(config_path, **options)
    meta = root.meta_tools
    if public_url() is not None:  # a gateway's sign-ins end on its own route
        from groups.auth.callback_route import add_callback_route

        add_callback_route(root, root.registry)

    @root.tool(output_schema=None)
    async def get_dynamic_tools(group: str) -> CallToolResult:
        """Load the tools of one group (an MCP server) on demand."""
        return await meta.get_dynamic_tools(group)

    @root.tool(output_schema=None)
    async def call_dynamic_tool(
        group: str, name: str, args: dict[str, Any] | None = None
    ) -> CallToolResult:
        """Run a tool of a group."""
        return await meta.call_dynamic_tool(group, name, args)

    @root.tool(output_schema=None)
    async def search_dynamic_tools(query: str) -> CallToolResult:
        """Find tools across all groups by what they do (offered with settings.search)."""
        return await meta.search_dynamic_tools(query)

    @root.tool(output_schema=None)
    async def run_dynamic_code(code: str) -> CallToolResult:
        """Run a Python program that calls tools, in a sandbox (offered with settings.code)."""
        return await meta.run_dynamic_code(code)

    root.serve_meta_tools(
        get_dynamic_tools, call_dynamic_tool, search_dynamic_tools, run_dynamic_code
    )
    return root


def __getattr__(name: str) -> Any:
    """`mcp`, built on first access: `fastmcp run server.py` finds the config when it starts."""
    if name == "mcp":
        from groups.root import for_fastmcp_run

        server = globals()["mcp"] = for_fastmcp_run(build_server)
        return server
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---- command line -----------------------------------------------------------------------

app = App(
    name="dynamic-mcp",
    version=version,
    help="An MCP proxy that shows the model two tools and loads each server's tools on demand.",
    default_parameter=Parameter(negative=()),
)
# Each command's module is imported only when it runs. Cyclopts then shows `help` in place
# of the docstring, so each is the first line of its command's docstring (test_cli checks).
# Every command that reads a config takes it first, or as --config (groups.commands.arguments).
# Where more arguments follow, they are one list (cyclopts has no optional argument before
# a required one): the usage line says what they are.
for command, name, summary, arguments in (
    (
        "groups.commands.check:check",
        "check",
        "Validate CONFIG, connect every enabled group, and report each one and its token cost.",
        "[CONFIG]",
    ),
    (
        "groups.commands.tools:tools",
        "tools",
        "List GROUP's tools with their parameters, asking its upstream now.",
        "[CONFIG] GROUP",
    ),
    (
        "groups.commands.tools:call",
        "call",
        "Call TOOL of GROUP and print its result; exit 1 when the result is an error.",
        "[CONFIG] GROUP TOOL",
    ),
    (
        "groups.commands.run_code:run_code",
        "run-code",
        "Run PROGRAM (a file, or - for stdin) as run_dynamic_code; exit 1 when it fails.",
        "[CONFIG] PROGRAM",
    ),
    (
        "groups.commands.auth:auth",
        "auth",
        "Sign GROUP in to its OAuth server now, sign it out, or list remote groups' sign-ins.",
        "[CONFIG] [GROUP]",
    ),
    (
        "importers.command:import_",
        "import",
        "Convert TOOL's MCP servers into a dynamic-mcp.json.",
        None,
    ),
    (
        "groups.commands.rekey:rekey",
        "rekey",
        "Write every encrypted value of the shared store again with the newest store key.",
        "[CONFIG]",
    ),
    (
        "groups.commands.admin:admin",
        "admin",
        "List a team gateway's users, sessions, sign-ins and replicas, or revoke a user.",
        None,  # an App of its own commands, each with its usage
    ),
    (
        "groups.commands.gateway:gateway",
        "gateway",
        "Make a team gateway's secrets: a user's token, a store key.",
        None,  # an App of its own commands
    ),
):
    usage = {"usage": f"Usage: dynamic-mcp {name} [OPTIONS] {arguments}"} if arguments else {}
    app.command(command, name=name, help=summary, **usage)


def _gateway(name: str) -> Parameter:
    return Parameter(env_var=GATEWAY_ENV_VARS[name])


@dataclass(frozen=True)
class JwtOptions:
    """A team gateway's JWTs from the organisation's identity provider (docs/gateway.md).

    Parameters
    ----------
    jwks_url
        Accept the organisation's JWTs instead, checked against its identity provider's
        keys at this https URL (or --jwt-public-key).
    jwt_public_key
        A PEM file with the public key JWTs are signed with, instead of --jwks-url.
    jwt_issuer
        The issuer ("iss") JWTs must carry.
    jwt_audience
        The audience ("aud") JWTs must be issued for: this gateway.
    user_claim
        The JWT claim that names the user.
    groups_claim
        The JWT claim listing the user's groups, which a group's "access" may name as
        "group:NAME".
    jwt_leeway
        How far the identity provider's clock may be ahead of ours: a JWT whose "nbf" or
        "iat" is further ahead is refused ("60s", "2min").
    jwt_max_lifetime
        Refuse a JWT good for longer than this from its "iat" ("8h"); by default any.
    """

    jwks_url: Annotated[str | None, _gateway("jwks_url")] = None
    jwt_public_key: Annotated[Path | None, _gateway("jwt_public_key")] = None
    jwt_issuer: Annotated[str | None, _gateway("jwt_issuer")] = None
    jwt_audience: Annotated[str | None, _gateway("jwt_audience")] = None
    user_claim: Annotated[str, _gateway("user_claim")] = "sub"
    groups_claim: Annotated[str | None, _gateway("groups_claim")] = None
    jwt_leeway: Annotated[str, _gateway("jwt_leeway")] = "60s"
    jwt_max_lifetime: Annotated[str | None, _gateway("jwt_max_lifetime")] = None

    def settings(self) -> "JwtSettings":
        from groups.serving.users import JwtSettings

        return JwtSettings(
            self.jwks_url,
            self.jwt_public_key,
            self.jwt_issuer,
            self.jwt_audience,
            self.user_claim,
            self.groups_claim,
            self.jwt_leeway,
            self.jwt_max_lifetime,
        )


@app.default
def serve(
    config: Annotated[Path | None, Parameter(help=CONFIG_HELP)] = None,
    /,
    *,
    config_option: ConfigOption = None,
    transport: Literal["stdio", "http"] = "stdio",
    host: str = "127.0.0.1",
    port: int = 8931,
    token_file: Path | None = None,
    users: Annotated[Path | None, _gateway("users")] = None,
    jwt: Annotated["JwtOptions | None", Parameter(name="*")] = None,
    public_url: Annotated[str | None, _gateway("public_url")] = None,
    no_catalog: bool = False,
    log_level: LogLevelOption = "warning",
) -> None:
    """Serve the upstream servers of CONFIG as groups behind two tools.

    Parameters
    ----------
    transport
        stdio for an MCP client that starts this process; http to serve streamable HTTP.
    host
        Address to listen on with --transport http. Other than loopback, it needs a token
        or users.
    port
        Port to listen on with --transport http.
    token_file
        File holding the bearer token HTTP clients must send (mode 600). Default:
        $DYNAMIC_MCP_HTTP_TOKEN; none is needed on loopback.
    users
        A team gateway's users file (mode 600): a JSON object of user name to token or
        "sha256:HEX"; a group's "access" names who may use it. See docs/gateway.md.
    public_url
        Where browsers reach this gateway (https://mcp.example.internal): users' OAuth
        sign-ins end on its /oauth/callback, not on a port of this machine.
    no_catalog
        Ask each upstream for its tools on first expansion, never ~/.dynamic-mcp/catalog.
    """
    from groups.config import load_config, resolve_config_path, use_configured_store
    from groups.config.public_url import choose_public_url
    from groups.secrets import Redactor
    from groups.serving import configure_logging, http_auth
    from groups.serving.audit import audit_target

    redactor = Redactor()
    configure_logging(log_level, redactor)
    http = transport == "http"
    path: Path | None = None
    try:
        path = resolve_config_path(one_config(config, config_option))
        loaded = load_config(path)
        use_configured_store(loaded, path, redactor)  # before anything can use it
        audit_target(loaded.settings.audit_log, path)  # refused now, in one line
        choose_public_url(public_url)
    except DynamicMcpError as refused:
        if http:
            raise
        # An MCP client shows nothing of a server that exits ("Connection closed"): serve,
        # and say what is wrong where the client shows it (groups.root).
        server = _server_stack(path, None, redactor, None, catalog=not no_catalog, unusable=refused)
        _started()
        _serve_on(server, transport, host, port)
        return
    jwt_settings = (jwt or JwtOptions()).settings()
    auth = http_auth(host, token_file=token_file, users=users, jwt=jwt_settings) if http else None
    server = _server_stack(path, loaded, redactor, auth, catalog=not no_catalog)
    _started()
    _serve_on(server, transport, host, port)


def _server_stack(
    path: Path | None,
    config: "Config | None",
    redactor: "Redactor",
    auth: Any,
    *,
    catalog: bool,
    unusable: DynamicMcpError | None = None,
) -> "FastMCP":
    """The root server and its registry: FastMCP and the server stack are imported only
    here, once everything that can refuse a start has been checked (a tenth of the time);
    over stdio, `unusable` is why the config was refused, which it then serves."""
    from groups.catalog import Catalog
    from groups.registry import Registry
    from groups.serving import quiet_fastmcp

    registry = Registry(catalog=Catalog() if catalog else None, redactor=redactor)
    quiet_fastmcp()
    return build_server(path, config=config, registry=registry, auth=auth, unusable=unusable)


def _serve_on(server: "FastMCP", transport: str, host: str, port: int) -> None:
    """Serve `server` until its client leaves (stdio) or a signal ends it (http)."""
    from functools import partial

    import anyio

    if transport == "stdio":
        anyio.run(partial(server.run_stdio_async, show_banner=False))
    else:
        anyio.run(partial(server.run_http_async, show_banner=False, host=host, port=port))


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: a DynamicMcpError is one line on stderr and exit code 2."""
    # Starting imports FastMCP, the MCP SDK and their pydantic models: a few hundred thousand
    # objects that live as long as the process. The cyclic garbage collector would walk them
    # over and over as they pile up, a fifth of the start's CPU for nothing. So it is off
    # until the server is built (`_started`); the terminal commands, short-lived, leave it off.
    gc.disable()
    try:
        app(argv)
    except DynamicMcpError as exc:
        sys.stderr.write(f"dynamic-mcp: {exc}\n")
        sys.exit(2)


def _started() -> None:
    """The server is built: what start-up loaded is kept out of the collector's way for
    good (`gc.freeze`), and collection resumes for what serving allocates."""
    gc.freeze()
    gc.enable()


# The terminal commands build this same server, in process.
use_builder(build_server)

if __name__ == "__main__":
    main()
