"""State in a real Redis: `DYNAMIC_MCP_STORE` (or `settings.store`) for a team gateway.

Each test starts its own `redis-server` on a free 127.0.0.1 port (never a system service)
with an append-only file in tmp_path, so a stopped server comes back with what it held,
and real processes of dynamic-mcp share it. Sign-in is driven as in test_oauth: the OAuth
server on 127.0.0.1 and a $BROWSER that follows the link.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
import redis
from conftest import (
    REPO,
    dynamic_mcp_command,
    free_port,
    server_process,
    stdio_entry,
    upstream_processes,
)
from fastmcp.client.auth.oauth import TokenStorageAdapter
from test_catalog import expand
from test_oauth import auth_command, config_for, home, oauth_servers, oauth_url, whoami

from groups.errors import StoreSettingError
from groups.storage.shared import SharedStore, key_name
from groups.storage.store import Scope

REDIS_WAIT = 10.0  # seconds for redis-server to answer PING after it starts
RECOVERY_WAIT = 30.0  # a failed group is tried again at the retry delays its settings give
KEY = "correct horse battery staple"

__all__ = ["home", "oauth_servers", "oauth_url"]  # test_oauth's fixtures, used here by name

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server is not installed (.ci/run does)"
)


class RedisServer:
    """A redis-server process of the test's own; `stop()` and `start()` it again at will."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                *("--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.directory)),
                # Every write reaches the file before it is answered: a restart keeps it.
                *("--appendonly", "yes", "--appendfsync", "always", "--save", ""),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + REDIS_WAIT
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            try:
                self.client().ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no answer within {REDIS_WAIT}s") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True, socket_timeout=5)

    def values(self, match: str) -> dict[str, str]:
        """Every raw value under keys matching `match`, as Redis holds it."""
        with self.client() as client:
            return {key: client.get(key) or "" for key in client.scan_iter(match=match)}


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(directory)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def shared(redis_server: RedisServer, monkeypatch) -> RedisServer:
    """This test's Redis as the store of every dynamic-mcp it starts, through the environment."""
    monkeypatch.setenv("DYNAMIC_MCP_STORE", redis_server.url)
    monkeypatch.setenv("DYNAMIC_MCP_STORE_KEY", KEY)
    return redis_server


@asynccontextmanager
async def read_with_the_key(url: str) -> AsyncIterator[Scope]:
    """The group's tokens as a replica reads them: through the store, with the key."""
    store = SharedStore(url, KEY)
    try:
        yield store.scope("oauth-servers", "guarded")
    finally:
        await store.aclose()


async def test_tokens_signed_in_are_encrypted_in_redis_and_another_process_uses_them(
    write_config, oauth_url, home, shared, connect, dynamic_mcp_home
):
    config = config_for(write_config, oauth_url)

    signed = auth_command(home, config, "guarded")  # one process signs in...
    raw = shared.values("*oauth-servers/guarded/*")
    async with read_with_the_key(shared.url) as scope:
        adapter = TokenStorageAdapter(scope, oauth_url)
        tokens, registered = await adapter.get_tokens(), await adapter.get_client_info()
    client = await connect(config)  # ...another uses the tokens, asking nobody
    first = await whoami(client)

    assert signed.returncode == 0, signed.stderr
    assert signed.stdout.strip().endswith(f"kept in {shared.url} (oauth-servers/guarded).")
    assert tokens is not None and tokens.refresh_token and registered is not None
    assert {key.rsplit("/", 1)[1] for key in raw} == {"tokens", "client_info", "token_expiry"}
    for secret in (tokens.access_token, tokens.refresh_token, registered.client_id):
        assert all(secret not in value for value in raw.values())
    assert not (dynamic_mcp_home / "oauth-servers").exists()  # nothing in the local files
    assert not first.is_error, first.content[0].text
    assert first.content[0].text.split()[0] == registered.client_id


