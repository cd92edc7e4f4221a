# Sourced by bench/load.sh and bench/profile.sh: the credentials, the configuration (the test
# configuration plus an RS256 provider with a fixed key; rate limits checked, never hit) written
# to "$work/load.toml", and the helpers that make JWTs. Needs $work.
export TWILIO_ACCOUNT_SID=AC0123456789abcdef0123456789abcdef
export TWILIO_API_KEY=SKfedcba9876543210fedcba9876543210
export TWILIO_API_SECRET=bench-api-secret-bench-api-secret
export TEST_SESSION_SECRET=bench-session-secret-bench-session-secret-0123
cp config/test.toml "$work/load.toml"
{
  printf '\n[[auth.providers]]\nissuer = "https://idp.bench"\naudiences = ["tokenmint-bench"]\n'
  printf 'default_roles = ["user"]\nidentity_namespace = "test-users"\n'
  printf 'public_key_pem = """\n%s\n"""\n' "$(cat tests/fixtures/keys/rsa-a.pub.pem)"
} >>"$work/load.toml"
export TOKENMINT_CONFIG=$work/load.toml TOKENMINT__LOG__FILTER=info
export TOKENMINT__RATE_LIMIT__PER_IP__PER_MINUTE=4000000000 TOKENMINT__RATE_LIMIT__PER_IP__BURST=100000000
export TOKENMINT__RATE_LIMIT__PER_IDENTITY__PER_MINUTE=4000000000 TOKENMINT__RATE_LIMIT__PER_IDENTITY__BURST=100000000

b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
jwt() { # alg, claims JSON, signer command reading the signing input on stdin
  local input
  input="$(printf '{"alg":"%s","typ":"JWT"}' "$1" | b64url).$(printf '%s' "$2" | b64url)"
  printf '%s.%s' "$input" "$(printf '%s' "$input" | $3 | b64url)"
}
now=$(date +%s)
# An app session (HS256) and a provider's ID token (RS256) for alice, valid two hours.
session=$(jwt HS256 "{\"iss\":\"https://app.test\",\"aud\":\"tokenmint-test\",\"sub\":\"alice\",\"roles\":[\"user\"],\"iat\":$now,\"exp\":$((now + 7200))}" \
  "openssl dgst -sha256 -binary -hmac $TEST_SESSION_SECRET")
id_token=$(jwt RS256 "{\"iss\":\"https://idp.bench\",\"aud\":\"tokenmint-bench\",\"sub\":\"alice\",\"iat\":$now,\"exp\":$((now + 7200))}" \
  "openssl dgst -sha256 -binary -sign tests/fixtures/keys/rsa-a.pem")

# bench/profile.sh and bench/instructions.sh: a wrk script posting the token request with one
# credential ("hs256" or "rs256"; "-cold": every one verified anew), written to $work/load.lua.
one_credential_load() {
  local token
  case $1 in *-cold) export TOKENMINT__AUTH__VERIFIED_CACHE_SIZE=0 ;; esac
  case $1 in hs256*) token=$session ;; *) token=$id_token ;; esac
  cat >"$work/load.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"grants": {"video": {"room": "standup"}}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
LUA
}
