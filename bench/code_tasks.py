"""The multi-step tasks of the code-mode bench, as data: each one's calls and its program.

    for task in tasks(zones=5):
        task.groups                  # the upstreams it needs, as dynamic-mcp config entries
        task.steps                   # the calls a model makes one by one (call_dynamic_tool)
        task.program                 # the same calls as one run_dynamic_code program

A step's arguments may come from what earlier calls returned (`Step.args` a function of
their results), as a model would write them after reading those results. A step that
needs no result of the steps since the last one that starts a turn is marked `at_once`:
a model that makes independent calls together makes it in the same turn. A task's program
makes the same calls in the same order, so the two ways differ only in what the model
reads. What the model finally writes (its answer to the user) is left out of both.

The upstreams are published: mcp-server-time (PyPI, installed with the dev dependencies)
and npm's server-memory and server-everything, started with `npx -y` as `bench.__main__`'s
fleet is. server-memory writes its graph to `MEMORY_FILE_PATH`: each way gets a file of
its own in the run's scratch folder, so both start from an empty graph.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ZONES", "Step", "Task", "parsed", "tasks"]

ZONES = [
    *("UTC", "Europe/Paris", "Asia/Tokyo", "America/New_York", "Australia/Sydney"),
    *("Europe/London", "Asia/Kolkata", "America/Los_Angeles", "America/Sao_Paulo"),
    "Africa/Lagos",
]

Args = dict[str, Any] | Callable[[list[Any]], dict[str, Any]]


@dataclass(frozen=True)
class Step:
    """One call of call_dynamic_tool; `args` may read the results of the calls before it
    (each as JSON where its text is JSON, else the text). `at_once`: it can be made in
    the same turn as the step before, needing none of that turn's results."""

    group: str
    tool: str
    args: Args
    at_once: bool = False

    def arguments(self, results: list[Any]) -> dict[str, Any]:
        return self.args(results) if callable(self.args) else self.args


@dataclass(frozen=True)
class Task:
    """What the model is asked, the groups it needs, and the two ways of doing it."""

    name: str
    asked: str
    groups: dict[str, dict[str, Any]]
    steps: list[Step]
    program: str

    def config(self, scratch: Path) -> dict[str, dict[str, Any]]:
        """The task's `mcpServers`, server-memory's graph in a file under `scratch`."""
        entries = {}
        for name, entry in self.groups.items():
            if name == "memory":
                entry = {**entry, "env": {"MEMORY_FILE_PATH": str(scratch / "memory.jsonl")}}
            entries[name] = entry
        return entries


TIME = {
    "description": "Current time and time-zone conversion.",
    "command": sys.executable,
    "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"],
}
MEMORY = {
    "description": "A knowledge graph the model can store facts in.",
    "command": "npx",
    "args": ["-y", "@modelcontextprotocol/server-memory"],
}
EVERYTHING = {
    "description": "MCP reference server exercising every feature.",
    "command": "npx",
    "args": ["-y", "@modelcontextprotocol/server-everything"],
}


def _meetings(zones: list[str]) -> Task:
    """The first task measured (2026-12-07): two time calls per zone, nothing stored."""
    steps = []
    for zone in zones:
        steps.append(Step("time", "get_current_time", {"timezone": zone}, at_once=bool(steps)))
        meeting = {"source_timezone": "UTC", "time": "09:00", "target_timezone": zone}
        steps.append(Step("time", "convert_time", meeting, at_once=True))
    program = f"""
zones = {zones!r}
now, meeting = {{}}, {{}}
for zone in zones:
    current = await call_tool("time", "get_current_time", {{"timezone": zone}})
    now[zone] = current["datetime"][11:16]
    converted = await call_tool(
        "time", "convert_time",
        {{"source_timezone": "UTC", "time": "09:00", "target_timezone": zone}},
    )
    meeting[zone] = converted["target"]["datetime"][11:16]
return {{"now": now, "meeting at 09:00 UTC": meeting}}
"""
    return Task(
        "meetings",
        f"the time in {len(zones)} zones, and a 09:00 UTC meeting in each",
        {"time": TIME},
        steps,
        program,
    )


def _observation(now: dict[str, Any]) -> str:
    """What the zones task stores of a zone's time; its program builds the same string."""
    dst = ", summer time" if now["is_dst"] else ""
    return f"{now['day_of_week']} {now['datetime'][11:16]}{dst}"


def _zone_entities(zones: list[str]) -> Callable[[list[Any]], dict[str, Any]]:
    def args(results: list[Any]) -> dict[str, Any]:
        entities = [
            {"name": zone, "entityType": "time zone", "observations": [_observation(now)]}
            for zone, now in zip(zones, results, strict=False)
        ]
        return {"entities": entities}

    return args