async def test_a_catalog_entry_one_process_wrote_expands_in_another_with_nothing_started(
    tmp_path, redis_server, connect, monkeypatch
):
    # Through the config this time, the key from a private file; each process has its own
    # home and its own config file, so Redis is all the two have in common.
    key_file = tmp_path / "store.key"
    key_file.write_text(KEY + "\n")
    key_file.chmod(0o600)
    settings = {"store": redis_server.url, "store_key": f"${{file:{key_file}}}"}
    settings["start_on_expand"] = False  # the expansion alone: nothing may start
    configs = []
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
        config = tmp_path / name / "dynamic-mcp.json"
        config.write_text(json.dumps({"mcpServers": {"echo": stdio_entry()}, "settings": settings}))
        configs.append(config)

    monkeypatch.setenv("DYNAMIC_MCP_HOME", str(tmp_path / "first" / "home"))
    first = await connect(configs[0])
    listed = await expand(first)
    await first.close()
    monkeypatch.setenv("DYNAMIC_MCP_HOME", str(tmp_path / "second" / "home"))
    second = await connect(configs[1])
    from_catalog = await expand(second)
    started = upstream_processes(server_process(configs[1]))
    raw = redis_server.values("dynamic-mcp__catalog/*")

    assert from_catalog == listed
    assert started == []
    assert not (tmp_path / "first" / "home" / "catalog").exists()
    # Tool schemas only: kept as plain JSON, which an operator can read.
    (entry,) = raw.values()
    assert {tool["name"] for tool in json.loads(entry)["value"]["tools"]} == set(listed)


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """`dynamic-mcp ARGS` from a terminal, stdin closed (a stdio server then ends)."""
    return subprocess.run(
        dynamic_mcp_command(*args),
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("written_in", ["environment", "config"])
def test_a_redis_store_without_a_key_is_refused_before_anything_starts(
    written_in, write_config, tmp_path, redis_server, monkeypatch
):
    config = write_config({"echo": stdio_entry()})
    if written_in == "environment":
        monkeypatch.setenv("DYNAMIC_MCP_STORE", redis_server.url)
    else:
        data = json.loads(config.read_text()) | {"settings": {"store": redis_server.url}}
        config.write_text(json.dumps(data))
    monkeypatch.delenv("DYNAMIC_MCP_STORE_KEY", raising=False)

    served = run(str(config))  # over stdio: served, saying why no group is (issue 29.3)
    listed = run("auth", "--list", "--config", str(config))
    checked = run("check", str(config))

    why = (
        f"the store {redis_server.url} is shared, so it needs a key to encrypt "
        'tokens with: set DYNAMIC_MCP_STORE_KEY, or "store_key" in the settings '
        "(`${file:PATH}` works)"
    )
    assert served.returncode == 0, served.stderr
    assert f"ERROR dynamic_mcp: serving no group until the config is fixed: {why}" in served.stderr
    for result in (listed, checked):
        assert result.returncode == 2, result.stderr
        assert result.stderr.splitlines() == [f"dynamic-mcp: {why}"]
    assert redis_server.values("*") == {}


async def test_with_redis_stopped_a_call_needing_its_tokens_fails_clearly_until_it_returns(
    write_config, oauth_url, home, shared, connect
):
    config = config_for(write_config, oauth_url)
    # Tried again soon after a failure: this test is about what happens, not how long.
    retries = {"retry_delays": ["0.5s", "0.5s"], "retry_interval": "1s"}
    config.write_text(json.dumps(json.loads(config.read_text()) | {"settings": retries}))
    assert auth_command(home, config, "guarded").returncode == 0
    warm = await connect(config)
    signed = await whoami(warm)  # this process has read its tokens: they are in memory

    shared.stop()
    still = await whoami(warm)  # no round trip to Redis for a warm call
    cold = await connect(config)  # a replica that has not read them yet
    refused = await whoami(cold)
    listed = auth_command(home, config, "--list")
    shared.start()
    with anyio.fail_after(RECOVERY_WAIT):  # the group tries again by itself
        while (recovered := await whoami(cold)).is_error:
            assert "is unavailable" in recovered.content[0].text, recovered.content[0].text
            await anyio.sleep(0.2)

    assert not signed.is_error, signed.content[0].text
    assert still.content[0].text == signed.content[0].text
    assert refused.is_error
    assert refused.content[0].text.startswith(
        f"Group 'guarded' is unavailable: the store {shared.url} is unavailable"
    ), refused.content[0].text
    assert listed.returncode == 2
    assert len(listed.stderr.splitlines()) == 1, listed.stderr
    assert listed.stderr.startswith(f"dynamic-mcp: the store {shared.url} is unavailable")
    assert recovered.content[0].text == signed.content[0].text


def test_check_says_whether_the_shared_store_answers_and_fails_when_it_does_not(
    write_config, shared
):
    config = write_config({"echo": stdio_entry(enabled=False)})  # the store alone is checked
    command = dynamic_mcp_command("check", config)

    def check() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, cwd=REPO, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60
        )

    answered = check()
    shared.stop()
    refused = check()

    assert answered.returncode == 0, answered.stderr
    assert answered.stdout.splitlines()[-1] == f"the store {shared.url} answered."
    assert refused.returncode == 1
    assert f"the store {shared.url} is unavailable" in refused.stdout.splitlines()[-1]


# ---- rotating the store key -------------------------------------------------------------

NEW_KEY = "a brand new key, rotated in"
TOKEN = {"access_token": "rotated-access-7f3e", "token_type": "Bearer"}


