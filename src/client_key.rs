//! Who a request counts against for rate limits: the client IP (believing `X-Forwarded-For` /
//! `X-Real-IP` only when the socket peer is a configured trusted proxy, such as Nginx in front),
//! or the value of a named request header (per-team keys).

use std::net::IpAddr;

use actix_web::http::header::HeaderName;
use actix_web::HttpRequest;

/// Whose word is taken for a `header:NAME` key: a client that may choose its own key may also
/// choose a fresh one per request, and so ignore its quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderTrust {
    /// Only requests whose socket peer is a trusted proxy (which sets or strips the header).
    TrustedProxies,
    /// Any peer: for gateways reached only by trusted callers (an internal network).
    Any,
}

impl HeaderTrust {
    /// From `rate_limits.trust_key_header_from`: `trusted_proxies` or `any`.
    pub fn parse(value: &str) -> Result<Self, String> {
        match value.trim() {
            "trusted_proxies" | "" => Ok(Self::TrustedProxies),
            "any" => Ok(Self::Any),
            other => Err(format!(
                "rate_limits.trust_key_header_from must be 'trusted_proxies' or 'any', not '{other}'"
            )),
        }
    }
}

#[derive(Debug, Clone)]
pub enum KeyPolicy {
    ClientIp {
        trusted_proxies: Vec<IpAddr>,
    },
    /// The header's value when sent by a peer `trust` accepts; other requests count against
    /// the client IP.
    Header {
        name: HeaderName,
        trusted_proxies: Vec<IpAddr>,
        trust: HeaderTrust,
    },
}

