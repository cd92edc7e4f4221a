// The client package in Node (no DOM, no window), against a real tokenmint that
// tests/tools/js_client.rs starts: TOKENMINT_URL, and sessions for an app user
// (TOKENMINT_SESSION), a user whose per-identity quota is one token a minute
// (TOKENMINT_LIMITED_SESSION) and a mobile user whose rule maps push credentials by platform
// (TOKENMINT_MOBILE_SESSION). Run: node --test clients/js/test/
import assert from "node:assert/strict";
import { test } from "node:test";

import { EventEmitter } from "node:events";

import {
  TokenClient,
  TokenError,
  connectVideo,
  keepConversationsClient,
  keepSyncClient,
  keepVoiceDevice,
} from "tokenmint-client";

const url = process.env.TOKENMINT_URL;
const payloadOf = (token) => JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString());

/** A fetch that counts its calls. */
function countingFetch() {
  const counted = (...args) => {
    counted.calls += 1;
    return fetch(...args);
  };
  counted.calls = 0;
  return counted;
}

test("fetches a token once for concurrent callers and caches it", async () => {
  const fetchCounted = countingFetch();
  const client = new TokenClient({ url, credential: process.env.TOKENMINT_SESSION, grants: { chat: {} }, fetch: fetchCounted });
  const tokens = await Promise.all([client.getToken(), client.getToken(), client.getToken()]);
  assert.equal(new Set(tokens).size, 1);
  assert.equal(fetchCounted.calls, 1, "one request for three callers");
  assert.equal(await client.getToken(), tokens[0], "cached while fresh");
  assert.equal(fetchCounted.calls, 1);
  assert.deepEqual(payloadOf(tokens[0]).grants.chat.service_sid, "IS33333333333333333333333333333333");
});

