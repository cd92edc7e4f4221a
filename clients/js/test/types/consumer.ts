// Must type-check: the package used as its README shows.
import { TokenClient, TokenError, type TokenDetails } from "tokenmint-client";

const client = new TokenClient({
  url: "https://tokens.example.com",
  credential: async () => "session-jwt",
  grants: { video: { room: "standup" }, voice: { incoming: true }, chat: {} },
  ttl: 600,
  platform: "ios",
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
