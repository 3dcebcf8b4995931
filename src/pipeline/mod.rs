//! The engine and the flow of a stream: request facts in, verdicts, events and host actions
//! out. Pure: every host access goes through [`crate::host::Host`].
//!
//! - [`engine`]: [`Exchange`], one request's path through the stages of a [`Pipeline`].
//! - [`stage`]: the [`Stage`] trait the checks in [`crate::stages`] implement, and [`Cx`].
//! - [`state`]: per-request state the stages share. [`verdict`]: what comes out.
//! - [`flow`] and [`respond`]: a stream callback by callback (holding, waiting for keys,
//!   buffering, the response side), over the host trait. The adapter calls only these.
//! - [`facts`]: the request snapshot. [`runtime`]: per-worker state and the host views.

pub mod engine;
pub mod facts;
pub mod flow;
pub mod respond;
pub mod runtime;
pub mod stage;
pub mod state;
pub mod verdict;

pub use engine::Exchange;
pub use facts::{NotText, RequestFacts};
pub use flow::{Flow, Retry};
pub use runtime::{Env, Runtime, Shared};
pub use stage::{Cx, Pipeline, Stage};
pub use state::{Principal, State};
pub use verdict::{Action, AuthnMetric, Decision, Event, HeaderOp, Step, Verdict};
