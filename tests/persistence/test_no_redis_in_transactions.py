"""No Redis call happens inside a database transaction.

A transaction holds a pooled connection and its row locks until it ends; a Redis call inside
it (a rate limit, presence, a publish) makes both wait for Redis, so a hung Redis would stall
the database too. This reads the source: every `async with <db or conn>.transaction()` block
in `backchannel` is checked for calls on the limiter, Redis, presence or the emitter.
"""

from __future__ import annotations

import ast
from pathlib import Path

import backchannel

SOURCE = Path(backchannel.__file__).resolve().parent
# Attribute names that reach Redis (directly, or through the limiter, presence or emitter).
_REDIS_REACHING = {"limiter", "redis", "presence", "emitter", "socket_counts", "sio"}


def _is_db_transaction(item: ast.withitem) -> bool:
    call = item.context_expr
    return (
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and call.func.attr == "transaction"
        and not call.args
        and not call.keywords  # redis pipelines are `pipeline(transaction=...)`, not these
    )


def _reaches_redis(call: ast.Call) -> bool:
    node: ast.expr = call.func
    while isinstance(node, ast.Attribute):
        if node.attr in _REDIS_REACHING:
            return True
        node = node.value
    return isinstance(node, ast.Name) and node.id in _REDIS_REACHING


def redis_calls_in_transactions(source: str, name: str) -> list[str]:
    """`file:line: call` for every Redis-reaching call inside a database transaction block."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.AsyncWith | ast.With) and any(
            _is_db_transaction(i) for i in node.items
        ):
            for statement in node.body:
                for sub in ast.walk(statement):
                    if isinstance(sub, ast.Call) and _reaches_redis(sub):
                        found.append(f"{name}:{sub.lineno}: {ast.unparse(sub.func)}")
    return found


def test_no_transaction_block_calls_redis() -> None:
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        found += redis_calls_in_transactions(path.read_text(), str(path.relative_to(SOURCE)))
    assert found == []


def test_the_check_finds_a_limiter_call_inside_a_transaction() -> None:
    source = """
async def broadcast(rt):
    async with rt.db.transaction() as conn:
        await rt.limiter.hit("broadcast:x", rate)
    async with rt.db.connection() as conn:
        await rt.limiter.hit("fine:outside", rate)
"""
    assert redis_calls_in_transactions(source, "x.py") == ["x.py:4: rt.limiter.hit"]
