"""Short ids in the dashboard tell apart executions made in the same minute."""

from __future__ import annotations

import uuid

from taskflowd.dashboard.formatting import short_id
from taskflowd.domain.ids import TimeOrderedIds


def test_short_ids_of_executions_made_together_differ() -> None:
    ids = TimeOrderedIds()
    shown = {short_id(ids.next()) for _ in range(200)}
    assert len(shown) == 200
    random_id = str(uuid.uuid4())
    assert short_id(random_id) == random_id[:8]
