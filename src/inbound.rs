//! The request's header block as the core sees it, and the checks that keep malformed or
//! ambiguous header input from slipping past a rule.
//!
//! Decides: which header values are text (UTF-8) and which are opaque bytes; that a check never
//! mistakes an opaque value for an absent header (400 `header_invalid` instead); that a name a
//! check reads cannot be dodged by its `_` spelling (WSGI, Rack, PHP and CGI fold `_` and `-`);
//! that an authority holding a comma (two `Host` headers merged by Envoy) is refused; and which
//! client headers impersonate a header meshguard injects and must be removed. Never edits
//! headers itself: it returns denials and names for the pipeline.

use crate::error::{Denial, Reason};
use crate::host::HeaderPairs;
use crate::http::name::same_folded;
use crate::pipeline::facts::RequestFacts;
use crate::policy::{Policy, Route};
use crate::ratelimit::client_ip::ClientIpSource;
use crate::ratelimit::key::{Component, KeySpec};

/// Builds request facts from header pairs as the host gives them (any bytes). Names are
/// lower-cased (Envoy already does; a fake host may not). A pair whose name or value is not
/// UTF-8 is kept, as bytes, in [`RequestFacts::opaque`]; every other pair is in
/// [`RequestFacts::headers`]. Pseudo-headers fill `method`, `path` and `authority` when text.
pub fn facts_from_pairs(pairs: HeaderPairs, end_of_stream: bool) -> RequestFacts {
    let mut facts = RequestFacts {
        end_of_stream,
        ..RequestFacts::default()
    };
    for (mut name, value) in pairs {
        name.make_ascii_lowercase();
        match (String::from_utf8(name), String::from_utf8(value)) {
            (Ok(name), Ok(value)) => {
                match name.as_str() {
                    ":method" => facts.method.clone_from(&value),
                    ":path" => facts.path.clone_from(&value),
                    ":authority" => facts.authority.clone_from(&value),
                    _ => {}
                }
                facts.headers.push((name, value));
            }
            (name, value) => {
                let name = name.map_or_else(|e| e.into_bytes(), String::into_bytes);
                let value = value.map_or_else(|e| e.into_bytes(), String::into_bytes);
                facts.opaque.push((name, value));
            }
        }
    }
    facts
}

/// Checks that need the request line before any route applies: `:method`, `:path` and
/// `:authority` must be text, and the authority must be a single value (Envoy joins two `Host`
/// headers with a comma; RFC 9112 §3.2 wants a 400 for that, and no host rule can judge it).
pub fn check_request_line(facts: &RequestFacts) -> Result<(), Denial> {
    for (name, _) in &facts.opaque {
        match name.as_slice() {
            b":path" => {
                return Err(Denial::new(Reason::PathInvalid).with_detail("path is not valid text"))
            }
            b":method" | b":authority" | b"host" => {
                let name = String::from_utf8_lossy(name);
                return Err(not_text(&name));
            }
            _ => {}
        }
    }
    if facts.authority.contains(',') {
        return Err(Denial::new(Reason::HeaderInvalid)
            .with_detail("host: more than one value")
            .with_log_detail("authority holds a comma (merged Host headers)"));
    }
    Ok(())
}

fn not_text(name: &str) -> Denial {
    Denial::new(Reason::HeaderInvalid).with_detail(format!("header {name:?} is not valid text"))
}

/// Refuses a method that is not an upper-case token ([`crate::http::method::is_method`]; 400
/// `method_invalid`) before routing: `get` is GET to ASP.NET Core and would skip a GET-only
/// route.
pub fn check_method(method: &str) -> Result<(), Denial> {
    if crate::http::method::is_method(method) {
        Ok(())
    } else {
        Err(Denial::new(Reason::MethodInvalid).with_detail("method must be an upper-case token"))
    }
}

/// Headers that ask a framework to run another method than the request line's (Rails' and
/// Laravel's `_method`, Symfony, ASP.NET Core's and Express's method-override middleware).
const METHOD_OVERRIDE_HEADERS: [&[u8]; 3] = [
    b"x-http-method-override",
    b"x-http-method",
    b"x-method-override",
];

