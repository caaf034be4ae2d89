"""Filters of the store's list reads."""

from __future__ import annotations

import dataclasses

from taskflowd.domain.enums import TaskStatus, TaskType
from taskflowd.store.base import TaskFilter


def test_a_task_filter_in_an_org_keeps_every_other_condition() -> None:
    given = TaskFilter("org-a", TaskStatus.PAUSED, TaskType.RECURRING, "echo", "nightly")

    scoped = given.in_org("org-b")

    assert scoped == dataclasses.replace(given, org_id="org-b")
    assert given.in_org(None).org_id is None
