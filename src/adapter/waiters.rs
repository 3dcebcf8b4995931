//! Streams paused until a dependency (JWKS keys) changes: the root context retries them after
//! switching the host's effective context to each.

use super::host::{self as abi, Envoy};
use crate::pipeline::flow::{Flow, Retry};
use std::cell::RefCell;
use std::rc::Weak;

/// Streams paused until a dependency (JWKS keys) changes, by context id.
#[derive(Default)]
pub(crate) struct Waiters {
    list: RefCell<Vec<(u32, Weak<RefCell<Flow>>)>>,
}

impl Waiters {
    /// Registers a paused stream (once).
    pub(crate) fn add(&self, id: u32, state: Weak<RefCell<Flow>>) {
        if let Ok(mut list) = self.list.try_borrow_mut() {
            if !list.iter().any(|(i, _)| *i == id) {
                list.push((id, state));
            }
        }
    }

    /// Re-runs every waiting stream; finished ones are answered or resumed and dropped from the
    /// list. Streams that are gone (client went away) are dropped too.
    pub(crate) fn retry_all(&self) {
        let pending = match self.list.try_borrow_mut() {
            Ok(mut list) => std::mem::take(&mut *list),
            Err(_) => return,
        };
        let mut still = Vec::new();
        for (id, weak) in pending {
            let Some(state) = weak.upgrade() else {
                continue;
            };
            if abi::set_effective_context(id).is_err() {
                continue;
            }
            let outcome = match state.try_borrow_mut() {
                Ok(mut s) => s.retry(&Envoy),
                Err(_) => Retry::Waiting,
            };
            match outcome {
                Retry::Waiting => still.push((id, weak)),
                Retry::Resume => {
                    let _ = abi::resume_http_request();
                }
                Retry::Answered => {}
            }
        }
        if let Ok(mut list) = self.list.try_borrow_mut() {
            list.extend(still);
        }
    }

    /// True when no stream waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.list.try_borrow().map_or(true, |l| l.is_empty())
    }
}
