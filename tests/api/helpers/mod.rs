//! Test helpers, by job: the fixed values, the app in-process, the binary, tokens, the sweep.

mod app;
mod binary;
mod fixtures;
pub mod jwks;
mod sweep;
mod tokens;

pub use app::*;
pub use binary::*;
pub use fixtures::*;
pub use sweep::*;
pub use tokens::*;