impl KeyPolicy {
    /// From the settings: `ip`, or `header:NAME`, believed from the peers `trust` names.
    pub fn parse(
        key: &str,
        trusted_proxies: &[String],
        trust: HeaderTrust,
    ) -> Result<Self, String> {
        let trusted_proxies = trusted_proxies
            .iter()
            .map(|ip| {
                ip.trim().parse::<IpAddr>().map_err(|_| {
                    format!("rate_limits.trusted_proxies: '{ip}' is not an IP address")
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        match key.trim() {
            "ip" | "" => Ok(Self::ClientIp { trusted_proxies }),
            other => match other.strip_prefix("header:") {
                Some(name) => {
                    let name = HeaderName::try_from(name.trim()).map_err(|_| {
                        format!("rate_limits.key: '{name}' is not a valid header name")
                    })?;
                    if trust == HeaderTrust::TrustedProxies && trusted_proxies.is_empty() {
                        // Otherwise the header would silently never count: say so at startup.
                        return Err(format!(
                            "rate_limits.key = 'header:{name}' is believed only from \
                             rate_limits.trusted_proxies, and none are set: list the proxy that \
                             sets the header, or set rate_limits.trust_key_header_from = 'any' \
                             if every caller may choose its own key"
                        ));
                    }
                    Ok(Self::Header {
                        name,
                        trusted_proxies,
                        trust,
                    })
                }
                None => Err(format!(
                    "rate_limits.key must be 'ip' or 'header:NAME', not '{other}'"
                )),
            },
        }
    }

    pub fn key(&self, request: &HttpRequest) -> String {
        match self {
            Self::ClientIp { trusted_proxies } => client_ip(request, trusted_proxies),
            Self::Header {
                name,
                trusted_proxies,
                trust,
            } => {
                let believed = match trust {
                    HeaderTrust::Any => true,
                    HeaderTrust::TrustedProxies => request
                        .peer_addr()
                        .is_some_and(|peer| trusted_proxies.contains(&peer.ip())),
                };
                match request.headers().get(name).and_then(|v| v.to_str().ok()) {
                    Some(value) if believed && !value.is_empty() => format!("header:{value}"),
                    _ => client_ip(request, trusted_proxies),
                }
            }
        }
    }
}

/// The socket peer, unless it is a trusted proxy: then the nearest untrusted address in
/// `X-Forwarded-For` (read right to left, since a client can prepend anything), else, when the
/// proxy sent no `X-Forwarded-For` at all, `X-Real-IP`. A hop that cannot be read ends the walk
/// at the socket peer: what lies left of it was not written by a proxy we trust, and falling
/// through to `X-Real-IP` there would let a client pick its own key.
pub fn client_ip(request: &HttpRequest, trusted_proxies: &[IpAddr]) -> String {
    let peer = request.peer_addr().map(|addr| addr.ip());
    let Some(peer) = peer else {
        return "127.0.0.1".to_owned();
    };
    if !trusted_proxies.contains(&peer) {
        return peer.to_string();
    }
    let headers = request.headers();
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .map(|value| value.to_str().unwrap_or(""))
        .collect();
    if !forwarded.is_empty() {
        return forwarded_client(&forwarded.join(","), trusted_proxies)
            .unwrap_or(peer)
            .to_string();
    }
    if let Some(real) = headers
        .get("x-real-ip")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_hop)
    {
        return real.to_string();
    }
    peer.to_string()
}

/// The rightmost untrusted hop of an `X-Forwarded-For` list (or, when every hop is a trusted
/// proxy, the leftmost); `None` when a hop on the way cannot be read or the list is empty.
fn forwarded_client(list: &str, trusted_proxies: &[IpAddr]) -> Option<IpAddr> {
    let mut nearest_proxy = None;
    for hop in list.rsplit(',') {
        let ip = parse_hop(hop)?;
        if !trusted_proxies.contains(&ip) {
            return Some(ip);
        }
        nearest_proxy = Some(ip);
    }
    nearest_proxy
}

/// One address as proxies write it: `1.2.3.4`, `2001:db8::1`, or with a port
/// (`1.2.3.4:5678`, `[2001:db8::1]:5678`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn request(peer: &str, headers: &[(&str, &str)]) -> HttpRequest {
        let mut r = TestRequest::default().peer_addr(format!("{peer}:4000").parse().unwrap());
        for (k, v) in headers {
            r = r.insert_header((*k, *v));
        }
        r.to_http_request()
    }

    fn proxies() -> Vec<String> {
        vec!["127.0.0.1".to_owned()]
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let policy = KeyPolicy::parse("ip", &proxies(), HeaderTrust::TrustedProxies).unwrap();
        assert_eq!(
            policy.key(&request("10.0.0.9", &[("x-forwarded-for", "1.2.3.4")])),
            "10.0.0.9"
        );
        assert_eq!(
            policy.key(&request(
                "127.0.0.1",
                &[("x-forwarded-for", "6.6.6.6, 1.2.3.4")]
            )),
            "1.2.3.4"
        );
        assert_eq!(
            policy.key(&request("127.0.0.1", &[("x-real-ip", "5.5.5.5")])),
            "5.5.5.5"
        );
        assert_eq!(policy.key(&request("127.0.0.1", &[])), "127.0.0.1");
    }

    #[test]
    fn header_keys_fall_back_to_the_ip() {
        let policy = KeyPolicy::parse("header:X-Team", &[], HeaderTrust::Any).unwrap();
        assert_eq!(
            policy.key(&request("10.0.0.1", &[("x-team", "search")])),
            "header:search"
        );
        assert_eq!(policy.key(&request("10.0.0.1", &[])), "10.0.0.1");
        assert!(KeyPolicy::parse("cookie", &[], HeaderTrust::Any).is_err());
        assert!(KeyPolicy::parse("ip", &["nope".to_owned()], HeaderTrust::Any).is_err());
    }

    #[test]
    fn an_unreadable_forwarded_for_falls_back_to_the_peer_not_x_real_ip() {
        let policy = KeyPolicy::parse("ip", &proxies(), HeaderTrust::TrustedProxies).unwrap();
        for garbage in ["garbage", "", "1.2.3.4, nonsense", " , "] {
            assert_eq!(
                policy.key(&request(
                    "127.0.0.1",
                    &[("x-forwarded-for", garbage), ("x-real-ip", "9.9.9.9")]
                )),
                "127.0.0.1",
                "X-Forwarded-For {garbage:?}"
            );
        }
        // Garbage left of the proxy-appended hop is never reached.
        assert_eq!(
            policy.key(&request(
                "127.0.0.1",
                &[("x-forwarded-for", "junk, 203.0.113.7:5555")]
            )),
            "203.0.113.7"
        );
        // Only trusted proxies on the list: the leftmost of them.
        assert_eq!(
            policy.key(&request("127.0.0.1", &[("x-forwarded-for", "127.0.0.1")])),
            "127.0.0.1"
        );
    }

    #[test]
    fn header_keys_count_only_from_trusted_proxies_by_default() {
        let policy =
            KeyPolicy::parse("header:X-Team", &proxies(), HeaderTrust::TrustedProxies).unwrap();
        assert_eq!(
            policy.key(&request("127.0.0.1", &[("x-team", "search")])),
            "header:search"
        );
        assert_eq!(
            policy.key(&request("10.0.0.1", &[("x-team", "search")])),
            "10.0.0.1",
            "a direct client cannot choose its key"
        );
        let err = KeyPolicy::parse("header:X-Team", &[], HeaderTrust::TrustedProxies).unwrap_err();
        assert!(err.contains("trust_key_header_from"), "{err}");
        assert_eq!(HeaderTrust::parse("any"), Ok(HeaderTrust::Any));
        assert!(HeaderTrust::parse("everyone").is_err());
    }
}
