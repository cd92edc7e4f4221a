// tokenmint client: fetches a Twilio Access Token from tokenmint with your app's credential,
// caches it, and refreshes it before it expires (with jitter, so a whole class of clients does
// not come back in the same second, and with back-off when the service says 429 or 503), so an
// SDK session never lapses. No dependencies; an ES module for browsers, React Native and Node 20
// or newer (it needs only `fetch` and timers; pass `fetch` to use another). Types:
// tokenmint.d.ts.
//
//   import { TokenClient } from "./tokenmint.js";
//   const tokens = new TokenClient({
//     url: "https://tokens.example.com",
//     credential: () => auth.currentUser.getIdToken(),   // or a string
//     grants: { chat: {} },
//   });
//   const conversationsClient = new Twilio.Conversations.Client(await tokens.getToken());
//   keepConversationsClient(tokens, conversationsClient);   // updateToken, early refresh, recovery
//
// README.md, "Client package", has the details and example.html a working page.

const DEFAULTS = {
  // Refresh this many seconds before expiry at most (at most half the ttl for short tokens).
  refreshAheadSeconds: 300,
  // A random share of the refresh window added, so clients spread out.
  jitter: 0.2,
  // Back-off after a failure: doubling from min to max, with full jitter; a Retry-After wins.
  minBackoffMs: 1000,
  maxBackoffMs: 60000,
};

/** A failed token request: `status` is the HTTP status (0 for a network failure). */
export class TokenError extends Error {
  constructor(message, { status = 0, problem = null, retryAfterMs = null } = {}) {
    super(message);
    this.name = "TokenError";
    this.status = status;
    this.problem = problem;
    this.retryAfterMs = retryAfterMs;
  }

  /** Whether trying again later can help (rate limited, unavailable, or the network). */
  get retryable() {
    return this.status === 0 || this.status === 429 || this.status >= 500;
  }
}

export class TokenClient {
  /**
   * @param {object} options
   * @param {string} options.url tokenmint's base URL, e.g. "https://tokens.example.com"
   * @param {string | (() => string | Promise<string>)} options.credential your app's bearer
   *   credential (an ID token or session JWT), or a function that returns a fresh one
   * @param {object} [options.grants] the grants to ask for, as in the API body (left out: the
   *   policy's defaults)
   * @param {number} [options.ttl] lifetime to ask for, in seconds (left out: the policy's default)
   * @param {"ios" | "ios_sandbox" | "android" | "web"} [options.platform] the platform the app
   *   runs on, so the policy gives the voice and chat grants that platform's push credential
   * @param {boolean} [options.exchange] use the OAuth token exchange (`POST /oauth2/token`, the
   *   credential as the subject token) instead of `POST /v1/tokens`
   * @param {{ getItem(key: string): any, setItem(key: string, value: string): any }} [options.storage]
   *   where the current token is kept across reloads or app restarts: Web Storage
   *   (`sessionStorage`) or React Native's AsyncStorage (either may be async); left out, memory only
   * @param {string} [options.storageKey] the key in `storage` (default "tokenmint:" + url)
   */
  constructor(options) {
    if (!options || !options.url || !options.credential) {
      throw new TypeError("TokenClient needs { url, credential }");
    }
    this.options = { ...DEFAULTS, ...options };
    this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.current = null; // { token, identity, grants, region, expiresAt (ms), refreshAt (ms) }
    this.running = false;
    this.inFlight = null;
    this.timer = null;
    this.failures = 0;
    this.tokenListeners = new Set();
    this.errorListeners = new Set();
  }

  /** Calls `listener(token, details)` with every new token; returns a function that unsubscribes. */
  onToken(listener) {
    this.tokenListeners.add(listener);
    return () => this.tokenListeners.delete(listener);
  }

  /** Calls `listener(error)` with every failed attempt; returns a function that unsubscribes. */
  onError(listener) {
    this.errorListeners.add(listener);
    return () => this.errorListeners.delete(listener);
  }

  /** The cached token while it is fresh, else a new one (concurrent callers share one request). */
  async getToken() {
    if (!this.current && this.options.storage) {
      this.current = await this.restore();
    }
    if (this.current && Date.now() < this.current.refreshAt) {
      return this.current.token;
    }
    return (await this.refresh()).token;
  }

  get storageKey() {
    return this.options.storageKey ?? `tokenmint:${this.options.url}`;
  }

