"""A server on 127.0.0.1 behind a proxy on the same machine: the Host the proxy passes on is
refused with 421 and a log line that says what to set; with `settings.http.allowed_hosts`
the same request is served. Real `dynamic-mcp` processes, asked directly and through the
real HAProxy as bench/cluster.py runs it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import httpx2
import pytest
from conftest import (
    ACCEPT,
    INITIALIZE,
    REPO,
    dynamic_mcp_command,
    free_port,
    stdio_entry,
    wait_for_port,
)
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport

from bench.cluster import HAProxy
from groups.config import parse_config
from groups.errors import ConfigError

PUBLIC_NAME = "mcp.example.internal"  # what clients ask for; the proxy passes it on
ASKED = 3  # times the refused request is sent: said once in the log, not three times


@contextmanager
def serving(directory: Path, settings: dict) -> Iterator[SimpleNamespace]:
    """dynamic-mcp on 127.0.0.1 with `settings`, HAProxy before it; `.log` once it ended."""
    if shutil.which("haproxy") is None:
        pytest.skip("haproxy is not installed (.ci/run installs it)")
    config = directory / "dynamic-mcp.json"
    config.write_text(json.dumps({"mcpServers": {"echo": stdio_entry()}, "settings": settings}))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "DYNAMIC_MCP_HTTP_TOKEN"}
    process = subprocess.Popen(
        dynamic_mcp_command(config, "--transport", "http", "--port", str(port)),
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    balancer = HAProxy(directory, [SimpleNamespace(name="replica", port=port)])  # type: ignore[list-item]
    served = SimpleNamespace(direct=f"http://127.0.0.1:{port}/mcp", log="")
    try:
        wait_for_port(port, process)
        balancer.start()
        served.balanced = balancer.url
        yield served
    finally:
        balancer.stop()
        process.terminate()
        _, served.log = process.communicate(timeout=15)


async def ping_as(url: str, host: str) -> httpx2.Response:
    async with httpx2.AsyncClient() as http:
        return await http.post(url, json=INITIALIZE, headers={**ACCEPT, "Host": host})


async def test_a_host_not_allowed_is_refused_with_a_line_naming_it_and_the_setting(tmp_path):
    with serving(tmp_path, {}) as served:
        statuses = [
            (await ping_as(url, f"{PUBLIC_NAME}:443")).status_code
            for url in (served.direct, served.balanced)
            for _ in range(ASKED)
        ]

    assert statuses == [421] * 2 * ASKED
    lines = [line for line in served.log.splitlines() if "421" in line]
    assert len(lines) == 1, served.log  # once a minute per name, not once per request
    assert f"Host '{PUBLIC_NAME}:443'" in lines[0] and "WARNING" in lines[0]
    assert f'"settings": {{"http": {{"allowed_hosts": ["{PUBLIC_NAME}"]}}}}' in lines[0]


async def test_with_the_host_allowed_the_same_request_is_served_and_others_still_refused(
    tmp_path,
):
    with serving(tmp_path, {"http": {"allowed_hosts": [PUBLIC_NAME]}}) as served:
        pings = [
            (await ping_as(url, host)).status_code
            for url in (served.direct, served.balanced)
            for host in (f"{PUBLIC_NAME}:443", PUBLIC_NAME, "other.example")
        ]
        # An MCP client through the proxy, as a user behind it would connect.
        transport = StreamableHttpTransport(served.balanced, headers={"Host": PUBLIC_NAME})
        async with Client(transport) as client:
            names = [tool.name for tool in await client.list_tools()]

    assert pings == [200, 200, 421] * 2
    assert names == ["get_dynamic_tools", "call_dynamic_tool"]
    refusal = next(line for line in served.log.splitlines() if "421" in line)
    expected = f'"allowed_hosts": ["{PUBLIC_NAME}", "other.example"]'
    assert "Host 'other.example'" in refusal and expected in refusal


async def test_an_allowed_origin_is_served_and_another_refused_with_a_line_naming_it(tmp_path):
    app = "https://app.example.com"
    with serving(tmp_path, {"http": {"allowed_origins": [app]}}) as served:
        async with httpx2.AsyncClient() as http:
            allowed, foreign = [
                (await http.post(served.direct, json=INITIALIZE, headers={**ACCEPT, "Origin": o}))
                for o in (app, "https://evil.example")
            ]

    assert (allowed.status_code, foreign.status_code) == (200, 403)
    refusal = next(line for line in served.log.splitlines() if "403" in line)
    assert "'https://evil.example'" in refusal
    assert '"allowed_origins": ["https://evil.example"]' in refusal


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        (
            "allowed_hosts",
            "https://mcp.example.com/",
            "a host name, not a URL: write 'mcp.example.com'",
        ),
        ("allowed_hosts", "mcp.example.com:443", "without its port: write 'mcp.example.com'"),
        ("allowed_hosts", "mcp example", "expected a host name such as mcp.example.com"),
        ("allowed_origins", "app.example.com", "expected an origin such as https://app."),
        (
            "allowed_origins",
            "https://app.example.com/mcp",
            "no path: write 'https://app.example.com'",
        ),
    ],
)
def test_an_allowed_name_written_wrong_is_refused_saying_how_to_write_it(field, value, problem):
    text = json.dumps({"mcpServers": {}, "settings": {"http": {field: [value]}}})
    with pytest.raises(ConfigError) as refused:
        parse_config(text)
    assert problem in str(refused.value) and field in str(refused.value)


def test_allowed_names_are_kept_as_fastmcps_guard_compares_them():
    config = parse_config(
        json.dumps(
            {
                "mcpServers": {},
                "settings": {
                    "http": {
                        "allowed_hosts": ["MCP.Example.com", "*.example.org", "10.0.0.5"],
                        "allowed_origins": ["https://App.example.com:8443"],
                    }
                },
            }
        )
    )
    http = config.settings.http
    assert http.allowed_hosts == ["mcp.example.com", "*.example.org", "10.0.0.5"]
    assert http.allowed_origins == ["https://app.example.com:8443"]
