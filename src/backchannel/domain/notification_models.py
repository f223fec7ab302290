"""What notifications look like on the wire: publish requests, sync pages, preferences."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from backchannel.domain.quiet_hours import QuietHours
from backchannel.errors import Invalid
from backchannel.persistence.notifications import ReceivedNotification, StoredNotification

MAX_RECIPIENTS = 10_000
MAX_DATA_BYTES = 16_384

TypeName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Body = Annotated[str, StringConstraints(max_length=2000)]
Key = Annotated[str, StringConstraints(min_length=1, max_length=200)]
UserId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
NotificationId = Annotated[str, StringConstraints(pattern=r"^\d{1,18}$")]


class Notification(BaseModel):
    """A notification as its recipient sees it (`notification` event, sync items)."""

    id: str
    type: str
    title: str
    body: str | None
    data: dict[str, Any]
    created_at: datetime
    read: bool = False
    # Extension: a newer notification with the same key replaces the unread older one.
    collapse_key: str | None = None

    @classmethod
    def of(cls, row: StoredNotification | ReceivedNotification) -> Notification:
        """The wire form of a stored notification."""
        return cls(
            id=str(row.id),
            type=row.type,
            title=row.title,
            body=row.body,
            data=row.data,
            created_at=row.created_at,
            read=isinstance(row, ReceivedNotification) and row.read,
            collapse_key=row.collapse_key,
        )


class NotificationContent(BaseModel):
    """What a publisher says: `{type, title, body?, data?}`."""

    model_config = ConfigDict(extra="forbid")
    type: TypeName
    title: Title
    body: Body | None = None
    data: dict[str, Any] | None = None

    @field_validator("data")
    @classmethod
    def _small(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(json.dumps(value)) > MAX_DATA_BYTES:
            raise ValueError(f"at most {MAX_DATA_BYTES} bytes of JSON")
        return value


class Audience(BaseModel):
    """A creator's subscribers (active or trialing)."""

    model_config = ConfigDict(extra="forbid")
    creator_id: UserId
    of: Literal["subscribers"]


class Digest(BaseModel):
    """`digest: {key, window_s}`: one notification (and one push) per recipient and window."""

    model_config = ConfigDict(extra="forbid")
    key: Key
    window_s: Annotated[int, Field(ge=1, le=86_400, description="Window length in seconds")]


class PublishRequest(BaseModel):
    """`POST /publish` and a stream entry's payload: `user_ids` or `audience`, not both."""

    # The document says what `check_target` enforces: exactly one of the two, not null.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [
                {
                    "required": ["user_ids"],
                    "properties": {"user_ids": {"type": "array"}, "audience": {"type": "null"}},
                },
                {
                    "required": ["audience"],
                    "properties": {"audience": {"type": "object"}, "user_ids": {"type": "null"}},
                },
            ]
        },
    )
    user_ids: Annotated[list[UserId], Field(max_length=MAX_RECIPIENTS)] | None = None
    audience: Audience | None = None
    notification: NotificationContent
    dedupe_key: Key | None = None
    collapse_key: Key | None = None
    # Extension (#17): notifications with the same digest key for a recipient within the
    # window become one notification (`data.count`, `data.items`) and one push at its end.
    digest: Digest | None = None

    def check_target(self) -> None:
        """`invalid` unless exactly one of `user_ids` and `audience` is given (and a digest
        comes without a `collapse_key`: the digest is what folds)."""
        if self.digest is not None and self.collapse_key is not None:
            message = "give digest or collapse_key, not both"
            raise Invalid(message, [{"field": "digest", "message": message}])
        if (self.user_ids is None) == (self.audience is None):
            message = "give either user_ids or audience" + (
                ", not both" if self.user_ids is not None else ""
            )
            raise Invalid(
                message,
                [
                    {"field": "user_ids", "message": message},
                    {"field": "audience", "message": message},
                ],
            )


class PublishResult(BaseModel):
    """`202 {id, recipients, skipped?}`: skipped lists user ids that are not known users."""

    id: str
    recipients: int
    skipped: list[str] | None = None

    @classmethod
    def of(cls, row: StoredNotification) -> PublishResult:
        """The result a publish (or its deduplicated repeat) answers with."""
        return cls(id=str(row.id), recipients=row.recipients, skipped=row.skipped or None)


class SyncRequest(BaseModel):
    """`notifications:sync {after?, limit?}` and `GET /notifications?cursor=&limit=`."""

    model_config = ConfigDict(extra="forbid")
    after: NotificationId | None = None
    limit: Annotated[int, Field(ge=1, le=200)] = 50


class SyncPage(BaseModel):
    """Notifications after a cursor, oldest first; `next_cursor` is null once caught up."""

    items: list[Notification]
    unread_count: int
    next_cursor: str | None


class ReadRequest(BaseModel):
    """`notifications:read {ids?, all?}`."""

    model_config = ConfigDict(extra="forbid")
    ids: Annotated[list[NotificationId], Field(max_length=1000)] | None = None
    all: bool = False

    def check(self) -> None:
        """Nothing to refuse: `{}` (neither ids nor `all`) marks nothing and returns the count.

        The document lets both be omitted; answering the unread count then is what a client
        polling it would want.
        """


class UnreadCount(BaseModel):
    """`{unread_count}`."""

    unread_count: int


class Preferences(BaseModel):
    """`GET/PUT /notifications/preferences` (PUT replaces them all).

    `muted_types` are stored but not pushed live to sockets; `push_muted_types` are never
    pushed to devices; inside `quiet_hours` device pushes are held, then summarised.
    """

    model_config = ConfigDict(extra="forbid")
    muted_types: Annotated[list[TypeName], Field(max_length=200)]
    push_muted_types: Annotated[list[TypeName], Field(max_length=200)] = []
    quiet_hours: QuietHours | None = None
