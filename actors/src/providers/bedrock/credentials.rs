//! Where SigV4 credentials come from: the environment (the part of AWS's default chain this
//! build reads: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), and STS
//! AssumeRole for `aws_role_arn`. The STS request is built and signed, and its XML answer read,
//! by pure functions; [`super::backend`] sends it and caches the result.
//!
//! Endpoint overrides follow the AWS SDKs' environment variables: `AWS_ENDPOINT_URL_STS` (then
//! `AWS_ENDPOINT_URL`) for STS, `AWS_ENDPOINT_URL_BEDROCK_RUNTIME` (then `AWS_ENDPOINT_URL`) for
//! Bedrock in SigV4 modes, as boto3 honours them.

use crate::error::{ErrorKind, GatewayError};
use crate::upstream::UpstreamRequest;

use super::sigv4::{self, Credentials};

/// Refresh assumed-role credentials this long before they expire, so a request signed with
/// them cannot outlive them in flight.
pub const REFRESH_MARGIN_SECS: u64 = 300;
/// The session name MLflow gives the assumed role.
pub const ROLE_SESSION_NAME: &str = "ai-gateway-bedrock";

/// What the process environment says about AWS, read once when an endpoint's backend starts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AwsEnvironment {
    pub region: Option<String>,
    pub credentials: Option<Credentials>,
    pub bedrock_endpoint: Option<String>,
    pub sts_endpoint: Option<String>,
}

impl AwsEnvironment {
    pub fn from_process() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads through `lookup`; empty values count as unset, as the AWS SDKs treat them.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let credentials = match (get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY")) {
            (Some(access_key_id), Some(secret_access_key)) => Some(Credentials {
                access_key_id,
                secret_access_key,
                session_token: get("AWS_SESSION_TOKEN"),
            }),
            _ => None,
        };
        Self {
            region: get("AWS_REGION").or_else(|| get("AWS_DEFAULT_REGION")),
            credentials,
            bedrock_endpoint: get("AWS_ENDPOINT_URL_BEDROCK_RUNTIME")
                .or_else(|| get("AWS_ENDPOINT_URL")),
            sts_endpoint: get("AWS_ENDPOINT_URL_STS").or_else(|| get("AWS_ENDPOINT_URL")),
        }
    }
}

/// boto3's NoCredentialsError (MLflow: a plain 500).
pub fn no_credentials() -> GatewayError {
    GatewayError::internal(
        "Unable to locate AWS credentials for Amazon Bedrock: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or configure aws_access_key_id and aws_secret_access_key.",
    )
}

/// Temporary credentials and when they expire (Unix seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct Temporary {
    pub credentials: Credentials,
    pub expires_at: u64,
}

impl Temporary {
    /// Whether they can still sign a request at `now`.
    pub fn fresh_at(&self, now: u64) -> bool {
        now.saturating_add(REFRESH_MARGIN_SECS) < self.expires_at
    }
}

/// `scheme://authority`, path and query of a URL (no fragment expected).
fn split_url(url: &str) -> Option<(&str, &str, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let (authority, path_query) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let (path, query) = path_query.split_once('?').unwrap_or((path_query, ""));
    Some((scheme, authority, path, query))
}

/// Signs `request` (a POST) in place at `now`: adds `host` (set explicitly, so the signed value
/// is the one sent), `x-amz-date`, the session token when there is one, and `authorization`.
/// Every header already on the request is signed.
pub fn sign_request(
    request: &mut UpstreamRequest,
    credentials: &Credentials,
    region: &str,
    service: &str,
    now: u64,
) -> Result<(), GatewayError> {
    let (scheme, authority, path, query) = split_url(&request.url)
        .ok_or_else(|| GatewayError::internal("the provider URL could not be parsed"))?;
    // The HTTP client leaves the default port out of `Host`; so does the signature.
    let host = match (scheme, authority.rsplit_once(':')) {
        ("https", Some((host, "443"))) | ("http", Some((host, "80"))) => host,
        _ => authority,
    }
    .to_owned();
    let mut headers: Vec<(String, String)> = vec![("host".to_owned(), host.clone())];
    headers.extend(
        request
            .headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.clone())),
    );
    let path = if path.is_empty() { "/" } else { path };
    let signing = sigv4::Request {
        method: "POST",
        path,
        query,
        headers: &headers,
        body: &request.body,
    };
    let added = sigv4::sign(&signing, credentials, region, service, now);
    request.headers.push(("host", host));
    request.headers.extend(added);
    Ok(())
}

