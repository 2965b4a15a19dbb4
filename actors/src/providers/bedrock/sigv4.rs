//! AWS Signature Version 4 for request headers: pure functions, with the signing time an
//! argument, checked against AWS's published test suite (`tests/fixtures/bedrock/sigv4/`).
//!
//! Signing is: a canonical request (method, URI-encoded path, sorted query, sorted lower-cased
//! headers, payload hash) → a string to sign (algorithm, time, scope, hash of the canonical
//! request) → an HMAC-SHA256 chain keyed by the secret, the date, the region, the service and
//! `aws4_request`.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// Credentials for signing. `Debug` hides the secret and the token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// The request as it goes on the wire. `path` is sent as is (already percent-encoded where it
/// needs to be); the canonical form encodes it once more, as AWS does for every service but S3.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: &'a str,
    /// Every header to sign, `host` and `x-amz-date` included.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// The canonical request and the `SignedHeaders` list.
pub fn canonical_request(request: &Request<'_>) -> (String, String) {
    let mut headers: Vec<(String, String)> = Vec::new();
    for (name, value) in request.headers {
        let name = name.to_ascii_lowercase();
        let value = collapse_spaces(value.trim());
        match headers.iter_mut().find(|(n, _)| *n == name) {
            // Repeated headers are joined in order, as the suite's get-header-key-duplicate shows.
            Some((_, joined)) => {
                joined.push(',');
                joined.push_str(&value);
            }
            None => headers.push((name, value)),
        }
    }
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    let signed = headers
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let mut canonical = String::new();
    canonical.push_str(request.method);
    canonical.push('\n');
    canonical.push_str(&canonical_path(request.path));
    canonical.push('\n');
    canonical.push_str(&canonical_query(request.query));
    canonical.push('\n');
    for (name, value) in &headers {
        canonical.push_str(name);
        canonical.push(':');
        canonical.push_str(value);
        canonical.push('\n');
    }
    canonical.push('\n');
    canonical.push_str(&signed);
    canonical.push('\n');
    canonical.push_str(&hex::encode(Sha256::digest(request.body)));
    (canonical, signed)
}

/// `AWS4-HMAC-SHA256\n<time>\n<scope>\n<hash of the canonical request>`.
pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    )
}

/// `<yyyymmdd>/<region>/<service>/aws4_request`.
pub fn scope(amz_date: &str, region: &str, service: &str) -> String {
    format!("{}/{region}/{service}/aws4_request", date_part(amz_date))
}

/// The hex signature of `string_to_sign`.
pub fn signature(secret: &str, amz_date: &str, region: &str, service: &str, sts: &str) -> String {
    let mut key = hmac(
        format!("AWS4{secret}").as_bytes(),
        date_part(amz_date).as_bytes(),
    );
    for part in [region, service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    hex::encode(hmac(&key, sts.as_bytes()))
}

/// The `Authorization` header value for a request whose headers already carry `x-amz-date` (and
/// the session token, when there is one).
pub fn authorization(
    request: &Request<'_>,
    credentials: &Credentials,
    amz_date: &str,
    region: &str,
    service: &str,
) -> String {
    let (canonical, signed) = canonical_request(request);
    let scope = scope(amz_date, region, service);
    let sts = string_to_sign(amz_date, &scope, &canonical);
    let signature = signature(
        &credentials.secret_access_key,
        amz_date,
        region,
        service,
        &sts,
    );
    format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
        credentials.access_key_id
    )
}

