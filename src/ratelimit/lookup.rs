//! The request's client address, resolved once per request so that every rate-limit check and
//! every lockout count of one request uses the same key.

use super::client_ip::ClientIpPolicy;
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// A connection from 192.0.2.7; counts lookups.
    #[derive(Default)]
    struct CountingProps(Cell<u32>);
    impl Properties for CountingProps {
        fn get(&self, path: &[&str]) -> Option<Vec<u8>> {
            self.0.set(self.0.get() + 1);
            (path == ["source", "address"]).then(|| b"192.0.2.7:40000".to_vec())
        }
    }

    #[test]
    fn client_address_from_a_trusted_hop_needs_no_connection_lookup() {
        let p = crate::config::compile(
            br#"{"client_ip":{"source":"x_forwarded_for","trusted_hops":1},"routes":[]}"#,
        )
        .unwrap();
        let props = CountingProps::default();
        let with_xff = vec![(
            "x-forwarded-for".to_string(),
            "198.51.100.1, 203.0.113.9".to_string(),
        )];
        let ip = ClientAddress::default().resolve(&p.client_ip, &with_xff, &props);
        assert_eq!(ip.as_deref(), Some("203.0.113.9"));
        assert_eq!(props.0.get(), 0);
        // Without the header the connection address is read, once per request.
        let mut slot = ClientAddress::default();
        let ip = slot.resolve(&p.client_ip, &[], &props);
        assert_eq!(ip.as_deref(), Some("192.0.2.7"));
        let _ = slot.resolve(&p.client_ip, &[], &props);
        assert_eq!(props.0.get(), 1);
    }
}
