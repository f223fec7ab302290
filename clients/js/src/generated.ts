// Generated from Backchannel's AsyncAPI document by scripts/generate-types.mjs: do not edit.
// Regenerate with `npm run generate` (tests fail while this file is stale).
/* eslint-disable */

/** `ppv:broadcast`. */
export interface BroadcastRequest {
  client_id: string;
  body?: string | null;
  media?: (MediaRef | MediaItem)[];
  price_cents: number;
  currency?: string;
  preview_text?: string | null;
  exclude?: "owners" | null;
}

/** The ack of `ppv:broadcast`. */
export interface BroadcastResult {
  broadcast_id: string;
  recipients: number;
}

/** `messages:sync`: messages after a seq, oldest first. */
export interface ChatViewsSyncPage {
  items: Message[];
  has_more: boolean;
}

/** `content:locked`: a refund or dispute revoked the content purchase. */
export interface ContentLocked {
  content_id: string;
  reason: string;
}

/** `content:unlocked`: the buyer may now read the content. */
export interface ContentUnlocked {
  content_id: string;
}

/** A conversation (PROTOCOL.md, `conversation:open`). */
export interface Conversation {
  id: string;
  kind: string;
  participant_ids: string[];
  title: string | null;
  created_at: string;
  muted_until?: string | null;
}

/** A page of the conversation list. */
export interface ConversationPage {
  items: ConversationSummary[];
  next_cursor: string | null;
}

/** A row of `conversation:list`: the conversation with its last message and unread count. */
export interface ConversationSummary {
  id: string;
  kind: string;
  participant_ids: string[];
  title: string | null;
  created_at: string;
  muted_until?: string | null;
  last_message: Message | null;
  unread_count: number;
  last_read_seq: number;
  last_seq: number;
}

/** `message:delete`. */
export interface DeleteMessage {
  message_id: string;
}

/** `message:edit`. */
export interface EditMessage {
  message_id: string;
  body: string;
}

/** An ack with nothing to say (`typing:start`, `typing:stop`). */
export interface Empty {

}

/** The contract's error object: a code from the catalogue, a message, optional details. */
export interface ErrorObject {
  code: "invalid" | "unauthorized" | "token_expired" | "forbidden" | "not_found" | "conflict" | "payment_required" | "rate_limited" | "too_large" | "unavailable" | "internal";
  message: string;
  details?: unknown;
}

/** An old-style attachment: a URL elsewhere (free messages only). */
export interface ExternalMedia {
  url: string;
  type: string;
}

/** `conversation:list` and `GET /conversations`. */
export interface ListConversations {
  cursor?: string | null;
  limit?: number;
}

/** `message:read`. */
export interface MarkRead {
  conversation_id: string;
  seq: number;
}

/** An attachment: an http(s) URL and a type such as `image` or `video/mp4`. */
export interface MediaIn {
  url: string;
  type: string;
}

/** An attachment: where it is and what kind. */
export interface MediaItem {
  url: string;
  type: string;
}

/** `{media_id}`: one of the sender's own ready uploads, in a message or content. */
export interface MediaRef {
  media_id: string;
}

/** `POST /media/{id}/complete`'s answer and `media:ready`'s payload. */
export interface MediaStatus {
  media_id: string;
  status: string;
  kind: string | null;
  content_type: string | null;
  size_bytes: number | null;
  width: number | null;
  height: number | null;
  duration_s: number | null;
  blurhash: string | null;
  failure?: string | null;
  retired?: boolean;
}

/** An uploaded item for an entitled viewer: links signed for them, expiring together. */
export interface MediaView {
  media_id: string;
  kind: string;
  content_type: string;
  width: number | null;
  height: number | null;
  duration_s: number | null;
  blurhash: string | null;
  url: string;
  thumbnail_url: string | null;
  expires_at: string;
}

/** A message as one viewer sees it (PROTOCOL.md, Message). */
export interface Message {
  id: string;
  conversation_id: string;
  seq: number;
  sender_id: string;
  client_id: string;
  created_at: string;
  body: string | null;
  media: (MediaView | ExternalMedia)[];
  price_cents: number | null;
  currency: string;
  locked: boolean;
  preview?: Preview | null;
  deleted?: boolean;
  edited_at?: string | null;
}

/** `message:broadcast`: a creator's paid broadcast, locked; the copy is in your 1:1. */
export interface MessageBroadcast {
  broadcast_id: string;
  sender_id: string;
  client_id: string;
  created_at: string;
  body?: null;
  media?: unknown[];
  price_cents: number;
  currency: string;
  locked?: true;
  preview: Preview;
}

/** `message:deleted`: a message became a tombstone for this viewer (its `seq` stays). */
export interface MessageDeleted {
  message_id: string;
  conversation_id: string;
  seq: number;
}

/** `messages:replayed`: the replay on connect of one conversation is done. */
export interface MessagesReplayed {
  conversation_id: string;
  up_to_seq: number;
  has_more: boolean;
}

/** A notification as its recipient sees it (`notification` event, sync items). */
export interface Notification {
  id: string;
  type: string;
  title: string;
  body: string | null;
  data: Record<string, unknown>;
  created_at: string;
  read?: boolean;
  collapse_key?: string | null;
}

