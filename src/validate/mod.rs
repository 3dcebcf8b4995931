//! Per-route request validation (work in progress).

pub mod json;
pub mod schema;