/// Where AssumeRole goes and the region it is signed for: the override, else the regional
/// endpoint, else the global one (which signs as us-east-1).
pub fn sts_target(override_url: Option<&str>, region: Option<&str>) -> (String, String) {
    let signing_region = region.unwrap_or("us-east-1").to_owned();
    let url = match (override_url, region) {
        (Some(url), _) => url.to_owned(),
        (None, Some(region)) => format!("https://sts.{region}.amazonaws.com/"),
        (None, None) => "https://sts.amazonaws.com/".to_owned(),
    };
    (url, signing_region)
}

/// The signed STS AssumeRole request (query protocol: a form-encoded POST).
pub fn assume_role_request(
    url: &str,
    signing_region: &str,
    role_arn: &str,
    session_seconds: u64,
    base: &Credentials,
    now: u64,
) -> Result<UpstreamRequest, GatewayError> {
    let body = format!(
        "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName={ROLE_SESSION_NAME}&DurationSeconds={session_seconds}",
        sigv4::uri_encode(role_arn, false)
    );
    let mut request = UpstreamRequest {
        url: url.to_owned(),
        headers: vec![(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8".to_owned(),
        )],
        body: body.into_bytes(),
    };
    sign_request(&mut request, base, signing_region, "sts", now)?;
    Ok(request)
}

