"""Errors that cross the wire: a stable snake_case code, a human message and an HTTP status.

Leaf module: imports nothing of the project.
"""

from __future__ import annotations

from typing import Any

#: ``reason`` of an ``unauthorized`` error (and ``code`` of a ``session_end`` event) that tells
#: a client what to do: refresh its token and reconnect, or sign in again.
TOKEN_EXPIRED = "token_expired"  # noqa: S105 - a reason, not a secret
TOKEN_REVOKED = "token_revoked"  # noqa: S105


class ChatError(Exception):
    """An error the client is told about, as ``{"code", "message"}``.

    ``retriable`` marks errors a client may retry unchanged (with the same ``cid``).
    """

    def __init__(
        self,
        code: str,
        message: str,
        status: int = 400,
        *,
        retriable: bool = False,
        retry_after: float | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.retriable = retriable
        self.retry_after = retry_after  # seconds, where the server knows
        self.reason = reason  # a finer cause a client acts on (TOKEN_EXPIRED ...)

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.retry_after is not None:
            wire["retry_after"] = round(self.retry_after, 3)
        if self.reason is not None:
            wire["reason"] = self.reason
        return wire

    def __repr__(self) -> str:
        return f"ChatError({self.code!r}, {self.message!r}, {self.status})"


def invalid_request(message: str) -> ChatError:
    return ChatError("invalid_request", message, 400)


def unauthorized(
    message: str = "authentication required", *, reason: str | None = None
) -> ChatError:
    return ChatError("unauthorized", message, 401, reason=reason)


def forbidden(message: str = "not allowed") -> ChatError:
    return ChatError("forbidden", message, 403)


def not_found(code: str, message: str) -> ChatError:
    return ChatError(code, message, 404)


def rate_limited(wait: float | None = None) -> ChatError:
    hint = f", retry in {max(1, round(wait))} s" if wait else ""
    return ChatError(
        "rate_limited", f"too many requests{hint}", 429, retriable=True, retry_after=wait
    )


def unavailable(message: str = "temporarily unavailable, retry") -> ChatError:
    return ChatError("unavailable", message, 503, retriable=True)


def internal() -> ChatError:
    # Never carries the exception text: it may hold secrets or internals.
    return ChatError("internal", "internal server error", 500)


#: Why a change of a message (edit, delete, react) was refused: code -> (status, message).
#: The change scripts answer these codes; the core and the in-memory fake raise them alike.
REFUSALS = {
    "no_message": (404, "no such message"),
    "forbidden": (403, "only its author may change a message"),
    "message_deleted": (409, "the message was deleted"),
    "edit_window_closed": (403, "the message is too old to be edited"),
    "too_many_reactions": (409, "too many reactions on this message"),
    "invalid_emoji": (400, "emoji must be one Unicode emoji"),
}


def refusal(code: str) -> ChatError:
    status, message = REFUSALS[code]
    return ChatError(code, message, status)


#: Why a role or moderation action (``chat/core/moderation.py``) or a membership change of a
#: moderated room was refused: code -> (status, message).  The moderation script answers these
#: codes; the core and the in-memory fake raise them alike.
MODERATION_REFUSALS = {
    "forbidden": (403, "your role in this room does not allow this"),
    "not_member": (404, "the user is not a member of this room"),
    "banned": (403, "banned from this room"),
    "muted": (403, "muted in this room"),
    "room_full": (403, "the room has as many members as it may have"),
    "owner_must_transfer": (409, "the owner must transfer the room before leaving it"),
}


def moderation_refusal(code: str) -> ChatError:
    status, message = MODERATION_REFUSALS[code]
    return ChatError(code, message, status)
