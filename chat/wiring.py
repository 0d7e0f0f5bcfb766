"""The composition root's wiring (``app.py`` makes a node of it): which adapter serves which
port, and which use case gets which others.  Construction only: nothing here starts, reads
or sends anything (the resources start in ``app.resources``).  The order is the order of
need: storage, transport, identity, then the use cases over them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from chat.adapters import metrics
from chat.adapters.cluster.accounts import ClusterAccounts
from chat.adapters.cluster.changes import ClusterChanges
from chat.adapters.cluster.client import Cluster
from chat.adapters.cluster.history import ClusterHistory
from chat.adapters.cluster.limits import ClusterLimits
from chat.adapters.cluster.moderation import ClusterModeration
from chat.adapters.cluster.people import ClusterPeople
from chat.adapters.cluster.presence import ClusterPresence
from chat.adapters.cluster.reads import ClusterReads
from chat.adapters.cluster.rooms import ClusterRooms
from chat.adapters.cluster.roster import ClusterRoster
from chat.adapters.cluster.service_tokens import ClusterServiceTokens
from chat.adapters.cluster.sessions import ClusterSessions
from chat.adapters.redis_common import redis_access
from chat.adapters.rest import Rest, check_rows
from chat.adapters.shards.broker import ShardedBroker
from chat.adapters.sio import SocketServer
from chat.config import Settings
from chat.core import controls
from chat.core.accounts import Accounts
from chat.core.changes import Changes
from chat.core.connections import Connections
from chat.core.deletion import AccountDeletion, DeletedNames
from chat.core.devices import DeviceCookies
from chat.core.events import ClientEvents
from chat.core.inbound import InboundDispatcher, room_ordering
from chat.core.limiter import EventLimiter
from chat.core.login_guard import LoginGuard, LoginPolicy
from chat.core.member_presence import MemberPresence
from chat.core.messaging import Messaging
from chat.core.moderation import Moderation
from chat.core.ordering import Ordering
from chat.core.passwords import PasswordHasher
from chat.core.people import People
from chat.core.presence import Presence
from chat.core.reading import Reading
from chat.core.recovery import Recovery
from chat.core.renaming import Renaming
from chat.core.roles import RoomRoles
from chat.core.rooms import Rooms
from chat.core.service import ServiceTokens
from chat.core.sessions import Sessions
from chat.core.subscriptions import Subscriptions, history_baselines
from chat.core.tokens import TokenService
from chat.core.typing_filter import TypingFilter


@dataclass(frozen=True)
class Storage:
    """The Redis Cluster adapters."""

    cluster: Cluster
    history: ClusterHistory
    limits: ClusterLimits
    users: ClusterAccounts
    rooms: ClusterRooms
    presence: ClusterPresence
    reads: ClusterReads
    changes: ClusterChanges
    moderation: ClusterModeration
    people: ClusterPeople


def storage(s: Settings) -> Storage:
    cluster = Cluster(
        s.cluster, node_id=s.node_id, deadline=s.cluster_deadline,
        replica_wait_ms=s.replica_wait_ms, access=redis_access(s, "cluster"),
    )  # fmt: skip
    history = ClusterHistory(cluster, max_len=s.history_max, max_age_s=s.history_max_age)
    limits = ClusterLimits(
        cluster, login_cooldown_s=s.login_cooldown, login_cooldown_max_s=s.login_cooldown_max
    )
    roster = ClusterRoster(cluster)
    rooms = ClusterRooms(
        cluster, roster, rooms_per_user=s.rooms_per_user,
        created_per_user=s.rooms_created_per_user,
    )  # fmt: skip
    return Storage(
        cluster, history, limits, ClusterAccounts(cluster, roster), rooms,
        ClusterPresence(cluster, s.node_id, roster), ClusterReads(cluster),
        ClusterChanges(cluster, max_len=s.history_max, max_age_s=s.history_max_age),
        ClusterModeration(cluster, max_len=s.history_max),
        ClusterPeople(cluster),
    )  # fmt: skip


@dataclass(frozen=True)
class Transport:
    """What carries events: the Socket.IO server, the shards, and in-order delivery."""

    sockets: SocketServer
    broker: ShardedBroker
    inbound: InboundDispatcher
    order: Ordering
    latencies: metrics.Latencies


def transport(s: Settings, db: Storage) -> Transport:
    sockets = SocketServer(
        origins=s.origins,
        max_payload=s.max_payload,
        compression=s.ws_compression,
        events_in_flight=s.events_in_flight,
        queue_max=s.socket_queue_max,
    )
    latencies = metrics.Latencies()
    order = room_ordering(sockets, db.history, s.order_hold_ms, latencies.delivery.observe)
    inbound = InboundDispatcher(sockets, order)
    broker = ShardedBroker(
        s.shard_urls, inbound, node_id=s.node_id, subscribe_timeout=s.subscribe_timeout,
        access=redis_access(s, "shards"),
    )  # fmt: skip
    return Transport(sockets, broker, inbound, order, latencies)


def token_service(settings: Settings) -> TokenService:
    if settings.jwt_algorithm.startswith("HS"):
        signing = verifying = settings.jwt_secret
    else:
        signing = Path(settings.jwt_private_key).read_text()
        verifying = Path(settings.jwt_public_key).read_text()
    return TokenService(
        signing_key=signing,
        verifying_key=verifying,
        issuer=settings.jwt_issuer,
        algorithm=settings.jwt_algorithm,
        ttl=settings.token_ttl,
    )


def login_guard(s: Settings, limits: ClusterLimits) -> LoginGuard:
    """Device cookies are signed with a key derived from the JWT signing key, which every
    node of a deployment has."""
    hs = s.jwt_algorithm.startswith("HS")
    signing = s.jwt_secret if hs else Path(s.jwt_private_key).read_text()
    policy = LoginPolicy(s.login_fail_limit, s.login_ip_fail_limit, s.login_account_fail_limit)
    return LoginGuard(limits, DeviceCookies(signing), policy)


@dataclass(frozen=True)
class Identity:
    """Who a caller is, and how often they may ask."""

    accounts: Accounts
    sessions: Sessions
    sign_ins: ClusterSessions
    limiter: EventLimiter


def identity(s: Settings, db: Storage, broker: ShardedBroker, hasher: PasswordHasher) -> Identity:
    tokens, sign_ins = token_service(s), ClusterSessions(db.cluster)
    service = ServiceTokens(ClusterServiceTokens(db.cluster), db.users, broker.publish)
    accounts = Accounts(
        db.users, db.limits, hasher, tokens, login_ip_rate=s.login_ip_rate,
        register_ip_rate=s.register_ip_rate, register_ip_burst=s.register_ip_burst,
        guard=login_guard(s, db.limits), sessions=sign_ins, service=service,
    )  # fmt: skip
    sessions = Sessions(
        sign_ins, db.users, db.limits, tokens, broker, refresh_ttl=s.refresh_ttl,
        refresh_ip_rate=s.refresh_rate,
    )  # fmt: skip
    limiter = EventLimiter(db.limits, s.event_limit_table())
    return Identity(accounts, sessions, sign_ins, limiter)


@dataclass(frozen=True)
class Conversation:
    """The use cases behind the client's events and the REST routes."""

    messaging: Messaging
    rooms: Rooms
    recovery: Recovery
    member_presence: MemberPresence
    renaming: Renaming
    changes: Changes
    reading: Reading
    moderation: Moderation
    people: People
    shown: DeletedNames  # read paths: deleted users' neutral name

    def client_events(self) -> ClientEvents:
        return ClientEvents(
            self.messaging, self.rooms, self.recovery, self.member_presence, self.renaming,
            self.changes, reading=self.reading, moderation=self.moderation, people=self.people,
        )  # fmt: skip


