"""`dynamic-mcp admin`: a team gateway's users, sessions, sign-ins and replicas; revoking a user.

    dynamic-mcp admin users              # each user: last seen, sessions, processes, sign-ins
    dynamic-mcp admin sessions [USER]    # each legacy session: user, client, replicas holding it
    dynamic-mcp admin sign-ins [USER]    # each user's upstream OAuth sign-ins, per group
    dynamic-mcp admin replicas           # each replica alive, and its upstream processes
    dynamic-mcp admin revoke USER        # end USER's sessions everywhere, forget their tokens
    dynamic-mcp admin users --json       # any of them as JSON, for scripts

Run anywhere with the replicas' store settings (`DYNAMIC_MCP_STORE` or `settings.store`,
and the same store key): it reads the shared store, where each replica's heartbeat says
what it holds (`groups.serving.heartbeat`), never a replica's port. `revoke` deletes the
user's session records, sign-ins waiting and upstream tokens from the store, tells every
replica to end what it holds of the user (`USERS_ENDED`), and waits for each replica
alive to say it did; it exits 1 if one did not within `CONFIRM_WAIT`. Revoking does not
keep the user out: their token still opens new sessions (remove them from the users
file, or the identity provider, for that). Nothing printed holds a token or a link.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from cyclopts import App, Parameter

from groups import CONFIG_ENV_VAR, LOG_LEVEL_ENV_VAR, LogLevel
from groups.commands.tables import NONE, ago, at, span, table

if TYPE_CHECKING:
    from groups.commands.admin_view import GatewayView
    from groups.config import Config
    from groups.serving.heartbeat import ReplicaReport
    from groups.storage.shared import SharedStore

__all__ = ["admin"]

CONFIRM_WAIT = 15.0  # seconds `revoke` waits for every replica to say it ended the user's
CONFIRM_POLL = 0.25  # seconds between two reads of the heartbeats meanwhile
ADMIN = "admin"  # how the audit log and the replicas name this command

admin = App(
    name="admin",
    help="List a team gateway's users, sessions, sign-ins and replicas, or revoke a user.",
)


@Parameter(name="*")
@dataclass(frozen=True)
class AdminOptions:
    """Where the gateway's store is, and how to print.

    Parameters
    ----------
    config
        Path to dynamic-mcp.json, for its store settings (default: $DYNAMIC_MCP_CONFIG,
        else ./dynamic-mcp.json).
    json
        Print JSON instead of a table.
    log_level
        Least severe log message written to stderr (also $DYNAMIC_MCP_LOG_LEVEL).
    """

    config: Annotated[Path | None, Parameter(env_var=CONFIG_ENV_VAR)] = None
    json: bool = False
    log_level: Annotated[LogLevel, Parameter(env_var=LOG_LEVEL_ENV_VAR)] = "warning"


@admin.command
def users(*, options: AdminOptions = AdminOptions()) -> None:
    """Each user a replica or the store knows: last seen, sessions, processes, sign-ins."""
    _show(
        options,
        _read(options).users(),
        ["USER", "LAST SEEN", "REPLICAS", "SESSIONS", "UPSTREAMS", "SIGNED IN", "WAITING"],
        lambda row: [
            row.user,
            ago(row.last_seen),
            ",".join(sorted(row.replicas)),
            str(row.sessions),
            str(row.upstreams),
            ",".join(row.signed_in),
            ",".join(row.waiting),
        ],
        "No user is known to any replica or the store.",
        as_json=lambda row: {**asdict(row), "replicas": sorted(row.replicas)},
    )


@admin.command
def sessions(user: str | None = None, /, *, options: AdminOptions = AdminOptions()) -> None:
    """Each legacy session (USER's alone if given): its client, the replicas holding it.

    Parameters
    ----------
    user
        Show this user's sessions only.
    """
    _show(
        options,
        [row for row in _read(options).sessions if user is None or row.user == user],
        ["SESSION", "USER", "CLIENT", "PROTOCOL", "OPENED ON", "HELD BY", "EXPIRES IN"],
        lambda row: [
            row.session,
            row.user,
            row.client,
            row.protocol,
            row.opened_on,
            ",".join(row.held_by),
            span(row.expires_in),
        ],
        "No legacy session is open" + (f" for user {user}." if user else "."),
    )


@admin.command(name="sign-ins")
def sign_ins(user: str | None = None, /, *, options: AdminOptions = AdminOptions()) -> None:
    """Each user's upstream OAuth sign-ins (USER's alone if given), per group and endpoint.

    Parameters
    ----------
    user
        Show this user's sign-ins only.
    """
    _show(
        options,
        [row for row in _read(options).sign_ins if user is None or row.user == user],
        ["USER", "GROUP", "STATE", "UNTIL", "REFRESHABLE", "ENDPOINT"],
        lambda row: [
            row.user,
            row.group,
            row.state,
            at(row.expires_at),
            ("yes" if row.refreshable else "no") if row.state == "signed in" else NONE,
            row.endpoint,
        ],
        "No user holds a sign-in" + (f": not {user}." if user else "."),
    )


@admin.command
def replicas(*, options: AdminOptions = AdminOptions()) -> None:
    """Each replica alive (its heartbeat in the store), and its upstream processes."""
    reports = _read(options).replicas
    if options.json:
        _print_json([_replica_json(report) for report in reports])
        return
    if not reports:
        print("No replica is alive: none has written its heartbeat in the store lately.")
        return
    print(
        table(
            ["REPLICA", "HOST", "PID", "VERSION", "STARTED", "BEAT", "SESSIONS", "UPSTREAMS"],
            [
                [
                    r.replica,
                    r.host,
                    str(r.pid),
                    r.version,
                    at(r.started),
                    ago(r.written),
                    str(len(r.sessions)),
                    str(len(r.upstreams)),
                ]
                for r in reports
            ],
        )
    )
    uses = [(r.replica, use) for r in reports for use in r.upstreams]
    print("\nUpstream sessions (a stdio one is a process)")
    print(
        table(
            ["REPLICA", "GROUP", "USER", "KIND", "PID", "IDLE"],
            [
                [
                    replica,
                    use["group"],
                    use["user"] or "(shared)",
                    use["kind"],
                    str(use["pid"]) if use["pid"] is not None else None,
                    span(use["idle_for"]) if use["idle_for"] is not None else "in use",
                ]
                for replica, use in uses
            ],
        )
        if uses
        else "none"
    )


@admin.command
def revoke(user: str, /, *, options: AdminOptions = AdminOptions()) -> None:
    """End USER's sessions on every replica, stop their processes, forget their tokens.

    Parameters
    ----------
    user
        The gateway user: a name of the users file, or the JWTs' user claim.
    """
    import anyio

    config, path, store = _store(options)
    outcome = anyio.run(_revoke, store, config, user)
    _audit_revocation(config, path, user, outcome)
    if options.json:
        _print_json(outcome)
    else:
        _print_revocation(store.shown, user, outcome)
    if any(not replica["confirmed"] for replica in outcome["replicas"]):
        sys.exit(1)  # a script must know a replica may still hold the user's sessions


def _show(
    options: AdminOptions,
    rows: list[Any],
    headers: list[str],
    cells: Callable[[Any], list[str | None]],
    empty: str,
    *,
    as_json: Callable[[Any], Any] = asdict,
) -> None:
    """`rows` as JSON (`as_json` each) or as a table (`cells` each), `empty` for none."""
    if options.json:
        _print_json([as_json(row) for row in rows])
        return
    print(table(headers, [cells(row) for row in rows]) if rows else empty)


# ---- reading the store ----------------------------------------------------------------------


def _store(options: AdminOptions) -> tuple[Config, Path, SharedStore]:
    """The config and the shared store it names.

    Raises:
        ConfigError, StoreSettingError: as for serving.
        AdminCommandError: the config names no shared store.
    """
    from groups.config import load_config, resolve_config_path, use_configured_store
    from groups.errors import AdminCommandError
    from groups.secrets import Redactor
    from groups.serving.logs import configure_logging
    from groups.storage.shared import SharedStore

    redactor = Redactor()
    configure_logging(options.log_level, redactor)  # a forged record is said, once, on stderr
    path = resolve_config_path(options.config)
    config = load_config(path)
    store = use_configured_store(config, path, redactor)
    if not isinstance(store, SharedStore):
        raise AdminCommandError(
            "admin reads a team gateway's shared store, and this config names none: set "
            "DYNAMIC_MCP_STORE and DYNAMIC_MCP_STORE_KEY (or settings.store and store_key) "
            "as the replicas have them"
        )
    return config, path, store


def _read(options: AdminOptions) -> GatewayView:
    import anyio

    from groups.commands.admin_view import GatewayView

    _, _, store = _store(options)

    async def read() -> GatewayView:
        try:
            return await GatewayView.read(store)
        finally:
            await store.aclose()

    return anyio.run(read)


def _replica_json(report: ReplicaReport) -> dict[str, Any]:
    from groups.commands.admin_view import short

    shown = {**asdict(report)}
    shown["sessions"] = [
        {"session": short(session), "user": user} for session, user in report.sessions.items()
    ]
    del shown["acknowledged"]  # message ids: of use to `revoke` alone
    return shown


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


# ---- revoking -------------------------------------------------------------------------------


async def _revoke(store: SharedStore, config: Config, user: str) -> dict[str, Any]:
    """Clear the store of `user`, tell the replicas, wait for each to say it ended theirs."""
    import anyio

    from groups.config import StdioServer
    from groups.serving.heartbeat import read_heartbeats
    from groups.serving.replica_messages import UserEnded, tell_user_ended
    from groups.serving.revocation import clear_stored

    try:
        remote = [name for name, s in config.servers.items() if not isinstance(s, StdioServer)]
        alive = [report.replica for report in await read_heartbeats(store)]
        cleared = await clear_stored(store, user, remote, tokens=True)
        message = UserEnded(user, "revoked", sender=ADMIN)
        told = await tell_user_ended(store, message)
        acted: dict[str, dict[str, Any]] = {}
        with anyio.move_on_after(CONFIRM_WAIT):
            while len(acted) < len(alive):
                for report in await read_heartbeats(store):
                    for ack in report.acknowledged:
                        if ack.get("id") == message.id and report.replica in alive:
                            acted[report.replica] = ack
                if len(acted) < len(alive):
                    await anyio.sleep(CONFIRM_POLL)
    finally:
        await store.aclose()
    return {
        "user": user,
        "sessions": cleared.sessions,
        "sign_ins": cleared.sign_ins,
        "token_groups": list(cleared.token_groups),
        "replicas_told": told,
        "replicas": [
            {
                "replica": replica,
                "confirmed": replica in acted,
                "sessions": acted.get(replica, {}).get("sessions"),
                "upstreams": acted.get(replica, {}).get("upstreams"),
            }
            for replica in alive
        ],
    }


def _audit_revocation(config: Config, path: Path, user: str, outcome: dict[str, Any]) -> None:
    """One `user_revoked` line in the gateway's audit log, where one is configured."""
    from groups.access import User
    from groups.serving.audit import audit, audit_target

    where = audit_target(config.settings.audit_log, path)
    if where is None:
        return
    confirmed = sum(1 for replica in outcome["replicas"] if replica["confirmed"])
    audit.open(where, replica=ADMIN)
    try:
        audit.record(
            "user_revoked",
            user=User(user),
            outcome="ok" if confirmed == len(outcome["replicas"]) else "error",
            sessions=outcome["sessions"],
            sign_ins=outcome["sign_ins"],
            token_groups=outcome["token_groups"],
            replicas=len(outcome["replicas"]),
            replicas_confirmed=confirmed,
        )
    finally:
        audit.close()


def _print_revocation(store: str, user: str, outcome: dict[str, Any]) -> None:
    tokens = ", ".join(outcome["token_groups"]) or "no group (none held tokens)"
    lines = [
        f"Revoked user {user} in {store}:",
        f"  session records deleted  {outcome['sessions']}",
        f"  sign-ins dropped         {outcome['sign_ins']} (waiting for a browser)",
        f"  signed out of            {tokens}",
        f"  replicas told            {outcome['replicas_told']}",
    ]
    for replica in outcome["replicas"]:
        if replica["confirmed"]:
            sessions = _counted(replica["sessions"], "session")
            done = f"ended {sessions} and {_counted(replica['upstreams'], 'upstream session')}"
        else:
            done = f"did not confirm within {CONFIRM_WAIT:g}s: it may still hold some"
        lines.append(f"  replica {replica['replica']}    {done}")
    if not outcome["replicas"]:
        lines.append("  no replica is alive (no heartbeat in the store)")
    print("\n".join(lines))
    print(
        f"Their token still opens new sessions: to keep {user} out, remove them from the "
        "users file (or the identity provider)."
    )


def _counted(count: int, thing: str) -> str:
    return f"{count} {thing}{'' if count == 1 else 's'}"