test("refreshes before expiry by itself and hands each token to its listeners", async () => {
  const client = new TokenClient({ url, credential: () => Promise.resolve(process.env.TOKENMINT_SESSION), grants: { video: { room: "standup" } }, ttl: 2 });
  const seen = [];
  client.onToken((token, details) => seen.push({ token, details }));
  client.start();
  const deadline = Date.now() + 5000;
  while (seen.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  client.stop();
  assert.ok(seen.length >= 2, `refreshed by itself (${seen.length} tokens)`);
  const first = seen[0].details;
  assert.ok(first.refreshAt < first.expiresAt, "refreshes before it expires");
  assert.equal(first.identity, "alice");
  assert.equal(first.region, null, "the default region");
  assert.notEqual(seen[0].token, seen[1].token);
});

test("sends the platform, so the push credential is the platform's", async () => {
  for (const [platform, sid] of [["ios", "CR1111111111111111111111111111aaaa"], ["android", "CR1111111111111111111111111111cccc"]]) {
    const client = new TokenClient({ url, credential: process.env.TOKENMINT_MOBILE_SESSION, grants: { voice: {} }, platform });
    assert.equal(payloadOf(await client.getToken()).grants.voice.push_credential_sid, sid);
  }
});

test("a platform change drops the cached token, so the next carries the new push credential", async () => {
  const client = new TokenClient({ url, credential: process.env.TOKENMINT_MOBILE_SESSION, grants: { voice: {} }, platform: "ios" });
  const ios = await client.getToken();
  client.setPlatform("android");
  const android = await client.getToken();
  assert.notEqual(android, ios);
  assert.equal(payloadOf(android).grants.voice.push_credential_sid, "CR1111111111111111111111111111cccc");
});

test("the token exchange: the credential as subject token, the grants as scope", async () => {
  const client = new TokenClient({ url, credential: process.env.TOKENMINT_SESSION, grants: { video: { room: "standup" }, chat: {} }, exchange: true });
  const details = await client.refresh();
  assert.deepEqual(details.grants.sort(), ["chat", "video"]);
  assert.equal(payloadOf(details.token).grants.video.room, "standup");
  const refused = new TokenClient({ url, credential: process.env.TOKENMINT_SESSION, grants: { task_router: {} }, exchange: true });
  const error = await refused.getToken().then(() => null, (e) => e);
  assert.equal(error.status, 400);
  assert.equal(error.problem.error, "invalid_scope");
  assert.equal(error.retryable, false);
});

test("a pluggable storage keeps the token across instances (an app restart)", async () => {
  const saved = new Map();
  const storage = { getItem: async (k) => saved.get(k) ?? null, setItem: async (k, v) => void saved.set(k, v) };
  const fetchCounted = countingFetch();
  const options = { url, credential: process.env.TOKENMINT_SESSION, grants: { chat: {} }, storage, fetch: fetchCounted };
  const first = await new TokenClient(options).getToken();
  const restarted = await new TokenClient(options).getToken();
  assert.equal(restarted, first, "the stored token, while fresh");
  assert.equal(fetchCounted.calls, 1, "no second request");
  saved.set(`tokenmint:${url}`, "not json");
  assert.notEqual(await new TokenClient(options).getToken(), first, "unreadable storage is a missed cache");
});

test("a 429 is retryable and its Retry-After sets the back-off", async () => {
  const client = new TokenClient({ url, credential: process.env.TOKENMINT_LIMITED_SESSION, grants: { chat: {} } });
  await client.refresh();
  const error = await client.refresh().then(() => null, (e) => e);
  assert.ok(error instanceof TokenError, String(error));
  assert.equal(error.status, 429);
  assert.ok(error.retryable);
  assert.ok(error.retryAfterMs >= 1000, `Retry-After read: ${error.retryAfterMs}`);
  assert.ok(client.backoffMs(error) >= error.retryAfterMs, "the back-off waits at least as long");
});

test("a refused credential stops the refreshing: trying again would not help", async () => {
  const client = new TokenClient({ url, credential: "not-a-credential", grants: { chat: {} } });
  const errors = [];
  client.onError((e) => errors.push(e));
  client.start();
  const deadline = Date.now() + 3000;
  while (client.running && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.equal(client.running, false, "stopped");
  assert.equal(errors.length, 1, "tried once");
  assert.equal(errors[0].status, 401);
  assert.equal(errors[0].retryable, false);
  assert.match(errors[0].problem.type, /^urn:tokenmint:problem:/);
});

test("an unreachable service is a retryable network error", async () => {
  const client = new TokenClient({ url: "http://127.0.0.1:1", credential: "x" });
  const error = await client.getToken().then(() => null, (e) => e);
  assert.equal(error.status, 0);
  assert.ok(error.retryable);
});

// The SDK helpers, against objects with the Twilio SDKs' documented interfaces (Voice's Device,
// Conversations' and Sync's clients are EventEmitters with updateToken; Video's connect takes a
// token and options): the real SDK packages need a browser's WebRTC or reach Twilio on creation.
const waitFor = async (condition, what) => {
  const deadline = Date.now() + 3000;
  while (!condition()) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

class FakeDevice extends EventEmitter {
  tokens = [];
  registeredWith = null;
  updateToken(token) {
    this.tokens.push(token);
  }
  async register() {
    this.registeredWith = this.tokens.at(-1);
  }
  async connect(options) {
    return { token: this.tokens.at(-1), options };
  }
}

test("Voice: the device gets a token before register and connect, and a new one when it warns", async () => {
  const tokens = new TokenClient({ url, credential: process.env.TOKENMINT_MOBILE_SESSION, grants: { voice: {} }, platform: "ios" });
  const device = new FakeDevice();
  const voice = keepVoiceDevice(tokens, device);
  assert.equal(tokens.running, true, "the client's own timer runs: the SDK's event is not relied on");
  await voice.register();
  assert.ok(device.registeredWith, "a token before register()");
  const call = await voice.connect({ params: { To: "alice" } });
  assert.equal(call.options.params.To, "alice");
  const before = device.tokens.length;
  device.emit("tokenWillExpire");
  await waitFor(() => device.tokens.length > before && device.tokens.at(-1) !== device.registeredWith, "a new token");
  voice.stop();
  tokens.stop();
  assert.equal(device.listenerCount("tokenWillExpire"), 0, "stop() removes its listener");
});

test("Conversations and Sync: updateToken on every new token, and recovery after tokenExpired", async () => {
  for (const keep of [keepConversationsClient, keepSyncClient]) {
    const tokens = new TokenClient({ url, credential: process.env.TOKENMINT_SESSION, grants: { chat: {} } });
    const client = new FakeDevice();
    const kept = keep(tokens, client);
    await waitFor(() => client.tokens.length === 1, "the first token");
    client.emit("tokenExpired");
    await waitFor(() => client.tokens.length === 2, "a new token after tokenExpired");
    assert.notEqual(client.tokens[0], client.tokens[1]);
    client.emit("tokenAboutToExpire");
    await waitFor(() => client.tokens.length === 3, "an early refresh");
    kept.stop();
    tokens.stop();
    assert.equal(client.listenerCount("tokenExpired") + client.listenerCount("tokenAboutToExpire"), 0);
  }
});

test("Video: connect gets a token that stays valid long enough to reconnect", async () => {
  const tokens = new TokenClient({ url, credential: process.env.TOKENMINT_SESSION, grants: { video: { room: "standup" } }, ttl: 60 });
  const connected = [];
  const connect = async (token, options) => connected.push({ token, options }) && { room: options.name };
  const cached = await tokens.getToken();
  await connectVideo(tokens, connect, { name: "standup" }, { minValidSeconds: 30 });
  assert.equal(connected[0].token, cached, "60 s left is enough for 30: the cached token");
  await connectVideo(tokens, connect, { name: "standup" }, { minValidSeconds: 600 });
  assert.notEqual(connected[1].token, cached, "a 60 s token is not enough for 600: a new one");
  assert.equal(payloadOf(connected[1].token).grants.video.room, "standup");
});
