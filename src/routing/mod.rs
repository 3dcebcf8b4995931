//! Routing: which configured route a request falls under, decided on the normalised path.

pub mod matcher;
pub mod normalize;

pub use matcher::{host_of, HostPattern, Params, PathMatcher};
pub use normalize::{equivalent_spellings, normalize, NormalPath, PathError};
