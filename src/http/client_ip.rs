//! The client's IP address: the socket peer, or, when the peer is a trusted proxy, the address
//! that proxy reports in the one header the operator names (`server.client_ip_header`). Only
//! that header is read: a proxy that writes `X-Forwarded-For` passes a client's own `Forwarded`
//! through untouched, so believing any other header would let the client choose its address.
//! The chain is read from the right, skipping trusted proxies, so entries a client put in
//! front of the proxy's own are never reached.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;

use crate::config::{ClientIpHeader, ForwardingTrust};

/// The resolved client address, in the request's extensions for limits and the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

pub fn resolve(peer: SocketAddr, headers: &HeaderMap, trust: &ForwardingTrust) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trust.proxies.iter().any(|net| net.contains(ip));
    let peer = peer.ip().to_canonical();
    if !trust.trusts(peer) {
        return peer;
    }
    let chain = forwarded_chain(headers, trust.header);
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

/// The addresses in the configured header, left to right; `None` for an entry that is not an IP
/// address. Several lines of one header are one list, in order (RFC 9110 §5.3).
fn forwarded_chain(headers: &HeaderMap, header: ClientIpHeader) -> Vec<Option<IpAddr>> {
    let name = match header {
        ClientIpHeader::XForwardedFor => "x-forwarded-for",
        ClientIpHeader::Forwarded => "forwarded",
        ClientIpHeader::XRealIp => "x-real-ip",
    };
    let entry = |element: &str| match header {
        ClientIpHeader::Forwarded => element
            .split(';')
            .find_map(|pair| {
                let (key, value) = pair.trim().split_once('=')?;
                key.trim().eq_ignore_ascii_case("for").then(|| parse_node(value.trim().trim_matches('"')))
            })
            .flatten(),
        ClientIpHeader::XForwardedFor | ClientIpHeader::XRealIp => parse_node(element.trim()),
    };
    let mut chain = Vec::new();
    for value in headers.get_all(name) {
        match value.to_str() {
            Ok(text) => chain.extend(text.split(',').map(entry)),
            // Not visible ASCII: a garbled hop, beyond which nothing is believed.
            Err(_) => chain.push(None),
        }
    }
    chain
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

    fn trusted() -> ForwardingTrust {
        trusting(ClientIpHeader::XForwardedFor)
    }

    fn trusting(header: ClientIpHeader) -> ForwardingTrust {
        ForwardingTrust { proxies: vec!["10.0.0.0/8".parse().unwrap()], header }
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
    fn forwarded_is_understood_when_it_is_the_configured_header() {
        let h = headers(&[
            ("forwarded", "for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\";proto=https"),
            ("x-forwarded-for", "9.9.9.9"),
        ]);
        let forwarded = trusting(ClientIpHeader::Forwarded);
        assert_eq!(resolve(PROXY.parse().unwrap(), &h, &forwarded), "2001:db8:cafe::17".parse::<IpAddr>().unwrap());
        assert_eq!(resolve(PROXY.parse().unwrap(), &h, &trusted()), "9.9.9.9".parse::<IpAddr>().unwrap());
    }

    /// Behind a proxy that writes X-Forwarded-For, a client's own `Forwarded` (or `X-Real-IP`)
    /// arrives untouched; it must never choose the address.
    #[test]
    fn a_header_the_proxy_does_not_write_is_never_read() {
        let h = headers(&[("forwarded", "for=1.2.3.4"), ("x-real-ip", "1.2.3.5"), ("x-forwarded-for", "198.51.100.7")]);
        assert_eq!(resolve(PROXY.parse().unwrap(), &h, &trusted()), "198.51.100.7".parse::<IpAddr>().unwrap());
        let only_forged = headers(&[("forwarded", "for=1.2.3.4"), ("x-real-ip", "1.2.3.5")]);
        assert_eq!(resolve(PROXY.parse().unwrap(), &only_forged, &trusted()), "10.0.0.5".parse::<IpAddr>().unwrap());
        let real_ip = trusting(ClientIpHeader::XRealIp);
        assert_eq!(resolve(PROXY.parse().unwrap(), &h, &real_ip), "1.2.3.5".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn a_garbled_hop_stops_the_walk() {
        let h = headers(&[("x-forwarded-for", "198.51.100.7, unknown")]);
        assert_eq!(resolve(PROXY.parse().unwrap(), &h, &trusted()), "10.0.0.5".parse::<IpAddr>().unwrap());
        let none = headers(&[]);
        assert_eq!(resolve(PROXY.parse().unwrap(), &none, &trusted()), "10.0.0.5".parse::<IpAddr>().unwrap());
    }
}