  /** The token `storage` holds, if it is there and still fresh. */
  async restore() {
    try {
      const saved = JSON.parse((await this.options.storage.getItem(this.storageKey)) ?? "null");
      return saved && typeof saved.token === "string" && Date.now() < saved.refreshAt ? saved : null;
    } catch {
      return null; // unreadable storage is only a missed cache
    }
  }

  /** Fetches a new token now (for an SDK's `tokenAboutToExpire` / `tokenWillExpire` event). */
  refresh() {
    if (!this.inFlight) {
      this.inFlight = this.request().finally(() => {
        this.inFlight = null;
      });
    }
    return this.inFlight;
  }

  /**
   * Changes the platform (a mobile app whose push registration changed, e.g. a new APNs
   * environment): the cached token is dropped, so the next one carries that platform's push
   * credential. Voice apps then register again (`keepVoiceDevice(...).register()`).
   */
  setPlatform(platform) {
    this.options.platform = platform;
    this.current = null;
    // A stored token carries the old platform's push credential.
    Promise.resolve(this.options.storage?.setItem(this.storageKey, "null")).catch(() => {});
  }

  /** Keeps a fresh token from now on: refreshes before expiry, backs off after failures. */
  start() {
    this.running = true;
    this.schedule(this.current ? Math.max(0, this.current.refreshAt - Date.now()) : 0);
  }

  /** Stops refreshing (the cached token stays until it expires). */
  stop() {
    this.running = false;
    clearTimeout(this.timer);
    this.timer = null;
  }

  schedule(delayMs) {
    clearTimeout(this.timer);
    if (!this.running) return;
    this.timer = setTimeout(async () => {
      try {
        const fresh = await this.refresh();
        this.schedule(Math.max(0, fresh.refreshAt - Date.now()));
      } catch (error) {
        if (error instanceof TokenError && !error.retryable) {
          // 400/401/403: trying again will not help until the app fixes its credential or
          // request; it can call start() again after that.
          this.running = false;
          return;
        }
        this.schedule(this.backoffMs(error));
      }
    }, delayMs);
  }

  backoffMs(error) {
    const ceiling = Math.min(this.options.maxBackoffMs, this.options.minBackoffMs * 2 ** (this.failures - 1));
    const jittered = this.options.minBackoffMs / 2 + Math.random() * (ceiling - this.options.minBackoffMs / 2);
    return Math.max(jittered, error?.retryAfterMs ?? 0);
  }

  async request() {
    const credential =
      typeof this.options.credential === "function" ? await this.options.credential() : this.options.credential;
    const base = this.options.url.replace(/\/$/, "");
    const [endpoint, init] = this.options.exchange
      ? this.exchangeRequest(base, credential)
      : this.tokenRequest(base, credential);
    const sentAt = Date.now();
    let response;
    try {
      response = await this.fetch(endpoint, init);
    } catch (cause) {
      throw this.failed(new TokenError(`tokenmint could not be reached: ${cause}`));
    }
    const answer = await response.json().catch(() => null);
    // The exchange's RFC 8693 answer, read into the same shape.
    const payload =
      this.options.exchange && typeof answer?.access_token === "string"
        ? { token: answer.access_token, ttl: answer.expires_in, grants: answer.scope.split(" "), region: answer.region, identity: null }
        : answer;
    if (!response.ok || !payload || typeof payload.token !== "string") {
      const retryAfter = Number(response.headers.get("Retry-After"));
      throw this.failed(
        new TokenError(payload?.detail ?? payload?.error_description ?? `tokenmint answered ${response.status}`, {
          status: response.status,
          problem: payload,
          retryAfterMs: Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter * 1000 : null,
        }),
      );
    }
    this.failures = 0;
    // Expiry by this browser's clock (sent time + ttl), so a skewed clock cannot make a token
    // look fresher than it is.
    const ttlMs = payload.ttl * 1000;
    const expiresAt = sentAt + ttlMs;
    const ahead = Math.min(this.options.refreshAheadSeconds * 1000, ttlMs / 2);
    const refreshAt = expiresAt - ahead - Math.random() * this.options.jitter * ahead;
    this.current = {
      token: payload.token,
      identity: payload.identity,
      grants: payload.grants,
      // Where the SDK should connect, when the token's account has a region (else us1).
      region: payload.region ?? null,
      expiresAt,
      refreshAt,
    };
    if (this.options.storage) {
      try {
        await this.options.storage.setItem(this.storageKey, JSON.stringify(this.current));
      } catch (error) {
        console.error("tokenmint: the token could not be stored", error);
      }
    }
    for (const listener of this.tokenListeners) {
      try {
        listener(payload.token, this.current);
      } catch (error) {
        console.error("tokenmint: an onToken listener failed", error);
      }
    }
    return this.current;
  }

