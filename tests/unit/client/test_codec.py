"""What the client sends: `encode` turns its values into the API's JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum, StrEnum

import orjson

from taskflowd.client import NewRun
from taskflowd.client.codec import encode


class Colour(StrEnum):
    RED = "red"


class Level(IntEnum):
    HIGH = 9


@dataclass(frozen=True)
class Inner:
    run_at: datetime
    timeout_ms: int = field(default=5, metadata={"json": "timeout"})


AT = datetime(2026, 12, 8, 1, 2, 3, 456789, tzinfo=UTC)


def test_plain_json_is_kept_and_containers_are_copied() -> None:
    document = {"a": [1, 2.5, "x", True, None], "b": {"c": {}}}

    encoded = encode(document)

    assert encoded == document
    assert encoded is not document and encoded["a"] is not document["a"]


def test_values_inside_payloads_become_json() -> None:
    encoded = encode(
        {"when": AT, "colour": Colour.RED, "level": Level.HIGH, "pair": (1, AT), "inner": Inner(AT)}
    )

    assert encoded == {
        "when": "2026-12-08T01:02:03.456789+00:00",
        "colour": "red",
        "level": 9,
        "pair": [1, "2026-12-08T01:02:03.456789+00:00"],
        "inner": {"runAt": "2026-12-08T01:02:03.456789+00:00", "timeout": 5},
    }
    assert type(encoded["colour"]) is str and type(encoded["level"]) is int


def test_a_run_sends_only_what_it_sets() -> None:
    assert NewRun({"i": 1}).to_json() == {"payload": {"i": 1}}
    assert orjson.loads(orjson.dumps(NewRun(priority=3, run_at=AT).to_json())) == {
        "priority": 3,
        "runAt": "2026-12-08T01:02:03.456789+00:00",
    }
