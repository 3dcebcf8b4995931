//! The request's client address, resolved once per request so that every rate-limit check and
//! every lockout count of one request uses the same key.

use super::ClientIpPolicy;
use crate::host::Properties;

/// The client address per the policy's `client_ip`, resolved on first use.
#[derive(Debug, Default)]
pub struct ClientAddress(Option<Option<String>>);

impl ClientAddress {
    /// The address: the trusted `x-forwarded-for` hop when the policy says so, else the
    /// connection's address. The connection address is a host lookup (several us under V8):
    /// only read when the trusted hop does not give the address (or the policy reads the
    /// connection).
    pub fn resolve(
        &mut self,
        policy: &ClientIpPolicy,
        headers: &[(String, String)],
        props: &dyn Properties,
    ) -> Option<String> {
        if self.0.is_none() {
            let xff: Vec<&str> = headers
                .iter()
                .filter(|(k, _)| k == "x-forwarded-for")
                .map(|(_, v)| v.as_str())
                .collect();
            let xff = (!xff.is_empty()).then(|| xff.join(","));
            let resolved = policy.resolve(None, xff.as_deref()).or_else(|| {
                let source = props
                    .get(&["source", "address"])
                    .and_then(|b| String::from_utf8(b).ok());
                policy.resolve(source.as_deref(), xff.as_deref())
            });
            self.0 = Some(resolved);
        }
        self.0.clone().flatten()
    }
}
