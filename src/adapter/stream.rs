//! Stream (HTTP) context: each proxy-wasm callback calls the core's [`Flow`] with the host
//! ([`Envoy`]) and maps its [`FlowAction`] back. No decision and no flow logic is made here.
//!
//! The flow lives behind `Rc<RefCell<_>>` so that the root context can drive a stream that is
//! waiting (for JWKS keys) after switching the host's effective context to it.

use super::host::Envoy;
use super::waiters::Waiters;
use crate::host::Level;
use crate::pipeline::flow::{refuse_unchecked, Flow};
use crate::pipeline::verdict::Action as FlowAction;
use crate::pipeline::{RequestFacts, Shared};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;
use std::cell::RefCell;
use std::rc::Rc;

fn action(a: FlowAction) -> Action {
    match a {
        FlowAction::Continue => Action::Continue,
        FlowAction::Pause => Action::Pause,
    }
}

/// The stream of a VM without an accepted configuration: every request is refused (503).
pub(crate) struct Unconfigured;

impl Context for Unconfigured {}

impl HttpContext for Unconfigured {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        crate::host::Host::log(
            &Envoy,
            Level::Warn,
            "meshguard: no accepted configuration: request refused",
        );
        action(refuse_unchecked(&Envoy, &RequestFacts::default()))
    }
}

/// One HTTP stream.
pub(crate) struct Stream {
    id: u32,
    flow: Rc<RefCell<Flow>>,
    waiters: Rc<Waiters>,
}

impl Stream {
    pub(crate) fn new(id: u32, shared: Rc<Shared>, waiters: Rc<Waiters>) -> Self {
        Stream {
            id,
            flow: Rc::new(RefCell::new(Flow::new(shared))),
            waiters,
        }
    }

    /// Runs a request callback, then registers the stream with the root if it now waits.
    fn request(&self, f: impl FnOnce(&mut Flow) -> FlowAction) -> Action {
        let a = self.response(f, FlowAction::Pause);
        let waiting = self.flow.try_borrow().is_ok_and(|s| s.is_waiting());
        if waiting {
            self.waiters.add(self.id, Rc::downgrade(&self.flow));
        }
        a
    }

    fn response(&self, f: impl FnOnce(&mut Flow) -> FlowAction, busy: FlowAction) -> Action {
        action(match self.flow.try_borrow_mut() {
            Ok(mut s) => f(&mut s),
            Err(_) => busy,
        })
    }
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        self.request(|s| s.on_request_headers(&Envoy, end_of_stream))
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.request(|s| s.on_request_body(&Envoy, body_size, end_of_stream))
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        self.request(|s| s.on_request_trailers(&Envoy))
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        self.response(
            |s| s.on_response_headers(&Envoy, end_of_stream),
            FlowAction::Continue,
        )
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.response(
            |s| s.on_response_body(&Envoy, body_size, end_of_stream),
            FlowAction::Continue,
        )
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        self.response(|s| s.on_response_trailers(&Envoy), FlowAction::Continue)
    }
}
