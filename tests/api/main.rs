//! Black-box tests: the real service on random loopback ports, spoken to over HTTP, with every
//! token verified independently of the code that minted it.

mod accounts;
mod browser;
mod cli;
mod client_address;
mod clock;
mod container;
mod deny;
mod deploy;
mod drain;
mod errors;
mod exchange;
mod faults;
mod health;
mod helpers;
mod identity;
mod layers;
mod leaks;
mod official_library;
mod oidc_provider;
mod overload;
mod providers;
mod redis_store;
mod reload;
mod schema;
mod tokens;
mod vectors;
