//! Black-box tests that need more than the Rust toolchain: a real Chromium, Redis, nginx, an
//! OpenID provider and Twilio's official library (Python), schemathesis, the deployment linters,
//! libfaketime. `scripts/test` installs them and runs this target (`cargo test --test tools`); a
//! plain `cargo test` leaves it out, so it passes on a fresh clone with only Rust installed.

// The helpers are shared with `tests/api`; not every one is used here.
#[allow(dead_code)]
#[path = "../api/helpers/mod.rs"]
mod helpers;

mod browser;
mod clock;
mod deploy;
mod js_client;
mod nginx;
mod official_library;
mod oidc_provider;
mod prometheus;
mod redis_store;
mod schema;
mod traces;
