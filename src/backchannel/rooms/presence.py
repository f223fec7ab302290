"""Where presence lives: in Redis across the cluster, or in this process on a single node.

Two small stores behind one interface (as encode/broadcaster does for its backends). A store
knows, per user, how many sockets each node holds, the announced status, and who is waiting
out the offline debounce. It decides transitions atomically (one Lua script per operation in
Redis), so when two nodes race, exactly one of them announces each change.

Each change carries the user's version after it (1 when they come online, +1 per status
change, 0 once offline). A node announces a change only if that is still the user's version
just before it emits, so a node that decided earlier but emits later (it was busy writing
`last_seen`) cannot overwrite a newer change with a stale one.

Redis keys, all under `<prefix>:{presence}:` (the hash tag keeps them in one cluster slot,
which the scripts need):
- `node:<node>` hash user → sockets on that node; `alive:<node>` the node's heartbeat (TTL);
  `nodes` the set of nodes that have registered.
- `total` hash user → sockets on all nodes; `status` hash user → `online`|`away` for users
  whose online has been announced and whose offline has not; `version` hash user → version,
  for the same users; `pending` zset user → when their last socket closed (ms).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster

Status = Literal["online", "away", "offline"]


@dataclass(frozen=True)
class Change:
    """A transition the store decided: the new status, `last_seen` when offline, and the
    user's version after it."""

    user_id: str
    status: Status
    version: int
    last_seen: datetime | None = None


def _from_ms(ms: float) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


class PresenceStore(Protocol):
    """What the presence tracker needs from wherever presence lives."""

    async def heartbeat(self) -> bool:
        """Say this node is alive; True when the store had lost it (its counts must be resent)."""

    async def apply(self, counts: Mapping[str, int], now_ms: float) -> list[Change]:
        """Set this node's socket count per user; returns who just came online."""

    async def set_status(self, user_id: str, status: Status) -> Change | None:
        """Set a user's status; the change, or None when it was already so."""

    async def statuses(self, user_ids: Sequence[str]) -> dict[str, Status]:
        """The status of each user, in one round trip."""

    async def versions(self, user_ids: Sequence[str]) -> dict[str, int]:
        """The current version of each user (0 when offline), in one round trip."""

    async def due_offline(self, cutoff_ms: float, limit: int) -> list[Change]:
        """Users whose last socket closed before `cutoff_ms` and who have none now."""

    async def reap_dead_nodes(self, now_ms: float) -> list[Change]:
        """Forget nodes whose heartbeat expired; returns their users who are now offline."""

    async def leave(self, now_ms: float) -> list[Change]:
        """This node stops: its counts go; returns users left with no socket anywhere."""


def _offline(user_id: str, at_ms: float) -> Change:
    return Change(user_id, "offline", 0, _from_ms(at_ms))


class MemoryPresence:
    """Presence for a single node, in this process."""

    def __init__(self) -> None:
        self._total: dict[str, int] = {}
        self._status: dict[str, Status] = {}
        self._version: dict[str, int] = {}
        self._pending: dict[str, float] = {}

    async def heartbeat(self) -> bool:
        """Nothing to tell anyone: there is one node."""
        return False

    async def apply(self, counts: Mapping[str, int], now_ms: float) -> list[Change]:
        """Set the socket count per user; returns who just came online."""
        came_online = []
        for user_id, count in counts.items():
            if count > 0:
                self._total[user_id] = count
                self._pending.pop(user_id, None)
                if user_id not in self._status:
                    self._status[user_id] = "online"
                    self._version[user_id] = 1
                    came_online.append(Change(user_id, "online", 1))
            else:
                self._total.pop(user_id, None)
                if user_id in self._status:
                    self._pending.setdefault(user_id, now_ms)
        return came_online

    async def set_status(self, user_id: str, status: Status) -> Change | None:
        """Set the status; the change, or None when it was already so."""
        if self._status.get(user_id) == status:
            return None
        self._status[user_id] = status
        version = self._version.get(user_id, 0) + 1
        self._version[user_id] = version
        return Change(user_id, status, version)

    async def statuses(self, user_ids: Sequence[str]) -> dict[str, Status]:
        """The status of each user."""
        return {uid: self._status.get(uid, "offline") for uid in user_ids}

    async def versions(self, user_ids: Sequence[str]) -> dict[str, int]:
        """The version of each user."""
        return {uid: self._version.get(uid, 0) for uid in user_ids}

    async def due_offline(self, cutoff_ms: float, limit: int) -> list[Change]:
        """Users whose debounce has run out."""
        due = [uid for uid, at in self._pending.items() if at <= cutoff_ms][:limit]
        gone = []
        for user_id in due:
            closed_at = self._pending.pop(user_id)
            if user_id not in self._total and self._status.pop(user_id, None) is not None:
                self._version.pop(user_id, None)
                gone.append(_offline(user_id, closed_at))
        return gone

    async def reap_dead_nodes(self, now_ms: float) -> list[Change]:
        """No other nodes to die."""
        return []

    async def leave(self, now_ms: float) -> list[Change]:
        """Every user still online or waiting out the debounce goes offline now."""
        gone = [_offline(uid, self._pending.get(uid, now_ms)) for uid in self._status]
        self._total.clear()
        self._status.clear()
        self._version.clear()
        self._pending.clear()
        return gone


