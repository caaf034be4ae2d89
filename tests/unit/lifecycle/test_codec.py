"""Sealed values: AES-256-GCM under the first key, tagged with the key id, opened by any
key of the ring; a plain value still reads; a wrong or missing key is a clear error."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime

import orjson
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from taskflowd.config import ConfigError, load_settings
from taskflowd.lifecycle.keys import keyring_of
from taskflowd.store.codec import Keyring, RowCodec, SealedValueError, key_id, sealed_key_id

PAYLOAD = {"card": "4111-1111-1111-1111", "n": [1, 2.5, None, True], "s": "é/\u0000"}


def new_key() -> bytes:
    return os.urandom(32)


def codec(*keys: bytes) -> RowCodec:
    return RowCodec(lambda v: datetime.now(UTC), Keyring(keys) if keys else None)


def test_round_trip_hides_the_value_and_names_the_key() -> None:
    key = new_key()
    c = codec(key)
    stored = c.dump(PAYLOAD)
    assert "4111" not in stored
    assert sealed_key_id(stored) == key_id(key)
    assert orjson.loads(stored).startswith("/tf1:")  # the column stays a JSON document
    assert c.load(stored) == PAYLOAD
    assert c.dump(PAYLOAD) != stored  # a fresh nonce each time


def test_the_stored_value_is_aes_gcm_under_the_tagged_key() -> None:
    """Checked with the cryptography primitive directly, not through the codec."""
    key = new_key()
    stored = codec(key).dump(PAYLOAD)
    kid, _, body = orjson.loads(stored).removeprefix("/tf1:").partition(":")
    raw = base64.b64decode(body)
    assert kid == key_id(key)
    assert orjson.loads(AESGCM(key).decrypt(raw[:12], raw[12:], None)) == PAYLOAD


def test_any_key_of_the_ring_opens_and_the_first_seals() -> None:
    old, new = new_key(), new_key()
    under_old = codec(old).dump(PAYLOAD)
    ring = codec(new, old)
    assert ring.load(under_old) == PAYLOAD
    assert sealed_key_id(ring.dump(PAYLOAD)) == key_id(new)
    assert sealed_key_id(ring.reseal(under_old)) == key_id(new)
    assert ring.reseal(ring.dump(PAYLOAD)) is None  # already under the first key


def test_wrong_or_missing_key_is_a_clear_error() -> None:
    stored = codec(new_key()).dump(PAYLOAD)
    with pytest.raises(SealedValueError, match="does not hold"):
        codec(new_key()).load(stored)
    with pytest.raises(SealedValueError, match="empty"):
        codec().load(stored)


def test_a_tampered_value_does_not_open() -> None:
    key = new_key()
    stored = codec(key).dump(PAYLOAD)
    flipped = stored[:-6] + ("A" if stored[-6] != "A" else "B") + stored[-5:]
    with pytest.raises(SealedValueError, match="does not open"):
        codec(key).load(flipped)


def test_plain_values_still_read_and_are_never_taken_for_sealed_ones() -> None:
    c = codec(new_key())
    plain = orjson.dumps("/tf1:looks:sealed").decode()
    assert c.load(plain) == "/tf1:looks:sealed"
    assert codec().dump(PAYLOAD) == orjson.dumps(PAYLOAD).decode()
    assert c.reseal(plain) is not None


def test_rendered_documents_open_only_their_json_fields() -> None:
    c = codec(new_key())
    sealed = orjson.loads(c.dump(PAYLOAD))
    doc = orjson.dumps({"name": "/tf1:not:mine", "payload": sealed, "result": None}).decode()
    opened = orjson.loads(c.open_rendered(doc, ("payload", "result")))
    assert opened == {"name": "/tf1:not:mine", "payload": PAYLOAD, "result": None}


def test_config_validates_keys_naming_the_bad_one() -> None:
    good = base64.b64encode(new_key()).decode()
    settings = load_settings(env={"TASKFLOW_SECURITY__ENCRYPTION_KEYS": good})
    ring = keyring_of(settings)
    assert ring is not None and ring.sealing_id == key_id(base64.b64decode(good))
    short = base64.b64encode(b"x" * 16).decode()
    with pytest.raises(ConfigError, match=r"security\.encryption_keys: key 1 decodes to 16 bytes"):
        load_settings(env={"TASKFLOW_SECURITY__ENCRYPTION_KEYS": f"{good},{short}"})
    with pytest.raises(ConfigError, match="key 0 is not valid base64"):
        load_settings(env={"TASKFLOW_SECURITY__ENCRYPTION_KEYS": "not base64!"})
    assert keyring_of(load_settings(env={})) is None