/// Refuses a request that names another method than its own (400 `method_invalid`), unless
/// `paths.allow_method_override`: a service that honours the override would run, say, DELETE
/// for a POST that met the POST route's rules. Header names in any spelling (`_` for `-`, any
/// case), and a `_method` query parameter in any spelling a framework binds to it.
pub fn check_method_override(policy: &Policy, facts: &RequestFacts) -> Result<(), Denial> {
    if policy.allow_method_override {
        return Ok(());
    }
    let header = facts
        .headers
        .iter()
        .map(|(k, _)| k.as_bytes())
        .chain(facts.opaque.iter().map(|(k, _)| k.as_slice()))
        .any(|k| {
            METHOD_OVERRIDE_HEADERS
                .iter()
                .any(|m| crate::http::name::same_folded(k, m))
        });
    let param = facts.path.split_once('?').is_some_and(|(_, q)| {
        crate::http::query::raw_pairs(q).any(|(k, _)| {
            let k = crate::http::query::form_decode(k).unwrap_or_else(|| k.to_string());
            crate::http::query::fold_name(&k) == "_method"
        })
    });
    if header || param {
        return Err(Denial::new(Reason::MethodInvalid)
            .with_detail("a method override is not accepted")
            .with_log_detail(if header {
                "method-override header"
            } else {
                "_method query parameter"
            }));
    }
    Ok(())
}

/// The request headers `route` reads as text, lower-case (possibly repeated). `authorization`
/// is always in the list: a token header must never pass unread because it was not text.
pub fn route_text_headers<'p>(policy: &'p Policy, route: &'p Route) -> Vec<&'p str> {
    let mut names: Vec<&str> = vec!["authorization"];
    if let Some(jwt) = &route.jwt {
        for provider in jwt
            .providers
            .iter()
            .filter_map(|id| policy.providers.get(*id))
        {
            for source in &provider.sources {
                match source {
                    crate::authn::config::TokenSource::Header { name, .. } => names.push(name),
                    crate::authn::config::TokenSource::Cookie(_) => names.push("cookie"),
                    crate::authn::config::TokenSource::Param(_) => {}
                }
            }
        }
    }
    if let Some(rules) = &route.request {
        names.extend(rules.header_names());
    }
    let mut keyed = false;
    let mut key_names = |key: &'p KeySpec, names: &mut Vec<&'p str>| {
        keyed = true;
        for c in key.components() {
            if let Component::Header(h) = c {
                names.push(h);
            }
        }
    };
    for limit in route.rate_limits.limits() {
        key_names(limit.key(), &mut names);
    }
    if let Some(lockout) = &route.lockout {
        for k in lockout.keys() {
            key_names(k.key(), &mut names);
        }
    }
    // A key falls back to the client address when a part is missing.
    if keyed
        && matches!(
            policy.client_ip.source(),
            ClientIpSource::XForwardedFor { .. }
        )
    {
        names.push("x-forwarded-for");
    }
    names
}

/// Refuses a request whose headers a route check reads are not plain text or could be read as
/// another header: a value that is not UTF-8 (400 `header_invalid`: the check would see an
/// absent header where the upstream sees bytes), or a name that equals a read name once `_`
/// maps to `-` (the upstream may read `x_api_key` as `x-api-key`; the check would not).
pub fn check_route_headers(
    policy: &Policy,
    route: &Route,
    facts: &RequestFacts,
) -> Result<(), Denial> {
    let read = route_text_headers(policy, route);
    // A respelling needs a `_` on one side: in the request's name or in the configured one.
    let underscore_read = read.iter().any(|r| r.contains('_'));
    let ambiguous = underscore_read || facts.headers.iter().any(|(n, _)| n.contains('_'));
    if facts.opaque.is_empty() && !ambiguous {
        return Ok(());
    }
    for (name, _) in &facts.opaque {
        if read.iter().any(|r| same_folded(r.as_bytes(), name)) {
            return Err(not_text(&String::from_utf8_lossy(name)));
        }
    }
    let candidates = facts
        .headers
        .iter()
        .filter(|(n, _)| underscore_read || n.contains('_'));
    for (name, _) in candidates {
        if let Some(r) = read
            .iter()
            .find(|r| **r != name.as_str() && same_folded(r.as_bytes(), name.as_bytes()))
        {
            return Err(Denial::new(Reason::HeaderInvalid)
                .with_detail(format!("header {name:?} is ambiguous with {r:?}")));
        }
    }
    Ok(())
}