# KEYS: node hash, total, status, pending, version. ARGV: now_ms, then user, count pairs.
# Counts are absolute (this node's sockets of that user), so a retry after a lost reply
# changes nothing, and a node that was reaped by mistake heals by sending them all again.
# Returns the users who came online (their version is 1).
_APPLY = """
local came_online = {}
for i = 2, #ARGV, 2 do
  local user = ARGV[i]
  local count = tonumber(ARGV[i + 1])
  local had = tonumber(redis.call('HGET', KEYS[1], user) or '0')
  local diff = count - had
  if diff ~= 0 then
    if count > 0 then
      redis.call('HSET', KEYS[1], user, count)
    else
      redis.call('HDEL', KEYS[1], user)
    end
    local total = redis.call('HINCRBY', KEYS[2], user, diff)
    if total > 0 then
      redis.call('ZREM', KEYS[4], user)
      if redis.call('HSETNX', KEYS[3], user, 'online') == 1 then
        redis.call('HSET', KEYS[5], user, 1)
        table.insert(came_online, user)
      end
    else
      redis.call('HDEL', KEYS[2], user)
      if redis.call('HEXISTS', KEYS[3], user) == 1 then
        redis.call('ZADD', KEYS[4], 'NX', ARGV[1], user)
      end
    end
  end
end
return came_online
"""

# KEYS: status, version. ARGV: user, status. Returns the new version, or 0 if unchanged.
_SET_STATUS = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
"""

# KEYS: total, status, pending, version. ARGV: cutoff_ms, limit.
# Returns user, closed_at pairs.
_DUE_OFFLINE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0,
  tonumber(ARGV[2]))
local gone = {}
for i = 1, #due, 2 do
  local user = due[i]
  redis.call('ZREM', KEYS[3], user)
  if redis.call('HEXISTS', KEYS[1], user) == 0 and redis.call('HDEL', KEYS[2], user) == 1 then
    redis.call('HDEL', KEYS[4], user)
    table.insert(gone, user)
    table.insert(gone, due[i + 1])
  end
end
return gone
"""

