//! The [`Stage`] trait every check implements, what a stage sees ([`Cx`]), and the ordered
//! stage lists the engine runs ([`Pipeline`]).

use crate::error::Denial;
use crate::pipeline::facts::RequestFacts;
use crate::pipeline::runtime::Env;
use crate::pipeline::state::State;
use crate::pipeline::verdict::Step;
use crate::policy::{Policy, Route};
use crate::ratelimit::KeyFacts;
use crate::validate::fields::{body_fields, body_object, BodyFields};

/// One check of the pipeline, in its own file under `src/stages/`. A stage reads the route's
/// compiled rule and the request, may read the host through [`Cx::env`], and records what it
/// established in [`Cx::state`]. Only [`Stage::check`] is required beyond its description; the
/// other hooks default to doing nothing.
pub trait Stage: Sync {
    /// The route's config key the stage enforces (`jwt`, `rate_limits`, ...).
    fn key(&self) -> &'static str;
    /// Short name, the config key with the phase where a key has two stages.
    fn label(&self) -> &'static str {
        self.key()
    }
    /// One line: what it checks and how it refuses (for `meshguard explain`).
    fn what(&self) -> &'static str;
    /// Whether the compiled route runs this stage (the engine skips it otherwise).
    fn runs_on(&self, route: &Route) -> bool;
    /// Whether the route needs the buffered body for this stage, whatever the request.
    fn needs_body(&self, _route: &Route) -> bool {
        false
    }
    /// The check.
    fn check(&self, cx: &mut Cx<'_>) -> Step;
    /// Any stage of this request refused it (enforced or reported): e.g. count the failure.
    fn after_denial(&self, _cx: &mut Cx<'_>, _denial: &Denial) {}
    /// Once, when the request's header changes are decided (before they go upstream); also for
    /// a request that matched no route and passes (`unmatched: allow`).
    fn finalize(
        &self,
        _policy: &Policy,
        _route: Option<&Route>,
        _state: &mut State,
        _env: &Env<'_>,
    ) {
    }
    /// Whether [`Stage::on_response`] wants the upstream's status on this route.
    fn watches_response(&self, _route: &Route) -> bool {
        false
    }
    /// The upstream answered the request with `status`.
    fn on_response(&self, _cx: &mut Cx<'_>, _status: u16) {}
}

/// The stages the engine runs, in order: those decidable from the headers, then those that need
/// the buffered body.
pub struct Pipeline {
    /// Header-phase stages, cheapest first.
    pub headers: &'static [&'static dyn Stage],
    /// Body-phase stages.
    pub body: &'static [&'static dyn Stage],
}

impl Pipeline {
    /// Every stage, header stages first.
    pub fn all(&self) -> impl Iterator<Item = &'static dyn Stage> + '_ {
        self.headers.iter().chain(self.body.iter()).copied()
    }
    /// Whether a route has checks that need the body (whatever the request).
    pub fn needs_body(&self, route: &Route) -> bool {
        self.all().any(|s| s.needs_body(route))
    }
}

/// What a stage sees: the policy and route, the request, the body in the body phase, the host,
/// and the request's state.
pub struct Cx<'a> {
    /// The policy (for policy-wide settings such as `client_ip`).
    pub policy: &'a Policy,
    /// The matched route.
    pub route: &'a Route,
    /// The request facts.
    pub facts: &'a RequestFacts,
    /// The buffered body (body stages only).
    pub body: Option<&'a [u8]>,
    /// Host access.
    pub env: &'a Env<'a>,
    /// The request's state so far.
    pub state: &'a mut State,
}

impl Cx<'_> {
    /// The client address per the policy's `client_ip`, resolved once per request.
    pub fn client_ip(&mut self) -> Option<String> {
        self.state.lookups.client.resolve(
            &self.policy.client_ip,
            &self.facts.headers,
            self.env.props,
        )
    }

    /// The body's fields (owner and lockout), read once per request; `None` outside the body
    /// phase.
    pub fn body_fields(&mut self) -> Option<&BodyFields> {
        if self.state.body.fields.is_none() {
            let body = self.body?;
            let limits = self
                .route
                .request
                .as_ref()
                .and_then(|r| r.json_limits())
                .unwrap_or_default();
            let ct = self.facts.header("content-type");
            self.state.body.fields = Some(body_fields(body, ct, &limits));
        }
        self.state.body.fields.as_ref()
    }

    /// Rate-limit and lockout key inputs for this request.
    pub fn key_facts<'k>(
        &'k self,
        ip: Option<&'k str>,
        body: Option<&'k serde_json::Map<String, serde_json::Value>>,
    ) -> KeyFacts<'k> {
        KeyFacts {
            client_ip: ip,
            route: self.route.name.as_str(),
            peer: self.state.principal.peer.as_deref(),
            headers: &self.facts.headers,
            claims: self.state.principal.claims(),
            body,
        }
    }

    /// Key inputs with the body's fields when they were read (failure counts after the check).
    pub fn key_facts_read<'k>(&'k self, ip: Option<&'k str>) -> KeyFacts<'k> {
        self.key_facts(ip, body_object(self.state.body.fields.as_ref()))
    }
}
