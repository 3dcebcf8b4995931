//! The enforcement mode, one type for the global default, routes, rate limits, lockout and
//! response rules.

use serde::Deserialize;

/// `enforce` refuses; `report` logs and counts what would have been refused and lets the
/// request go on unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Denials are enforced (default).
    #[default]
    Enforce,
    /// Denials are logged and counted; the request goes on.
    Report,
}

crate::config::read::from_json_enum!(Mode {
    Enforce = "enforce",
    Report = "report",
});
