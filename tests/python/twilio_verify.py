"""Verifies tokens minted by a running tokenmint with Twilio's official Python helper library.

Reads {"secret", "account_sid", "key_sid", "cases": [{"name", "token", "grants", "header"}]} on
stdin. For each case: twilio.jwt.Jwt.from_jwt must verify the signature (and exp/nbf) and a
wrong secret must fail; the header and grants must be as expected; and the official
AccessToken, built from the same grants with the library's own grant classes, must write the
same grants. Prints one line per case and exits non-zero on the first failure.
"""

import json
import sys

from twilio.jwt import Jwt, JwtDecodeError
from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import (
    ChatGrant,
    SyncGrant,
    TaskRouterGrant,
    VideoGrant,
    VoiceGrant,
)


def official_grants(grants, request):
    """The grants the official library writes for the same inputs."""
    token = AccessToken(request["account_sid"], request["key_sid"], request["secret"], identity=grants["identity"])
    if "voice" in grants:
        v = grants["voice"]
        token.add_grant(VoiceGrant(
            incoming_allow=v.get("incoming", {}).get("allow"),
            outgoing_application_sid=v.get("outgoing", {}).get("application_sid"),
            outgoing_application_params=v.get("outgoing", {}).get("params"),
            push_credential_sid=v.get("push_credential_sid"),
            endpoint_id=v.get("endpoint_id"),
        ))
    if "video" in grants:
        token.add_grant(VideoGrant(room=grants["video"].get("room")))
    if "chat" in grants:
        c = grants["chat"]
        token.add_grant(ChatGrant(
            service_sid=c.get("service_sid"),
            endpoint_id=c.get("endpoint_id"),
            deployment_role_sid=c.get("deployment_role_sid"),
            push_credential_sid=c.get("push_credential_sid"),
        ))
    if "data_sync" in grants:
        s = grants["data_sync"]
        token.add_grant(SyncGrant(service_sid=s.get("service_sid"), endpoint_id=s.get("endpoint_id")))
    if "task_router" in grants:
        t = grants["task_router"]
        token.add_grant(TaskRouterGrant(workspace_sid=t.get("workspace_sid"), worker_sid=t.get("worker_sid"), role=t.get("role")))
    return Jwt.from_jwt(token.to_jwt(), request["secret"]).payload["grants"]


def main():
    request = json.load(sys.stdin)
    for case in request["cases"]:
        name = case["name"]
        decoded = Jwt.from_jwt(case["token"], request["secret"])
        try:
            Jwt.from_jwt(case["token"], request["secret"] + "-wrong")
            sys.exit(f"{name}: a wrong secret verified")
        except JwtDecodeError:
            pass
        payload, headers = decoded.payload, decoded.headers
        for key, value in case["header"].items():
            if headers.get(key) != value:
                sys.exit(f"{name}: header {key} = {headers.get(key)!r}, expected {value!r}")
        if payload["iss"] != request["key_sid"] or payload["sub"] != request["account_sid"]:
            sys.exit(f"{name}: iss/sub {payload['iss']}/{payload['sub']}")
        if payload["grants"] != case["grants"]:
            sys.exit(f"{name}: grants {payload['grants']!r}, expected {case['grants']!r}")
        official = official_grants(payload["grants"], request)
        if official != payload["grants"]:
            sys.exit(f"{name}: the official library writes {official!r} for the same grants, we wrote {payload['grants']!r}")
        print(f"verified {name}")
    print(f"{len(request['cases'])} passed, 0 failed")


if __name__ == "__main__":
    main()
