"""Route groups that remember what each route takes and returns, for the OpenAPI document."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel

RouteHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class RouteSpec:
    """One route and what the OpenAPI document says of it."""

    method: str
    path: str
    handler: RouteHandler
    summary: str
    body: type[BaseModel] | None = None
    # Several models: the answer is one of them (`oneOf`), e.g. a wallet purchase or a checkout.
    response: type[BaseModel] | tuple[type[BaseModel], ...] | None = None
    status: int = 200
    auth: str | None = "bearer"
    tag: str = "api"
    query: tuple[str, ...] | type[BaseModel] = ()
    errors: tuple[int, ...] = ()


@dataclass
class RouteGroup:
    """The routes of one module, mounted under a prefix by the app factory."""

    tag: str
    prefix: str = "/api/v1"
    specs: list[RouteSpec] = field(default_factory=list)

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        body: type[BaseModel] | None = None,
        response: type[BaseModel] | tuple[type[BaseModel], ...] | None = None,
        status: int = 200,
        auth: str | None = "bearer",
        query: tuple[str, ...] | type[BaseModel] = (),
        errors: tuple[int, ...] = (),
    ) -> Callable[[RouteHandler], RouteHandler]:
        """Register a handler for `method prefix+path`."""

        def register(handler: RouteHandler) -> RouteHandler:
            self.specs.append(
                RouteSpec(
                    method=method.upper(),
                    path=self.prefix + path,
                    handler=handler,
                    summary=summary,
                    body=body,
                    response=response,
                    status=status,
                    auth=auth,
                    tag=self.tag,
                    query=query,
                    errors=errors,
                )
            )
            return handler

        return register

    def mount(self, app: web.Application) -> None:
        """Add every route to the app's router."""
        for spec in self.specs:
            app.router.add_route(spec.method, spec.path, spec.handler)


def json_response(data: Any, status: int = 200) -> web.Response:
    """A JSON body from a model, a list of models, or plain data."""
    from backchannel.rooms.emitter import to_wire

    if isinstance(data, list):
        data = [to_wire(item) for item in data]
    return web.json_response(to_wire(data), status=status)