/// Signs `request` at `unix_seconds`: returns the headers to add (`x-amz-date`, the session
/// token when there is one, then `authorization`). `request.headers` are the other headers to
/// sign (at least `host`).
pub fn sign(
    request: &Request<'_>,
    credentials: &Credentials,
    region: &str,
    service: &str,
    unix_seconds: u64,
) -> Vec<(&'static str, String)> {
    let amz_date = amz_date(unix_seconds);
    let mut added: Vec<(&'static str, String)> = vec![("x-amz-date", amz_date.clone())];
    if let Some(token) = &credentials.session_token {
        added.push(("x-amz-security-token", token.clone()));
    }
    let mut all: Vec<(String, String)> = request.headers.to_vec();
    all.extend(added.iter().map(|(n, v)| ((*n).to_owned(), v.clone())));
    let with_date = Request {
        headers: &all,
        ..*request
    };
    let authorization = authorization(&with_date, credentials, &amz_date, region, service);
    added.push(("authorization", authorization));
    added
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

fn date_part(amz_date: &str) -> &str {
    amz_date.get(..8).unwrap_or(amz_date)
}

fn collapse_spaces(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut last_space = false;
    for c in value.chars() {
        if c == ' ' {
            if !last_space {
                out.push(c);
            }
            last_space = true;
        } else {
            out.push(c);
            last_space = false;
        }
    }
    out
}

/// Percent-encodes every byte but RFC 3986's unreserved characters (and `/` when `keep_slash`).
pub fn uri_encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn canonical_path(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    uri_encode(path, true)
}

/// Query parameters decoded, re-encoded strictly, and sorted by name then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                uri_encode(&percent_decode(name), false),
                uri_encode(&percent_decode(value), false),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match decoded {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `YYYYMMDDTHHMMSSZ` for a Unix time.
pub fn amz_date(unix_seconds: u64) -> String {
    let days = unix_seconds / 86_400;
    let rest = unix_seconds % 86_400;
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A proleptic Gregorian date to days since 1970-01-01 (the inverse of [`civil_from_days`]).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    /// 2015-08-30T12:36:00Z, the suite's signing time.
    const SUITE_TIME: u64 = 1_440_938_160;

    fn credentials(token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".to_owned(),
            secret_access_key: SECRET.to_owned(),
            session_token: token.map(str::to_owned),
        }
    }

    /// One suite case: `.req` parsed into method, path, query, headers and body.
    struct Case {
        method: String,
        path: String,
        query: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        creq: String,
        sts: String,
        authz: String,
    }

    fn case(name: &str) -> Case {
        let dir = format!(
            "{}/../tests/fixtures/bedrock/sigv4/{name}/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let read = |ext: &str| std::fs::read_to_string(format!("{dir}.{ext}")).unwrap();
        let req = read("req");
        let (head, body) = req.split_once("\n\n").unwrap_or((&req, ""));
        let mut lines = head.lines();
        let request_line = lines.next().unwrap();
        let target = request_line
            .strip_prefix(request_line.split(' ').next().unwrap())
            .unwrap()
            .trim()
            .strip_suffix("HTTP/1.1")
            .unwrap()
            .trim();
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        Case {
            method: request_line.split(' ').next().unwrap().to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            headers: lines
                .map(|l| {
                    let (n, v) = l.split_once(':').unwrap();
                    (n.to_owned(), v.to_owned())
                })
                .collect(),
            body: body.as_bytes().to_vec(),
            creq: read("creq"),
            sts: read("sts"),
            authz: read("authz"),
        }
    }

    fn check(name: &str, signed_headers: Option<&[&str]>) {
        let c = case(name);
        // The suite's post-x-www-form-urlencoded signs a subset of its headers (see the
        // fixtures' README); the other cases sign every header of the request.
        let headers: Vec<(String, String)> = c
            .headers
            .iter()
            .filter(|(n, _)| {
                signed_headers.is_none_or(|only| only.contains(&n.to_ascii_lowercase().as_str()))
            })
            .cloned()
            .collect();
        let request = Request {
            method: &c.method,
            path: &c.path,
            query: &c.query,
            headers: &headers,
            body: &c.body,
        };
        let (creq, _) = canonical_request(&request);
        if signed_headers.is_none() {
            assert_eq!(creq, c.creq, "{name}: canonical request");
        }
        let amz = amz_date(SUITE_TIME);
        let sts = string_to_sign(&amz, &scope(&amz, "us-east-1", "service"), &creq);
        assert_eq!(sts, c.sts, "{name}: string to sign");
        let token = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("x-amz-security-token"))
            .map(|(_, v)| v.as_str());
        let authz = authorization(&request, &credentials(token), &amz, "us-east-1", "service");
        assert_eq!(authz, c.authz, "{name}: authorization");
    }

    #[test]
    fn suite_get_vanilla() {
        check("get-vanilla", None);
    }

    #[test]
    fn suite_post_vanilla() {
        check("post-vanilla", None);
    }

    #[test]
    fn suite_post_x_www_form_urlencoded() {
        check(
            "post-x-www-form-urlencoded",
            Some(&["content-type", "host", "x-amz-date"]),
        );
    }

    #[test]
    fn suite_get_vanilla_query_order_key_case() {
        check("get-vanilla-query-order-key-case", None);
    }

    #[test]
    fn suite_get_vanilla_utf8_query() {
        check("get-vanilla-utf8-query", None);
    }

    #[test]
    fn suite_get_unreserved() {
        check("get-unreserved", None);
    }

    #[test]
    fn suite_get_space() {
        check("get-space", None);
    }

    #[test]
    fn suite_get_header_value_trim() {
        check("get-header-value-trim", None);
    }

    #[test]
    fn suite_get_header_key_duplicate() {
        check("get-header-key-duplicate", None);
    }

    #[test]
    fn suite_post_sts_header_before() {
        check("post-sts-header-before", None);
    }

    /// `sign` adds the date and the token itself and reaches the suite's signatures.
    #[test]
    fn sign_adds_date_token_and_authorization() {
        let host = [("Host".to_owned(), "example.amazonaws.com".to_owned())];
        let request = |method| Request {
            method,
            path: "/",
            query: "",
            headers: &host,
            body: b"",
        };
        let added = sign(
            &request("GET"),
            &credentials(None),
            "us-east-1",
            "service",
            SUITE_TIME,
        );
        assert_eq!(added[0], ("x-amz-date", "20150830T123600Z".to_owned()));
        assert_eq!(added[1].1, case("get-vanilla").authz);
        let with_token = case("post-sts-header-before");
        let token = with_token.headers[2].1.clone();
        let added = sign(
            &request("POST"),
            &credentials(Some(&token)),
            "us-east-1",
            "service",
            SUITE_TIME,
        );
        assert_eq!(added[1], ("x-amz-security-token", token));
        assert_eq!(added[2].1, with_token.authz);
    }

    #[test]
    fn dates_round_trip() {
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(amz_date(SUITE_TIME), "20150830T123600Z");
        assert_eq!(amz_date(951_782_400), "20000229T000000Z");
        assert_eq!(
            days_from_civil(2015, 8, 30) * 86_400 + 12 * 3600 + 36 * 60,
            SUITE_TIME as i64
        );
        for days in [0i64, 59, 60, 365, 10_957, 11_016, 20_000, 50_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn bedrock_paths_are_encoded_twice_in_the_canonical_form() {
        // botocore sends `:` as %3A and signs the path encoded once more: %253A.
        assert_eq!(
            canonical_path("/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"),
            "/model/anthropic.claude-3-haiku-20240307-v1%253A0/converse"
        );
    }
}
