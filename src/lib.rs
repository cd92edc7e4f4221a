//! tokenmint: exchanges a verified app-user identity for a short-lived Twilio Access Token.
//!
//! # Layout, in the order a request meets it
//! - [`http`]: the only code that knows HTTP: routers, the tower stack, the accept loop,
//!   extractors, handlers, and every failure as a problem (or RFC 6749) response.
//! - [`issue`]: one mint, top to bottom (limit the client, admit the credential, decide, sign,
//!   count, audit), for both routes and `tokenmint mint`, on the [`app`] state.
//! - [`auth`]: the bearer credential becomes a verified [`auth::Principal`].
//! - [`policy`]: pure rules decide which grants, identity and ttl the principal may have.
//! - [`accounts`] and [`token`]: which Twilio account signs, and the Access Token it signs.
//! - [`ratelimit`], [`metrics`], [`audit`], [`telemetry`]: how often, what is counted, what
//!   each minted token leaves on the audit trail, what is logged.
//!
//! Around them: [`config`] (the layered settings, every section at once), [`startup`] (the one
//! assembly, listeners, graceful shutdown and drain), [`reload`] (the same assembly on SIGHUP and
//! watched files), [`cli`] (the commands `main` dispatches), [`dev`] (the zero-setup `--dev`
//! mode), and the ground floor: [`env`](mod@env), [`sid`], [`ids`], [`text`], [`bounds`].

pub mod accounts;
pub mod app;
pub mod audit;
pub mod auth;
pub mod bounds;
pub mod cli;
pub mod config;
pub mod dev;
pub mod env;
pub mod http;
pub mod ids;
pub mod issue;
pub mod metrics;
pub mod panics;
pub mod policy;
pub mod ratelimit;
pub mod reload;
pub mod sid;
pub mod startup;
pub mod telemetry;
pub mod text;
pub mod token;
pub mod traces;
