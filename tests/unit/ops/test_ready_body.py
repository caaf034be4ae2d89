"""`/ready` writes its body without pydantic (start-up, issue 12); it must stay the shape
that `ReadyOut` documents in the OpenAPI document."""

from __future__ import annotations

import pytest

from taskflowd.api.routes.ops import ready_body
from taskflowd.api.schemas_ops import ReadyOut
from taskflowd.services.readiness import CheckResult, Report


@pytest.mark.parametrize(
    "report",
    [
        Report({"database": CheckResult(True, 1.25), "queue": CheckResult(True, 3)}),
        Report(
            {"database": CheckResult(True, 0.5), "redis": CheckResult(False, 2000.0, "timeout")}
        ),
    ],
)
def test_the_ready_body_is_what_ready_out_documents(report: Report) -> None:
    body = ready_body(report)
    assert ReadyOut.model_validate(body).model_dump(mode="json") == body
    assert body["status"] == ("ready" if report.ready else "unavailable")
