"""In-memory implementations of every port of ``chat/ports.py``, honest to the contracts written
there and to what the Redis adapters do, for the unit tier (tests/unit) and the contract suite
that runs the same checks over a fake and its Redis adapter (tests/integration)."""

from fakes.accounts import MemoryAccounts
from fakes.broker import MemoryBroker, MemoryHub
from fakes.changes import MemoryChanges
from fakes.clock import Clock
from fakes.delivery import MemoryDelivery
from fakes.history import MemoryHistory
from fakes.limits import MemoryLimits
from fakes.moderation import MemoryModeration
from fakes.people import MemoryPeople
from fakes.presence import MemoryPresence, PresenceState
from fakes.reads import MemoryReads
from fakes.rooms import MemoryRooms
from fakes.service_tokens import MemoryServiceTokens
from fakes.sessions import MemorySessions
from fakes.shardset import MemoryShardSet, MemorySwitch

__all__ = [
    "Clock",
    "MemoryAccounts",
    "MemoryBroker",
    "MemoryChanges",
    "MemoryDelivery",
    "MemoryHistory",
    "MemoryHub",
    "MemoryLimits",
    "MemoryModeration",
    "MemoryPeople",
    "MemoryPresence",
    "MemoryReads",
    "MemoryRooms",
    "MemoryServiceTokens",
    "MemorySessions",
    "MemoryShardSet",
    "MemorySwitch",
    "PresenceState",
]
