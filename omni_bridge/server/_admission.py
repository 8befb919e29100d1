"""`Admission`: caps on the answers in flight per end user and per tenant; beyond them a new question gets 429.

Without a bound, one user's 2,000 threads put 2,001 tool calls in flight at Omni. With it, a new question (a new
thread or message on the thread API, a new AI job on the jobs API) is admitted only while its end user has fewer
than `BRIDGE_MAX_RUNS_PER_USER` answers in flight and its tenant (service key) fewer than
`BRIDGE_MAX_RUNS_PER_TENANT`; otherwise it is refused with `429`, a `Retry-After` header and a message in the
API's own error shape, and nothing of it is stored. There is no queue: the caller decides when to ask again.

What is counted, and where: the responses that are `queued` or `running` in the store (`count_active`), so a run
counts from the moment it is admitted (queued, before any worker claims it) until it ends, and every worker on
one database counts the same runs. A response whose worker died counts until the reaper ends it (a lease time).

The race, and its bound: the count and the write are two steps. On one worker, admissions of one tenant are
serialized over both steps (a lock per tenant, held for a count and one insert, never across a call to Omni), so
one worker never overshoots. Across W workers on one database, each may be between its count and its write at
the same moment, so a cap can be exceeded by at most W - 1 answers for a moment (never by a growing amount).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from omni_bridge._locks import KeyedLocks
from omni_bridge.config import Settings
from omni_bridge.server._envelope import ApiError
from omni_bridge.stores import Owner, ServiceStore

__all__ = ["RETRY_AFTER_SECONDS", "Admission"]

RETRY_AFTER_SECONDS = 5
"""What a refused question's `Retry-After` says: most answers take seconds, so asking again this much later is
likely to succeed without hammering the service."""


class Admission:
    """Admits new questions under the caps (see the module docstring).

    Args:
        store: where the responses in flight are counted.
        per_user: answers in flight for one end user at most.
        per_tenant: answers in flight for one tenant at most.
        retry_after: the seconds a refusal's `Retry-After` names.
    """

    def __init__(
        self, store: ServiceStore, *, per_user: int, per_tenant: int, retry_after: int = RETRY_AFTER_SECONDS
    ) -> None:
        if per_user < 1 or per_tenant < 1 or retry_after < 1:
            raise ValueError("the caps and retry_after must be at least 1")
        self._store = store
        self.per_user = per_user
        self.per_tenant = per_tenant
        self.retry_after = retry_after
        self._locks = KeyedLocks()  # one per tenant, kept only while an admission holds or waits for it

    @classmethod
    def from_settings(cls, store: ServiceStore, settings: Settings) -> Admission:
        """The caps of `BRIDGE_MAX_RUNS_PER_USER` and `BRIDGE_MAX_RUNS_PER_TENANT`."""
        return cls(store, per_user=settings.bridge_max_runs_per_user, per_tenant=settings.bridge_max_runs_per_tenant)

    def __repr__(self) -> str:
        return f"<Admission per_user={self.per_user} per_tenant={self.per_tenant} admitting={len(self._locks)}>"

    @contextlib.asynccontextmanager
    async def admit(self, owner: Owner) -> AsyncIterator[None]:
        """Hold the owner's tenant while the body stores the new question, if the caps allow one more.

        ```python
        async with service.admission.admit(owner):
            await service.store.create_thread(thread, message, response)
        ```

        Raises:
            ApiError: 429 (`rate_limited`) with `Retry-After` when the end user or the tenant is at its cap;
                the body does not run.
        """
        async with self._locks.hold(owner.tenant):
            user_runs, tenant_runs = await self._store.count_active(owner)
            if user_runs >= self.per_user:
                raise self._refusal(
                    f"this end user already has {user_runs} answers in flight (at most {self.per_user})"
                )
            if tenant_runs >= self.per_tenant:
                raise self._refusal(
                    f"this service key's tenant already has {tenant_runs} answers in flight (at most {self.per_tenant})"
                )
            yield

    def _refusal(self, why: str) -> ApiError:
        message = f"Too many questions at once: {why}; ask again when one has finished (in about {self.retry_after} s)"
        return ApiError(429, "rate_limited", message, headers={"Retry-After": str(self.retry_after)})
