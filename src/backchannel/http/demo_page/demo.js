// The Backchannel demo: one page, two windows (a creator and a fan), built on backchannel-client.
// Everything realtime goes through the client; plain HTTP calls (register, profile, media
// upload, the dev top-up) go through `api()`.
const $ = (id) => document.getElementById(id);
const state = { me: null, refreshToken: null, client: null, conversation: null, peer: null, peerRead: 0 };
const rendered = new Map(); // message id -> <li>

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = !text;
}

async function api(method, path, body, token = state.me?.token) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = response.status === 204 ? null : await response.json();
  if (!response.ok) throw new Error(data?.error?.message ?? `${method} ${path}: ${response.status}`);
  return data;
}

const money = (cents) => `$${(cents / 100).toFixed(2)}`;

async function loadSdk() {
  try {
    return await import("/demo/backchannel-client.js");
  } catch {
    showError("The client bundle is missing: run `make clients/js/dist/.built` and reload.");
    return null;
  }
}

async function register(event) {
  event.preventDefault();
  const sdk = await loadSdk();
  if (!sdk) return;
  const name = $("signup-name").value.trim();
  const role = $("signup-role").value;
  // getRandomValues, not randomUUID: the page may be opened over plain http from another host.
  const secret = Array.from(crypto.getRandomValues(new Uint8Array(12)), (b) => b.toString(16).padStart(2, "0")).join("");
  const auth = await api("POST", "/api/v1/auth/register", {
    email: `${role}-${secret.slice(0, 8)}@demo.example.com`, password: secret, display_name: name, role,
  }, null);
  state.me = { id: auth.user.id, name, role, token: auth.access_token };
  state.refreshToken = auth.refresh_token;
  // A creator takes messages from everyone here, so the fan can answer without subscribing.
  if (role === "creator") await api("PATCH", "/api/v1/profiles/me", { dm_policy: "everyone" });
  $("signup").hidden = true;
  $("me").hidden = false;
  $("my-id").textContent = state.me.id;
  $("whoami").textContent = `${name} (${role})`;
  $("wallet").parentElement.hidden = role !== "fan"; // the creator earns, the fan pays
  connect(sdk);
}

// A fresh access token from the refresh token: the client asks before the access token
// expires (then sends it on the live connection) and when it must reconnect without one.
async function getToken() {
  const pair = await api("POST", "/api/v1/auth/refresh", { refresh_token: state.refreshToken }, null);
  state.refreshToken = pair.refresh_token;
  state.me.token = pair.access_token;
  return pair.access_token;
}

function connect(sdk) {
  const client = sdk.createClient({ url: location.origin, token: state.me.token, getToken });
  state.client = client;
  client.on("status", (status) => {
    $("connection").className = `dot ${status === "connected" ? "connected" : "offline"}`;
    $("connection").title = status;
  });
  client.on("error", (error) => showError(`${error.code}: ${error.message}`));
  client.on("conversation", (conversation) => openConversation(conversation));
  client.on("message", (message) => renderMessage(message));
  client.on("message:update", (message) => renderMessage(message));
  client.on("read", (receipt) => {
    if (receipt.user_id === state.me.id || receipt.conversation_id !== state.conversation?.id) return;
    state.peerRead = Math.max(state.peerRead, receipt.seq);
    for (const li of rendered.values()) markReceipt(li);
  });
  client.on("typing", (notice) => {
    if (notice.user_id === state.me.id || notice.conversation_id !== state.conversation?.id) return;
    $("typing").hidden = !notice.typing;
    $("typing").textContent = `${state.peer?.display_name ?? "They"} is typing…`;
  });
  client.on("presence", (presence) => {
    if (presence.user_id === state.peer?.id) showPresence(presence.status);
  });
  client.on("wallet", (wallet) => ($("wallet").textContent = money(wallet.balance_cents)));
  client.on("notification", (notification, replaces) => {
    if (replaces) document.querySelector(`[data-notification="${replaces}"]`)?.remove();
    const li = document.createElement("li");
    li.dataset.notification = notification.id;
    li.innerHTML = "<strong></strong><br><span></span>";
    li.querySelector("strong").textContent = notification.title;
    li.querySelector("span").textContent = notification.body ?? "";
    $("notification-list").prepend(li);
  });
  client.on("unread", (count) => ($("unread").textContent = String(count)));
}

async function openConversation(conversation) {
  if (state.conversation) return; // the demo shows one conversation
  state.conversation = conversation;
  const peerId = conversation.participant_ids.find((id) => id !== state.me.id);
  state.peer = await api("GET", `/api/v1/profiles/${peerId}`);
  state.peer.id = peerId;
  $("peer-name").textContent = state.peer.display_name;
  $("chat").hidden = false;
  $("open-form").hidden = true;
  $("paid").hidden = state.me.role !== "creator";
  const [presence] = await state.client.watchPresence([peerId]);
  if (presence) showPresence(presence.status);
  const last = [...rendered.values()].filter((li) => li.classList.contains("theirs")).pop();
  if (last) markRead({ conversation_id: conversation.id, seq: Number(last.dataset.seq) });
}

