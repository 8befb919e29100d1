"""`POST /api/v1/query/run`: run a semantic query as a user, as Omni's query API does.

The body is Omni's: `query` (the semantic query a job result's `generate_query` action returns), `userId` (run as
that user, for row-level security; an organization key may name anyone, a personal token only its own user),
`resultType` and the options the sandbox accepts and ignores (`branchId`, `formatResults`, `cache`, `planOnly`).

Omni answers `{completedQueries[], jobIds[]}`. What one completed query holds with `resultType: json` is not
public beyond `/query/wait`'s `{job_id, status, query, summary, result, timed_out}`; the sandbox's guess: `result`
is the rows as objects keyed by field name, each cell a string as the CSV writes it (an independent benchmark saw
Omni's unformatted JSON give numbers as strings), plus `totalRowCount`. With `resultType: csv`, `result` is the CSV
text. Without `resultType` Omni sends base64 Apache Arrow, which the sandbox does not produce: that is a 400.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from omni_bridge.sandbox._caller import Caller
from omni_bridge.sandbox._errors import SandboxHTTPError
from omni_bridge.sandbox._query import Query, SandboxQueryError, run_query
from omni_bridge.sandbox._rest_input import RunQueryBody, parse_body
from omni_bridge.sandbox._semantic import get_model

if TYPE_CHECKING:
    from omni_bridge.sandbox._app import Sandbox

__all__ = ["run_query_route"]


async def run_query_route(sandbox: Sandbox, request: Request, caller: Caller) -> Response:
    body = await parse_body(request, RunQueryBody)
    user = sandbox.directory.act_as(caller.key, str(body.userId) if body.userId else None)
    if sandbox.faults.query_run_status is not None:
        raise SandboxHTTPError(sandbox.faults.query_run_status, "The query could not be run (sandbox fault knob)")
    if body.resultType not in ("json", "csv"):
        produced = "Apache Arrow" if body.resultType is None else body.resultType
        raise SandboxHTTPError(
            400, f"Bad Request: the sandbox does not produce {produced} results; pass resultType 'json' or 'csv'"
        )
    try:
        query = Query.from_omni_dict(body.query)
        model = get_model(query.model_id)
    except (KeyError, TypeError, ValidationError) as exc:
        raise SandboxHTTPError(400, f"Bad Request: query is not a semantic query the sandbox can run: {exc}") from None
    try:
        result = run_query(sandbox.conn, model, query, user.query_user())
    except SandboxQueryError as exc:
        raise SandboxHTTPError(exc.status, str(exc)) from None
    sandbox.stats.count(f"query_run.user.{user.id}")
    job_id = str(uuid.uuid4())
    rows: Any = result.text_records() if body.resultType == "json" else result.to_csv()
    completed = {
        "job_id": job_id,
        "status": "COMPLETE",
        "query": result.query.to_omni_dict(),
        "summary": {"fields": result.columns, "sql": result.sql},
        "result": rows,
        "totalRowCount": result.total_row_count,
        "timed_out": False,
    }
    return JSONResponse({"completedQueries": [completed], "jobIds": [job_id]})
