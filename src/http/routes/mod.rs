//! Handlers, one module per resource.

pub mod dev;
pub mod exchange;
pub mod health;
pub mod openapi;
pub mod tokens;
