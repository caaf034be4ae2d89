"""Every outcome batch passes the workflows' final-outcome hook, a workflow step or not.
On PostgreSQL its look-up is one statement for any batch size: with the ids spelt out
one by one, each batch size was a statement of its own for every pooled connection to
prepare (a round trip and a plan each) and keep in its statement cache."""

from __future__ import annotations

from taskflowd.store import SqlStore
from taskflowd.workflows.progress import RunProgress
from tests.integration.queue.counting import Counting


async def test_the_final_hooks_look_up_is_one_statement_for_any_batch(
    pg_store: SqlStore,
) -> None:
    progress = RunProgress(pg_store.db)
    sent: list[str] = []
    async with pg_store.db.transaction() as conn:
        for batch in (["a"], ["a", "b", "c"], [f"id-{i}" for i in range(40)]):
            advanced = await progress.on_final(Counting(conn, sent), batch)
            assert not advanced.spawned and not advanced.finished
    assert len(sent) == 3 and len(set(sent)) == 1, sent
