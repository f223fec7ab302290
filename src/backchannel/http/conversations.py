"""`/conversations`: the caller's conversations and each one's history, for HTTP clients."""

from __future__ import annotations

from aiohttp import web

from backchannel.domain import chat, conversations
from backchannel.domain.chat_views import ConversationPage, HistoryPage
from backchannel.http.requests import caller, query, runtime
from backchannel.http.routing import RouteGroup, json_response

routes = RouteGroup(tag="conversations")


@routes.route(
    "GET",
    "/conversations",
    summary="Your conversations, most recently active first, with last message and unread count",
    response=ConversationPage,
    query=conversations.ListConversations,
    errors=(400, 401),
)
async def list_mine(request: web.Request) -> web.Response:
    """List the caller's conversations."""
    identity = await caller(request)
    params = query(request, conversations.ListConversations)
    return json_response(
        await conversations.list_conversations(runtime(request), identity.user_id, params)
    )


@routes.route(
    "GET",
    "/conversations/{conversation_id}/messages",
    summary="A conversation's messages, newest first; pass next_cursor as before_seq",
    response=HistoryPage,
    query=chat.HistoryQuery,
    errors=(400, 401, 403, 404),
)
async def history(request: web.Request) -> web.Response:
    """Page back through a conversation."""
    identity = await caller(request)
    params = query(request, chat.HistoryQuery)
    conversation_id = request.match_info["conversation_id"]
    return json_response(
        await chat.history(runtime(request), identity.user_id, conversation_id, params)
    )
