"""Every Redis Cluster key, built in one place (pub/sub channel names: ``chat/channels.py``).

Cluster keys carry a hash tag (``{...}``) so that all keys of one room (or one user) live in
one cluster slot: a Lua script or MULTI may then touch them together.

Leaf module: imports nothing of the project.
"""

from __future__ import annotations

import hashlib

# --- Redis Cluster keys (hash-tagged) ----------------------------------------------------------
# Rooms: {r:<room>}.  Users: {u:<id>}.  Accounts: {e:<digest of the email>} (no addresses in
# key names, which show up in monitoring).  Tokens: {t:<jti>}.  Rate limits: {rl:<scope>:<id>}.


def room_seq_key(room_id: str) -> str:
    """Counter that hands out the room's gap-free sequence numbers."""
    return f"{{r:{room_id}}}:seq"


def room_log_key(room_id: str) -> str:
    """The room's history: a stream whose entry ids are ``<seq>-0``."""
    return f"{{r:{room_id}}}:log"


def room_meta_key(room_id: str) -> str:
    return f"{{r:{room_id}}}:meta"


def room_members_key(room_id: str) -> str:
    return f"{{r:{room_id}}}:members"


def room_roster_key(room_id: str) -> str:
    """The room's members in ``members`` order, as one sorted set (all scores 0, so ordered by
    the member string): ``<0 online|1 offline><name lowercased>\\0<id>\\0<name>``.  A page is
    one ``ZRANGE``, whatever the room's size."""
    return f"{{r:{room_id}}}:roster"


def room_roster_index_key(room_id: str) -> str:
    """Per member of the roster: ``m:<id>`` its current entry (to replace it on a rename or a
    presence change), ``p:<id>`` the newest presence applied, ``<version> <0|1>``."""
    return f"{{r:{room_id}}}:roster:index"


def room_idem_key(room_id: str, sender_id: str, token: str) -> str:
    """Remembers a send by (sender, client id) so that a retry returns the first result."""
    return f"{{r:{room_id}}}:idem:{sender_id}:{token}"


def room_state_key(room_id: str) -> str:
    """Current state of changed messages: field ``<seq>`` -> JSON overlay ``{text?, edited_ts?,
    deleted?, reactions?}``, written with the change entry that caused it."""
    return f"{{r:{room_id}}}:state"


def room_reactors_key(room_id: str, seq: int) -> str:
    """Who reacted to message ``seq`` with what: a set of ``<emoji>\\n<user id>``."""
    return f"{room_reactors_prefix(room_id)}{seq}"


def room_reactors_prefix(room_id: str) -> str:
    """``room_reactors_key`` without the seq: the read script, which learns the seqs as it
    reads the page, completes it (the same slot, so the script may touch them)."""
    return f"{{r:{room_id}}}:rx:"


def room_mcount_key(room_id: str) -> str:
    """How many plain messages (not change entries) the room has had: unread counting."""
    return f"{{r:{room_id}}}:mcount"


def room_own_key(room_id: str, user_id: str) -> str:
    """Seqs of the user's own plain messages in the room (newest 128): not unread to them."""
    return f"{{r:{room_id}}}:own:{user_id}"


def room_mention_key(room_id: str, user_id: str) -> str:
    """Seqs of the room's plain messages that mention the user (newest 128)."""
    return f"{{r:{room_id}}}:mention:{user_id}"


def room_read_key(room_id: str) -> str:
    """Read positions: user id -> ``"<read_seq> <mcount as of read_seq>"``."""
    return f"{{r:{room_id}}}:read"


def room_gate_key(room_id: str) -> str:
    """A DM room's gate, a hash whose fields refuse new messages while present:
    ``b:<user>`` the user blocked the other, ``x`` one of the two accounts was deleted.  Read
    by the append script itself, so a DM costs no round trip of its own for these checks."""
    return f"{{r:{room_id}}}:gate"


def room_roles_key(room_id: str) -> str:
    """Roles other than plain member: user id -> ``owner`` | ``admin`` (issue 17)."""
    return f"{{r:{room_id}}}:roles"


def room_bans_key(room_id: str) -> str:
    """Banned users: user id -> expiry in ms since the epoch (0: until unbanned)."""
    return f"{{r:{room_id}}}:bans"


def room_mutes_key(room_id: str) -> str:
    """Muted users: user id -> expiry in ms since the epoch."""
    return f"{{r:{room_id}}}:mutes"


def service_admins_key() -> str:
    """User ids of bots whose service token has the ``admin`` scope: treated as an owner of
    every room by the role checks (the store of record, never the token's claims alone)."""
    return "{g}:service_admins"


def service_tokens_key() -> str:
    """Service tokens: token id -> JSON ``{name, user, scopes, created, hash}`` (the secret
    is stored only as a hash)."""
    return "{g}:service_tokens"


