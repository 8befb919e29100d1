"""The sandbox's HTTP error: Omni answers REST errors as `{"detail": ..., "status": ...}`."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

__all__ = ["SandboxHTTPError", "error_response"]


class SandboxHTTPError(Exception):
    """An error the sandbox answers with; `status` is the HTTP status, `detail` Omni's message."""

    def __init__(self, status: int, detail: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
        self.headers = headers or {}


def error_response(status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    """Omni's error body, `{detail, status}`, with the same status on the response."""
    return JSONResponse({"detail": detail, "status": status, **extra}, status_code=status, headers=headers)
