// backchannel-client: everything docs/protocol.md asks of a correct client, done once.
//
// - one connection (one socket.io Manager) carrying the five namespaces;
// - `send()` makes the `client_id` and retries with the same one on a timeout or `unavailable`,
//   resolving with the stored message;
// - messages reach the app exactly once per conversation, in `seq` order: a per-conversation
//   seq store, replay on connect (`auth.last_seq`), `messages:sync` after a reconnect, a gap, a
//   `server:resync` or a `server:shutdown`;
// - the token is refreshed on the live connection (`auth:refresh` on `session:expiring`), or
//   the connection is remade with a fresh token where the server cannot;
// - notifications collapse by `collapse_key`; the wallet keeps the highest `version`.
import { Manager, type ManagerOptions, type Socket } from "socket.io-client";

import type {
  ClientEvents,
  Conversation,
  Message,
  Notification,
  Presence,
  ReadReceipt,
  ServerEvents,
  TypingNotice,
  WalletBalance,
} from "./generated.js";
import { NAMESPACES } from "./generated.js";

export * from "./generated.js";

export type NamespaceName = (typeof NAMESPACES)[number];
type Ack<N extends NamespaceName, E extends keyof ClientEvents[N]> = ClientEvents[N][E] extends {
  ack: infer A;
}
  ? A
  : never;
type Payload<N extends NamespaceName, E extends keyof ClientEvents[N]> = ClientEvents[N][E] extends {
  payload: infer P;
}
  ? P
  : never;

/** A refusal from the server: a code from the contract's closed catalogue. */
export class BackchannelError extends Error {
  readonly code: string;
  readonly details: unknown;

  constructor(code: string, message: string, details?: unknown) {
    super(message);
    this.name = "BackchannelError";
    this.code = code;
    this.details = details;
  }
}

export interface ClientOptions {
  /** The server, `http(s)://host:port` (the Socket.IO path is `/socket.io/`). */
  url: string;
  /** An access token; or `getToken`, asked at every (re)connect and before expiry. */
  token?: string;
  /** Returns a valid access token (refresh it over HTTP or from your identity provider). */
  getToken?: () => string | Promise<string>;
  /** The last seq the app already holds per conversation (e.g. from local storage). */
  seqs?: Record<string, number>;
  /** How long one attempt of an event waits for its ack (default 5000 ms). */
  ackTimeoutMs?: number;
  /** How long `send()` keeps retrying before it gives up (default 60000 ms). */
  sendTimeoutMs?: number;
  /** Passed to socket.io-client's Manager (transports, reconnection delays, ...). */
  manager?: Partial<ManagerOptions>;
  /** Connect at once (default true); otherwise call `connect()`. */
  autoConnect?: boolean;
}

export interface SendOptions {
  body?: string;
  media?: ClientEvents["/chat"]["message:send"]["payload"]["media"];
  price_cents?: number;
  currency?: string;
  preview_text?: string;
  /** Your own id for this message; made for you when absent. Reuse it to retry yourself. */
  client_id?: string;
}

/** What the client tells the app. */
export interface ClientEventMap {
  /** A message, exactly once and in seq order per conversation. */
  message: (message: Message) => void;
  /** A message the app already has changed for this viewer (unlocked, or locked again). */
  "message:update": (message: Message) => void;
  read: (receipt: ReadReceipt) => void;
  conversation: (conversation: Conversation) => void;
  typing: (notice: TypingNotice) => void;
  presence: (presence: Presence) => void;
  /** A notification; `replaces` is the id of the unread one it collapsed, if any. */
  notification: (notification: Notification, replaces: string | null) => void;
  unread: (count: number) => void;
  /** The wallet, only ever moving to a higher version. */
  wallet: (wallet: WalletBalance) => void;
  /** Connected (every namespace) or not. */
  status: (status: "connected" | "disconnected") => void;
  /** The server refused the session (a static token that expired, a logout elsewhere). */
  error: (error: BackchannelError) => void;
}

type Listener = (...args: never[]) => void;

class Emitter<Events extends { [K in keyof Events]: Listener }> {
  private listeners = new Map<keyof Events, Set<Listener>>();

