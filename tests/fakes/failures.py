"""A port's method that fails once, as a store does during a failover (``unavailable``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chat.errors import unavailable


def fail_once(obj: Any, name: str, when: Callable[..., bool] = lambda *_: True) -> list[str]:
    """``obj.name`` raises ``unavailable`` on its first call that ``when(*args)`` accepts, then
    works again; the list returned records that failure."""
    real, failed = getattr(obj, name), []

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        if not failed and when(*args):
            failed.append(name)
            raise unavailable()
        return await real(*args, **kwargs)

    setattr(obj, name, flaky)
    return failed
