"""Team files: examples load; every broken file fails with one line naming file, line, field."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from concilium import TeamFileError, load_team
from concilium.teams import TeamSpec, load_spec, spec_from_text, team_json_schema

BAD = sorted((Path(__file__).parent / "bad_teams").glob("*.yaml"))
EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples" / "teams").glob("*.yaml"))


def _expectation(path: Path) -> tuple[int | None, str | None, str]:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    match = re.match(r"# expect: (\S+) \| (\S+) \| (.+)$", first)
    assert match, f"{path.name} lacks its '# expect: line | field | message' header"
    line, field, message = match.groups()
    return (None if line == "-" else int(line)), (None if field == "-" else field), message


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_team_loads(path: Path) -> None:
    team = load_team(path)
    assert team.spec.name
    assert team.spec.roles


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.name)
def test_broken_file_gives_one_precise_line(path: Path) -> None:
    line, field, message = _expectation(path)
    with pytest.raises(TeamFileError) as caught:
        load_spec(path)
    error = caught.value
    assert error.path == str(path)
    assert error.line == line, str(error)
    assert error.field == field, str(error)
    assert message in error.message, str(error)
    text = str(error)
    assert "\n" not in text and "Traceback" not in text
    assert text.startswith(f"{path}:{line}: " if line else f"{path}: ")


def test_python_tags_never_construct_objects(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = f'name: !!python/object/apply:os.system ["touch {marker}"]\nstrategy: single\n'
    with pytest.raises(TeamFileError, match="not valid YAML"):
        spec_from_text(text)
    assert not marker.exists()


def test_missing_file_and_directory_are_clear(tmp_path: Path) -> None:
    with pytest.raises(TeamFileError, match="no such file"):
        load_spec(tmp_path / "nope.yaml")
    with pytest.raises(TeamFileError, match="is a directory"):
        load_spec(tmp_path)


def test_huge_and_binary_files_are_refused_before_parsing(tmp_path: Path) -> None:
    huge = tmp_path / "huge.yaml"
    huge.write_text("name: x\n" + "# padding\n" * 200_000)
    with pytest.raises(TeamFileError, match="the limit is 1000000"):
        load_spec(huge)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"name: \xff\xfe\x00team\n")
    with pytest.raises(TeamFileError, match="not UTF-8 text"):
        load_spec(binary)


def test_strategy_shorthand_and_defaults() -> None:
    spec = spec_from_text("name: t\nstrategy: gvr\nroles:\n  generator: {}\n  verifier: {}\n")
    assert spec.strategy.name == "gvr" and spec.strategy.options == {}
    assert spec.limits.max_rounds == 3 and spec.answer.format == "number"
    refiner = spec.role("refiner", like="generator")
    assert refiner.role == "refiner" and refiner.temperature == spec.roles["generator"].temperature


def test_model_override_reaches_every_role() -> None:
    spec = spec_from_text(
        "name: t\nstrategy: gvr\nroles:\n  generator: {model: a/b}\n  verifier: {}\n"
    ).with_model("scripted/x")
    assert {r.model for r in spec.roles.values()} == {"scripted/x"}
    assert spec.model == "scripted/x"


def test_content_hash_tracks_what_the_team_does() -> None:
    base = "name: t\nstrategy: single\nroles:\n  generator: {temperature: %s}\n"
    assert spec_from_text(base % 0).content_hash() == spec_from_text(base % 0).content_hash()
    assert spec_from_text(base % 0).content_hash() != spec_from_text(base % 1).content_hash()


def test_json_schema_describes_team_files() -> None:
    schema = team_json_schema()
    assert schema["title"] == "concilium team"
    assert {"name", "strategy", "roles", "limits"} <= set(schema["properties"])
    json.dumps(schema)


def test_committed_schema_file_is_current() -> None:
    committed = Path(__file__).resolve().parent.parent / "team.schema.json"
    assert json.loads(committed.read_text()) == team_json_schema(), (
        "team.schema.json is stale: run `concilium teams schema --out team.schema.json`"
    )


def test_dict_source_is_validated_the_same_way() -> None:
    with pytest.raises(TeamFileError, match=r"roles\.oracle"):
        load_team({"name": "t", "strategy": "single", "roles": {"oracle": {}}})
    with pytest.raises(TeamFileError, match="needs role"):
        load_team({"name": "t", "strategy": "single"})
    team = load_team({"name": "t", "strategy": "single", "roles": {"generator": {}}})
    assert isinstance(team.spec, TeamSpec) and team.source is None


async def test_unknown_model_provider_is_refused_before_any_call(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("name: t\nstrategy: gvr\nroles:\n  generator: {}\n  verifier:\n"
                    "    model: olama/llama3.1\n")
    team = load_team(path, model=None)
    with pytest.raises(TeamFileError) as caught:
        await team.arun("2+2?")
    assert str(caught.value) == (
        f"{path}:6: roles.verifier.model: unknown model provider 'olama' in "
        "'olama/llama3.1'; did you mean 'ollama'?"
    )


def test_merge_keys_may_override_without_being_duplicates() -> None:
    """``<<: *base`` then a key of its own is YAML's way to override, not a repeated key."""
    spec = spec_from_text(
        "name: t\nstrategy: gvr\nroles:\n  generator: &base\n    model: scripted/a\n"
        "    temperature: 0.2\n  verifier:\n    <<: *base\n    temperature: 0.0\n"
    )
    assert spec.roles["verifier"].model == "scripted/a"
    assert spec.roles["verifier"].temperature == 0.0
