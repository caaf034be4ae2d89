"""README's receiver example, read from README.md and run as written: it accepts what the
sender signs (with one secret, and with both during a rotation) and refuses anything
else."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from pathlib import Path

from taskflowd.webhooks.rules import new_secret, signature_header
from tests.e2e.readme import code_blocks

Verify = Callable[..., bool]


def _readme_verify(tmp_path: Path) -> Verify:
    [block] = code_blocks("Webhooks", "python")
    source = tmp_path / "receiver.py"
    source.write_text(block, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("readme_receiver", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    verify: Verify = module.verify
    return verify


def _headers(secrets: list[str], msg_id: str, ts: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": signature_header(secrets, msg_id, ts, body),
    }


def test_the_readme_verifier_accepts_what_the_sender_signs(tmp_path: Path) -> None:
    verify = _readme_verify(tmp_path)
    old, new = new_secret(), new_secret()
    body, now = b'{"type":"ping","timestamp":"t","data":{}}', int(time.time())
    one = _headers([new], "msg_1", now, body)
    assert verify(new, one, body)
    assert not verify(old, one, body), "another secret"
    assert not verify(new, one, body + b" "), "a changed body"
    assert not verify(new, _headers([new], "msg_1", now - 3600, body), body), "a replay"
    both = _headers([new, old], "msg_2", now, body)
    assert verify(new, both, body) and verify(old, both, body), "a rotation signs with both"