  /** POST /v1/tokens with the credential as the bearer token. */
  tokenRequest(base, credential) {
    const body = {};
    if (this.options.grants) body.grants = this.options.grants;
    if (this.options.ttl) body.ttl = this.options.ttl;
    if (this.options.platform) body.platform = this.options.platform;
    const init = {
      method: "POST",
      headers: { Authorization: `Bearer ${credential}`, "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    };
    return [`${base}/v1/tokens`, init];
  }

  /** POST /oauth2/token (RFC 8693): the credential is the subject token, the grants the scope. */
  exchangeRequest(base, credential) {
    const form = new URLSearchParams({
      grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
      subject_token: credential,
      subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
    });
    const scope = Object.entries(this.options.grants ?? {}).map(([grant, fields]) =>
      grant === "video" && fields?.room ? `video:room:${fields.room}` : grant,
    );
    if (scope.length) form.set("scope", scope.join(" "));
    if (this.options.platform) form.set("platform", this.options.platform);
    const init = {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: form.toString(),
      credentials: "omit",
      cache: "no-store",
    };
    return [`${base}/oauth2/token`, init];
  }

  failed(error) {
    this.failures += 1;
    for (const listener of this.errorListeners) {
      try {
        listener(error);
      } catch (listenerError) {
        console.error("tokenmint: an onError listener failed", listenerError);
      }
    }
    return error;
  }
}

// Twilio SDK lifecycles. Each helper keeps one SDK object supplied with tokens from a
// TokenClient, and starts the client's own refresh timer: the SDKs' expiry events fire once,
// late or not at all in some versions, so they only ever trigger an early refresh here, never
// the only one. Each returns { stop() } (and, for Voice, register/connect wrappers).

/** Starts `tokens` refreshing if it is not already, and returns a function undoing `extra`. */
function supply(tokens, sdk, events, onToken) {
  const offToken = tokens.onToken(onToken);
  const early = () => {
    tokens.refresh().catch(() => {}); // failures reach onError and the client's back-off
  };
  for (const event of events) sdk.on(event, early);
  if (!tokens.running) tokens.start();
  return () => {
    offToken();
    for (const event of events) (sdk.off ?? sdk.removeListener)?.call(sdk, event, early);
  };
}

/**
 * Twilio Voice (`Device`): every new token goes to `device.updateToken` before the old one
 * expires (`tokenWillExpire` asks for one early); `register()` and `connect()` first hand the
 * device a token that is fresh now.
 */
export function keepVoiceDevice(tokens, device) {
  const stop = supply(tokens, device, ["tokenWillExpire"], (token) => device.updateToken(token));
  const fresh = async () => device.updateToken(await tokens.getToken());
  return {
    stop,
    async register() {
      await fresh();
      return device.register();
    },
    async connect(options) {
      await fresh();
      return device.connect(options);
    },
  };
}

/**
 * Twilio Conversations (`Client`): every new token goes to `client.updateToken`;
 * `tokenAboutToExpire` asks for one early; after `tokenExpired` (the app was asleep, or the
 * network away) a new token is fetched at once and handed over, so the client recovers.
 */
export function keepConversationsClient(tokens, client) {
  const stop = supply(tokens, client, ["tokenAboutToExpire"], (token) => client.updateToken(token));
  const recover = () => {
    tokens.refresh().catch(() => {}); // the new token reaches updateToken through onToken
  };
  client.on("tokenExpired", recover);
  return {
    stop() {
      stop();
      (client.off ?? client.removeListener)?.call(client, "tokenExpired", recover);
    },
  };
}

/** Twilio Sync (`SyncClient`): as Conversations, with `tokenAboutToExpire` and `tokenExpired`. */
export function keepSyncClient(tokens, client) {
  return keepConversationsClient(tokens, client);
}

/**
 * Twilio Video: `connect(token, options)` gets a token fresh now, with at least `minValidSeconds`
 * left (default 600), since a participant who loses the network can reconnect to the room only
 * while the token it joined with is unexpired. Pass Video's own `connect`.
 */
export async function connectVideo(tokens, connect, options, { minValidSeconds = 600 } = {}) {
  let token = await tokens.getToken();
  if (tokens.current && tokens.current.expiresAt - Date.now() < minValidSeconds * 1000) {
    token = (await tokens.refresh()).token;
  }
  return connect(token, options);
}