function showPresence(status) {
  $("peer-presence").className = `dot ${status}`;
  $("peer-presence").title = status;
}

function renderMessage(message) {
  let li = rendered.get(message.id);
  if (!li) {
    li = document.createElement("li");
    rendered.set(message.id, li);
    $("messages").append(li);
  }
  const mine = message.sender_id === state.me.id;
  li.className = `${mine ? "mine" : "theirs"}${message.locked ? " locked" : ""}`;
  li.dataset.seq = String(message.seq);
  li.dataset.id = message.id;
  li.replaceChildren();
  const text = document.createElement("div");
  text.className = "body";
  text.textContent = message.locked ? `Locked: ${message.preview?.text ?? "a paid message"}` : message.body ?? "";
  li.append(text);
  const images = message.locked
    ? (message.preview?.media ?? []).map((m) => m.preview_url).filter(Boolean)
    : message.media.map((m) => m.thumbnail_url ?? m.url).filter(Boolean);
  for (const src of images) {
    const img = document.createElement("img");
    img.src = src;
    img.alt = message.locked ? "blurred preview" : "photo";
    img.className = message.locked ? "preview" : "photo";
    li.append(img);
  }
  const meta = document.createElement("div");
  meta.className = "meta";
  meta.innerHTML = '<span class="price"></span> <span class="receipt"></span>';
  li.append(meta);
  if (message.locked) {
    const unlock = document.createElement("button");
    unlock.className = "unlock";
    unlock.textContent = `Unlock for ${money(message.price_cents)}`;
    unlock.onclick = () => state.client.unlock(message.id).catch((e) => showError(`${e.code ?? ""} ${e.message}`));
    li.append(unlock);
  } else if (message.price_cents) {
    meta.querySelector(".price").textContent = `paid message, ${money(message.price_cents)}`;
  }
  markReceipt(li);
  if (!mine) markRead(message);
}

// Read receipts: the fan's page tells the server what it has shown; the sender's page ticks.
function markRead(message) {
  if (state.conversation?.id !== message.conversation_id || document.visibilityState !== "visible") return;
  state.client.markRead(message.conversation_id, message.seq).catch(() => {});
}

function markReceipt(li) {
  const receipt = li.querySelector(".receipt");
  if (!li.classList.contains("mine") || !receipt) return;
  const read = Number(li.dataset.seq) <= state.peerRead;
  receipt.dataset.read = String(read);
  receipt.textContent = read ? "✓✓ read" : "✓ sent";
}

async function sendText(event) {
  event.preventDefault();
  const body = $("body").value.trim();
  if (!body || !state.conversation) return;
  $("body").value = "";
  stopTyping();
  await state.client.send(state.conversation.id, { body });
}

let typingSince = 0;
let typingTimer = null;
function typed() {
  if (!state.conversation) return;
  if (Date.now() - typingSince > 2000) {
    typingSince = Date.now();
    state.client.typing(state.conversation.id, true).catch(() => {});
  }
  clearTimeout(typingTimer);
  typingTimer = setTimeout(stopTyping, 3000);
}
function stopTyping() {
  clearTimeout(typingTimer);
  if (typingSince && state.conversation) state.client.typing(state.conversation.id, false).catch(() => {});
  typingSince = 0;
}

async function uploadPhoto(file) {
  const ticket = await api("POST", "/api/v1/media", { content_type: file.type, size_bytes: file.size, filename: file.name });
  const put = await fetch(ticket.upload.url, { method: ticket.upload.method, headers: ticket.upload.headers, body: file });
  if (!put.ok) throw new Error(`upload failed: ${put.status}`);
  const done = await api("POST", `/api/v1/media/${ticket.media_id}/complete`);
  if (done.status !== "ready") throw new Error(`media is ${done.status}`);
  return ticket.media_id;
}

async function sendPaid(event) {
  event.preventDefault();
  const file = $("paid-file").files[0];
  const media = file ? [{ media_id: await uploadPhoto(file) }] : [];
  await state.client.send(state.conversation.id, {
    body: $("paid-body").value,
    price_cents: Number($("paid-price").value),
    preview_text: $("paid-teaser").value,
    media,
  });
}

async function openChat(event) {
  event.preventDefault();
  const conversation = await state.client.openConversation([$("peer-id").value.trim()]);
  await openConversation(conversation);
}

async function topUp() {
  try {
    await api("POST", "/api/v1/dev/wallet/topup", { amount_cents: 1000 });
  } catch (error) {
    showError(`${error.message} (start the server with BACKCHANNEL_DEV_TOPUP=1)`);
  }
}

const reported = (handler) => (event) => handler(event).catch((error) => showError(error.message));
$("signup-form").addEventListener("submit", reported(register));
$("open-form").addEventListener("submit", reported(openChat));
$("compose").addEventListener("submit", reported(sendText));
$("paid").addEventListener("submit", reported(sendPaid));
$("body").addEventListener("input", typed);
$("topup").addEventListener("click", topUp);
