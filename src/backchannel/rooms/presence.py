"""Where presence lives: in Redis across the cluster, or in this process on a single node.

Two small stores behind one interface (as encode/broadcaster does for its backends). A store
knows, per user, how many sockets each node holds, the announced status, and who is waiting
out the offline debounce. It decides transitions atomically (one Lua script per operation in
Redis), so when two nodes race, exactly one of them announces each change.

Redis keys, all under `<prefix>:{presence}:` (the hash tag keeps them in one cluster slot,
which the scripts need):
- `node:<node>` hash user → sockets on that node; `alive:<node>` the node's heartbeat (TTL);
  `nodes` the set of nodes that have registered.
- `total` hash user → sockets on all nodes; `status` hash user → `online`|`away` for users
  whose online has been announced and whose offline has not; `pending` zset user → when their
  last socket closed (ms), for the debounce.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from redis.asyncio import Redis

Status = Literal["online", "away", "offline"]


@dataclass(frozen=True)
class Offline:
    """A user whose offline is due, with the moment their last socket closed."""

    user_id: str
    last_seen: datetime


def _from_ms(ms: float) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


class PresenceStore(Protocol):
    """What the presence tracker needs from wherever presence lives."""

    async def heartbeat(self) -> bool:
        """Say this node is alive; True when the store had lost it (its counts must be resent)."""

    async def apply(self, counts: Mapping[str, int], now_ms: float) -> list[str]:
        """Set this node's socket count per user; returns the users who just came online."""

    async def set_status(self, user_id: str, status: Status) -> bool:
        """Set an online user's status; True when it changed."""

    async def statuses(self, user_ids: Sequence[str]) -> dict[str, Status]:
        """The status of each user, in one round trip."""

    async def due_offline(self, cutoff_ms: float, limit: int) -> list[Offline]:
        """Users whose last socket closed before `cutoff_ms` and who have none now."""

    async def reap_dead_nodes(self, now_ms: float) -> list[Offline]:
        """Forget nodes whose heartbeat expired; returns their users who are now offline."""

    async def leave(self, now_ms: float) -> list[Offline]:
        """This node stops: its counts go; returns users left with no socket anywhere."""


class MemoryPresence:
    """Presence for a single node, in this process."""

    def __init__(self) -> None:
        self._total: dict[str, int] = {}
        self._status: dict[str, Status] = {}
        self._pending: dict[str, float] = {}

    async def heartbeat(self) -> bool:
        """Nothing to tell anyone: there is one node."""
        return False

    async def apply(self, counts: Mapping[str, int], now_ms: float) -> list[str]:
        """Set the socket count per user; returns the users who just came online."""
        came_online = []
        for user_id, count in counts.items():
            if count > 0:
                self._total[user_id] = count
                self._pending.pop(user_id, None)
                if user_id not in self._status:
                    self._status[user_id] = "online"
                    came_online.append(user_id)
            else:
                self._total.pop(user_id, None)
                if user_id in self._status:
                    self._pending.setdefault(user_id, now_ms)
        return came_online

    async def set_status(self, user_id: str, status: Status) -> bool:
        """Set the status; True when it changed."""
        changed = self._status.get(user_id) != status
        self._status[user_id] = status
        return changed

    async def statuses(self, user_ids: Sequence[str]) -> dict[str, Status]:
        """The status of each user."""
        return {uid: self._status.get(uid, "offline") for uid in user_ids}

    async def due_offline(self, cutoff_ms: float, limit: int) -> list[Offline]:
        """Users whose debounce has run out."""
        due = [uid for uid, at in self._pending.items() if at <= cutoff_ms][:limit]
        gone = []
        for user_id in due:
            closed_at = self._pending.pop(user_id)
            if user_id not in self._total and self._status.pop(user_id, None) is not None:
                gone.append(Offline(user_id, _from_ms(closed_at)))
        return gone

    async def reap_dead_nodes(self, now_ms: float) -> list[Offline]:
        """No other nodes to die."""
        return []

    async def leave(self, now_ms: float) -> list[Offline]:
        """Every user still waiting out the debounce goes offline now: nothing outlives us."""
        gone = [
            Offline(uid, _from_ms(at)) for uid, at in self._pending.items() if uid in self._status
        ]
        gone.extend(
            Offline(uid, _from_ms(now_ms)) for uid in self._status if uid not in self._pending
        )
        self._total.clear()
        self._status.clear()
        self._pending.clear()
        return gone


# KEYS: node hash, total, status, pending. ARGV: now_ms, then user, count pairs.
# Counts are absolute (this node's sockets of that user), so a retry after a lost reply
# changes nothing, and a node that was reaped by mistake heals by sending them all again.
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

