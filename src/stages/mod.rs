//! The checks, one file per stage, each behind [`crate::pipeline::Stage`] and owning its glue
//! between the engine and its capability module (`authn`, `identity`, `ratelimit`, `validate`,
//! `response`). [`STANDARD`] is the order they run in: cheapest first, the body checks once the
//! body is buffered. Adding a check adds a file and a line here.
//!
//! Response protection runs outside the request pipeline: [`cors`] answers preflights before
//! any request check, [`response`] checks and edits the upstream's answer.

pub mod binding;
pub mod body;
pub mod cors;
pub mod forward;
pub mod jwt;
pub mod lockout;
pub mod owner;
pub mod peers;
pub mod ratelimit;
pub mod request;
pub mod response;

use crate::pipeline::stage::Pipeline;

/// The stages every request runs, in order.
pub static STANDARD: Pipeline = Pipeline {
    headers: &[
        &peers::Peers,
        &lockout::Lockout { body: false },
        &ratelimit::RateLimit { early: true },
        &jwt::Jwt,
        &binding::Binding,
        &owner::Owner { body: false },
        &ratelimit::RateLimit { early: false },
        &request::Request,
        &response::AcceptIdentity,
        &forward::Forward,
    ],
    body: &[
        &body::Body,
        &lockout::Lockout { body: true },
        &owner::Owner { body: true },
    ],
};
