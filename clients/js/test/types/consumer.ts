// Must type-check: the package used as its README shows.
import { TokenClient, TokenError, connectVideo, keepVoiceDevice, type TokenDetails } from "tokenmint-client";

const client = new TokenClient({
  url: "https://tokens.example.com",
  credential: async () => "session-jwt",
  grants: { video: { room: "standup" }, voice: { incoming: true }, chat: {} },
  ttl: 600,
  platform: "ios",
  storage: { getItem: async (key: string) => key, setItem: (_key: string, _value: string) => {} },
});
const unsubscribe: () => void = client.onToken((token: string, details: TokenDetails) => {
  const where: string | null = details.region;
  console.log(token.length, details.expiresAt - details.refreshAt, where);
});
client.onError((error: TokenError) => console.log(error.status, error.retryable, error.problem?.detail));
client.start();
const token: Promise<string> = client.getToken();
void token;
unsubscribe();
client.stop();

// An object with Voice's Device interface, as the SDK's types declare it.
declare const device: {
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  off(event: string, listener: (...args: unknown[]) => void): unknown;
  updateToken(token: string): void;
  register(): Promise<void>;
  connect(options?: { params?: Record<string, string> }): Promise<{ disconnect(): void }>;
};
const voice = keepVoiceDevice(client, device);
void voice.connect({ params: { To: "alice" } }).then((call) => call.disconnect());
declare function videoConnect(token: string, options: { name: string }): Promise<{ sid: string }>;
void connectVideo(client, videoConnect, { name: "standup" }).then((room) => room.sid);