/// The text of the first `<tag>...</tag>` in `xml`, entities decoded. STS answers are small,
/// flat and machine-written, so this is all the XML they need.
fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    let raw = xml[start..end].trim();
    Some(
        raw.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// `2011-07-15T23:28:33.359Z` (fractions and the `Z` optional) as Unix seconds.
fn parse_timestamp(text: &str) -> Option<u64> {
    let digits = |range: std::ops::Range<usize>| text.get(range)?.parse::<u32>().ok();
    let bytes = text.as_bytes();
    if bytes.get(4) != Some(&b'-') || bytes.get(10) != Some(&b'T') {
        return None;
    }
    let days = sigv4::days_from_civil(i64::from(digits(0..4)?), digits(5..7)?, digits(8..10)?);
    let seconds =
        days * 86_400 + i64::from(digits(11..13)? * 3600 + digits(14..16)? * 60 + digits(17..19)?);
    u64::try_from(seconds).ok()
}

/// STS's answer: temporary credentials, or an error naming STS's code and message.
pub fn parse_assume_role(
    status: u16,
    body: &[u8],
    role_arn: &str,
) -> Result<Temporary, GatewayError> {
    let xml = String::from_utf8_lossy(body);
    let failed = |why: String| {
        GatewayError::new(
            ErrorKind::UpstreamStatus,
            502,
            format!("Could not assume the role '{role_arn}' through STS: {why}"),
        )
    };
    if !(200..300).contains(&status) {
        let code = xml_text(&xml, "Code").unwrap_or_else(|| format!("HTTP {status}"));
        return Err(match xml_text(&xml, "Message") {
            Some(message) => failed(format!("{code}: {message}")),
            None => failed(code),
        });
    }
    let credentials = xml_text(&xml, "Credentials").unwrap_or_default();
    let field = |tag: &str| xml_text(&credentials, tag);
    match (
        field("AccessKeyId"),
        field("SecretAccessKey"),
        field("SessionToken"),
        field("Expiration").as_deref().and_then(parse_timestamp),
    ) {
        (Some(access_key_id), Some(secret_access_key), Some(session_token), Some(expires_at)) => {
            Ok(Temporary {
                credentials: Credentials {
                    access_key_id,
                    secret_access_key,
                    session_token: Some(session_token),
                },
                expires_at,
            })
        }
        _ => Err(failed(
            "the answer carried no usable credentials".to_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str =
        include_str!("../../../../tests/fixtures/bedrock/sts/assume_role_response.xml");
    const DENIED: &str =
        include_str!("../../../../tests/fixtures/bedrock/sts/assume_role_access_denied.xml");

    fn base() -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".to_owned(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_owned(),
            session_token: None,
        }
    }

    #[test]
    fn environment_reads_the_sdk_variables_and_ignores_empty_ones() {
        let env = AwsEnvironment::from_lookup(|name| {
            match name {
                "AWS_ACCESS_KEY_ID" => Some("AKID"),
                "AWS_SECRET_ACCESS_KEY" => Some("secret"),
                "AWS_SESSION_TOKEN" => Some(""),
                "AWS_DEFAULT_REGION" => Some("eu-west-1"),
                "AWS_ENDPOINT_URL_STS" => Some("http://127.0.0.1:1"),
                _ => None,
            }
            .map(str::to_owned)
        });
        assert_eq!(env.region.as_deref(), Some("eu-west-1"));
        assert_eq!(env.credentials.as_ref().unwrap().session_token, None);
        assert_eq!(env.sts_endpoint.as_deref(), Some("http://127.0.0.1:1"));
        assert_eq!(env.bedrock_endpoint, None);
        assert_eq!(
            AwsEnvironment::from_lookup(|_| None),
            AwsEnvironment::default()
        );
    }

    #[test]
    fn assume_role_request_is_a_signed_form_post() {
        let (url, region) = sts_target(None, Some("us-west-2"));
        assert_eq!(url, "https://sts.us-west-2.amazonaws.com/");
        let request = assume_role_request(
            &url,
            &region,
            "arn:aws:iam::123456789012:role/demo",
            900,
            &base(),
            1_440_938_160,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(request.body.clone()).unwrap(),
            "Action=AssumeRole&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fdemo&RoleSessionName=ai-gateway-bedrock&DurationSeconds=900"
        );
        let names: Vec<&str> = request.headers.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            ["content-type", "host", "x-amz-date", "authorization"]
        );
        assert_eq!(request.headers[1].1, "sts.us-west-2.amazonaws.com");
        assert!(request.headers[3].1.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-west-2/sts/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature="
        ));
        assert_eq!(sts_target(None, None).0, "https://sts.amazonaws.com/");
        assert_eq!(
            sts_target(Some("http://127.0.0.1:9/"), Some("eu-west-1")),
            ("http://127.0.0.1:9/".to_owned(), "eu-west-1".to_owned())
        );
    }

    #[test]
    fn host_keeps_only_non_default_ports() {
        for (url, host) in [
            ("https://h.example:443/x", "h.example"),
            ("http://127.0.0.1:8080/x?a=b", "127.0.0.1:8080"),
            ("https://h.example", "h.example"),
        ] {
            let mut request = UpstreamRequest {
                url: url.to_owned(),
                headers: Vec::new(),
                body: Vec::new(),
            };
            sign_request(&mut request, &base(), "us-east-1", "bedrock", 0).unwrap();
            assert_eq!(request.headers[0], ("host", host.to_owned()), "{url}");
        }
    }

    #[test]
    fn sts_fixture_answer_gives_temporary_credentials() {
        let temporary = parse_assume_role(200, OK.as_bytes(), "arn").unwrap();
        assert_eq!(temporary.credentials.access_key_id, "ASIAIOSFODNN7EXAMPLE");
        assert_eq!(
            temporary.credentials.secret_access_key,
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"
        );
        assert!(temporary
            .credentials
            .session_token
            .as_deref()
            .unwrap()
            .starts_with("IQoJb3JpZ2luX2Vj"));
        // 2019-11-09T13:34:41Z
        assert_eq!(temporary.expires_at, 1_573_306_481);
        assert!(temporary.fresh_at(1_573_306_481 - 301));
        assert!(!temporary.fresh_at(1_573_306_481 - 300));
    }

    #[test]
    fn sts_fixture_error_names_code_and_message() {
        let error = parse_assume_role(403, DENIED.as_bytes(), "arn:aws:iam::1:role/x").unwrap_err();
        assert_eq!(error.status, 502);
        assert_eq!(
            error.detail,
            serde_json::json!("Could not assume the role 'arn:aws:iam::1:role/x' through STS: AccessDenied: User: arn:aws:iam::123456789012:user/gateway is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::1:role/x")
        );
        let error = parse_assume_role(200, b"<nope/>", "r").unwrap_err();
        assert_eq!(error.status, 502);
        assert_eq!(
            parse_timestamp("2011-07-15T23:28:33.359Z"),
            Some(1_310_772_513)
        );
        assert_eq!(parse_timestamp("yesterday"), None);
    }
}
