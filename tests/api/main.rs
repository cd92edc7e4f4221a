//! Black-box tests: the real service on random loopback ports, spoken to over HTTP, with every
//! token verified independently of the code that minted it. They need only the Rust toolchain;
//! the tests that need other tools are the `tools` target (`tests/tools`).

mod accounts;
mod audit;
mod cli;
mod client_address;
mod conformance;
mod container;
mod deny;
mod drain;
mod errors;
mod exchange;
mod faults;
mod health;
mod helpers;
mod identity;
mod layers;
mod leaks;
mod overload;
mod providers;
mod reload;
mod tokens;
mod vectors;