# KEYS: dead node's hash, total, status, nodes, its heartbeat, version, pending.
# ARGV: node id. Returns the users with no socket left anywhere; they go offline at once (no
# debounce: the node has been silent for a whole TTL already).
_REAP = """
if redis.call('EXISTS', KEYS[5]) == 1 then return {} end
local entries = redis.call('HGETALL', KEYS[1])
local gone = {}
for i = 1, #entries, 2 do
  local user = entries[i]
  local total = redis.call('HINCRBY', KEYS[2], user, -tonumber(entries[i + 1]))
  if total <= 0 then
    redis.call('HDEL', KEYS[2], user)
    redis.call('ZREM', KEYS[7], user)
    if redis.call('HDEL', KEYS[3], user) == 1 then
      redis.call('HDEL', KEYS[6], user)
      table.insert(gone, user)
    end
  end
end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[4], ARGV[1])
return gone
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisPresence:
    """Presence shared by every node through Redis, with a heartbeat per node."""

    def __init__(
        self, redis: Redis | RedisCluster, prefix: str, node_id: str, node_ttl_seconds: float
    ) -> None:
        self._redis = redis
        self._base = f"{prefix}:{{presence}}:"
        self._node_id = node_id
        self._ttl_ms = max(1, int(node_ttl_seconds * 1000))
        self._total = self._base + "total"
        self._status = self._base + "status"
        self._version = self._base + "version"
        self._pending = self._base + "pending"
        self._nodes = self._base + "nodes"
        self._apply = redis.register_script(_APPLY)
        self._set_status = redis.register_script(_SET_STATUS)
        self._due = redis.register_script(_DUE_OFFLINE)
        self._reap = redis.register_script(_REAP)
        self._registered = False

    def _node_key(self, node_id: str) -> str:
        return f"{self._base}node:{node_id}"

    def _alive_key(self, node_id: str) -> str:
        return f"{self._base}alive:{node_id}"

    def _reap_keys(self, node_id: str) -> list[str]:
        return [
            self._node_key(node_id),
            self._total,
            self._status,
            self._nodes,
            self._alive_key(node_id),
            self._version,
            self._pending,
        ]

    async def heartbeat(self) -> bool:
        """Refresh this node's TTL; True when Redis had forgotten it after it registered."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._alive_key(self._node_id), "1", px=self._ttl_ms)
            pipe.sadd(self._nodes, self._node_id)
            _, added = await pipe.execute()
        lost = bool(added) and self._registered
        self._registered = True
        return lost

    async def apply(self, counts: Mapping[str, int], now_ms: float) -> list[Change]:
        """Set this node's socket count per user, atomically with the transitions."""
        if not counts:
            return []
        args: list[str | int] = [int(now_ms)]
        for user_id, count in counts.items():
            args.extend((user_id, count))
        keys = [
            self._node_key(self._node_id),
            self._total,
            self._status,
            self._pending,
            self._version,
        ]
        result = await self._apply(keys=keys, args=args)
        return [Change(_text(user_id), "online", 1) for user_id in result]

    async def set_status(self, user_id: str, status: Status) -> Change | None:
        """Set the status; the change, or None when it was already so."""
        version = await self._set_status(keys=[self._status, self._version], args=[user_id, status])
        return Change(user_id, status, int(version)) if version else None

    async def statuses(self, user_ids: Sequence[str]) -> dict[str, Status]:
        """One HMGET: every asked user's status."""
        if not user_ids:
            return {}
        values = await self._redis.hmget(self._status, list(user_ids))
        found: dict[str, Status] = {}
        for user_id, value in zip(user_ids, values, strict=True):
            text = _text(value) if value is not None else "offline"
            found[user_id] = (
                "away" if text == "away" else "online" if text == "online" else "offline"
            )
        return found

    async def versions(self, user_ids: Sequence[str]) -> dict[str, int]:
        """One HMGET: every asked user's version."""
        if not user_ids:
            return {}
        values = await self._redis.hmget(self._version, list(user_ids))
        return {
            uid: int(value) if value is not None else 0
            for uid, value in zip(user_ids, values, strict=True)
        }

    async def due_offline(self, cutoff_ms: float, limit: int) -> list[Change]:
        """Users whose debounce ran out, taken atomically so one node announces each."""
        keys = [self._total, self._status, self._pending, self._version]
        result = await self._due(keys=keys, args=[int(cutoff_ms), limit])
        return [_offline(_text(result[i]), float(result[i + 1])) for i in range(0, len(result), 2)]

    async def reap_dead_nodes(self, now_ms: float) -> list[Change]:
        """Every node checks; the script makes sure each dead node is reaped once."""
        nodes = [_text(n) for n in await self._redis.smembers(self._nodes)]
        others = [n for n in nodes if n != self._node_id]
        if not others:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for node in others:
                pipe.exists(self._alive_key(node))
            alive = await pipe.execute()
        gone: list[Change] = []
        for node in (n for n, up in zip(others, alive, strict=True) if not up):
            users = await self._reap(keys=self._reap_keys(node), args=[node])
            gone.extend(_offline(_text(u), now_ms) for u in users)
        return gone

    async def leave(self, now_ms: float) -> list[Change]:
        """Drop the heartbeat; the counts left are reaped like a dead node's."""
        await self._redis.delete(self._alive_key(self._node_id))
        users = await self._reap(keys=self._reap_keys(self._node_id), args=[self._node_id])
        return [_offline(_text(u), now_ms) for u in users]
