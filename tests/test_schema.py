"""``team.schema.json`` agrees with the loader: editors must not flag a team that loads.

Before, ``strategy: gvr`` (the shorthand of the examples and the README) failed
against the schema, so every editor using it marked correct files as wrong.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from concilium.graphs import STRATEGIES
from concilium.teams import ROLE_KINDS, spec_from_dict, spec_from_text, team_json_schema

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples" / "teams").glob("*.yaml"))
SNIPPETS = re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
MINIMAL = {"name": "snippet", "strategy": "single", "roles": {"generator": {}}}


def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads((ROOT / "team.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _problems(data: Any) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in _validator().iter_errors(data)]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_team_is_valid_against_the_schema(path: Path) -> None:
    spec_from_text(path.read_text(), source=str(path))  # the loader accepts it ...
    assert _problems(yaml.safe_load(path.read_text())) == []  # ... and so does the schema


@pytest.mark.parametrize("snippet", SNIPPETS, ids=lambda s: s.split("\n", 1)[0][:40])
def test_every_readme_snippet_is_valid_against_the_schema(snippet: str) -> None:
    data = yaml.safe_load(snippet)
    if "name" not in data:  # a fragment: one section of a team file
        data = {**MINIMAL, **data}
    spec_from_dict(data)
    assert _problems(data) == []


def test_readme_has_snippets() -> None:
    assert len(SNIPPETS) >= 2


@pytest.mark.parametrize(
    "text",
    [
        "strategy: gvr\nroles: {generator: {}, verifier: {check: calculator}}",
        "strategy: {name: gvr}\nroles: {generator: {}, verifier: {}}",
        "strategy: {name: self_consistency, samples: 3, adaptive: true}\n"
        "roles: {generator: {temperature: 0.7}}",
        "strategy: {name: debate, rounds: 2, final: judge}\n"
        "roles: {debater: {}, judge: {}}",
        "strategy: {name: graph, entry: a, finish: b, edges: [{from: a, to: b},"
        " {from: b, to: end}]}\nroles: {a: {role: generator}, b: {role: verifier}}",
    ],
)
def test_shorthands_the_loader_accepts_are_valid(text: str) -> None:
    data = yaml.safe_load("name: t\n" + text)
    spec_from_dict(data)
    assert _problems(data) == []


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({**MINIMAL, "strateg": "single"}, ""),
        ({**MINIMAL, "strategy": "majority_vote"}, "strategy"),
        ({**MINIMAL, "strategy": {"name": "majority_vote"}}, "strategy"),
        ({**MINIMAL, "strategy": {"name": "gvr", "samples": 3}}, "strategy"),
        ({**MINIMAL, "roles": {"generator": {"temprature": 0.2}}}, "roles.generator"),
        ({**MINIMAL, "roles": {"oracle": {}}}, "roles.oracle"),
        ({**MINIMAL, "roles": {"a": {"role": "oracle"}}}, "roles.a.role"),
        ({**MINIMAL, "limits": {"max_rounds": -1}}, "limits.max_rounds"),
    ],
    ids=["unknown-key", "unknown-strategy", "unknown-strategy-name", "option-of-another",
         "unknown-role-field", "unknown-role-key", "unknown-role-kind", "negative-limit"],
)
def test_invalid_teams_are_rejected_by_the_schema(data: dict[str, Any], where: str) -> None:
    problems = _problems(data)
    assert problems and any(p.startswith(f"{where}:") for p in problems), problems


def test_schema_lists_strategies_role_kinds_and_each_strategys_options() -> None:
    schema = team_json_schema()
    shorthand, *branches = schema["properties"]["strategy"]["anyOf"]
    assert shorthand["enum"] == list(STRATEGIES)
    options = {b["properties"]["name"]["const"]: set(b["properties"]) - {"name"}
               for b in branches}
    assert set(options) == set(STRATEGIES)
    assert options["gvr"] == set() and {"samples", "adaptive"} <= options["self_consistency"]
    assert {"edges", "entry", "finish"} <= options["graph"]
    assert list(schema["properties"]["roles"]["properties"]) == list(ROLE_KINDS)
