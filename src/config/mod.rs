//! Plugin configuration: raw serde types (unknown fields rejected) and the compiler that turns
//! them into an immutable [`crate::policy::Policy`].

pub mod error;

pub use error::ConfigError;
