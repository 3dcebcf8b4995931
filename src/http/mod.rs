//! HTTP token rules, one copy for every check: which header names are valid and which
//! spellings an upstream reads as the same header ([`name`]), which methods pass ([`method`]),
//! how percent-escapes decode ([`percent`]), and how a query string splits into parameters
//! ([`query`]).
//!
//! Config compilers and request checks both call these, so a rule is spelled once: a header
//! name refused in one section is refused in every section, and a parameter decoded for the
//! query schema is decoded the same way for the owner check. Pure functions over text; nothing
//! here knows routes, denials or the host.

pub mod method;
pub mod name;
pub mod percent;
pub mod query;
