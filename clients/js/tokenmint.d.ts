// Types for tokenmint.js (the package's only module).

/** The grants to ask for, as in the body of POST /v1/tokens; a field left out takes the policy's value. */
export interface RequestedGrants {
  video?: { room?: string };
  voice?: {
    incoming?: boolean;
    outgoing?: { application_sid?: string; params?: Record<string, unknown> };
    push_credential_sid?: string;
    endpoint_id?: string;
  };
  chat?: { service_sid?: string; push_credential_sid?: string; endpoint_id?: string; deployment_role_sid?: string };
  sync?: { service_sid?: string; endpoint_id?: string };
  task_router?: { workspace_sid?: string; worker_sid?: string; role?: string };
}

/** Web Storage or AsyncStorage: either may answer synchronously or with a promise. */
export interface TokenStorage {
  getItem(key: string): string | null | Promise<string | null>;
  setItem(key: string, value: string): void | Promise<void>;
}

/** The platform the app runs on: the policy picks that platform's push credential. */
export type Platform = "ios" | "ios_sandbox" | "android" | "web";

export interface TokenClientOptions {
  /** tokenmint's base URL, e.g. "https://tokens.example.com". */
  url: string;
  /** Your app's bearer credential (a session JWT or ID token), or a function returning a fresh one. */
  credential: string | (() => string | Promise<string>);
  /** The grants to ask for; left out, the policy's defaults. */
  grants?: RequestedGrants;
  /** Lifetime to ask for, in seconds; left out, the policy's default. */
  ttl?: number;
  /** The platform, for the push credential. */
  platform?: Platform;
  /** Use the OAuth token exchange (POST /oauth2/token, the credential as subject token). */
  exchange?: boolean;
  /** Keeps the current token across reloads or restarts: sessionStorage, or React Native's AsyncStorage. */
  storage?: TokenStorage;
  /** The key in `storage`; default "tokenmint:" + url. */
  storageKey?: string;
  /** Another fetch (tests, or a platform without a global one). */
  fetch?: typeof fetch;
  /** Refresh this many seconds before expiry at most (at most half the ttl). Default 300. */
  refreshAheadSeconds?: number;
  /** A random share of the refresh window added, so clients spread out. Default 0.2. */
  jitter?: number;
  /** Back-off after a failure, doubling from min to max with full jitter; a Retry-After wins. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

/** A token and when it expires and will be refreshed (milliseconds since the epoch, this device's clock). */
export interface TokenDetails {
  token: string;
  /** The identity the token carries (null through the token exchange, whose answer does not say). */
  identity: string | null;
  grants: string[];
  /** Where the SDK should connect, when the token's account has a region; null for us1. */
  region: string | null;
  expiresAt: number;
  refreshAt: number;
}

/** A failed token request: `status` is the HTTP status (0 for a network failure). */
export class TokenError extends Error {
  constructor(message: string, details?: { status?: number; problem?: unknown; retryAfterMs?: number | null });
  readonly status: number;
  /** The problem+json body (or, through the token exchange, the RFC 6749 error), when sent. */
  readonly problem:
    | { type?: string; title?: string; status?: number; detail?: string; error?: string; error_description?: string }
    | null;
  readonly retryAfterMs: number | null;
  /** Whether trying again later can help (rate limited, unavailable, or the network). */
  readonly retryable: boolean;
}

export class TokenClient {
  constructor(options: TokenClientOptions);
  /** Calls `listener` with every new token; returns a function that unsubscribes. */
  onToken(listener: (token: string, details: TokenDetails) => void): () => void;
  /** Calls `listener` with every failed attempt; returns a function that unsubscribes. */
  onError(listener: (error: TokenError) => void): () => void;
  /** The cached token while it is fresh, else a new one (concurrent callers share one request). */
  getToken(): Promise<string>;
  /** Fetches a new token now (for an SDK's tokenAboutToExpire / tokenWillExpire event). */
  refresh(): Promise<TokenDetails>;
  /** Changes the platform; the cached token is dropped so the next carries its push credential. */
  setPlatform(platform: Platform): void;
  /** Keeps a fresh token from now on: refreshes before expiry, backs off after failures. */
  start(): void;
  /** Stops refreshing (the cached token stays until it expires). */
  stop(): void;
  /** Whether it refreshes by itself (between start() and stop(), or a refused credential). */
  readonly running: boolean;
  /** The cached token and its times, if any. */
  readonly current: TokenDetails | null;
}

/** What the SDK helpers need of an SDK object: its events (`on`, and `off` or `removeListener`). */
export interface Emitter {
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  off?(event: string, listener: (...args: unknown[]) => void): unknown;
  removeListener?(event: string, listener: (...args: unknown[]) => void): unknown;
}

/** The part of Twilio Voice's `Device` the helper uses. */
export interface VoiceDeviceLike extends Emitter {
  updateToken(token: string): void;
  register(): Promise<void>;
  connect(options?: unknown): Promise<unknown>;
}

/** The part of Twilio Conversations' `Client` (and Sync's `SyncClient`) the helpers use. */
export interface TokenUpdatable extends Emitter {
  updateToken(token: string): unknown;
}

/** Keeps a Voice `Device` supplied; `register` and `connect` hand it a fresh token first. */
export function keepVoiceDevice<D extends VoiceDeviceLike>(
  tokens: TokenClient,
  device: D,
): { stop(): void; register(): ReturnType<D["register"]>; connect(options?: Parameters<D["connect"]>[0]): ReturnType<D["connect"]> };

/** Keeps a Conversations `Client` supplied, recovering after `tokenExpired`. */
export function keepConversationsClient(tokens: TokenClient, client: TokenUpdatable): { stop(): void };

/** Keeps a Sync `SyncClient` supplied, recovering after `tokenExpired`. */
export function keepSyncClient(tokens: TokenClient, client: TokenUpdatable): { stop(): void };

/** Connects to a Video room with a token fresh now and valid at least `minValidSeconds` (600). */
export function connectVideo<R, O>(
  tokens: TokenClient,
  connect: (token: string, options: O) => Promise<R>,
  options: O,
  settings?: { minValidSeconds?: number },
): Promise<R>;
