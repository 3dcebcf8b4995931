//! Which address is "the client" for `client_ip` keys.
//!
//! By default the connection's peer (`source.address`). With `x_forwarded_for`, the entry that
//! the configured number of trusted proxies vouches for: counting from the right, the
//! `trusted_hops`-th entry. Entries to its left were written by the client and are never used.
//! When the header has fewer entries than trusted hops, or that entry is not an IP address, the
//! connection address is used instead: the header is then not what the trusted chain produces.
//!
//! Addresses are normalised (port and brackets removed, IPv4-mapped IPv6 shown as IPv4) and IPv6
//! addresses are reduced to their `/ipv6_prefix` network (default /64, the usual allocation to
//! one subscriber), so that rotating through one's own /64 does not mint fresh keys.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// Where the client address comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientIpSource {
    /// The downstream connection's peer address.
    Connection,
    /// The `x-forwarded-for` entry `trusted_hops` from the right (1 = rightmost).
    XForwardedFor {
        /// Proxies in front of this filter that append to the header, counted from the right.
        trusted_hops: u8,
    },
}

/// Compiled `client_ip` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIpPolicy {
    source: ClientIpSource,
    ipv6_prefix: u8,
}

impl Default for ClientIpPolicy {
    fn default() -> Self {
        Self {
            source: ClientIpSource::Connection,
            ipv6_prefix: DEFAULT_IPV6_PREFIX,
        }
    }
}

/// Default IPv6 prefix length a client is keyed on.
pub const DEFAULT_IPV6_PREFIX: u8 = 64;
/// Most trusted hops accepted in config.
pub const MAX_TRUSTED_HOPS: u8 = 16;

impl ClientIpPolicy {
    /// A policy; `trusted_hops` and `ipv6_prefix` are validated by the config compiler
    /// (1..=16 and 1..=128).
    pub fn new(source: ClientIpSource, ipv6_prefix: u8) -> Self {
        Self {
            source,
            ipv6_prefix: ipv6_prefix.clamp(1, 128),
        }
    }

    /// Where addresses come from.
    pub fn source(&self) -> ClientIpSource {
        self.source
    }

    /// The client address as a key component, or `None` when no usable address is known.
    ///
    /// `source_address` is Envoy's `source.address` (`1.2.3.4:5678`, `[::1]:5678`);
    /// `x_forwarded_for` is the header value, several header lines joined with `,`.
    pub fn resolve(
        &self,
        source_address: Option<&str>,
        x_forwarded_for: Option<&str>,
    ) -> Option<String> {
        let ip = match self.source {
            ClientIpSource::Connection => source_address.and_then(parse_address),
            ClientIpSource::XForwardedFor { trusted_hops } => x_forwarded_for
                .and_then(|xff| xff_entry(xff, trusted_hops))
                .or_else(|| source_address.and_then(parse_address)),
        }?;
        Some(self.render(ip))
    }

    fn render(&self, ip: IpAddr) -> String {
        match ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => {
                let prefix = self.ipv6_prefix.min(128);
                if prefix >= 128 {
                    return v6.to_string();
                }
                let mask = u128::MAX.checked_shl(u32::from(128 - prefix)).unwrap_or(0);
                let net = Ipv6Addr::from(u128::from(v6) & mask);
                format!("{net}/{prefix}")
            }
        }
    }
}

/// The `hops`-th entry from the right, if the header has that many and it is an address.
fn xff_entry(xff: &str, hops: u8) -> Option<IpAddr> {
    let back = usize::from(hops).checked_sub(1)?;
    let entry = xff.rsplit(',').nth(back)?;
    parse_address(entry.trim())
}

/// An IP from `a.b.c.d`, `a.b.c.d:port`, `::1`, `[::1]`, `[::1]:port`; IPv4-mapped IPv6 becomes
/// IPv4. Anything else (a pipe path, an internal listener name) is `None`.
pub fn parse_address(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    let ip = if let Ok(sock) = text.parse::<SocketAddr>() {
        sock.ip()
    } else if let Ok(ip) = text.parse::<IpAddr>() {
        ip
    } else {
        text.strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .and_then(|t| t.parse::<IpAddr>().ok())?
    };
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> ClientIpPolicy {
        ClientIpPolicy::default()
    }

    fn xff(hops: u8) -> ClientIpPolicy {
        ClientIpPolicy::new(ClientIpSource::XForwardedFor { trusted_hops: hops }, 64)
    }

    #[test]
    fn connection_address_loses_its_port() {
        assert_eq!(
            conn().resolve(Some("10.0.0.7:51234"), None).as_deref(),
            Some("10.0.0.7")
        );
        assert_eq!(
            conn().resolve(Some("10.0.0.7"), None).as_deref(),
            Some("10.0.0.7")
        );
    }

    #[test]
    fn ipv6_is_keyed_on_its_network() {
        assert_eq!(
            conn()
                .resolve(Some("[2001:db8:1:2:3:4:5:6]:443"), None)
                .as_deref(),
            Some("2001:db8:1:2::/64")
        );
        let full = ClientIpPolicy::new(ClientIpSource::Connection, 128);
        assert_eq!(full.resolve(Some("[::1]:80"), None).as_deref(), Some("::1"));
        assert_eq!(
            conn()
                .resolve(Some("[::ffff:10.1.2.3]:80"), None)
                .as_deref(),
            Some("10.1.2.3")
        );
    }

    #[test]
    fn connection_source_ignores_the_header() {
        assert_eq!(
            conn()
                .resolve(Some("10.0.0.7:1"), Some("1.1.1.1"))
                .as_deref(),
            Some("10.0.0.7")
        );
    }

    #[test]
    fn xff_takes_the_entry_the_trusted_hops_vouch_for() {
        let header = "6.6.6.6, 203.0.113.9, 10.0.0.2";
        assert_eq!(
            xff(1).resolve(Some("10.0.0.3:1"), Some(header)).as_deref(),
            Some("10.0.0.2")
        );
        assert_eq!(
            xff(2).resolve(Some("10.0.0.3:1"), Some(header)).as_deref(),
            Some("203.0.113.9")
        );
    }

    #[test]
    fn short_or_garbled_xff_falls_back_to_the_connection() {
        assert_eq!(
            xff(3)
                .resolve(Some("10.0.0.3:1"), Some("1.2.3.4, 5.6.7.8"))
                .as_deref(),
            Some("10.0.0.3")
        );
        assert_eq!(
            xff(1)
                .resolve(Some("10.0.0.3:1"), Some("1.2.3.4, nonsense"))
                .as_deref(),
            Some("10.0.0.3")
        );
        assert_eq!(
            xff(1).resolve(Some("10.0.0.3:1"), None).as_deref(),
            Some("10.0.0.3")
        );
    }

    #[test]
    fn unusable_addresses_give_none() {
        assert_eq!(conn().resolve(Some("/var/run/sock"), None), None);
        assert_eq!(conn().resolve(None, None), None);
    }
}
