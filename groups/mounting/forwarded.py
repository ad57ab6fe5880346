"""Completions and resource subscriptions of the mounted groups, forwarded to their upstreams.

    forwarded = ForwardedRequests(registry)
    root.add_completion_handler(forwarded.complete)                    # completion/complete
    serve_resource_subscriptions(root, forwarded.subscribe, forwarded.unsubscribe)

FastMCP's proxy forwards lists, reads and gets, but neither completions nor subscriptions.
A request names a group's prompt as `group_name` and its resources and templates as
`scheme://group/path` (FastMCP's namespacing); the namespace is taken off and the request
sent on the caller's own session of that group, as the upstream names things.

Guarantees:
- `completion/complete` is answered by the upstream of the group its reference names; a
  reference that names no served prompt or template (no such group, a group not used yet
  or with the feature off, an upstream that offers no completions) answers an empty list,
  not an error;
- `resources/subscribe` and `resources/unsubscribe` reach the caller's session of the
  group; the upstream's updates of that resource then reach that client alone, under the
  URI it subscribed to (`groups.upstream.subscribers`); a URI that names no served group,
  or a group whose upstream offers no subscriptions, is an invalid-params error;
- a group the caller may not use (`groups.access`) is, here too, a group not served;
- each is a request to the upstream like any other (`Upstream.request`): it counts as
  use, is bounded by the group's time limit for prompts or resources, and its failure is
  the group's error message; a live subscription keeps the upstream from an idle stop.
"""

from __future__ import annotations

import re
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import mcp_types
from mcp.shared.exceptions import MCPError

from groups.access import User, may_use
from groups.errors import DynamicMcpError
from groups.upstream import Caller

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from mcp.server.context import ServerRequestContext

    from groups.registry import Registry
    from groups.upstream import Upstream
    from groups.upstream.sessions import Session

__all__ = ["ForwardedRequests"]

Feature = Literal["resources", "prompts"]
# `scheme://group/rest` is the group's `scheme://rest` (FastMCP's `Namespace` transform).
_NAMESPACED_URI = re.compile(r"^([^:/]+://)([^/]+)/(.*)$", re.DOTALL)
_NOTHING = mcp_types.Completion(values=[])
ResultT = TypeVar("ResultT", mcp_types.CompleteResult, mcp_types.EmptyResult)