# KEYS: status. ARGV: user, status. Returns 1 when it changed.
_SET_STATUS = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""

# KEYS: total, status, pending. ARGV: cutoff_ms, limit. Returns user, closed_at pairs.
_DUE_OFFLINE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0,
  tonumber(ARGV[2]))
local gone = {}
for i = 1, #due, 2 do
  local user = due[i]
  redis.call('ZREM', KEYS[3], user)
  if redis.call('HEXISTS', KEYS[1], user) == 0 and redis.call('HDEL', KEYS[2], user) == 1 then
    table.insert(gone, user)
    table.insert(gone, due[i + 1])
  end
end
return gone
"""

# KEYS: dead node's hash, total, status, nodes, its heartbeat. ARGV: node id.
# Returns the users with no socket left anywhere; they go offline at once (no debounce: the
# node has been silent for a whole TTL already).
_REAP = """
if redis.call('EXISTS', KEYS[5]) == 1 then return {} end
local entries = redis.call('HGETALL', KEYS[1])
local gone = {}
for i = 1, #entries, 2 do
  local user = entries[i]
  local total = redis.call('HINCRBY', KEYS[2], user, -tonumber(entries[i + 1]))
  if total <= 0 then
    redis.call('HDEL', KEYS[2], user)
    if redis.call('HDEL', KEYS[3], user) == 1 then table.insert(gone, user) end
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

    def __init__(self, redis: Redis, prefix: str, node_id: str, node_ttl_seconds: float) -> None:
        self._redis = redis
        self._base = f"{prefix}:{{presence}}:"
        self._node_id = node_id
        self._ttl_ms = max(1, int(node_ttl_seconds * 1000))
        self._total = self._base + "total"
        self._status = self._base + "status"
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

    async def heartbeat(self) -> bool:
        """Refresh this node's TTL; True when Redis had forgotten it after it registered."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._alive_key(self._node_id), "1", px=self._ttl_ms)
            pipe.sadd(self._nodes, self._node_id)
            _, added = await pipe.execute()
        lost = bool(added) and self._registered
        self._registered = True
        return lost

    async def apply(self, counts: Mapping[str, int], now_ms: float) -> list[str]:
        """Set this node's socket count per user, atomically with the transitions."""
        if not counts:
            return []
        args: list[str | int] = [int(now_ms)]
        for user_id, count in counts.items():
            args.extend((user_id, count))
        keys = [self._node_key(self._node_id), self._total, self._status, self._pending]
        result = await self._apply(keys=keys, args=args)
        return [_text(user_id) for user_id in result]

    async def set_status(self, user_id: str, status: Status) -> bool:
        """Set the status; True when it changed."""
        changed = await self._set_status(keys=[self._status], args=[user_id, status])
        return bool(changed)

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

    async def due_offline(self, cutoff_ms: float, limit: int) -> list[Offline]:
        """Users whose debounce ran out, taken atomically so one node announces each."""
        keys = [self._total, self._status, self._pending]
        result = await self._due(keys=keys, args=[int(cutoff_ms), limit])
        return [
            Offline(_text(result[i]), _from_ms(float(result[i + 1])))
            for i in range(0, len(result), 2)
        ]

    async def reap_dead_nodes(self, now_ms: float) -> list[Offline]:
        """Every node checks; the script makes sure each dead node is reaped once."""
        nodes = [_text(n) for n in await self._redis.smembers(self._nodes)]
        others = [n for n in nodes if n != self._node_id]
        if not others:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for node in others:
                pipe.exists(self._alive_key(node))
            alive = await pipe.execute()
        gone: list[Offline] = []
        seen_at = _from_ms(now_ms)
        for node in (n for n, up in zip(others, alive, strict=True) if not up):
            keys = [
                self._node_key(node),
                self._total,
                self._status,
                self._nodes,
                self._alive_key(node),
            ]
            users = await self._reap(keys=keys, args=[node])
            gone.extend(Offline(_text(u), seen_at) for u in users)
        return gone

    async def leave(self, now_ms: float) -> list[Offline]:
        """Drop the heartbeat; the counts left are reaped like a dead node's."""
        await self._redis.delete(self._alive_key(self._node_id))
        keys = [
            self._node_key(self._node_id),
            self._total,
            self._status,
            self._nodes,
            self._alive_key(self._node_id),
        ]
        users = await self._reap(keys=keys, args=[self._node_id])
        return [Offline(_text(u), _from_ms(now_ms)) for u in users]