  on<K extends keyof Events>(event: K, listener: Events[K]): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => set.delete(listener);
  }

  protected fire<K extends keyof Events>(event: K, ...args: Parameters<Events[K]>): void {
    for (const listener of this.listeners.get(event) ?? []) {
      try {
        (listener as (...a: Parameters<Events[K]>) => void)(...args);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}

const RETRYABLE = new Set(["unavailable", "rate_limited", "internal"]);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function makeId(): string {
  const c = globalThis.crypto as Crypto | undefined;
  if (c?.randomUUID) return c.randomUUID();
  const bytes = new Uint8Array(16);
  if (c?.getRandomValues) c.getRandomValues(bytes);
  else for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Per conversation: the last seq given to the app, and what arrived ahead of a gap. */
class Conversations {
  readonly delivered = new Map<string, number>();
  readonly ahead = new Map<string, Map<number, Message>>();
  readonly syncing = new Set<string>();
  readonly again = new Set<string>();
}

export class BackchannelClient extends Emitter<ClientEventMap> {
  readonly manager: Manager;
  private readonly sockets = new Map<NamespaceName, Socket>();
  private readonly options: Required<Pick<ClientOptions, "ackTimeoutMs" | "sendTimeoutMs">> &
    ClientOptions;
  private readonly conversations = new Conversations();
  private readonly notificationsById = new Map<string, Notification>();
  private lastNotificationId: string | null = null;
  private walletState: WalletBalance | null = null;
  private token: string | null;
  private refreshing: Promise<void> | null = null;
  private fetchingToken: Promise<string> | null = null;
  private refreshTimer: ReturnType<typeof setTimeout> | null = null;
  private refreshes = 0;
  private lastRefresh = 0;
  private connectedCount = 0;
  private closed = false;

  constructor(options: ClientOptions) {
    super();
    if (!options.token && !options.getToken) throw new Error("token or getToken is required");
    this.options = { ackTimeoutMs: 5000, sendTimeoutMs: 60000, ...options };
    this.token = options.token ?? null;
    for (const [id, seq] of Object.entries(options.seqs ?? {})) this.conversations.delivered.set(id, seq);
    this.manager = new Manager(options.url, {
      autoConnect: false,
      reconnectionDelay: 250,
      reconnectionDelayMax: 2000,
      randomizationFactor: 0.3,
      ...options.manager,
    });
    for (const namespace of NAMESPACES) this.sockets.set(namespace, this.openNamespace(namespace));
    if (options.autoConnect ?? true) this.connect();
  }

  /** Open the connection (every namespace). */
  connect(): void {
    this.closed = false;
    for (const socket of this.sockets.values()) socket.connect();
  }

  /** Close the connection; nothing reconnects until `connect()`. */
  close(): void {
    this.closed = true;
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    for (const socket of this.sockets.values()) socket.disconnect();
  }

  /** Whether every namespace is connected. */
  get connected(): boolean {
    return [...this.sockets.values()].every((s) => s.connected);
  }

  /** Resolves once every namespace is connected. */
  ready(timeoutMs = 10000): Promise<void> {
    if (this.connected) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error("not connected in time"));
      }, timeoutMs);
      const off = this.on("status", (status) => {
        if (status === "connected") {
          clearTimeout(timer);
          off();
          resolve();
        }
      });
    });
  }

  /** The underlying socket of one namespace (for events this client does not wrap). */
  socket(namespace: NamespaceName): Socket {
    return this.sockets.get(namespace)!;
  }

  /** The last seq given to the app, per conversation (persist it and pass it back as `seqs`). */
  seqs(): Record<string, number> {
    return Object.fromEntries(this.conversations.delivered);
  }

  /** Notifications held, newest first (collapsed ones removed). */
  notifications(): Notification[] {
    return [...this.notificationsById.values()].sort((a, b) => (BigInt(b.id) > BigInt(a.id) ? 1 : -1));
  }

  /** The wallet at the highest version seen (null before the first answer). */
  wallet(): WalletBalance | null {
    return this.walletState;
  }

  /** One event with its ack; a failed ack throws `BackchannelError`. One attempt, no retry. */
  async request<N extends NamespaceName, E extends keyof ClientEvents[N] & string>(
    namespace: N,
    event: E,
    payload: Payload<N, E>,
    timeoutMs = this.options.ackTimeoutMs,
  ): Promise<Ack<N, E>> {
    const socket = this.socket(namespace);
    // Not connected: wait for the connection rather than pile packets into socket.io's buffer
    // (each retry would be sent again on reconnect).
    const started = Date.now();
    if (!socket.connected) await this.connectedWithin(socket, timeoutMs);
    const left = Math.max(1, timeoutMs - (Date.now() - started));
    const ack = (await socket.timeout(left).emitWithAck(event, payload)) as
      | { ok: true; data: Ack<N, E> }
      | { ok: false; error: { code: string; message: string; details?: unknown } };
    if (ack.ok) return ack.data;
    throw new BackchannelError(ack.error.code, ack.error.message, ack.error.details);
  }

  private connectedWithin(socket: Socket, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        socket.off("connect", done);
        reject(new Error("operation has timed out (not connected)"));
      }, timeoutMs);
      socket.once("connect", done);
    });
  }

  /** Listen to a server event of one namespace, typed from the AsyncAPI document. */
  onServer<N extends NamespaceName, E extends keyof ServerEvents[N] & string>(
    namespace: N,
    event: E,
    listener: (payload: ServerEvents[N][E]) => void,
  ): () => void {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const socket = this.socket(namespace) as Socket<any, any>;
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const untyped = listener as (...args: any[]) => void;
    socket.on(event as string, untyped);
    return () => socket.off(event as string, untyped);
  }

  /**
   * Send a message. The `client_id` is made once; a timeout, `unavailable`, `rate_limited` or
   * `internal` is retried with the same one (the server stores it once), until
   * `sendTimeoutMs`. Resolves with the stored message, which also reaches `message` in order.
   */
  async send(conversationId: string, message: SendOptions): Promise<Message> {
    const { client_id, ...content } = message;
    const payload = { conversation_id: conversationId, client_id: client_id ?? makeId(), ...content };
    const deadline = Date.now() + this.options.sendTimeoutMs;
    let delay = 200;
    for (;;) {
      try {
        const stored = await this.request("/chat", "message:send", payload);
        this.accept(stored);
        return stored;
      } catch (error) {
        const code = error instanceof BackchannelError ? error.code : "timeout";
        if (error instanceof BackchannelError && !RETRYABLE.has(code)) throw error;
        if (Date.now() + delay > deadline) throw error;
        const details = error instanceof BackchannelError ? (error.details as { retry_after_ms?: number }) : null;
        await sleep(Math.max(delay, details?.retry_after_ms ?? 0));
        delay = Math.min(delay * 2, 2000);
      }
    }
  }

  /** Open (or find) the DM with one user, or a group with several. */
  openConversation(participantIds: string[], title?: string): Promise<Conversation> {
    return this.retrying(() =>
      this.request("/chat", "conversation:open", { participant_ids: participantIds, ...(title ? { title } : {}) }),
    ).then((conversation) => {
      this.track(conversation.id);
      return conversation;
    });
  }

  /** Mark a conversation read up to `seq`. */
  markRead(conversationId: string, seq: number) {
    return this.retrying(() => this.request("/chat", "message:read", { conversation_id: conversationId, seq }));
  }

  /** Unlock a paid message from the wallet; the whole message also reaches `message:update`. */
  async unlock(messageId: string): Promise<Message> {
    const whole = await this.request("/ppv", "ppv:unlock", { message_id: messageId, pay_with: "wallet" });
    this.fire("message:update", whole);
    return whole;
  }

  /** Typing indicators (throttled by the server). */
  typing(conversationId: string, typing: boolean) {
    return this.request("/typing", typing ? "typing:start" : "typing:stop", { conversation_id: conversationId });
  }

  /** Watch users' presence; answers their status now and `presence` events follow. */
  async watchPresence(userIds: string[]): Promise<Presence[]> {
    const list = await this.retrying(() => this.request("/presence", "presence:subscribe", { user_ids: userIds }));
    this.watched = [...new Set([...this.watched, ...userIds])];
    return list.items;
  }
  private watched: string[] = [];

  /** Mark notifications read (some ids, or all). */
  async readNotifications(ids?: string[]): Promise<number> {
    const answer = await this.request("/notifications", "notifications:read", ids ? { ids } : { all: true });
    for (const [id, n] of this.notificationsById) {
      if (!ids || ids.includes(id)) this.notificationsById.set(id, { ...n, read: true });
    }
    this.fire("unread", answer.unread_count);
    return answer.unread_count;
  }

  /**
   * Follow a conversation from `afterSeq` (default: what the app already holds, else the
   * beginning): what is missing is synced now and after every reconnect.
   */
  track(conversationId: string, afterSeq?: number): void {
    const known = this.conversations.delivered.get(conversationId);
    if (known === undefined) this.conversations.delivered.set(conversationId, afterSeq ?? 0);
    this.syncConversation(conversationId);
  }

  // -- internals ----------------------------------------------------------------------------

  private async retrying<T>(attempt: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.options.sendTimeoutMs;
    let delay = 200;
    for (;;) {
      try {
        return await attempt();
      } catch (error) {
        const retry = !(error instanceof BackchannelError) || RETRYABLE.has(error.code);
        if (!retry || Date.now() + delay > deadline) throw error;
        await sleep(delay);
        delay = Math.min(delay * 2, 2000);
      }
    }
  }

  private openNamespace(namespace: NamespaceName): Socket {
    const socket = this.manager.socket(namespace, {
      auth: (cb: (auth: object) => void) => {
        this.currentToken().then(
          (token) =>
            cb(namespace === "/chat" ? { token, last_seq: this.replayPositions() } : { token }),
          () => cb({ token: this.token ?? "" }),
        );
      },
    });
    socket.on("connect", () => this.connectedNamespace(namespace, true));
    socket.on("disconnect", (reason: string) => {
      this.connectedNamespace(namespace, false);
      // The server closed this namespace (expired token, ended session): it will not come
      // back by itself. Come back with a fresh token when one can be had.
      if (reason === "io server disconnect" && !this.closed && this.options.getToken) {
        this.token = null;
        setTimeout(() => socket.connect(), 200);
      }
    });
    socket.on("connect_error", (error: Error & { data?: { code?: string; message?: string } }) => {
      const code = error.data?.code;
      if (!code || this.closed) return; // a transport failure: the Manager retries
      if ((code === "token_expired" || code === "unauthorized") && this.options.getToken) {
        this.token = null;
      } else if (code !== "rate_limited" && code !== "unavailable") {
        this.fire("error", new BackchannelError(code, error.data?.message ?? error.message));
        return;
      }
      setTimeout(() => !this.closed && socket.connect(), 1000);
    });
    // A failed refresh (the identity provider is down) leaves the expiry to disconnect; the
    // reconnect asks getToken() again.
    socket.on("session:expiring", () => void this.refresh().catch(() => {}));
    socket.on("session:ended", (ended: { reason: string }) =>
      this.fire("error", new BackchannelError("unauthorized", `session ended: ${ended.reason}`)),
    );
    socket.on("server:resync", () => this.resync(namespace));
    socket.on("server:shutdown", () => {
      // The transport closes next and the Manager reconnects; the replay and the sync on
      // connect bring what was missed.
    });
    switch (namespace) {
      case "/chat":
        socket.on("message:new", (message: Message) => this.accept(message));
        socket.on("message:read", (receipt: ReadReceipt) => this.fire("read", receipt));
        socket.on("conversation:new", (conversation: Conversation) => {
          this.fire("conversation", conversation);
          this.track(conversation.id);
        });
        socket.on("messages:replayed", (done: { conversation_id: string; up_to_seq: number; has_more: boolean }) => {
          if (done.has_more) this.syncConversation(done.conversation_id);
        });
        socket.on("message:broadcast", (announcement: { sender_id: string }) => void this.findBroadcastCopy());
        break;
      case "/typing":
        socket.on("typing", (notice: TypingNotice) => this.fire("typing", notice));
        break;
      case "/presence":
        socket.on("presence", (presence: Presence) => this.fire("presence", presence));
        break;
      case "/ppv":
        socket.on("wallet:balance", (wallet: WalletBalance) => this.applyWallet(wallet));
        socket.on("ppv:unlocked", (event: { message: Message }) => this.fire("message:update", event.message));
        socket.on("ppv:locked", (event: { message: Message }) => this.fire("message:update", event.message));
        break;
      case "/notifications":
        socket.on("notification", (notification: Notification) => this.applyNotification(notification));
        socket.on("notifications:unread", (unread: { count: number }) => this.fire("unread", unread.count));
        break;
    }
    return socket;
  }

  private currentToken(): Promise<string> {
    if (this.token) return Promise.resolve(this.token);
    if (!this.options.getToken) return Promise.reject(new Error("no token"));
    return this.freshToken();
  }

  /** One getToken() at a time, whoever asks: the five namespaces on every (re)connect and the
   * refresh (a rotating refresh token used twice would end the session as a reuse). */
  private freshToken(): Promise<string> {
    this.fetchingToken ??= (async () => {
      try {
        this.token = await this.options.getToken!();
        return this.token;
      } finally {
        this.fetchingToken = null;
      }
    })();
    return this.fetchingToken;
  }

  private replayPositions(): Record<string, number> {
    // The server replays at most 100 conversations; the sync on connect covers the rest.
    return Object.fromEntries([...this.conversations.delivered].slice(0, 100));
  }

  private connectedNamespace(namespace: NamespaceName, up: boolean): void {
    const before = this.connectedCount === NAMESPACES.length;
    this.connectedCount = [...this.sockets.values()].filter((s) => s.connected).length;
    if (up) this.afterConnect(namespace);
    const after = this.connectedCount === NAMESPACES.length;
    if (before !== after) this.fire("status", after ? "connected" : "disconnected");
  }

  private afterConnect(namespace: NamespaceName): void {
    if (namespace === "/chat") void this.catchUp();
    if (namespace === "/ppv") void this.request("/ppv", "wallet:get", {}).then((w) => this.applyWallet(w), () => {});
    if (namespace === "/notifications") void this.syncNotifications();
    if (namespace === "/presence" && this.watched.length) {
      void this.request("/presence", "presence:subscribe", { user_ids: this.watched }).then(
        (list) => list.items.forEach((p) => this.fire("presence", p)),
        () => {},
      );
    }
  }

  private resync(namespace: NamespaceName): void {
    if (namespace === "/chat") void this.catchUp();
    if (namespace === "/notifications") void this.syncNotifications();
    if (namespace === "/ppv") void this.request("/ppv", "wallet:get", {}).then((w) => this.applyWallet(w), () => {});
  }

  /** After a connect or a resync: every tracked conversation, and any with newer messages. */
  private async catchUp(): Promise<void> {
    for (const id of this.conversations.delivered.keys()) this.syncConversation(id);
    let cursor: string | null = null;
    try {
      do {
        const page: ClientEvents["/chat"]["conversation:list"]["ack"] = await this.request("/chat", "conversation:list", { limit: 100, ...(cursor ? { cursor } : {}) });
        for (const item of page.items) {
          const have = this.conversations.delivered.get(item.id);
          if (have === undefined || item.last_seq > have) this.track(item.id);
        }
        cursor = page.next_cursor;
      } while (cursor);
    } catch {
      // Disconnected meanwhile: the next connect catches up again.
    }
  }

  private async findBroadcastCopy(): Promise<void> {
    // The copy is in the 1:1 with the creator; the conversation list says which has grown.
    await this.catchUp();
  }

  /** A message from any path (live, replay, sync, a send's ack): to the app once, in order. */
  private accept(message: Message): void {
    const store = this.conversations;
    const id = message.conversation_id;
    const delivered = store.delivered.get(id);
    if (delivered === undefined) {
      // A conversation this client did not know: fetch it from the beginning, in order.
      store.delivered.set(id, 0);
      return this.accept(message);
    }
    if (message.seq <= delivered) return;
    let ahead = store.ahead.get(id);
    if (!ahead) store.ahead.set(id, (ahead = new Map()));
    ahead.set(message.seq, message);
    let next = delivered + 1;
    while (ahead.has(next)) {
      const ready = ahead.get(next)!;
      ahead.delete(next);
      store.delivered.set(id, next);
      this.fire("message", ready);
      next += 1;
    }
    if (ahead.size > 0) this.syncConversation(id); // a gap: fetch what is missing
  }

  /** `messages:sync` from the last delivered seq until `has_more` is false; one loop per conversation. */
  private syncConversation(id: string): void {
    const store = this.conversations;
    if (store.syncing.has(id)) {
      store.again.add(id);
      return;
    }
    store.syncing.add(id);
    void (async () => {
      try {
        for (let attempt = 0; ; attempt++) {
          store.again.delete(id);
          try {
            let more = true;
            while (more) {
              const after = store.delivered.get(id) ?? 0;
              const page = await this.request("/chat", "messages:sync", {
                conversation_id: id,
                after_seq: after,
                limit: 200,
              });
              for (const message of page.items) this.accept(message);
              more = page.has_more && page.items.length > 0;
            }
            if (!store.again.has(id)) return;
          } catch (error) {
            if (error instanceof BackchannelError && !RETRYABLE.has(error.code)) return; // not ours
            if (this.closed) return;
            await sleep(Math.min(200 * 2 ** attempt, 2000));
          }
        }
      } finally {
        store.syncing.delete(id);
      }
    })();
  }

  private async syncNotifications(): Promise<void> {
    try {
      let more = true;
      while (more) {
        const page = await this.request("/notifications", "notifications:sync", {
          limit: 200,
          ...(this.lastNotificationId ? { after: this.lastNotificationId } : {}),
        });
        for (const item of page.items) this.applyNotification(item);
        this.fire("unread", page.unread_count);
        more = page.next_cursor !== null && page.items.length > 0;
      }
    } catch {
      // Disconnected: the next connect syncs again.
    }
  }

  private applyNotification(notification: Notification): void {
    if (this.notificationsById.has(notification.id)) return; // at least once → once
    let replaces: string | null = null;
    if (notification.collapse_key) {
      for (const [id, held] of this.notificationsById) {
        if (!held.read && held.collapse_key === notification.collapse_key) {
          this.notificationsById.delete(id);
          replaces = id;
        }
      }
    }
    this.notificationsById.set(notification.id, notification);
    if (this.lastNotificationId === null || BigInt(notification.id) > BigInt(this.lastNotificationId)) {
      this.lastNotificationId = notification.id;
    }
    this.fire("notification", notification, replaces);
  }

  private applyWallet(wallet: WalletBalance): void {
    if (this.walletState && wallet.version <= this.walletState.version) return;
    this.walletState = wallet;
    this.fire("wallet", wallet);
  }

  /** A fresh token on every connected namespace; where refused, reconnect with it. */
  private refresh(): Promise<void> {
    if (!this.options.getToken || this.closed) return Promise.resolve();
    // A token shorter-lived than the server's 30 s notice is announced as expiring again at
    // once after each refresh: at most one refresh per 5 s, and a notice inside that window
    // is answered when it ends (dropping it would let the token expire on the connection).
    const wait = this.lastRefresh + 5000 - Date.now();
    if (wait > 0) {
      this.refreshTimer ??= setTimeout(() => {
        this.refreshTimer = null;
        void this.refresh().catch(() => {});
      }, wait);
      return this.refreshing ?? Promise.resolve();
    }
    this.lastRefresh = Date.now();
    this.refreshing ??= (async () => {
      try {
        const token = await this.freshToken();
        await Promise.all(
          [...this.sockets.entries()].map(async ([namespace, socket]) => {
            if (!socket.connected) return;
            try {
              await this.request(namespace, "auth:refresh", { token });
            } catch {
              // The server has no auth:refresh, or refused: reconnect with the fresh token.
              socket.disconnect().connect();
            }
          }),
        );
        this.refreshes += 1;
      } finally {
        this.refreshing = null;
      }
    })();
    return this.refreshing;
  }

  /** How many times the token was refreshed on the live connection. */
  get refreshCount(): number {
    return this.refreshes;
  }
}

/** A client on one connection for the five namespaces; connects at once unless told not to. */
export function createClient(options: ClientOptions): BackchannelClient {
  return new BackchannelClient(options);
}
