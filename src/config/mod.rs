//! Plugin configuration: raw types (unknown fields rejected), their reader ([`read`]) and the
//! compiler that turns them into an immutable [`crate::policy::Policy`].

pub mod compile;
pub mod raw;
pub mod read;

pub use compile::compile;
#[cfg(feature = "schema")]
pub mod schema;
