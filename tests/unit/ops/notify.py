"""The service manager's end of sd_notify: a bound AF_UNIX datagram socket."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator

from tests.integration.queue.polling import eventually


class Listener:
    """The service manager's end: a bound datagram socket and the messages it got."""

    def __init__(self, sock: socket.socket, address: str) -> None:
        self.sock = sock
        self.address = address
        self.messages: list[str] = []

    def drain(self) -> list[str]:
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return self.messages

    async def wait_for(self, wanted: str, count: int = 1) -> list[str]:
        async def enough() -> list[str] | None:
            found = [m for m in self.drain() if wanted in m.split("\n")]
            return found if len(found) >= count else None

        result: list[str] = await eventually(enough, f"{count} x {wanted!r} on the socket")
        return result


@contextlib.contextmanager
def listening() -> Iterator[Listener]:
    # AF_UNIX paths are limited to ~108 bytes: keep it short, not under tmp_path.
    folder = tempfile.mkdtemp(prefix="tfd-")
    path = os.path.join(folder, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    try:
        yield Listener(sock, path)
    finally:
        sock.close()
        shutil.rmtree(folder, ignore_errors=True)
