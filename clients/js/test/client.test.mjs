// The client package in Node (no DOM, no window), against a real tokenmint that
// tests/tools/js_client.rs starts: TOKENMINT_URL, and sessions for an app user
// (TOKENMINT_SESSION), a user whose per-identity quota is one token a minute
// (TOKENMINT_LIMITED_SESSION) and a mobile user whose rule maps push credentials by platform
// (TOKENMINT_MOBILE_SESSION). Run: node --test clients/js/test/
import assert from "node:assert/strict";
import { test } from "node:test";

import { TokenClient, TokenError } from "tokenmint-client";

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
