// From a page on each origin, calls POST /v1/tokens with fetch() the way a browser app does
// (a bearer credential and a JSON body, so the browser sends a CORS preflight first), and
// prints what the page saw as JSON: {"allowed": {...}, "denied": {...}}.
// Usage: node cors.mjs API_BASE ALLOWED_PAGE_URL DENIED_PAGE_URL SESSION_TOKEN
import { launch } from "./launch.mjs";

const [api, allowedPage, deniedPage, session] = process.argv.slice(2);
const browser = await launch();

async function fetchFrom(pageUrl) {
  const page = await browser.newPage();
  try {
    await page.goto(pageUrl, { timeout: 15_000 });
    return await page.evaluate(async ({ api, session }) => {
      try {
        const response = await fetch(`${api}/v1/tokens`, {
          method: "POST",
          headers: { Authorization: `Bearer ${session}`, "Content-Type": "application/json" },
          body: JSON.stringify({ grants: { video: { room: "standup" } } }),
        });
        const body = await response.json();
        return {
          fetched: true,
          status: response.status,
          identity: body.identity,
          token: typeof body.token === "string",
          requestId: response.headers.get("x-request-id"),
          rateLimit: response.headers.get("ratelimit"),
        };
      } catch (error) {
        return { fetched: false, error: String(error) };
      }
    }, { api, session });
  } finally {
    await page.close();
  }
}

try {
  const allowed = await fetchFrom(allowedPage);
  const denied = await fetchFrom(deniedPage);
  console.log(JSON.stringify({ allowed, denied }));
} finally {
  await browser.close();
}
