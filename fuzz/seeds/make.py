"""Writes the seed corpus (fuzz/seeds/<target>/). Run once with PyJWT: .venv/bin/python fuzz/seeds/make.py
The tokens in it are signed with the test suite's fake secrets (fuzz/src/lib.rs) and the
test-only key tests/fixtures/keys/rsa-a.pem, and expire in 2036."""
import json, pathlib, jwt

HERE = pathlib.Path(__file__).parent
ROOT = HERE.parent.parent
SESSION_SECRET = "test-session-secret-never-logged-0123456789"
IAT, EXP = 1_795_000_000, 2_100_000_000


def session(sub, **extra):
    claims = {"iss": "https://app.test", "aud": "tokenmint-test", "sub": sub, "iat": IAT, "exp": EXP, **extra}
    return jwt.encode(claims, SESSION_SECRET, algorithm="HS256")


def provider(org, sub, **extra):
    key = (ROOT / "tests/fixtures/keys/rsa-a.pem").read_text()
    claims = {"iss": "https://idp.fuzz", "aud": "tokenmint-fuzz", "sub": sub, "org": org, "roles": ["user"],
              "iat": IAT, "exp": EXP, **extra}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "rsa-a"})


def write(target, name, data):
    folder = HERE / target
    folder.mkdir(exist_ok=True)
    (folder / name).write_bytes(data if isinstance(data, bytes) else data.encode())


# token_request: [credential index, content-type index, body...]; credentials: 0 alice (user),
# 1 backend (may act as others), 2 kiosk, 3 a session with no rule, 4 a provider user.
bodies = {
    "empty": "",
    "defaults": "{}",
    "ttl": '{"ttl": 600}',
    "ttl-too-long": '{"ttl": 86401}',
    "ttl-float": '{"ttl": 1.5}',
    "video-room": '{"grants": {"video": {"room": "standup"}}}',
    "video-team": '{"grants": {"video": {"room": "team-blue"}}, "ttl": 60}',
    "video-other": '{"grants": {"video": {"room": "user-bob"}}}',
    "act-as": '{"identity": "carol", "grants": {"video": {}, "chat": {}}}',
    "all-grants": json.dumps({"ttl": 3600, "identity": "svc-1", "grants": {
        "video": {"room": "any"}, "voice": {"incoming": True, "outgoing": {"params": {"to": "+15551234567"}},
        "push_credential_sid": "CR22222222222222222222222222222222", "endpoint_id": "e1"},
        "chat": {"deployment_role_sid": "RL55555555555555555555555555555555"}, "sync": {},
        "task_router": {"worker_sid": "WK77777777777777777777777777777777"}}}),
    "unknown-field": '{"grants": {"vidoe": {}}}',
    "identity-unicode": '{"identity": "\\u00e9\\ud83d\\ude00 x"}',
    "not-json": "ttl=60",
}
# Content types: 0 application/json, 1 with a charset, 2 a +json type, 3 text/plain, 4 none.
kinds = {"empty": 4, "ttl": 1, "defaults": 2, "not-json": 3}
for name, body in bodies.items():
    for who in range(5):
        write("token_request", f"{name}-{who}", bytes([who, kinds.get(name, 0)]) + body.encode())

# authorization: whole header values.
for name, value in {
    "session": "Bearer " + session("alice", roles=["user"]),
    "session-default-roles": "bearer  " + session("dave") + "  ",
    "session-no-rule": "Bearer " + session("eve", roles=["auditor"]),
    "session-expired": "Bearer " + jwt.encode({"iss": "https://app.test", "aud": "tokenmint-test", "sub": "old",
                                               "iat": 1, "exp": 2}, SESSION_SECRET, algorithm="HS256"),
    "session-none-alg": "Bearer " + jwt.encode({"iss": "https://app.test", "sub": "x"}, None, algorithm="none"),
    "provider": "Bearer " + provider("acme", "bob"),
    "provider-no-org": "Bearer " + jwt.encode({"iss": "https://idp.fuzz", "aud": "tokenmint-fuzz", "sub": "x",
                                               "exp": EXP}, (ROOT / "tests/fixtures/keys/rsa-a.pem").read_text(),
                                              algorithm="RS256"),
    "api-key": "Bearer tmk_test_backend_0123456789abcdef",
    "api-key-kiosk": "BEARER tmk_test_kiosk_0123456789abcdef",
    "api-key-wrong": "Bearer tmk_test_backend_0123456789abcdeg",
    "basic": "Basic dXNlcjpwYXNz",
    "empty-bearer": "Bearer ",
    "three-dots": "Bearer a.b.c",
}.items():
    write("authorization", name, value)

# config: whole --config files.
for path in ["config/test.toml", "config/dev.toml", "deploy/compose/tokenmint.toml"]:
    write("config", pathlib.Path(path).name, (ROOT / path).read_text())
write("config", "providers.toml", """
[[auth.providers]]
issuer = "https://idp.example"
audiences = ["app"]
jwks = '{"keys": []}'
identity_template = "{tenant}:{sub}"
tenant_claim = "tenant"
[[auth.api_keys]]
name = "b"
sha256 = "d1b90c3a557acf22093db54afdcdea95e9e363bdc0ef20865ed3a0e6627163a3"
tenant = "acme"
[accounts.eu]
region = "ie1"
[[policy.rules]]
name = "r"
roles = ["user"]
account = "eu"
max_ttl_secs = 600
video = { rooms = ["*"] }
[policy.deny]
identities = ["mallory"]
""")
write("config", "unicode.toml", """
[[auth.sessions]]
issuer = "https://app.test"
audiences = ["tokenmint-test"]
secret_env = "TEST_SESSION_SECRET"
default_roles = ["utilisateur"]
[[policy.rules]]
name = "équipe"
roles = ["utilisateur"]
video = { rooms = ["équipe-*", "会議-{identity}", "{é", "🎥*"], default_room = "über-{identity}" }
[policy.deny]
identities = ["zoë"]
""")

# jwks: key sets.
write("jwks", "empty", '{"keys": []}')
write("jwks", "rsa", json.dumps({"keys": [{"kty": "RSA", "kid": "a", "use": "sig", "alg": "RS256", "e": "AQAB",
    "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw"}]}))
write("jwks", "ec-okp", json.dumps({"keys": [
    {"kty": "EC", "crv": "P-256", "kid": "e", "alg": "ES256",
     "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
    {"kty": "OKP", "crv": "Ed25519", "kid": "o", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
    {"kty": "oct", "k": "c2VjcmV0"},
    {"kty": "RSA", "use": "enc", "e": "AQAB", "n": "AQAB"},
    {"kty": "RSA", "alg": "HS256", "e": "AQAB", "n": "AQAB"}]}))
write("jwks", "garbage", '{"keys": [1, "x", null, {"kty": 7}]}')
