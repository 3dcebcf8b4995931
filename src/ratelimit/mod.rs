//! Local rate limiting and abuse controls (work in progress: see later commits).

pub mod gcra;
pub mod headers;
