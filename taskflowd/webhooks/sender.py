"""The sender: worker nodes claim due deliveries under a lease and POST them.

Each delivery goes out from one node at a time (the claim's fence decides whose outcome
counts); a node that dies mid-send leaves the delivery due again when its lease runs out,
so delivery is at least once. Sends are bounded per node and per endpoint, run beside the
worker pool on the event loop, and never hold a database transaction open while waiting
for a receiver. Database outages pause the loop, which resumes within a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

import aiohttp
from aiohttp.resolver import DefaultResolver
from yarl import URL

import taskflowd
from taskflowd.background import Outage, Supervisor, wait_event
from taskflowd.config import WebhookSettings
from taskflowd.domain.entities import utcnow
from taskflowd.handlers.http import safe_url
from taskflowd.handlers.http_rules import url_problem
from taskflowd.handlers.ssrf import AddressPolicy, BlockedAddress, GuardedResolver, parse_ip
from taskflowd.store.errors import StoreError
from taskflowd.webhooks.leases import DeliveryLeases, Outcome, Settled
from taskflowd.webhooks.model import Attempt, Claimed
from taskflowd.webhooks.rules import (
    RESPONSE_BODY_CHARS,
    DeliveryStatus,
    Verdict,
    next_delay_s,
    signature_header,
    verdict,
)

log = logging.getLogger("taskflowd.webhooks")

TASK_NAME = "webhooks.sender"
RECORDER_TASK_NAME = "webhooks.recorder"
RECORD_BATCH = 256
"""Attempts recorded in one transaction at most."""
LEASE_MARGIN_S = 5.0
"""A claim lasts twice the request's timeout and this much more (time to record the
attempt) before another node may send the delivery again."""
SETTLE_DELAY_S = 0.05
"""A second look for deliveries after a nudge: PostgreSQL commits the change that wrote
them a moment after the outbox asked."""


class DeliveryReport(Protocol):
    """Where the sender's counts go (the node's metrics)."""

    def webhook_attempt(self, outcome: str, seconds: float) -> None: ...
    def webhook_endpoint_disabled(self, reason: str) -> None: ...


class Sender:
    def __init__(
        self,
        records: DeliveryLeases,
        settings: WebhookSettings,
        policy: AddressPolicy,
        node_id: str,
        supervisor: Supervisor,
        *,
        report: DeliveryReport | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.records = records
        self.settings = settings
        self._policy = policy
        self._owner = node_id
        self._supervisor = supervisor
        self._report = report
        self._clock = clock
        self._lease_s = 2 * settings.timeout_s + LEASE_MARGIN_S
        self._wake = asyncio.Event()
        self._sends: dict[str, asyncio.Task[None]] = {}
        self._held = 0
        self._per_endpoint: dict[str, int] = {}
        """Deliveries claimed and not yet recorded, per endpoint."""
        self._attempted: list[Outcome] = []
        self._attempts_waiting = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._second_look: asyncio.TimerHandle | None = None

    @property
    def in_flight(self) -> int:
        """Deliveries claimed and not yet recorded (being sent, or waiting to be)."""
        return self._held

    async def start(self) -> None:
        resolver = GuardedResolver(DefaultResolver(), self._policy)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(resolver=resolver, limit=self.settings.max_in_flight),
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            headers={"User-Agent": f"taskflowd/{taskflowd.__version__} (webhooks)"},
        )
        self._supervisor.spawn(TASK_NAME, self._loop)
        self._supervisor.spawn(RECORDER_TASK_NAME, self._record_loop)

    async def stop(self) -> None:
        """Stop claiming, cancel sends under way (their leases run out and another node,
        or this one after a restart, sends them again) and record the attempts made."""
        await self._supervisor.cancel(TASK_NAME)
        if self._second_look is not None:
            self._second_look.cancel()
            self._second_look = None
        sends = list(self._sends.values())
        for task in sends:
            task.cancel()
        await asyncio.gather(*sends, return_exceptions=True)
        await self._supervisor.cancel(RECORDER_TASK_NAME)
        if self._attempted:
            with contextlib.suppress(StoreError, TimeoutError):
                async with asyncio.timeout(self.settings.timeout_s):
                    await self._record(list(self._attempted), give_up_s=0.0)
            self._attempted.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def nudge(self) -> None:
        """Deliveries may just have been written: look for them now and once more shortly
        (one second look pending at a time, however many changes a second brings)."""
        self._wake.set()
        if self._second_look is None:
            with contextlib.suppress(RuntimeError):
                loop = asyncio.get_running_loop()
                self._second_look = loop.call_later(SETTLE_DELAY_S, self._look_again)

    def _look_again(self) -> None:
        self._second_look = None
        self._wake.set()

    async def _loop(self) -> None:
        outage = Outage(
            log, "webhook deliveries paused: %s", "webhook deliveries resumed", cap_s=1.0
        )
        while True:
            free = self.settings.max_in_flight - self._held
            if free > 0:
                try:
                    claimed = await self.records.claim(
                        self._owner,
                        self._per_endpoint,
                        free,
                        self.settings.max_in_flight_per_endpoint,
                        self._lease_s,
                        self._clock(),
                    )
                except StoreError as exc:
                    await asyncio.sleep(outage.failed(exc))
                    continue
                outage.succeeded()
                for delivery in claimed:
                    self._launch(delivery)
                if claimed:
                    continue
            await wait_event(self._wake, self.settings.poll_interval_s)
            self._wake.clear()

    def _launch(self, delivery: Claimed) -> None:
        self._held += 1
        endpoint = delivery.endpoint_id
        self._per_endpoint[endpoint] = self._per_endpoint.get(endpoint, 0) + 1
        task = asyncio.create_task(self._send(delivery), name=f"webhook {delivery.id}")
        self._sends[delivery.id] = task
        task.add_done_callback(lambda _: self._sends.pop(delivery.id, None))

    def _release(self, deliveries: Iterable[Claimed]) -> None:
        """The deliveries' slots are free again (their attempts recorded, or given up)."""
        for delivery in deliveries:
            self._held -= 1
            endpoint = delivery.endpoint_id
            left = self._per_endpoint.get(endpoint, 1) - 1
            if left > 0:
                self._per_endpoint[endpoint] = left
            else:
                self._per_endpoint.pop(endpoint, None)
        self._wake.set()

    async def _send(self, delivery: Claimed) -> None:
        """One attempt, queued for the recorder; the delivery keeps its slot until then."""
        try:
            attempt = await self._post(delivery)
            outcome = Outcome(delivery, attempt, self._decide(delivery, attempt))
        except asyncio.CancelledError:
            self._release([delivery])
            raise
        except Exception:
            log.exception("webhook delivery %s failed unexpectedly", delivery.id)
            self._release([delivery])
            return
        self._attempted.append(outcome)
        self._attempts_waiting.set()

    def _decide(self, delivery: Claimed, attempt: Attempt) -> Settled:
        answer = verdict(attempt.status)
        if answer is Verdict.SUCCEEDED:
            return Settled(DeliveryStatus.SUCCEEDED, None, disabled=False)
        if answer is Verdict.GONE:
            return Settled(DeliveryStatus.FAILED, None, disabled=True)
        delay = next_delay_s(delivery.attempts, self.settings.retry_schedule_s)
        retry_at = self._clock() + timedelta(seconds=delay)
        if retry_at > delivery.created_at + timedelta(seconds=self.settings.max_age_s):
            return Settled(DeliveryStatus.FAILED, None, disabled=False)
        return Settled(DeliveryStatus.PENDING, retry_at, disabled=False)

    async def _record_loop(self) -> None:
        """Record attempts as they are made, in batches: one transaction takes every
        attempt made while the one before it ran (at most `RECORD_BATCH`)."""
        while True:
            while self._attempted:
                # The batch leaves the queue once written: `stop` records what is left.
                batch = self._attempted[:RECORD_BATCH]
                await self._record(batch, give_up_s=self._lease_s)
                del self._attempted[: len(batch)]
            await self._attempts_waiting.wait()
            self._attempts_waiting.clear()

    async def _record(self, batch: Sequence[Outcome], give_up_s: float) -> None:
        """Write a batch of attempts, riding out a database outage for up to `give_up_s`
        (after that the deliveries are sent again when their leases end, which
        at-least-once allows); then free their slots and report them."""
        try:
            recorded = await self._write(batch, give_up_s)
        except Exception:
            log.exception("%d webhook attempts not recorded", len(batch))
            recorded = [None] * len(batch)
        self._release(o.claimed for o in batch)
        for outcome, settled in zip(batch, recorded, strict=True):
            self._tell(outcome, settled)

    async def _write(self, batch: Sequence[Outcome], give_up_s: float) -> list[Settled | None]:
        deadline = time.monotonic() + give_up_s
        pause = 0.1
        while True:
            now = self._clock()
            disable_before = now - timedelta(seconds=self.settings.disable_after_s)
            try:
                return await self.records.finish(batch, now, disable_before)
            except StoreError as exc:
                if time.monotonic() + pause > deadline:
                    log.warning("%d webhook attempts not recorded: %s", len(batch), exc)
                    return [None] * len(batch)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 1.0)

    def _tell(self, outcome: Outcome, recorded: Settled | None) -> None:
        attempt = outcome.attempt
        disabled = recorded is not None and recorded.disabled
        if self._report is not None:
            self._report.webhook_attempt(attempt.outcome, attempt.duration_ms / 1000)
            if disabled:
                reason = "gone" if attempt.outcome == "gone" else "failing"
                self._report.webhook_endpoint_disabled(reason)
        if disabled:
            log.warning(
                "webhook endpoint %s disabled (%s)",
                outcome.claimed.endpoint_id,
                "410 Gone" if attempt.outcome == "gone" else "failing for too long",
            )

    def _refusal(self, url: URL) -> str | None:
        problem = url_problem(url)
        if problem is not None:
            return f"the URL {problem}"
        address = parse_ip(url.host or "")
        reason = None if address is None else self._policy.refusal(address)
        return None if reason is None else f"destination {address} is refused ({reason})"

    async def _post(self, delivery: Claimed) -> Attempt:
        """One attempt; never raises for anything the receiver or the network does."""
        began = time.monotonic()

        def attempt(
            status: int | None, body: str | None, error: str | None, outcome: str
        ) -> Attempt:
            return Attempt(status, body, error, round((time.monotonic() - began) * 1000), outcome)

        url = URL(delivery.url)
        refusal = self._refusal(url)
        if refusal is not None:
            return attempt(None, None, f"refused: {refusal}", "refused")
        if self._session is None:
            return attempt(None, None, "the sender is shut down", "unreachable")
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": delivery.message_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature_header(
                delivery.secrets, delivery.message_id, timestamp, delivery.body
            ),
        }
        try:
            async with (
                asyncio.timeout(self.settings.timeout_s),
                self._session.post(
                    url, data=delivery.body, headers=headers, allow_redirects=False
                ) as resp,
            ):
                raw = await resp.content.read(RESPONSE_BODY_CHARS * 4)
                text = raw.decode(resp.charset or "utf-8", errors="replace")[:RESPONSE_BODY_CHARS]
                answer = verdict(resp.status)
                outcome = "succeeded" if answer is Verdict.SUCCEEDED else answer.value
                error = None if answer is Verdict.SUCCEEDED else f"answered {resp.status}"
                return attempt(resp.status, text, error, outcome)
        except TimeoutError:
            message = f"no answer within {self.settings.timeout_s:g} s"
            return attempt(None, None, message, "timeout")
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, BlockedAddress):
                return attempt(None, None, f"refused: {exc.os_error}", "refused")
            return attempt(None, None, f"{safe_url(url)}: {exc.os_error}", "unreachable")
        except (aiohttp.ClientError, LookupError, ValueError) as exc:
            # Not the exception's text: it may repeat the URL, query string and all.
            return attempt(None, None, f"{safe_url(url)}: {type(exc).__name__}", "unreachable")
