"""The query-run call of `OmniRestClient`: run a semantic query again as a user, with JSON rows.

Omni's AI job results preview a large result instead of sending it whole; the full table comes from running the
`query` the job returned through `POST /api/v1/query/run` (Omni's own advice, and what an independent benchmark
did). The bridge asks for `resultType: json` with `userId` for the same end user, so row-level security is the
same as for the answer, and turns the rows into CSV for the artifact.

Omni documents `{completedQueries[], jobIds[]}` and, per completed query (from `/query/wait`), `result`; what
`result` holds with JSON is not public beyond that. The client accepts a list of row objects, the same as a JSON
string, or CSV text; cells keep Omni's text (numbers may come as strings).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from omni_bridge.exceptions import OmniError
from omni_bridge.tools._artifacts import csv_cell, rows_to_csv, scan_csv
from omni_bridge.tools._rest_transport import RestTransport

__all__ = ["QueryCalls", "QueryRows"]

_PATH = "/api/v1/query/run"


@dataclass(frozen=True, slots=True)
class QueryRows:
    """The rows of a query run: the table as CSV (header first) and how many rows it has."""

    csv: str
    row_count: int


class QueryCalls(RestTransport):
    """Omni's query API (`/api/v1/query/run`)."""

    async def run_query(
        self, query: Mapping[str, Any], *, user_id: str | None = None, header: Sequence[str] | None = None
    ) -> QueryRows:
        """Run `query` as `user_id` and return its rows as CSV.

        Args:
            query: a semantic query as Omni returns it (e.g. a job's `generate_query` action's `query`).
            user_id: the Omni user to run as (an organization key may name anyone); `None`: the key's owner.
            header: column names to use instead of the field names (e.g. the labels of a preview's header),
                applied when there are as many as the query has fields.

        Raises:
            OmniHTTPError: Omni refused (400 a query it cannot run, 403, 408 timed out).
            OmniError: Omni could not be reached, or answered something unreadable.
        """
        body: dict[str, Any] = {"query": dict(query), "resultType": "json"}
        if user_id is not None:
            body["userId"] = user_id
        data = await self._request("POST", _PATH, json_body=body, idempotent=True)
        completed = data.get("completedQueries") if isinstance(data, dict) else None
        if not isinstance(completed, list) or not completed or not isinstance(completed[-1], dict):
            raise OmniError(f"Omni's answer to POST {_PATH} has no completed query")
        last = completed[-1]
        if last.get("timed_out"):
            raise OmniError(f"Omni's query run timed out (POST {_PATH})")
        fields = [f for f in query.get("fields") or () if isinstance(f, str)]
        text = _csv_of(last.get("result"), fields, list(header) if header is not None else None)
        scan = scan_csv(text)
        if fields and len(scan.columns) != len(fields):  # e.g. base64 Arrow, read as a one-column "CSV"
            raise OmniError(f"Omni's answer to POST {_PATH} is not rows of the query's {len(fields)} fields")
        return QueryRows(text, scan.row_count)


def _csv_of(result: Any, fields: list[str], header: list[str] | None) -> str:
    if isinstance(result, str):
        stripped = result.strip()
        if stripped[:1] != "[":
            if not stripped:
                raise OmniError(f"Omni's answer to POST {_PATH} has an empty result")
            return result  # CSV text
        try:
            result = json.loads(stripped)
        except ValueError:
            raise OmniError(f"Omni's answer to POST {_PATH} holds a result that is not JSON") from None
    if not isinstance(result, list) or not all(isinstance(row, dict) for row in result):
        raise OmniError(f"Omni's answer to POST {_PATH} holds no JSON rows (ask for resultType json)")
    columns = list(fields) or list(dict.fromkeys(key for row in result for key in row))
    names = header if header is not None and len(header) == len(columns) else columns
    return rows_to_csv(names, [[csv_cell(row.get(column)) for column in columns] for row in result])