/** Notifications after a cursor, oldest first; `next_cursor` is null once caught up. */
export interface NotificationModelsSyncPage {
  items: Notification[];
  unread_count: number;
  next_cursor: string | null;
}

/** `conversation:open`: one other participant makes a DM, more make a group. */
export interface OpenConversation {
  participant_ids: string[];
  title?: string | null;
}

/** `ppv:locked`: a refund or dispute revoked the unlock; `message` is locked again. */
export interface PpvLocked {
  message_id: string;
  conversation_id: string;
  reason: "refund" | "dispute";
  message: Message;
}

/** `ppv:purchased` (to the creator): a fan bought a message or content. */
export interface PpvPurchased {
  message_id?: string | null;
  content_id?: string | null;
  kind: "ppv_message" | "content";
  buyer_id: string;
  amount_cents: number;
  currency: string;
  purchase_id: string;
}

/** `ppv:unlocked`: the buyer now sees the message whole. */
export interface PpvUnlocked {
  message_id: string;
  conversation_id: string;
  message: Message;
}

/** One user's presence; `last_seen` is given for offline users (null if never seen). */
export interface Presence {
  user_id: string;
  status: "online" | "away" | "offline";
  last_seen?: string | null;
}

/** The ack of `presence:subscribe`. */
export interface PresenceList {
  items: Presence[];
}

/** What a locked paid message shows: the teaser text, how much media it holds, and for
 * each upload its shape and blurred preview (never a full-size link). */
export interface Preview {
  text: string | null;
  media_count: number;
  media?: PreviewMedia[];
}

/** What a locked viewer may know of one item: its shape and the blurred image. */
export interface PreviewMedia {
  kind: string;
  width: number | null;
  height: number | null;
  duration_s: number | null;
  blurhash: string | null;
  preview_url: string | null;
}

/** `ppv:purchase_updated`: what is refunded or disputed of a purchase changed. */
export interface PurchaseUpdated {
  purchase_id: string;
  kind: string;
  amount_cents: number;
  refunded_cents: number;
  disputed_cents: number;
  currency: string;
  status: string;
}

/** `message:read` (server → client): someone's read pointer moved. */
export interface ReadReceipt {
  conversation_id: string;
  user_id: string;
  seq: number;
}

/** `notifications:read {ids?, all?}`. */
export interface ReadRequest {
  ids?: string[] | null;
  all?: boolean;
}

/** `message:read`'s ack. */
export interface ReadState {
  conversation_id: string;
  seq: number;
  unread_count: number;
}

/** `auth:refresh`'s ack: when the socket's new token expires. */
export interface RefreshAck {
  expires_at: string;
}

/** `auth:refresh`: a fresh access token of the socket's user. */
export interface RefreshToken {
  token: string;
}

/** `message:send`. `preview_text` (an extension) is the teaser a paid message shows. */
export interface SendMessage {
  conversation_id: string;
  client_id: string;
  body?: string | null;
  media?: (MediaRef | MediaIn)[];
  price_cents?: number | null;
  currency?: string;
  preview_text?: string | null;
}

/** `server:resync`: this node missed live events; sync what you hold. */
export interface ServerResync {
  reason: string;
}

/** `server:shutdown`: this node is draining; the client reconnects (to another node). */
export interface ServerShutdown {
  reason: string;
  reconnect: boolean;
}

/** `session:ended`: the session was ended (logout elsewhere, reuse, deletion). */
export interface SessionEnded {
  reason: string;
}

/** `session:expiring`: the socket's token expires soon; send `auth:refresh`. */
export interface SessionExpiring {
  expires_at: string;
}

/** `presence:set`. */
export interface SetStatus {
  status: "online" | "away";
}

/** `subscription:ended` (to the creator). */
export interface SubscriptionEnded {
  fan_id: string;
  creator_id: string;
  status: string;
}

/** `subscription:started` (to the creator). */
export interface SubscriptionStarted {
  fan_id: string;
  creator_id: string;
  status: string;
  current_period_end: string | null;
}

/** A subscription as the fan sees it. */
export interface SubscriptionView {
  id: string;
  fan_id: string;
  creator_id: string;
  status: string;
  active: boolean;
  current_period_end: string | null;
  cancel_at_period_end: boolean;
  price_cents: number | null;
}

/** `messages:sync`. */
export interface SyncMessages {
  conversation_id: string;
  after_seq: number;
  limit?: number;
}

/** `notifications:sync {after?, limit?}` and `GET /notifications?cursor=&limit=`. */
export interface SyncRequest {
  after?: string | null;
  limit?: number;
}

/** `tip:received` (to the creator). */
export interface TipReceived {
  purchase_id: string;
  from_user_id: string;
  amount_cents: number;
  currency: string;
}

/** `typing:start` / `typing:stop`. */
export interface TypingEvent {
  conversation_id: string;
}

/** `typing`: another participant started or stopped typing. */
export interface TypingNotice {
  conversation_id: string;
  user_id: string;
  typing: boolean;
}

