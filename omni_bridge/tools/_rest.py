"""`OmniRestClient`: the Omni REST endpoints the bridge uses (AI Jobs, embed users, generate-session, models).

The client is its call groups over one transport: `RestTransport` (the key, retries, errors), `EmbedUserCalls`
(SCIM lookup and generate-session upsert), `CatalogCalls` (models and topics), `JobCalls` (AI Jobs),
`ConversationCalls` (AI conversations) and `QueryCalls` (query runs).
"""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from omni_bridge.config import Settings
from omni_bridge.exceptions import ConfigError
from omni_bridge.tools._rest_catalog import CatalogCalls
from omni_bridge.tools._rest_conversations import ConversationCalls
from omni_bridge.tools._rest_embed_users import EmbedUserCalls
from omni_bridge.tools._rest_jobs import JobCalls
from omni_bridge.tools._rest_pacer import configured_budget
from omni_bridge.tools._rest_query import QueryCalls

__all__ = ["OmniRestClient"]


class OmniRestClient(EmbedUserCalls, CatalogCalls, JobCalls, ConversationCalls, QueryCalls):
    """An async client of Omni's REST API, acting with one organization API key.

    Use it as an async context manager, or call `aclose()`. Safe to share between tasks.

    ```python
    async with OmniRestClient("https://acme.omniapp.co", api_key) as omni:
        user = await omni.find_embed_user("cust-42")
    ```
    """

    @classmethod
    def from_settings(
        cls, settings: Settings, *, base_url: str | None = None, api_key: str | SecretStr | None = None, **kwargs: Any
    ) -> OmniRestClient:
        """A client configured from `Settings` (`OMNI_BASE_URL`, `OMNI_API_KEY`, timeout, retries and the budget).

        The budget is `OMNI_REST_REQUESTS_PER_MINUTE` when it is set, else the target's default (Omni's 60 per
        minute; a generous one on loopback, where the sandbox runs).

        Args:
            settings: the effective settings.
            base_url: overrides `OMNI_BASE_URL` (e.g. the embedded sandbox's URL when it is unset).
            api_key: overrides `OMNI_API_KEY`.
            **kwargs: further constructor options (`max_retry_wait`, `http`, `sleep`, `pacer`).

        Raises:
            ConfigError: no base URL or no API key is known.
        """
        url = base_url or (str(settings.omni_base_url) if settings.omni_base_url is not None else None)
        if url is None:
            raise ConfigError("OMNI_BASE_URL is unset: pass the embedded sandbox's URL as `base_url`")
        key = api_key if api_key is not None else settings.omni_api_key
        if key is None:
            raise ConfigError("OMNI_API_KEY is unset: an organization API key is needed to act for embed users")
        kwargs.setdefault("requests_per_minute", configured_budget(settings))
        return cls(
            url,
            key,
            timeout=settings.omni_timeout_seconds,
            max_retries=settings.omni_max_retries,
            **kwargs,
        )