def _zones_in_memory(zones: list[str]) -> Task:
    """Issue 28's scripted task: the time in the zones, stored in a graph, read back."""
    steps = [
        Step("time", "get_current_time", {"timezone": zone}, at_once=n > 0)
        for n, zone in enumerate(zones)
    ]
    steps.append(Step("memory", "create_entities", _zone_entities(zones)))
    steps.append(Step("memory", "read_graph", {}))
    program = f"""
entities = []
for zone in {zones!r}:
    now = await call_tool("time", "get_current_time", {{"timezone": zone}})
    dst = ", summer time" if now["is_dst"] else ""
    seen = now["day_of_week"] + " " + now["datetime"][11:16] + dst
    entities.append({{"name": zone, "entityType": "time zone", "observations": [seen]}})
await call_tool("memory", "create_entities", {{"entities": entities}})
graph = await call_tool("memory", "read_graph", {{}})
return {{e["name"]: e["observations"] for e in graph["entities"]}}
"""
    return Task(
        "zones-memory",
        f"the time in {len(zones)} zones, stored in a memory graph, read back, summarised",
        {"time": TIME, "memory": MEMORY},
        steps,
        program,
    )


# A small team: who works on what, and what each knows; the task asks who can review a
# change to each project, and finds the people from the graph's relations.
PEOPLE = {
    "Ada": ["knows Rust", "reviews on Tuesdays"],
    "Grace": ["knows Python", "knows TypeScript"],
    "Linus": ["knows C", "knows Rust", "on call this week"],
    "Margaret": ["knows Python", "on leave until January"],
}
PROJECTS = {"ledger": ["written in Rust"], "portal": ["written in Python"]}
WORKS_ON = [("Ada", "ledger"), ("Linus", "ledger"), ("Grace", "portal"), ("Margaret", "portal")]
TEAM_ENTITIES = [
    *({"name": n, "entityType": "person", "observations": o} for n, o in PEOPLE.items()),
    *({"name": n, "entityType": "project", "observations": o} for n, o in PROJECTS.items()),
]
TEAM_RELATIONS = [
    *({"from": p, "to": project, "relationType": "works on"} for p, project in WORKS_ON),
    {"from": "Grace", "to": "Ada", "relationType": "mentors"},
]


def _team_of(project: str, index: int) -> Callable[[list[Any]], dict[str, Any]]:
    """open_nodes of the people the `index`-th result's relations say work on `project`."""

    def args(results: list[Any]) -> dict[str, Any]:
        relations = results[index]["relations"]
        return {"names": [r["from"] for r in relations if r["to"] == project]}

    return args


def _team_graph() -> Task:
    """Build a small graph, then query it: each project's node, then the people its
    relations name."""
    steps = [
        Step("memory", "create_entities", {"entities": TEAM_ENTITIES}),
        Step("memory", "create_relations", {"relations": TEAM_RELATIONS}),
    ]
    opened = {}  # each project's open_nodes, by the index of its result
    for n, project in enumerate(PROJECTS):
        opened[project] = len(steps)
        steps.append(Step("memory", "open_nodes", {"names": [project]}, at_once=n > 0))
    for n, (project, index) in enumerate(opened.items()):
        steps.append(Step("memory", "open_nodes", _team_of(project, index), at_once=n > 0))
    program = f"""
await call_tool("memory", "create_entities", {{"entities": {TEAM_ENTITIES!r}}})
await call_tool("memory", "create_relations", {{"relations": {TEAM_RELATIONS!r}}})
projects = {list(PROJECTS)!r}
nodes = {{}}
for project in projects:
    nodes[project] = await call_tool("memory", "open_nodes", {{"names": [project]}})
reviewers = {{}}
for project in projects:
    names = [r["from"] for r in nodes[project]["relations"] if r["to"] == project]
    team = await call_tool("memory", "open_nodes", {{"names": names}})
    reviewers[project] = {{e["name"]: e["observations"] for e in team["entities"]}}
return reviewers
"""
    return Task(
        "team-graph",
        "a team of 4 and 2 projects stored as a graph, then who can review each project",
        {"memory": MEMORY},
        steps,
        program,
    )


CITIES = ["New York", "Chicago", "Los Angeles"]  # the three server-everything knows


def _weather() -> Task:
    """Gather a few small results and aggregate them: where code mode pays least."""
    steps = [
        Step("everything", "get-structured-content", {"location": city}, at_once=n > 0)
        for n, city in enumerate(CITIES)
    ]
    program = f"""
weather = {{}}
for city in {CITIES!r}:
    weather[city] = await call_tool("everything", "get-structured-content", {{"location": city}})
warmest = max(weather, key=lambda city: weather[city]["temperature"])
mean = sum(w["temperature"] for w in weather.values()) / len(weather)
rain = [city for city, w in weather.items() if "rain" in w["conditions"].lower()]
return {{"warmest": warmest, "mean temperature": round(mean, 1), "rain in": rain}}
"""
    return Task(
        "weather",
        f"the weather in {len(CITIES)} cities: the warmest, the mean temperature, where it rains",
        {"everything": EVERYTHING},
        steps,
        program,
    )


def tasks(zones: int = 5) -> dict[str, Task]:
    """Every task, by name; the zone tasks over the first `zones` of `ZONES`."""
    chosen = ZONES[: max(1, min(zones, len(ZONES)))]
    return {
        "meetings": _meetings(chosen),
        "zones-memory": _zones_in_memory(chosen),
        "team-graph": _team_graph(),
        "weather": _weather(),
    }


def parsed(text: str) -> Any:
    """A result's text as the model reads it: JSON where it is JSON."""
    try:
        return json.loads(text)
    except ValueError:
        return text
