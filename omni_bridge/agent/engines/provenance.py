"""What both engines add to an answer about its data: the `provenance` part, and a notice when data was partial.

The engines collect one `QueryProvenance` per query result they used (the claude engine from each shaped tool
result, the omni engine from each `generate_query` action of the job) and hand them here when the answer is
final. An answer with no query gets no provenance part (see `ProvenancePart`).

A table that stayed Omni's preview is never silent: besides the part's `cut_reason`, the answer itself carries a
text part saying the data is partial, whatever the model or Omni's AI wrote.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from omni_bridge.agent.events import ContentPart, ProvenancePart, TextPart
from omni_bridge.tools import OmniRestClient, QueryProvenance, QueryRerun, QueryRows, partial_notice

__all__ = ["provenance_parts", "rerun_as"]


def provenance_parts(queries: Sequence[QueryProvenance]) -> list[ContentPart]:
    """The parts closing an answer: the partial-data notice when one is due, then the provenance part."""
    # The same query shaped twice (a retry) is listed once; the models hold lists, so compare their JSON.
    unique = list({query.model_dump_json(exclude={"result_id"}): query for query in queries}.values())
    if not unique:
        return []
    notice = partial_notice(unique)
    parts: list[ContentPart] = [TextPart(text="\n\n" + notice)] if notice else []
    parts.append(ProvenancePart(queries=unique))
    return parts


def rerun_as(rest: OmniRestClient, user_id: str) -> QueryRerun:
    """Runs a previewed query again as `user_id`, the user the answer is for."""

    async def rerun(query: Mapping[str, Any], header: Sequence[str]) -> QueryRows:
        return await rest.run_query(query, user_id=user_id, header=header)

    return rerun
