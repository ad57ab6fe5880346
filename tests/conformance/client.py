"""The "client" the conformance suite drives: dynamic-mcp's terminal commands.

    conformance client --command "python tests/conformance/client.py" --scenario initialize

The suite starts a scenario's server and runs this script with the server's URL as the
last argument, the scenario's name in `MCP_CONFORMANCE_SCENARIO` and, where the scenario
hands out credentials, a JSON object in `MCP_CONFORMANCE_CONTEXT`. The script writes a
dynamic-mcp.json with one group pointing at that URL (with those credentials where the
config has a field for them), then runs what a user would: `dynamic-mcp auth` for the
OAuth scenarios, `dynamic-mcp tools`, and `dynamic-mcp call` of the scenario's tool; when
`tools` or `call` says to run `dynamic-mcp auth`, it does so once and tries again.

The sign-in is answered without a person: the suite's authorization servers approve at
once and redirect to the callback, so `$BROWSER` is `tests/upstreams/follow_browser.py`,
which follows the link as a browser would. Everything (config, tokens, catalog) lives in
a temporary directory of this run's own. The exit code is that of the first command that
failed; each command's output goes to stderr, which the suite keeps.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

GROUP = "conformance"
FOLLOW_BROWSER = Path(__file__).resolve().parent.parent / "upstreams" / "follow_browser.py"
# Each command is bounded, so a hang shows as that command's failure; the suite's own
# --timeout (tests/test_conformance.py) is set above three of these.
COMMAND_TIMEOUT = 60.0

# The tool each scenario's server offers, and the arguments that make a real call of it.
# Scenarios not named here offer no tool (initialize) or are covered by the default below.
TOOL_CALLS: dict[str, tuple[str, dict[str, Any]]] = {
    "tools_call": ("add_numbers", {"a": 2, "b": 3}),
    "sse-retry": ("test_reconnection", {}),
    "elicitation-sep1034-client-defaults": ("test_client_elicitation_defaults", {}),
}
# The client ID metadata document a scenario's server expects our client to be known by
# (the suite fixes the URL and hands it to no one: a user would write their own).
CLIENT_METADATA_URLS = {"auth/basic-cimd": "https://conformance-test.local/client-metadata.json"}
AUTH_TOOL_CALL = ("test-tool", {})  # every auth/* scenario's server offers this one tool
# What `tools` and `call` say when the group needs a sign-in they cannot do themselves.
SIGN_IN_ADVICE = f"run `dynamic-mcp auth {GROUP}`"


def dynamic_mcp() -> str:
    """The installed `dynamic-mcp` script of the environment running this one."""
    return str(Path(sys.executable).parent / "dynamic-mcp")


def group_entry(url: str, context: dict[str, Any], scenario: str, scratch: Path) -> dict[str, Any]:
    """The config entry for the scenario's server, with the credentials its context hands
    out, as a user would write them: the private key in a file of its own (mode 600),
    named by `${file:…}`; the grant a service account uses where the scenario is one; the
    organisation's identity provider and the user's ID token (in a file of its own, as the
    key) where the scenario is enterprise-managed authorization (SEP-990)."""
    entry: dict[str, Any] = {"description": "The conformance scenario's server", "url": url}
    if client_id := context.get("client_id"):
        entry["oauth_client_id"] = client_id
    if secret := context.get("client_secret"):
        entry["oauth_client_secret"] = secret
    if key := context.get("private_key_pem"):
        key_file = scratch / "client-key.pem"
        key_file.touch(mode=0o600)
        key_file.write_text(key)
        entry["oauth_private_key"] = f"${{file:{key_file}}}"
        entry["oauth_signing_algorithm"] = context.get("signing_algorithm", "RS256")
    if scenario.startswith("auth/client-credentials"):
        entry["oauth_grant"] = "client_credentials"
    if id_token := context.get("idp_id_token"):  # SEP-990: the user's ID token from the IdP
        token_file = scratch / "id-token.jwt"
        token_file.touch(mode=0o600)
        token_file.write_text(id_token)
        entry["oauth_grant"] = "id_jag"
        entry["oauth_idp"] = {
            "issuer": context["idp_issuer"],
            "client_id": context["idp_client_id"],
            "id_token": f"${{file:{token_file}}}",
        }
    if scenario in CLIENT_METADATA_URLS:
        entry["oauth_client_metadata_url"] = CLIENT_METADATA_URLS[scenario]
    return entry


def run(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run one terminal command, copy its output to stderr; its exit code and output."""
    print(f"$ {shlex.join(['dynamic-mcp', *args])}", file=sys.stderr, flush=True)
    started = time.monotonic()
    try:
        done = subprocess.run(
            [dynamic_mcp(), *args],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        print(f"(no answer within {COMMAND_TIMEOUT:g}s)\n{exc.stderr or ''}", file=sys.stderr)
        return 124, ""
    sys.stderr.write(done.stdout + done.stderr)
    took = time.monotonic() - started
    print(f"(exit {done.returncode} after {took:.1f}s)", file=sys.stderr, flush=True)
    return done.returncode, done.stdout + done.stderr


def main() -> int:
    # The suite ends a client that outlives its --timeout with SIGTERM: leave as an exception
    # does, so the command running now is killed with us instead of being left behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    url = sys.argv[-1]
    scenario = os.environ.get("MCP_CONFORMANCE_SCENARIO", "")
    context = json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}")
    with tempfile.TemporaryDirectory(prefix="dynamic-mcp-conformance-") as scratch:
        config = Path(scratch) / "dynamic-mcp.json"
        entry = group_entry(url, context, scenario, Path(scratch))
        config.write_text(json.dumps({"mcpServers": {GROUP: entry}}))
        env = {
            **os.environ,
            "DYNAMIC_MCP_HOME": str(Path(scratch) / "home"),
            "BROWSER": f"{shlex.quote(sys.executable)} {shlex.quote(str(FOLLOW_BROWSER))} %s",
            "FASTMCP_CHECK_FOR_UPDATES": "off",
        }
        steps: list[list[str]] = []
        if scenario.startswith("auth/"):
            steps.append(["auth", GROUP])
        steps.append(["tools", GROUP])
        tool_call = AUTH_TOOL_CALL if scenario.startswith("auth/") else TOOL_CALLS.get(scenario)
        if tool_call is not None:
            tool, arguments = tool_call
            steps.append(["call", GROUP, tool, "--args", json.dumps(arguments)])
        signed_in_again = False
        for step in steps:
            code, output = run([*step, "--config", str(config)], env)
            # `tools` and `call` end before a browser sign-in could, and say to run `auth`
            # (e.g. on a 403 asking for more scopes): do as a user would, once, and retry.
            if code != 0 and SIGN_IN_ADVICE in output and not signed_in_again:
                signed_in_again = True
                code, _ = run(["auth", GROUP, "--config", str(config)], env)
                if code == 0:
                    code, _ = run([*step, "--config", str(config)], env)
            if code != 0:
                return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
