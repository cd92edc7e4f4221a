"""schemathesis hooks for tests/api/schema.rs.

Twilio's identity rules depend on the grants a token carries (no spaces or control characters
with Voice; at most 128 units with Video, a non-ASCII character counting two), and a JSON Schema
cannot make one property's rules depend on another's. A request naming such an identity gets a
correct 400 that the positive-data check would report, so those bodies are left out; everything
else the schema allows is generated.
"""
import os

import schemathesis


def _identity_fits_every_grant(identity):
    units = sum(1 if ord(c) < 128 else 2 for c in identity)
    return units <= 128 and not any(c.isspace() or c.isprintable() is False for c in identity)


@schemathesis.hook
def filter_body(ctx, body):
    if ctx.operation.path != "/v1/tokens" or not isinstance(body, dict):
        return True
    identity = body.get("identity")
    return not isinstance(identity, str) or _identity_fits_every_grant(identity)


@schemathesis.hook
def map_body(ctx, body):
    """Half of the token exchanges carry a subject token that verifies (TOKENMINT_SUBJECT_TOKEN),
    so the exchange's success path is exercised, not only its refusals."""
    token = os.environ.get("TOKENMINT_SUBJECT_TOKEN")
    if ctx.operation.path == "/oauth2/token" and isinstance(body, dict) and token and hash(repr(body)) % 2 == 0:
        body = dict(body, subject_token=token)
    return body
