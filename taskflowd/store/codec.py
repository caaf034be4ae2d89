"""How the JSON columns of sensitive records are written and read: plain, or sealed.

Payloads, results and errors pass through one `RowCodec` on their way into and out of
the database. With a `Keyring` they are stored AES-256-GCM encrypted, each value tagged
with the id of the key that sealed it:

    "\\/tf1:<key id>:<base64 of nonce + ciphertext>"

The stored text is a JSON string (so SQL that embeds JSON columns still works), written
with an escaped slash that orjson never writes: a plain value is never mistaken for a
sealed one. The first key of the ring seals; every key opens.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson

from taskflowd.domain.entities import JSON
from taskflowd.store.errors import StoreError

SEALED_PREFIX = '"\\/tf1:'
_RENDERED_PREFIX = "/tf1:"
_NONCE_BYTES = 12
_NONCES_PER_READ = 256


class SealedValueError(StoreError):
    """A sealed value cannot be opened: its key is not in the ring, or it was tampered with."""


class BadKey(ValueError):
    """A configured key is not base64 of 32 bytes; `index` is its place in the list."""

    def __init__(self, index: int, message: str) -> None:
        self.index = index
        super().__init__(f"key {index} {message}")


def key_id(key: bytes) -> str:
    """A short public name of a key (a truncated SHA-256): stored with every value it seals."""
    return hashlib.sha256(key).hexdigest()[:8]


def parse_key(index: int, text: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise BadKey(index, "is not valid base64") from None
    if len(raw) != 32:
        raise BadKey(index, f"decodes to {len(raw)} bytes; AES-256 needs 32")
    return raw


class Keyring:
    """AES-256-GCM keys by id; the first one seals."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("a keyring needs at least one key")
        # cryptography costs ~6 MB and ~50 ms to import: only a node with keys loads it.
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._ciphers = {key_id(k): AESGCM(k) for k in keys}
        self.sealing_id = key_id(keys[0])
        self._sealer = self._ciphers[self.sealing_id]
        self._nonces = b""
        self._taken = 0
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, texts: Iterable[str]) -> Keyring | None:
        """The ring of `security.encryption_keys` (None when empty); raises BadKey."""
        keys = [parse_key(i, t) for i, t in enumerate(texts)]
        return cls(keys) if keys else None

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(self._ciphers)

    def _nonce(self) -> bytes:
        # Random nonces read from the OS a few hundred at a time (one system call each
        # was a third of a seal's cost); each is used once.
        with self._lock:
            if self._taken >= len(self._nonces):
                self._nonces, self._taken = os.urandom(_NONCE_BYTES * _NONCES_PER_READ), 0
            start = self._taken
            self._taken += _NONCE_BYTES
        return self._nonces[start : start + _NONCE_BYTES]

    def seal(self, plain: bytes) -> str:
        nonce = self._nonce()
        box = self._sealer.encrypt(nonce, plain, None)
        body = base64.b64encode(nonce + box).decode()
        return f'{SEALED_PREFIX}{self.sealing_id}:{body}"'

    def open(self, text: str) -> bytes:
        """The plain bytes of a sealed column value (starting with SEALED_PREFIX)."""
        kid, _, body = text[len(SEALED_PREFIX) : -1].partition(":")
        return self._open(kid, body)

    def open_rendered(self, value: str) -> bytes:
        """The plain bytes of a sealed value as a JSON document shows it (`/tf1:…`)."""
        kid, _, body = value[len(_RENDERED_PREFIX) :].partition(":")
        return self._open(kid, body)

    def _open(self, kid: str, body: str) -> bytes:
        from cryptography.exceptions import InvalidTag

        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise SealedValueError(
                f"a stored value is sealed with key id {kid}, which "
                "security.encryption_keys does not hold"
            )
        try:
            raw = base64.b64decode(body)
            return cipher.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], None)
        except (binascii.Error, ValueError, InvalidTag):
            raise SealedValueError(f"a value sealed with key id {kid} does not open") from None


def sealed_key_id(text: str | None) -> str | None:
    """The key id of a stored column value; None when it is plain."""
    if text is None or not text.startswith(SEALED_PREFIX):
        return None
    return text[len(SEALED_PREFIX) :].partition(":")[0]


class RowCodec:
    """One database's column conversions: calling it decodes a stored time; `dump` and
    `load` write and read the JSON columns of payloads, results and errors (sealed when
    there is a keyring; plain values still read, so keys can be added to a live database)."""

    def __init__(self, decode_time: Callable[[Any], datetime], keyring: Keyring | None) -> None:
        self._decode_time = decode_time
        self.keyring = keyring

    def __call__(self, value: Any) -> datetime:
        return self._decode_time(value)

    def dump(self, value: JSON) -> str:
        plain = orjson.dumps(value)
        if self.keyring is None:
            return plain.decode()
        return self.keyring.seal(plain)

    def load(self, text: str | None) -> JSON:
        if text is None:
            return None
        if text.startswith(SEALED_PREFIX):
            if self.keyring is None:
                raise SealedValueError(
                    "a stored value is encrypted but security.encryption_keys is empty"
                )
            return orjson.loads(self.keyring.open(text))
        return orjson.loads(text)

    def seal_text(self, text: str) -> str:
        """`text` (a response body kept for replays) sealed when there is a keyring."""
        return text if self.keyring is None else self.keyring.seal(text.encode())

    def open_text(self, text: str) -> str:
        if not text.startswith(SEALED_PREFIX):
            return text
        if self.keyring is None:
            raise SealedValueError(
                "a stored value is encrypted but security.encryption_keys is empty"
            )
        return self.keyring.open(text).decode()

    def open_rendered(self, document: str, json_keys: Sequence[str]) -> str:
        """`document` (a JSON object rendered by the database) with its sealed JSON fields
        opened; unchanged when nothing in it is sealed."""
        if self.keyring is None or _RENDERED_PREFIX not in document or not json_keys:
            return document
        obj = orjson.loads(document)
        for k in json_keys:
            value = obj.get(k)
            if isinstance(value, str) and value.startswith(_RENDERED_PREFIX):
                obj[k] = orjson.loads(self.keyring.open_rendered(value))
        return orjson.dumps(obj).decode()

    def reseal(self, text: str | None) -> str | None:
        """`text` sealed under the sealing key (None when it already is, or is NULL)."""
        if text is None or self.keyring is None:
            return None
        if sealed_key_id(text) == self.keyring.sealing_id:
            return None
        return self.dump(self.load(text))

    def reseal_text(self, text: str | None) -> str | None:
        """`reseal` for a text column written with `seal_text` (webhook secrets, bodies)."""
        if text is None or self.keyring is None:
            return None
        if sealed_key_id(text) == self.keyring.sealing_id:
            return None
        return self.seal_text(self.open_text(text))
