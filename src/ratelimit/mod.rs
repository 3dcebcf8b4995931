//! Local rate limiting and abuse controls (work in progress: see later commits).

pub mod client_ip;
pub mod gcra;
pub mod headers;
pub mod key;
pub mod table;
