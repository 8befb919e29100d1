"""`OmniRestClient` on what Omni documents now, against the sandbox over loopback: `failure` actions (no
timestamp) parse, `branchId` and `attachments` are sent, a denied job names its reason, conversations are read."""

from __future__ import annotations

import asyncio
import base64

from omni_bridge.sandbox import Sandbox, SandboxConfig, demo_branch_id, embed_user_id
from omni_bridge.tools import JobState, JobStatus, OmniRestClient
from tests.conftest import Served

ECOMMERCE = "6f1c2d3e-0a4b-4c5d-8e9f-1a2b3c4d5e6f"
ALICE = embed_user_id("alice")
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 16).decode()


async def _done(omni: OmniRestClient, job_id: str) -> JobStatus:
    async with asyncio.timeout(10):
        while True:
            status = await omni.get_job(job_id)
            if status.state.terminal:
                return status
            await asyncio.sleep(0.01)


async def test_a_result_with_a_failure_action_parses_and_branch_and_attachments_reach_omni(served: Served) -> None:
    branch = demo_branch_id(ECOMMERCE)
    async with OmniRestClient(served.url, served.org_key) as omni:
        created = await omni.create_job(
            model_id=ECOMMERCE,
            prompt="total revenue",
            user_id=ALICE,
            branch_id=branch,
            attachments=[{"data": PNG, "mimeType": "image/png", "name": "a.png"}],
        )
        status = await _done(omni, created.job_id)
        result = await omni.get_job_result(created.job_id)
        page = await omni.list_conversations(user_id=ALICE, page_size=100)
        detail = await omni.get_conversation(created.conversation_id, user_id=ALICE)

    assert status.state is JobState.COMPLETE and status.branch_id == branch
    [failure] = [a for a in result.actions if a.type == "failure"]
    assert failure.timestamp is None and result.failures == [failure.message]
    assert result.query_results  # the other actions read as before
    assert created.conversation_id in [c.id for c in page.data]
    assert [m.role for m in detail.messages] == ["user", "assistant"]
    assert detail.messages[1].job_id == created.job_id and detail.user_id == ALICE


async def test_a_denied_job_reads_as_denied_not_as_a_plain_failure() -> None:
    sandbox = Sandbox(SandboxConfig(job_step_seconds=0.01, ai_credit_limit=0, ai_credit_limit_per="user"))
    async with sandbox.serve() as url, OmniRestClient(url, sandbox.config.org_key) as omni:
        denied = await _done(omni, (await omni.create_job(model_id=ECOMMERCE, prompt="x", user_id=ALICE)).job_id)
        sandbox.set_ai_credit_limit(None)
        failed = await _done(omni, (await omni.create_job(model_id=ECOMMERCE, prompt="x", user_id=ALICE)).job_id)

    assert denied.state is JobState.FAILED and denied.error is not None
    assert denied.error.denial_reason == "The user is over its AI credit limit (0 AI jobs)"
    assert failed.state is JobState.FAILED and failed.error is not None and failed.error.denial_reason is None