def conversation(
    s: Settings,
    db: Storage,
    t: Transport,
    who: Identity,
    people: tuple[Presence, Connections, RoomRoles],
) -> Conversation:
    broker, (presence, connections, roles) = t.broker, people
    rooms = Rooms(
        db.rooms, db.users, db.history, broker, connections, db.limits, roles,
        deleted=db.people.deleted,
    )  # fmt: skip
    messaging = Messaging(
        broker, db.history, rooms, db.rooms, db.users, text_max=s.text_max,
        observe_write=t.latencies.write.observe,
    )  # fmt: skip
    shown = DeletedNames(db.history, db.people)
    changes = Changes(
        db.changes, rooms, messaging, text_max=s.text_max, edit_window_s=s.edit_window_s,
        roles=roles,
    )  # fmt: skip
    reading = Reading(
        db.reads, rooms, db.rooms, db.users, broker, receipts_max=s.receipts_max_members
    )
    return Conversation(
        messaging, rooms, Recovery(shown, rooms, connections),
        MemberPresence(presence, connections, rooms, db.rooms),
        Renaming(who.accounts, db.rooms, broker), changes, reading,
        Moderation(roles, rooms, messaging, db.users, db.history, broker),
        People(db.people, db.users, broker, blocks_max=s.blocks_max), shown,
    )  # fmt: skip


@dataclass(frozen=True)
class Served:
    """What the node itself needs of the use cases: its lifecycle, REST routes and metrics."""

    presence: Presence
    connections: Connections
    messaging: Messaging
    rest: Rest


def use_cases(s: Settings, db: Storage, t: Transport, hasher: PasswordHasher) -> Served:
    """The use cases over the ports; the Socket.IO events are registered on ``t.sockets``."""
    who = identity(s, db, t.broker, hasher)
    presence = Presence(
        db.presence, t.broker, grace=s.presence_grace, renew_every=s.lease_renew,
        lease=s.lease_ttl, per_user=s.connections_per_user,
    )  # fmt: skip
    subscriptions = Subscriptions(t.broker, t.order, history_baselines(db.rooms, db.history))
    roles = RoomRoles(db.moderation, db.rooms, members_max=s.room_members_max)
    connections = Connections(
        who.accounts, db.users, db.rooms, subscriptions, t.order, t.sockets, presence,
        who.limiter, counts=db.reads.counts, roles=roles.roles_of,
    )  # fmt: skip
    chat = conversation(s, db, t, who, (presence, connections, roles))
    TypingFilter(db.people, connections, t.sockets).register(t.inbound)
    controls.register(t.inbound, connections)
    # Every event spends its row of the limit table first (an event without one: no start).
    t.sockets.serve(connections, who.limiter.guard(chat.client_events().events()))
    return Served(presence, connections, chat.messaging, _rest(s, db, t, who, chat, presence))


def _rest(
    s: Settings, db: Storage, t: Transport, who: Identity, chat: Conversation, presence: Presence
) -> Rest:
    deletion = AccountDeletion(
        who.accounts, db.users, db.people, who.sign_ins, db.rooms, t.broker, db.moderation
    )
    rest = Rest(
        who.accounts, chat.renaming, chat.messaging, chat.rooms, chat.recovery, chat.shown,
        presence.online, token_ttl=s.token_ttl, cookie_secure=s.cookie_secure,
        trusted_proxies=s.trusted_proxies, limiter=who.limiter, sessions=who.sessions,
        reading=chat.reading, changes=chat.changes, moderation=chat.moderation,
        people=chat.people, deletion=deletion,
    )  # fmt: skip
    check_rows(rest.routes(), who.limiter)  # a signed-in route without a limit row: no start
    return rest
