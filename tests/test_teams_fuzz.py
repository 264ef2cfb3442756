"""Property: any text fed to the team loader either loads or raises our own error type."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from concilium.errors import TeamFileError
from concilium.teams import TeamSpec, spec_from_text

KEYS = ["name", "strategy", "roles", "generator", "verifier", "refiner", "model", "limits",
        "answer", "format", "check", "max_rounds", "temperature", "prompt", "user", "x"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=20), st.sampled_from(["single", "gvr", "calculator", "llm",
                                                           "number", "{{ task }}", "{{ x }}"]))
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)),
    max_leaves=25,
)


def _load(text: str) -> None:
    try:
        spec = spec_from_text(text, source="fuzz.yaml")
    except TeamFileError as error:
        assert str(error).startswith("fuzz.yaml")
        assert "\n" not in str(error)
    else:
        assert isinstance(spec, TeamSpec)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_random_yaml_documents(document: object) -> None:
    _load(yaml.safe_dump(document, allow_unicode=True))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_random_text(text: str) -> None:
    _load(text)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), scalars, max_size=4))
def test_team_shaped_documents(extra: dict) -> None:
    base = {"name": "t", "strategy": "gvr", "roles": {"generator": {}, "verifier": extra}}
    _load(yaml.safe_dump(base))
