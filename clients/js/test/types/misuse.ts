// Must NOT type-check: a platform the service does not know, and a grant name misspelt.
import { TokenClient } from "tokenmint-client";

new TokenClient({ url: "https://tokens.example.com", credential: "x", platform: "windows" });
new TokenClient({ url: "https://tokens.example.com", credential: "x", grants: { vidoe: {} } });