def user_names_key() -> str:
    """Display-name search: a sorted set of ``<lowercased name>\\0<user id>`` (all scores 0),
    paged by ``ZRANGEBYLEX`` on a prefix."""
    return "{g}:names"


def deleted_users_key() -> str:
    """Ids of deleted accounts: read paths show their messages under a neutral name."""
    return "{g}:deleted_users"


def public_rooms_key() -> str:
    """Ids of the public rooms (one small set for the whole deployment)."""
    return "{g}:public_rooms"


def user_key(user_id: str) -> str:
    return f"{{u:{user_id}}}:user"


def user_rooms_key(user_id: str) -> str:
    return f"{{u:{user_id}}}:rooms"


def user_blocks_key(user_id: str) -> str:
    """Users this user blocked (a set of user ids)."""
    return f"{{u:{user_id}}}:blocks"


def user_quota_key(user_id: str) -> str:
    """Counts beside the room list, changed with it in one script: ``rooms`` (rooms other
    than DMs and the lobby the user belongs to) and ``created`` (rooms ever created)."""
    return f"{{u:{user_id}}}:quota"


def email_digest(email_normalised: str) -> str:
    return hashlib.sha256(email_normalised.encode()).hexdigest()[:32]


def account_key(email_normalised: str) -> str:
    """Login record of one email (user id and password hash); created atomically once."""
    return f"{{e:{email_digest(email_normalised)}}}:account"


def login_throttle_key(email_normalised: str) -> str:
    """The account's budget of failed logins from devices it does not know (any address)."""
    return f"{{e:{email_digest(email_normalised)}}}:throttle"


def login_pair_key(email_normalised: str, address: str) -> str:
    """Failed logins of one account from one client address (the address is digested: it
    comes from a header and may be any text)."""
    return f"{{e:{email_digest(email_normalised)}}}:throttle:ip:{email_digest(address)}"


def login_device_key(email_normalised: str, device: str) -> str:
    """Failed logins of one account from one of its known devices (a device cookie's id)."""
    return f"{{e:{email_digest(email_normalised)}}}:throttle:dev:{email_digest(device)}"


def login_address_key(address: str) -> str:
    """Failed logins from one client address, whatever the accounts."""
    return f"{{la:{email_digest(address)}}}:throttle"


def revoked_key(jti: str) -> str:
    return f"{{t:{jti}}}:revoked"


def refresh_families_key(user_id: str) -> str:
    """The user's sign-ins: field = refresh family id, value = JSON with the SHA-256 of the
    current and of the previous refresh secret, the last rotation and the expiry (ms).  One
    hash in the user's slot, so that one script can end every sign-in of the user at once."""
    return f"{{u:{user_id}}}:refresh"


def session_epoch_key(user_id: str) -> str:
    """The user's session generation, raised by "log out everywhere"; access tokens carry the
    generation they were issued in and older ones are refused."""
    return f"{{u:{user_id}}}:epoch"


def rate_key(scope: str, ident: str) -> str:
    return f"{{rl:{scope}:{ident}}}"


# --- presence: the connection registry ------------------------------------------------------


def user_conns_key(user_id: str) -> str:
    """The user's connections: field ``<node>/<sid>``, value the node's incarnation."""
    return f"{{u:{user_id}}}:conns"


def user_presence_key(user_id: str) -> str:
    """The user's published state: ``online`` (1/0) and ``ts`` of the last transition."""
    return f"{{u:{user_id}}}:presence"


def offline_due_key() -> str:
    """Users whose last connection closed, scored by the end of their grace period."""
    return "{g}:offline_due"


def offline_claim_key(request: str) -> str:
    """What one claim of due users took (a minute: what a resend of it answers again)."""
    return f"{{g}}:offline_claim:{request}"


def online_users_key() -> str:
    return "{g}:online"


def nodes_key() -> str:
    """Live nodes: node id -> its current incarnation."""
    return "{g}:nodes"


def node_lease_key(node_id: str) -> str:
    return f"{{n:{node_id}}}:lease"


def node_purge_key(node_id: str) -> str:
    return f"{{n:{node_id}}}:purge"


def node_users_key(node_id: str, incarnation: str) -> str:
    """Users with connections registered by one incarnation of a node (what a purge visits)."""
    return f"{{n:{node_id}:{incarnation}}}:users"


# --- the pub/sub shard set (issue 15): one slot, {shardset} -------------------------------------


def shardset_key() -> str:
    """The shard set in force: one JSON ``Layout`` (epoch, phase, shards, previous).  No
    credentials: a node connects with its CHAT_* ones."""
    return "{shardset}:layout"


def shardset_acks_key() -> str:
    """Per node, the step of the shard set it runs: field node id, value ``<epoch>:<phase>``."""
    return "{shardset}:acks"
