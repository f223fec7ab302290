"""The one parsing layer every transport's input passes: bounded, encodable, in range.

HTTP bodies and query strings, path ids, socket payloads, webhook bodies and publish-stream
entries all come through here before a model sees them. What is refused here would otherwise
fail deep inside a library or Postgres (a `RecursionError`, a NUL byte in a `text` column, an
integer wider than `bigint`, a lone surrogate asyncpg cannot encode) and answer `internal`.
Every refusal is `Invalid` naming the field, so both transports answer it as the contract says.
"""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field

from backchannel.errors import Invalid

# Deep enough for any payload the contract describes (Stripe events nest about 8 levels);
# shallow enough that nothing downstream recurses anywhere near Python's limit.
MAX_DEPTH = 32
# Raw JSON that opens more brackets at once than this is refused before it is parsed. Without
# it the outcome would depend on the interpreter: 3.11's json module raises RecursionError near
# 1,000 levels, 3.12+ (a C recursion guard of its own) parses far deeper, and the refusal came
# from a different layer with a different answer. Well below the first, well above MAX_DEPTH.
MAX_RAW_DEPTH = 256
_STRING_OR_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
# Postgres `integer` columns (prices, amounts in minor units).
INT32_MAX = (1 << 31) - 1


def _field(path: tuple[str | int, ...]) -> str:
    return ".".join(str(part) for part in path) or "(body)"


def _refuse(path: tuple[str | int, ...], message: str) -> Invalid:
    return Invalid("invalid input", [{"field": _field(path), "message": message}])


def string_problem(text: str) -> str | None:
    """Why `text` cannot be stored as Postgres text, or None."""
    if "\x00" in text:
        return "must not contain NUL characters"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode (no lone surrogates)"
    return None


def check(data: Any, *, max_depth: int = MAX_DEPTH, root: tuple[str | int, ...] = ()) -> None:
    """Refuse `data` (parsed JSON) if it nests too deep, holds unencodable text or wide ints.

    Iterative, so no depth of input can exhaust the stack here.
    """
    stack: list[tuple[Any, tuple[str | int, ...], int]] = [(data, root, 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, str):
            problem = string_problem(value)
            if problem:
                raise _refuse(path, problem)
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, int):
            if not INT64_MIN <= value <= INT64_MAX:
                raise _refuse(path, "integer out of range (64-bit signed)")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise _refuse(path, "number out of range")
        elif isinstance(value, dict):
            if depth >= max_depth:
                raise _refuse(path, f"nested deeper than {max_depth} levels")
            for key, item in value.items():
                if isinstance(key, str):
                    problem = string_problem(key)
                    if problem:
                        raise _refuse(path, f"key {problem}")
                stack.append((item, (*path, key), depth + 1))
        elif isinstance(value, list | tuple):
            if depth >= max_depth:
                raise _refuse(path, f"nested deeper than {max_depth} levels")
            for index, item in enumerate(value):
                stack.append((item, (*path, index), depth + 1))


def nests_deeper_than(raw: str | bytes, limit: int = MAX_RAW_DEPTH) -> bool:
    """Whether JSON text (or a Socket.IO packet carrying it) nests deeper than `limit`.

    Brackets inside strings do not count. Costs two `count` calls unless the text holds more
    than `limit` brackets in all.
    """
    if isinstance(raw, bytes):
        if raw.count(b"[") + raw.count(b"{") <= limit:
            return False
        raw = raw.decode("latin-1")  # byte for byte: quotes, backslashes and brackets are ASCII
    elif raw.count("[") + raw.count("{") <= limit:
        return False
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(raw):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > limit:
                return True
        elif token in ("]", "}"):
            depth -= 1
    return False


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _number(text: str) -> int | float:
    """A JSON number with a fraction or exponent: an int when it is a whole one.

    JSON Schema (and JavaScript) make no difference between 100 and 100.0; the strict models
    would refuse the second as an integer, so a whole number is read as one.
    """
    value = float(text)
    if value.is_integer() and abs(value) <= 2**53:
        return int(value)
    return value


def loads(raw: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON and `check` it; `Invalid` naming `(body)` or the field otherwise."""
    if nests_deeper_than(raw):
        raise _refuse((), f"nested deeper than {max_depth} levels")
    try:
        data = json.loads(raw, parse_constant=_no_constant, parse_float=_number)
    except RecursionError:
        raise _refuse((), f"nested deeper than {max_depth} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise Invalid(
            "request body is not valid JSON", [{"field": "(body)", "message": str(exc)}]
        ) from None
    check(data, max_depth=max_depth)
    return data


def query_values(pairs: Any) -> dict[str, str]:
    """A query string's values, checked, with empty values treated as absent.

    `?limit=` is what a form or a generated client sends for "no limit given"; the OpenAPI
    document marks every query parameter optional, so an empty one means the default.
    """
    values: dict[str, str] = {}
    for key, value in pairs.items():
        problem = string_problem(key) or string_problem(value)
        if problem:
            raise _refuse((key,), problem)
        if value != "":
            values[key] = value
    return values


def path_id(value: str, name: str) -> str:
    """A path parameter, refused if it cannot even be text (`%00`)."""
    problem = string_problem(value)
    if problem:
        raise _refuse((name,), problem)
    return value


def _http_url(value: str) -> str:
    """An absolute `http:` or `https:` URL with a host: never `javascript:` or `data:`."""
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an https: URL")
    if any(ch.isspace() or ord(ch) < 0x20 for ch in value):
        raise ValueError("must not contain whitespace or control characters")
    return value


# A media or avatar URL as stored: text, so it round-trips exactly as the client gave it.
MediaUrl = Annotated[str, Field(min_length=1, max_length=2048), AfterValidator(_http_url)]


def require_https(urls: list[tuple[str, str]], *, dev: bool) -> None:
    """Refuse any `(field, url)` that is not `https:` (`http:` is allowed in dev mode)."""
    for field, url in urls:
        scheme = urlsplit(url).scheme.lower()
        if scheme != "https" and not (dev and scheme == "http"):
            raise _refuse((field,), "must be an https: URL")


def _iana_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError("not an IANA time zone") from exc
    return value


# An IANA time zone name (`Europe/Berlin`), checked against the zone database.
IanaTimeZone = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_iana_zone)]
