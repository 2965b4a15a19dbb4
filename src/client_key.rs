//! Who a request counts against for rate limits: the client IP (believing `X-Forwarded-For` /
//! `X-Real-IP` only when the socket peer is a configured trusted proxy, such as Nginx in front),
//! or the value of a named request header (per-team keys).

use std::net::IpAddr;

use actix_web::http::header::HeaderName;
use actix_web::HttpRequest;

#[derive(Debug, Clone)]
pub enum KeyPolicy {
    ClientIp {
        trusted_proxies: Vec<IpAddr>,
    },
    /// The header's value; requests without it fall back to the client IP.
    Header {
        name: HeaderName,
        trusted_proxies: Vec<IpAddr>,
    },
}

impl KeyPolicy {
    /// From the settings: `ip`, or `header:NAME`.
    pub fn parse(key: &str, trusted_proxies: &[String]) -> Result<Self, String> {
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
                Some(name) => HeaderName::try_from(name.trim())
                    .map(|name| Self::Header {
                        name,
                        trusted_proxies,
                    })
                    .map_err(|_| format!("rate_limits.key: '{name}' is not a valid header name")),
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
            } => match request.headers().get(name).and_then(|v| v.to_str().ok()) {
                Some(value) if !value.is_empty() => format!("header:{value}"),
                _ => client_ip(request, trusted_proxies),
            },
        }
    }
}

/// The socket peer, unless it is a trusted proxy: then the nearest untrusted address in
/// `X-Forwarded-For` (read right to left, since a client can prepend anything), else `X-Real-IP`.
pub fn client_ip(request: &HttpRequest, trusted_proxies: &[IpAddr]) -> String {
    let peer = request.peer_addr().map(|addr| addr.ip());
    let Some(peer) = peer else {
        return "127.0.0.1".to_owned();
    };
    if !trusted_proxies.contains(&peer) {
        return peer.to_string();
    }
    let headers = request.headers();
    if let Some(forwarded) = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        let hops: Vec<IpAddr> = forwarded
            .split(',')
            .filter_map(|hop| hop.trim().parse().ok())
            .collect();
        if let Some(client) = hops
            .iter()
            .rev()
            .find(|ip| !trusted_proxies.contains(ip))
            .or(hops.first())
        {
            return client.to_string();
        }
    }
    if let Some(real) = headers
        .get("x-real-ip")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<IpAddr>().ok())
    {
        return real.to_string();
    }
    peer.to_string()
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

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let policy = KeyPolicy::parse("ip", &["127.0.0.1".to_owned()]).unwrap();
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
        let policy = KeyPolicy::parse("header:X-Team", &[]).unwrap();
        assert_eq!(
            policy.key(&request("10.0.0.1", &[("x-team", "search")])),
            "header:search"
        );
        assert_eq!(policy.key(&request("10.0.0.1", &[])), "10.0.0.1");
        assert!(KeyPolicy::parse("cookie", &[]).is_err());
        assert!(KeyPolicy::parse("ip", &["nope".to_owned()]).is_err());
    }
}
