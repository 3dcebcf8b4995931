//! The one error type of configuration: where in the JSON it is and what is wrong. It sits
//! beside [`super::Denial`], the error of a request: a config error stops a configuration from
//! loading, a denial stops a request.

use std::fmt;

/// A config problem at a JSON path, e.g. `routes[2].match.path: unclosed '{' in "/users/{id"`.
///
/// Displayed as one line, which `on_configure` logs and the offline validator prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// JSON path of the offending field (`routes[2].match.path`); empty for the document itself.
    pub path: String,
    /// What is wrong with it, in plain words; never echoes secrets.
    pub problem: String,
}

impl ConfigError {
    /// An error at `path`.
    pub fn new(path: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "config: {}", self.problem)
        } else {
            write!(f, "{}: {}", self.path, self.problem)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Joins a parent path and a field name: `join("routes[0]", "match")` is `routes[0].match`.
pub fn join(parent: &str, field: &str) -> String {
    if parent.is_empty() {
        field.to_string()
    } else {
        format!("{parent}.{field}")
    }
}

/// Appends an index: `index("routes", 2)` is `routes[2]`.
pub fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}
