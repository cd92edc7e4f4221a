//! tokenmint: exchanges a verified app-user identity for a short-lived Twilio Access Token.
//!
//! # Layout, in the order a request meets it
//! - [`http`]: routers, tower layers, extractors and handlers (the only axum code, with [`error`]).
//! - [`auth`]: the bearer credential becomes a verified [`auth::Principal`].
//! - [`policy`]: pure rules decide which grants, identity and ttl the principal may have.
//! - [`token`]: builds and signs the Access Token with the API key from [`credentials`].
//! - [`error`]: every failure as an RFC 9457 problem response, in one place.
//!
//! Around them: [`config`] (layered settings, environment, secrets), [`startup`] (assembly,
//! listeners, graceful shutdown and drain), [`reload`] (key rotation: SIGHUP and watched files),
//! [`telemetry`] (logs and the audit trail), [`cli`]
//! (the commands `main` dispatches), [`dev`] (the zero-setup `--dev` mode), [`sid`], [`ids`] and [`text`].

pub mod app;
pub mod auth;
pub mod bounds;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod dev;
pub mod env;
pub mod http;
pub mod ids;
pub mod issue;
pub mod metrics;
pub mod policy;
pub mod ratelimit;
pub mod reload;
pub mod sid;
pub mod startup;
pub mod telemetry;
pub mod text;
pub mod token;