class ForwardedRequests:
    """The root's handlers of completions and subscriptions for its mounted groups."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def __repr__(self) -> str:
        return f"ForwardedRequests({self._registry!r})"

    async def complete(
        self,
        ref: mcp_types.PromptReference | mcp_types.ResourceTemplateReference,
        argument: mcp_types.CompletionArgument,
        context: mcp_types.CompletionContext | None,
    ) -> mcp_types.Completion:
        """The upstream's completion of `argument` for the prompt or template `ref` names.

        Raises:
            MCPError: the upstream's own error, or the group's (unavailable, timed out…).
        """
        caller = Caller.of_current_request()
        user = caller.user if caller is not None else None
        if isinstance(ref, mcp_types.PromptReference):
            shown, served = ref.name, self._prompt(ref.name, user)
            theirs = ref.model_copy(update={"name": served[1]}) if served else ref
        else:
            shown, served = ref.uri, self._resource(ref.uri, user)
            theirs = ref.model_copy(update={"uri": served[1]}) if served else ref
        if served is None:
            return _NOTHING
        upstream, _, feature = served
        request = mcp_types.CompleteRequest(
            params=mcp_types.CompleteRequestParams(ref=theirs, argument=argument, context=context)
        )
        limit, operation = _limit(upstream, feature), f"Completing {argument.name!r} of {shown!r}"
        async with self._session(upstream, caller) as session:
            offered = session.client.initialize_result
            if offered is None or offered.capabilities.completions is None:
                return _NOTHING
            result = await _ask(session, operation, limit, request, mcp_types.CompleteResult)
        return result.completion

    async def subscribe(
        self, ctx: ServerRequestContext[Any, Any], params: mcp_types.SubscribeRequestParams
    ) -> mcp_types.EmptyResult:
        """Subscribe the caller to a resource of a group: its updates reach it from now on.

        Raises:
            MCPError: no served group has the resource, its upstream offers no subscriptions,
                refused it, or failed.
        """
        uri, caller = str(params.uri), Caller.of(ctx)
        served = self._resource(uri, caller.user)
        if served is None:
            raise MCPError(mcp_types.INVALID_PARAMS, f"No group serves the resource {uri!r}")
        upstream, theirs, _ = served
        limit = _limit(upstream, "resources")
        async with self._session(upstream, caller) as session:
            offered = session.client.initialize_result
            resources = offered.capabilities.resources if offered is not None else None
            if resources is None or not resources.subscribe:
                message = f"Group {upstream.name!r} offers no resource subscriptions"
                raise MCPError(mcp_types.INVALID_PARAMS, message)
            user, group = caller.user, upstream  # its access as it is at each update
            session.subscribers.add(
                theirs, uri, caller.connection, lambda: may_use(user, group.config.access)
            )
            request = mcp_types.SubscribeRequest(
                params=mcp_types.SubscribeRequestParams(uri=theirs)
            )
            operation = f"Subscribing to {uri!r}"
            try:
                await _ask(session, operation, limit, request, mcp_types.EmptyResult)
            except BaseException:
                session.subscribers.remove(theirs, caller.connection)
                raise
        return mcp_types.EmptyResult()

    async def unsubscribe(
        self, ctx: ServerRequestContext[Any, Any], params: mcp_types.UnsubscribeRequestParams
    ) -> mcp_types.EmptyResult:
        """End the caller's subscription; the upstream is told once no client is left
        subscribed to the resource on that session. Nothing to end is no error.

        Raises:
            MCPError: the upstream refused it, or failed.
        """
        uri, caller = str(params.uri), Caller.of(ctx)
        served = self._resource(uri, caller.user)
        if served is None:
            return mcp_types.EmptyResult()
        upstream, theirs, _ = served
        limit = _limit(upstream, "resources")
        async with self._session(upstream, caller) as session:
            if session.subscribers.remove(theirs, caller.connection):
                request = mcp_types.UnsubscribeRequest(
                    params=mcp_types.UnsubscribeRequestParams(uri=theirs)
                )
                operation = f"Unsubscribing from {uri!r}"
                await _ask(session, operation, limit, request, mcp_types.EmptyResult)
        return mcp_types.EmptyResult()

    # ---- which group, and its name for the thing -------------------------------------

    def _prompt(self, name: str, user: User | None) -> tuple[Upstream, str, Feature] | None:
        """The upstream serving prompt `name` to `user` and its own name for it, if one does."""
        group = self._registry.group_prefixing(name, user)
        upstream = self._served(group, "prompts", user)
        return (upstream, name[len(upstream.name) + 1 :], "prompts") if upstream else None

    def _resource(self, uri: str, user: User | None) -> tuple[Upstream, str, Feature] | None:
        """The upstream serving resource or template `uri` to `user` and its own URI for it,
        if one does."""
        match = _NAMESPACED_URI.match(uri)
        upstream = self._served(match.group(2), "resources", user) if match else None
        if match is None or upstream is None:
            return None
        return upstream, match.group(1) + match.group(3), "resources"

    def _served(self, group: str | None, feature: Feature, user: User | None) -> Upstream | None:
        """The group's upstream, if the root serves its resources or prompts to `user` now."""
        registry = self._registry
        if (
            group is None
            or group not in registry.group_names(user)
            or group not in registry.mounted
        ):
            return None
        upstream = registry.upstream(group, user)
        return upstream if getattr(upstream.config.features, feature) else None

    @asynccontextmanager
    async def _session(self, upstream: Upstream, caller: Caller | None) -> AsyncIterator[Session]:
        """The caller's session of the group, for one request counted in flight; a failure
        of the group becomes the MCP error the client sees, with the group's message."""
        try:
            async with upstream.request():
                yield await upstream.session(caller)
        except DynamicMcpError as error:
            raise MCPError(mcp_types.INTERNAL_ERROR, str(error)) from error


async def _ask(
    session: Session, operation: str, limit: float, request: Any, result_type: type[ResultT]
) -> ResultT:
    """Send one request on the session as it is, within the group's time limit."""
    with session.bounded(operation, limit):
        return await session.client.session.send_request(request, result_type)


def _limit(upstream: Upstream, feature: Feature) -> float:
    """The group's time limit on one request for its resources or prompts."""
    return getattr(upstream.config.timeout, feature).total_seconds()
