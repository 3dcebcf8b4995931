//! Plugin configuration: raw serde types (unknown fields rejected) and the compiler that turns
//! them into an immutable [`crate::policy::Policy`].

pub mod compile;
pub mod raw;

pub use compile::compile;
#[cfg(feature = "schema")]
pub mod schema;