async def stored_token(url: str, key: str) -> dict | None:
    """alice's token of the group as a replica given `key` reads it."""
    store = SharedStore(url, key)
    try:
        return await store.scope("oauth-servers", "guarded", user="alice").get("token")
    finally:
        await store.aclose()


async def test_the_store_key_rotates_without_losing_a_sign_in(tmp_path, shared, monkeypatch):
    written = SharedStore(shared.url, KEY)
    await written.scope("oauth-servers", "guarded", user="alice").put("token", TOKEN)
    await written.aclose()
    with pytest.raises(StoreSettingError) as wrong:  # a replica given only the new key
        await stored_token(shared.url, NEW_KEY)
    both = f"{NEW_KEY}\n{KEY}"  # the new key first, the old one still read
    during = await stored_token(shared.url, both)
    config = tmp_path / "dynamic-mcp.json"
    config.write_text(json.dumps({"mcpServers": {"echo": stdio_entry()}}))
    monkeypatch.setenv("DYNAMIC_MCP_STORE_KEY", both)
    rekeyed = run("rekey", str(config))
    after = await stored_token(shared.url, NEW_KEY)  # the old key dropped

    assert f"none of the store keys given (key {key_name(NEW_KEY)})" in str(wrong.value)
    assert during == TOKEN
    assert rekeyed.returncode == 0, rekeyed.stderr
    assert rekeyed.stdout.startswith("Wrote 1 encrypted value of")
    assert f"key {key_name(KEY)} can now be dropped" in rekeyed.stdout
    assert after == TOKEN
    assert KEY not in rekeyed.stdout + rekeyed.stderr and NEW_KEY not in rekeyed.stdout


# ---- over TLS, as a gateway beyond one machine reaches it ------------------------------

# The Redis user docs/gateway.md gives a gateway: its own keys and channels, nothing more.
GATEWAY_ACL = ["dmcp", "on", ">dmcp-password", "~dynamic-mcp__*", "&dynamic-mcp__*"]
GATEWAY_ACL += ["+@all", "-@dangerous"]


def tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate for 127.0.0.1 it signed, with its key (openssl, bounded)."""
    ca_key, ca, key, request, cert = (
        str(directory / name)
        for name in ("ca.key", "ca.pem", "redis.key", "redis.csr", "redis.pem")
    )
    names = directory / "names.ext"
    names.write_text("subjectAltName = IP:127.0.0.1\n")
    new_key = ["-newkey", "rsa:2048", "-nodes"]
    self_signed = ["req", "-x509", *new_key, "-days", "1", "-subj", "/CN=test CA"]
    self_signed += ["-keyout", ca_key, "-out", ca]
    asked = ["req", *new_key, "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", request]
    signed = ["x509", "-req", "-in", request, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial"]
    signed += ["-days", "1", "-extfile", str(names), "-out", cert]
    for command in (self_signed, asked, signed):
        subprocess.run(["openssl", *command], check=True, capture_output=True, timeout=30)
    return Path(ca), Path(cert), Path(key)


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[str, redis.Redis]]:
    """A redis-server answering only over TLS, only to the gateway's ACL user: the URL a
    gateway is given, and a client of that user."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl makes the test's certificates")
    ca, cert, key = tls_files(tmp_path)
    port = free_port()
    process = subprocess.Popen(
        [
            *("redis-server", "--bind", "127.0.0.1", "--port", "0", "--save", ""),
            *("--tls-port", str(port), "--tls-cert-file", str(cert), "--tls-key-file", str(key)),
            *("--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no"),
            *("--user", "default", "off", "--user", *GATEWAY_ACL),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(
        host="127.0.0.1", port=port, ssl=True, ssl_ca_certs=str(ca), username="dmcp",
        password="dmcp-password", decode_responses=True, socket_timeout=5,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + REDIS_WAIT
        while True:  # bounded: until it answers over TLS
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"rediss://dmcp:dmcp-password@127.0.0.1:{port}/0?ssl_ca_certs={ca}", client
    finally:
        client.close()
        process.terminate()
        process.wait(10)


async def test_a_store_reached_over_tls_by_its_own_acl_user_serves_the_gateway(
    tmp_path, tls_redis, connect, monkeypatch
):
    url, as_the_gateway = tls_redis
    monkeypatch.setenv("DYNAMIC_MCP_STORE", url)
    monkeypatch.setenv("DYNAMIC_MCP_STORE_KEY", KEY)
    config = tmp_path / "dynamic-mcp.json"
    config.write_text(json.dumps({"mcpServers": {"echo": stdio_entry()}}))
    client = await connect(config)
    listed = await expand(client)
    await client.close()
    written = list(as_the_gateway.scan_iter(match="dynamic-mcp__catalog/*"))

    assert "echo" in listed
    assert len(written) == 1  # the catalog, written over TLS by the gateway's own user
