"""Property tests from the OpenAPI spec: every body the spec allows parses; bodies it forbids are rejected.

Bodies are generated from the spec's own schema by `from_schema` below, a converter for the subset of JSON
Schema the spec uses. (hypothesis-jsonschema 0.23.1, the latest release, no longer runs on current hypothesis:
it calls a private API that hypothesis removed.) Since the spec does not forbid additional properties, generated
objects carry unknown extra fields too.
"""

from __future__ import annotations

import contextlib
import copy
import json
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portable_wait import InvalidResponseError, PortableClient, WorkflowStatus

# The shared spec is the source of truth; tests/samples holds a copy for a checkout without it beside.
SPEC_CANDIDATES = [
    Path(__file__).parents[3] / "shared" / "portable-api" / "workflow-status.yaml",
    Path(__file__).parents[1] / "samples" / "workflow-status.yaml",
]


def _load_schema() -> dict[str, Any]:
    spec_path = next(p for p in SPEC_CANDIDATES if p.exists())
    spec = yaml.safe_load(spec_path.read_text())
    schemas = spec["components"]["schemas"]

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(schemas[node["$ref"].rsplit("/", 1)[-1]])
            # x-* extensions and readOnly are documentation for code generators, not constraints.
            return {k: resolve(v) for k, v in node.items() if not k.startswith("x-") and k != "readOnly"}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    schema: dict[str, Any] = resolve(schemas["WorkflowStatus"])
    return schema


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
_OFFSETS = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


def _date_time(draw_tz: Any) -> st.SearchStrategy[str]:
    moments = st.datetimes(timezones=st.just(timezone.utc) | _OFFSETS)
    return moments.map(
        lambda d: d.isoformat().replace("+00:00", "Z") if d.utcoffset() == timedelta(0) else d.isoformat()
    )


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Return a strategy for the values ``schema`` allows (object, array, string, integer, enum, date-time)."""
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        properties = {name: from_schema(sub) for name, sub in schema.get("properties", {}).items()}
        required = set(schema.get("required", []))
        extra_keys = st.text(min_size=1, max_size=8).filter(lambda k: k not in properties)
        return st.builds(
            lambda known, extra: {**extra, **known},
            st.fixed_dictionaries(
                {k: v for k, v in properties.items() if k in required},
                optional={k: v for k, v in properties.items() if k not in required},
            ),
            st.dictionaries(extra_keys, _JSON, max_size=2),
        )
    if kind == "array":
        return st.lists(from_schema(schema["items"]), max_size=4)
    if kind == "integer":
        return st.integers() | st.integers(min_value=2**63, max_value=2**100)
    if kind == "string":
        return _date_time(None) if schema.get("format") == "date-time" else st.text()
    raise NotImplementedError(f"schema construct not used by the spec: {schema}")


SCHEMA = _load_schema()
CLIENT = PortableClient("property-test-key")


def parse(body: dict[str, Any]) -> WorkflowStatus:
    wid = body.get("id")
    return CLIENT._parse(json.dumps(body).encode(), wid if type(wid) is int else 1)


def test_spec_schema_is_the_one_we_model() -> None:
    assert SCHEMA["required"] == ["id", "lifecycle", "disposition"]
    assert set(SCHEMA["properties"]) == {"id", "lifecycle", "disposition", "resources", "errors", "completedAt"}


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(from_schema(SCHEMA))
def test_spec_every_allowed_body_parses(body: dict[str, Any]) -> None:
    status = parse(body)
    assert status.id == body["id"]
    assert status.lifecycle.value == body["lifecycle"]
    assert status.disposition.value == body["disposition"]
    assert len(status.resources) == len(body.get("resources", []))
    # Server strings holding a piece of the client's key (8 characters or more, any case: "TEST-KEY" of
    # "property-test-key") come back redacted, as everywhere; every other string comes back as sent.
    assert list(status.errors) == [CLIENT._redactor.text(e) for e in body.get("errors", [])]
    for parsed, raw in zip(status.resources, body.get("resources", []), strict=True):
        assert (parsed.extracted, parsed.analyzed, parsed.loaded) == (raw["extracted"], raw["analyzed"], raw["loaded"])
    if body.get("completedAt") is not None:
        assert status.completed_at is not None and status.completed_at.tzinfo is not None


WRONG_TYPES: dict[str, list[Any]] = {
    "id": ["568971", 1.5, True, None, [1], {"v": 1}],
    "lifecycle": [1, None, ["RUNNING"], {"v": 1}, True],
    "disposition": [2, None, ["NONE"], False],
    "resources": ["users", 5, {"name": "x"}, [1], [{"name": "x"}]],
    "errors": ["boom", 5, [1], [None], {"e": 1}],
    "completedAt": [5, "not a time", [], True],
}


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(from_schema(SCHEMA), st.data())
def test_spec_forbidden_bodies_raise_invalid_response(body: dict[str, Any], data: st.DataObject) -> None:
    broken = copy.deepcopy(body)
    how = data.draw(st.sampled_from(["drop_required", "wrong_type", "not_an_object"]))
    if how == "drop_required":
        del broken[data.draw(st.sampled_from(SCHEMA["required"]))]
    elif how == "wrong_type":
        field = data.draw(st.sampled_from(sorted(WRONG_TYPES)))
        broken[field] = data.draw(st.sampled_from(WRONG_TYPES[field]))
    else:
        broken = data.draw(st.sampled_from([[body], "status", 5, None]))
    with pytest.raises(InvalidResponseError) as info:
        CLIENT._parse(json.dumps(broken).encode(), body["id"] if isinstance(body, dict) else 1)
    assert not info.value.transient
    assert "property-test-key" not in str(info.value)


@given(st.binary(max_size=200))
def test_spec_arbitrary_bytes_never_crash(raw: bytes) -> None:
    with contextlib.suppress(InvalidResponseError):
        CLIENT._parse(raw, 1)


def test_spec_error_holding_a_piece_of_the_key_comes_back_redacted() -> None:
    # The example Hypothesis found: a generated error that happens to be a piece of the test client's key.
    body = {"id": 1, "lifecycle": "PENDING", "disposition": "SUCCEEDED", "errors": ["TEST-KEY", "plain"]}
    status = parse(body)
    assert status.errors[0] != "TEST-KEY" and "TEST-KEY" not in status.errors[0]
    assert status.errors[1] == "plain"