/** `ppv:unlock`. */
export interface UnlockRequest {
  message_id: string;
  pay_with?: "wallet";
}

/** `{unread_count}`. */
export interface UnreadCount {
  unread_count: number;
}

/** `notifications:unread`: the user's unread count now (authoritative). */
export interface UnreadNotice {
  count: number;
}

/** The ack of `presence:unsubscribe`. */
export interface Unwatched {
  user_ids: string[];
}

/** `wallet:get` and the `wallet:balance` event: keep the highest `version` seen. */
export interface WalletBalance {
  balance_cents: number;
  currency: string;
  /** grows by one with every change of this wallet */
  version: number;
}

/** `wallet:get` takes nothing. */
export interface WalletGet {

}

/** `presence:subscribe` / `presence:unsubscribe`: at most 500 user ids. */
export interface WatchRequest {
  user_ids: string[];
}

/** Client → server events per namespace: the payload, and the `data` of a successful ack. */
export interface ClientEvents {
  "/chat": {
    "auth:refresh": { payload: RefreshToken; ack: RefreshAck };
    "conversation:list": { payload: ListConversations; ack: ConversationPage };
    "conversation:open": { payload: OpenConversation; ack: Conversation };
    "message:delete": { payload: DeleteMessage; ack: Message };
    "message:edit": { payload: EditMessage; ack: Message };
    "message:read": { payload: MarkRead; ack: ReadState };
    "message:send": { payload: SendMessage; ack: Message };
    "messages:sync": { payload: SyncMessages; ack: ChatViewsSyncPage };
  };
  "/notifications": {
    "auth:refresh": { payload: RefreshToken; ack: RefreshAck };
    "notifications:read": { payload: ReadRequest; ack: UnreadCount };
    "notifications:sync": { payload: SyncRequest; ack: NotificationModelsSyncPage };
  };
  "/ppv": {
    "auth:refresh": { payload: RefreshToken; ack: RefreshAck };
    "ppv:broadcast": { payload: BroadcastRequest; ack: BroadcastResult };
    "ppv:unlock": { payload: UnlockRequest; ack: Message };
    "wallet:get": { payload: WalletGet; ack: WalletBalance };
  };
  "/presence": {
    "auth:refresh": { payload: RefreshToken; ack: RefreshAck };
    "presence:set": { payload: SetStatus; ack: Presence };
    "presence:subscribe": { payload: WatchRequest; ack: PresenceList };
    "presence:unsubscribe": { payload: WatchRequest; ack: Unwatched };
  };
  "/typing": {
    "auth:refresh": { payload: RefreshToken; ack: RefreshAck };
    "typing:start": { payload: TypingEvent; ack: Empty };
    "typing:stop": { payload: TypingEvent; ack: Empty };
  };
}

/** Server → client events per namespace and their payloads. */
export interface ServerEvents {
  "/chat": {
    "conversation:new": Conversation;
    "message:broadcast": MessageBroadcast;
    "message:deleted": MessageDeleted;
    "message:new": Message;
    "message:read": ReadReceipt;
    "message:updated": Message;
    "messages:replayed": MessagesReplayed;
    "server:resync": ServerResync;
    "server:shutdown": ServerShutdown;
    "session:ended": SessionEnded;
    "session:expired": ErrorObject;
    "session:expiring": SessionExpiring;
  };
  "/notifications": {
    "media:ready": MediaStatus;
    "notification": Notification;
    "notifications:unread": UnreadNotice;
    "server:resync": ServerResync;
    "server:shutdown": ServerShutdown;
    "session:ended": SessionEnded;
    "session:expired": ErrorObject;
    "session:expiring": SessionExpiring;
  };
  "/ppv": {
    "content:locked": ContentLocked;
    "content:unlocked": ContentUnlocked;
    "ppv:locked": PpvLocked;
    "ppv:purchase_updated": PurchaseUpdated;
    "ppv:purchased": PpvPurchased;
    "ppv:unlocked": PpvUnlocked;
    "server:resync": ServerResync;
    "server:shutdown": ServerShutdown;
    "session:ended": SessionEnded;
    "session:expired": ErrorObject;
    "session:expiring": SessionExpiring;
    "subscription:ended": SubscriptionEnded;
    "subscription:started": SubscriptionStarted;
    "subscription:updated": SubscriptionView;
    "tip:received": TipReceived;
    "wallet:balance": WalletBalance;
  };
  "/presence": {
    "presence": Presence;
    "server:resync": ServerResync;
    "server:shutdown": ServerShutdown;
    "session:ended": SessionEnded;
    "session:expired": ErrorObject;
    "session:expiring": SessionExpiring;
  };
  "/typing": {
    "server:resync": ServerResync;
    "server:shutdown": ServerShutdown;
    "session:ended": SessionEnded;
    "session:expired": ErrorObject;
    "session:expiring": SessionExpiring;
    "typing": TypingNotice;
  };
}

/** The namespaces one client opens on its one connection. */
export const NAMESPACES = ["/chat","/notifications","/ppv","/presence","/typing"] as const;

/** The AsyncAPI document's version of the server these types were generated from. */
export const PROTOCOL_VERSION = "0.1.0";
