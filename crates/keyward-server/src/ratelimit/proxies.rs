//! Which peers' `X-Forwarded-For` is believed (`rate_limits.trusted_proxies`), and the
//! client address that follows from it: read from the right — each proxy appends the
//! address it received from — the first hop that is not itself trusted is the client.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self(nets)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client address of a request from `peer` with `headers`.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = canonical(peer);
        if !self.trusts(client) {
            return client;
        }
        // Every X-Forwarded-For line, in order, as one comma-separated list.
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        for hop in hops.iter().rev() {
            // Something that is not an address ends the chain: the last trusted hop
            // is the best we know.
            let Some(ip) = parse_hop(hop) else { break };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

/// An address as proxies write it: `1.2.3.4`, `::1`, `1.2.3.4:5678`, `[::1]:5678`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>().ok().or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip())).map(canonical)
}

/// IPv4-mapped IPv6 (`::ffff:1.2.3.4`, what a dual-stack socket reports) as IPv4, so one
/// client has one address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_peer_is_the_client_unless_it_is_a_trusted_proxy() {
        let none = TrustedProxies::default();
        assert_eq!(none.client(ip("10.0.0.1"), &xff(&["1.2.3.4"])), ip("10.0.0.1"), "no proxy is trusted by default");
        let trusted = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()]);
        assert_eq!(trusted.client(ip("192.0.2.9"), &xff(&["1.2.3.4"])), ip("192.0.2.9"), "an untrusted peer");
        assert_eq!(trusted.client(ip("10.0.0.1"), &xff(&["1.2.3.4"])), ip("1.2.3.4"));
        assert_eq!(trusted.client(ip("10.0.0.1"), &HeaderMap::new()), ip("10.0.0.1"), "no header: the proxy itself");
    }

    #[test]
    fn forwarded_hops_are_read_from_the_right_and_spoofed_ones_are_ignored() {
        let trusted = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        // The client wrote "6.6.6.6"; 1.2.3.4 is what the first trusted proxy saw.
        let h = xff(&["6.6.6.6, 1.2.3.4, 10.0.0.7"]);
        assert_eq!(trusted.client(ip("10.0.0.1"), &h), ip("1.2.3.4"));
        assert_eq!(
            trusted.client(ip("10.0.0.1"), &xff(&["6.6.6.6", "1.2.3.4"])),
            ip("1.2.3.4"),
            "repeated header lines"
        );
        assert_eq!(trusted.client(ip("10.0.0.1"), &xff(&["10.0.0.3, 10.0.0.2"])), ip("10.0.0.3"), "all trusted");
        assert_eq!(
            trusted.client(ip("10.0.0.1"), &xff(&["1.2.3.4, junk, 10.0.0.2"])),
            ip("10.0.0.2"),
            "junk ends the chain"
        );
        assert_eq!(trusted.client(ip("10.0.0.1"), &xff(&["1.2.3.4:5555"])), ip("1.2.3.4"));
        assert_eq!(trusted.client(ip("10.0.0.1"), &xff(&["[2001:db8::1]:443"])), ip("2001:db8::1"));
        assert_eq!(trusted.client(ip("::ffff:10.0.0.1"), &xff(&["::ffff:1.2.3.4"])), ip("1.2.3.4"), "mapped IPv4");
    }
}