/// Every header name meshguard sets on requests: `forward_payload_header`, `claim_to_headers`
/// targets and the `forward_identity` headers.
pub fn injected_names(policy: &Policy) -> Vec<&str> {
    let mut names: Vec<&str> = policy.injected_headers.iter().map(String::as_str).collect();
    if let Some(f) = &policy.forward_identity {
        names.extend(f.peer_header());
        names.extend(f.subject_header());
    }
    names
}

/// The request's header names (as sent) that impersonate an injected header without being its
/// exact spelling: `x_user` or `X_User` for `x-user`. The exact spellings are removed anyway;
/// these must go too, or an upstream that folds `_` into `-` reads the forged value.
pub fn forged_injected(policy: &Policy, facts: &RequestFacts) -> Vec<String> {
    let candidates = facts
        .headers
        .iter()
        .map(|(n, _)| n.as_bytes())
        .chain(facts.opaque.iter().map(|(n, _)| n.as_slice()));
    let injected = injected_names(policy);
    if injected.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::new();
    // Names are lower case: only a name with `_` (or upper case, from a host that does not
    // lower-case) can be another spelling of an injected name.
    let underscore_injected = injected.iter().any(|n| n.contains('_'));
    let respelled =
        |n: &[u8]| underscore_injected || n.iter().any(|b| *b == b'_' || b.is_ascii_uppercase());
    for name in candidates.filter(|n| respelled(n)) {
        let Ok(text) = std::str::from_utf8(name) else {
            continue;
        };
        let exact = injected.iter().any(|i| i.as_bytes() == name);
        let forged = injected.iter().any(|i| same_folded(i.as_bytes(), name));
        if !exact && forged && !out.iter().any(|o| o == text) {
            out.push(text.to_string());
        }
    }
    out
}

/// Names in `pairs` (trailers) that equal an injected header once folded, exact spellings
/// included: a trailer never carries an identity meshguard set.
pub fn injected_in(policy: &Policy, pairs: &HeaderPairs) -> Vec<Vec<u8>> {
    let injected = injected_names(policy);
    let mut out: Vec<Vec<u8>> = Vec::new();
    for (name, _) in pairs {
        let forged = injected.iter().any(|i| same_folded(i.as_bytes(), name));
        if forged && !out.contains(name) {
            out.push(name.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&[u8], &[u8])]) -> HeaderPairs {
        list.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect()
    }

    #[test]
    fn latin1_value_is_kept_as_opaque_bytes_not_dropped() {
        let f = facts_from_pairs(
            pairs(&[
                (b":method", b"GET"),
                (b":path", b"/a"),
                (b"User-Agent", b"caf\xe9"),
                (b"x-ok", b"fine"),
            ]),
            true,
        );
        assert_eq!((f.method.as_str(), f.path.as_str()), ("GET", "/a"));
        assert_eq!(f.header("user-agent"), None);
        assert_eq!(f.header_bytes("user-agent"), Some(&b"caf\xe9"[..]));
        assert!(f.header_text("user-agent").is_err());
        assert_eq!(f.header_text("x-ok"), Ok(Some("fine")));
        assert_eq!(f.header_text("absent"), Ok(None));
    }

    #[test]
    fn opaque_request_line_is_refused() {
        let f = facts_from_pairs(pairs(&[(b":path", b"/caf\xe9")]), true);
        assert_eq!(
            check_request_line(&f).unwrap_err().reason,
            Reason::PathInvalid
        );
        let f = facts_from_pairs(pairs(&[(b":authority", b"h\xff")]), true);
        assert_eq!(
            check_request_line(&f).unwrap_err().reason,
            Reason::HeaderInvalid
        );
    }

    #[test]
    fn merged_host_is_refused() {
        let f = facts_from_pairs(pairs(&[(b":authority", b"a.example,b.example")]), true);
        let d = check_request_line(&f).unwrap_err();
        assert_eq!(d.reason, Reason::HeaderInvalid);
        assert_eq!(d.detail.as_deref(), Some("host: more than one value"));
    }
}
