//! The client's IP address: the socket peer, or, when the peer is a trusted proxy, the address
//! that proxy reports in `Forwarded` (RFC 7239) or `X-Forwarded-For`. The chain is read from
//! the right, skipping trusted proxies, so a client cannot forge its address by sending the
//! header itself.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The resolved client address, in the request's extensions for limits and the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

pub fn resolve(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let peer = peer.ip().to_canonical();
    if !is_trusted(&peer) {
        return peer;
    }
    let chain = forwarded_chain(headers);
    // Rightmost first: the hop nearest to us is the one a trusted proxy appended.
    let mut client = peer;
    for hop in chain.iter().rev() {
        match hop {
            Some(ip) => {
                client = *ip;
                if !is_trusted(ip) {
                    break;
                }
            }
            // An obfuscated or garbled hop: what lies beyond it cannot be trusted.
            None => break,
        }
    }
    client
}

/// The addresses in `Forwarded: for=…` if present, else in `X-Forwarded-For`, left to right;
/// `None` for an entry that is not an IP address.
fn forwarded_chain(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let forwarded: Vec<&str> = headers.get_all("forwarded").iter().filter_map(|v| v.to_str().ok()).collect();
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .flat_map(|v| v.split(','))
            .filter_map(|element| {
                element.split(';').find_map(|pair| {
                    let (key, value) = pair.trim().split_once('=')?;
                    key.trim().eq_ignore_ascii_case("for").then(|| parse_node(value.trim().trim_matches('"')))
                })
            })
            .collect();
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|entry| parse_node(entry.trim()))
        .collect()
}

/// `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]` or `[2001:db8::1]:4711`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(addr) = node.parse::<SocketAddr>() {
        return Some(addr.ip().to_canonical());
    }
    node.strip_prefix('[')?.split_once(']')?.0.parse::<IpAddr>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap())).collect()
    }

    const PROXY: &str = "10.0.0.5:443";

    fn trusted() -> Vec<IpNet> {
        vec!["10.0.0.0/8".parse().unwrap()]
    }

    #[test]
    fn untrusted_peers_are_the_client_whatever_they_send() {
        let forged = headers(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(
            resolve("203.0.113.9:1".parse().unwrap(), &forged, &trusted()),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn a_trusted_proxy_names_the_client_and_forged_entries_to_the_left_are_ignored() {
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.1.1.1")]);
        assert_eq!(resolve(PROXY.parse().unwrap(), &h, &trusted()), "198.51.100.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn forwarded_is_preferred_and_understood() {
        let h = headers(&[
            ("forwarded", "for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\";proto=https"),
            ("x-forwarded-for", "9.9.9.9"),
        ]);
        assert_eq!(resolve(PROXY.parse().unwrap(), &h, &trusted()), "2001:db8:cafe::17".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn a_garbled_hop_stops_the_walk() {
        let h = headers(&[("x-forwarded-for", "198.51.100.7, unknown")]);
        assert_eq!(resolve(PROXY.parse().unwrap(), &h, &trusted()), "10.0.0.5".parse::<IpAddr>().unwrap());
        let none = headers(&[]);
        assert_eq!(resolve(PROXY.parse().unwrap(), &none, &trusted()), "10.0.0.5".parse::<IpAddr>().unwrap());
    }
}
