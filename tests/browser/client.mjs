// Runs clients/js/tokenmint.js in headless Chromium, on a page of an allowed origin, against the
// running service, and prints what it saw as JSON (tests/api/browser.rs checks it).
// Usage: node client.mjs API_BASE PAGE_ORIGIN SESSION_ALICE SESSION_BOB SESSION_CAROL SESSION_DAN
import { launch } from "./launch.mjs";

const [api, origin, alice, bob, carol, dan] = process.argv.slice(2);
const browser = await launch();

const scenarios = {
  // The first fetch, then the cache: one request however often and however concurrently asked.
  async firstFetchAndCache({ api, session }) {
    const { TokenClient } = await import("/tokenmint.js");
    let fetched = 0;
    const client = new TokenClient({ url: api, credential: session, grants: { video: { room: "standup" } } });
    client.onToken(() => fetched++);
    const first = await client.getToken();
    const again = await Promise.all([client.getToken(), client.getToken(), client.getToken()]);
    return { token: first.split(".").length === 3, cached: again.every((t) => t === first), fetched };
  },

  // A short ttl: the client refreshes by itself before the token expires.
  async refreshBeforeExpiry({ api, session }) {
    const { TokenClient } = await import("/tokenmint.js");
    // Video alone: a chat grant would need at least 180 s (its floor).
    const client = new TokenClient({ url: api, credential: () => session, grants: { video: { room: "standup" } }, ttl: 4 });
    const seen = [];
    client.onToken((token, details) => seen.push({ token, at: Date.now(), ...details }));
    client.start();
    const deadline = Date.now() + 8000;
    while (seen.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    client.stop();
    return {
      tokens: seen.length,
      distinct: new Set(seen.map((s) => s.token)).size,
      // Each new token arrived before the one it replaced expired, and not before its refresh time.
      beforeExpiry: seen.slice(1).every((s, i) => s.at < seen[i].expiresAt),
      notEarly: seen.slice(1).every((s, i) => s.at >= seen[i].refreshAt - 50),
      refreshAfterMs: seen.length > 1 ? seen[1].at - seen[0].at : null,
    };
  },

  // The service answers 429 (a real per-identity limit): the client waits Retry-After, then succeeds.
  async backOffOn429({ api, session }) {
    const { TokenClient, TokenError } = await import("/tokenmint.js");
    const first = new TokenClient({ url: api, credential: session });
    await first.getToken();
    let refused = null;
    try {
      await first.refresh();
    } catch (error) {
      refused = { status: error.status, retryable: error.retryable, retryAfterMs: error.retryAfterMs, isTokenError: error instanceof TokenError };
    }
    const client = new TokenClient({ url: api, credential: session });
    const events = [];
    client.onError((error) => events.push({ kind: "error", status: error.status, at: Date.now() }));
    client.onToken(() => events.push({ kind: "token", at: Date.now() }));
    const started = Date.now();
    client.start();
    const deadline = Date.now() + 8000;
    while (!events.some((e) => e.kind === "token") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    client.stop();
    const token = events.find((e) => e.kind === "token");
    return { refused, errors: events.filter((e) => e.kind === "error").map((e) => e.status), tokenAfterMs: token ? token.at - started : null };
  },

  // 503 twice (answered by a stand-in for the network), then the real service: exponential
  // back-off with jitter between the attempts, then the token.
  async backOffOn503({ api, session }) {
    const { TokenClient } = await import("/tokenmint.js");
    let calls = 0;
    const attempts = [];
    const flaky = (url, init) => {
      attempts.push(Date.now());
      calls += 1;
      if (calls <= 2) {
        return Promise.resolve(new Response(JSON.stringify({ status: 503, detail: "draining" }), {
          status: 503, headers: { "Content-Type": "application/problem+json" },
        }));
      }
      return fetch(url, init);
    };
    const client = new TokenClient({ url: api, credential: session, fetch: flaky, minBackoffMs: 400, maxBackoffMs: 4000 });
    const statuses = [];
    client.onError((error) => statuses.push(error.status));
    let got = false;
    client.onToken(() => { got = true; });
    client.start();
    const deadline = Date.now() + 8000;
    while (!got && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    client.stop();
    return { statuses, got, gapsMs: attempts.slice(1).map((t, i) => t - attempts[i]) };
  },
};

async function run(name, session) {
  const page = await browser.newPage();
  try {
    await page.goto(`${origin}/`, { timeout: 15_000 });
    return await page.evaluate(scenarios[name], { api, session });
  } finally {
    await page.close();
  }
}

// The example page, as a user would drive it.
async function example(session) {
  const page = await browser.newPage();
  try {
    await page.goto(`${origin}/example.html`, { timeout: 15_000 });
    await page.fill("#url", api);
    await page.fill("#credential", session);
    await page.click("#start");
    await page.waitForFunction(() => document.querySelector("#log").textContent.includes("token for "), null, { timeout: 10_000 });
    return { log: await page.textContent("#log") };
  } finally {
    await page.close();
  }
}

try {
  const seen = {
    firstFetchAndCache: await run("firstFetchAndCache", alice),
    refreshBeforeExpiry: await run("refreshBeforeExpiry", bob),
    backOffOn429: await run("backOffOn429", carol),
    backOffOn503: await run("backOffOn503", dan),
    example: await example(alice),
  };
  console.log(JSON.stringify(seen));
} finally {
  await browser.close();
}
