//! The faulty upstream: a small HTTP/1.1 proxy in front of the load test's mock OpenAI upstream
//! (`benches/load/mock.rs`), which answers every healthy request. The proxy only decides, per
//! request, whether to break it, and how.
//!
//! The client tells it: a request whose body carries `@@soak:KIND:TARGET:ID@@` (in a chat
//! message or an embeddings input, which the gateway forwards verbatim) is broken when TARGET is
//! this proxy path's tag or `*`. The tag is the first path segment (`/primary/ev8/v1/...` is tag
//! `primary`, forwarded to the mock as `/ev8/v1/...`), so the two destinations of a fallback
//! route can be told apart. Every fault is therefore one the client asked for, and the client can
//! classify every outcome.
//!
//! | KIND | what the upstream does |
//! |---|---|
//! | `500` | answers 500 with an OpenAI error body that echoes the API key it was sent (a real provider habit; the gateway must scrub it) |
//! | `503once` | answers 503 the first time it sees ID, forwards later attempts (a retry succeeds) |
//! | `reset` | non-streaming: resets the connection without answering; streaming: forwards the head and [`CUT_AFTER_EVENTS`] events, then resets |
//! | `stall` | reads the request and answers nothing for [`STALL`] (longer than the gateway's first-byte timeout) |
//! | `slow` | waits 300–1000 ms (derived from ID), then forwards |

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Marker prefix in a request body.
pub const MARKER: &str = "@@soak:";
/// Content events forwarded before a `reset` stream is cut.
pub const CUT_AFTER_EVENTS: u32 = 3;
/// How long a `stall` holds the request; the soak sets the gateway's first-byte timeout below it.
pub const STALL: Duration = Duration::from_secs(6);
/// Largest request the proxy reads.
const MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// Largest response head or chunk the proxy relays.
const MAX_FRAME_BYTES: usize = 8 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    Status500,
    Status503Once,
    Reset,
    Stall,
    Slow,
}

impl Fault {
    pub fn code(self) -> &'static str {
        match self {
            Self::Status500 => "500",
            Self::Status503Once => "503once",
            Self::Reset => "reset",
            Self::Stall => "stall",
            Self::Slow => "slow",
        }
    }

    fn parse(code: &str) -> Option<Self> {
        [
            Self::Status500,
            Self::Status503Once,
            Self::Reset,
            Self::Stall,
            Self::Slow,
        ]
        .into_iter()
        .find(|fault| fault.code() == code)
    }
}

/// The marker text for a body.
pub fn marker(fault: Fault, target: &str, id: u64) -> String {
    format!("{MARKER}{}:{target}:{id}@@", fault.code())
}

/// What the proxy did, for the report and the cross-checks.
#[derive(Default)]
pub struct ProxyStats {
    pub connections: AtomicU64,
    pub requests: AtomicU64,
    pub forwarded: AtomicU64,
    pub injected_500: AtomicU64,
    pub injected_503: AtomicU64,
    pub resets_before_reply: AtomicU64,
    pub resets_mid_stream: AtomicU64,
    pub stalls: AtomicU64,
    pub slow: AtomicU64,
    /// Requests the proxy could not forward (the mock refused or misbehaved).
    pub mock_failures: AtomicU64,
    /// Distinct bearer keys the gateway sent (the canaries must arrive here, and only here).
    pub keys: Mutex<HashSet<String>>,
}

pub struct FaultProxy {
    pub port: u16,
    pub stats: Arc<ProxyStats>,
}

struct Shared {
    mock: SocketAddr,
    stats: Arc<ProxyStats>,
    /// IDs of `503once` requests already failed once.
    failed_once: Mutex<HashSet<u64>>,
}

/// Starts the proxy on 127.0.0.1 (port chosen by the OS) in its own thread and runtime, in front
/// of the mock on `mock_port`.
pub fn start(mock_port: u16) -> std::io::Result<FaultProxy> {
    let listener = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    let stats = Arc::new(ProxyStats::default());
    let shared = Arc::new(Shared {
        mock: SocketAddr::from(([127, 0, 0, 1], mock_port)),
        stats: stats.clone(),
        failed_once: Mutex::new(HashSet::new()),
    });
    std::thread::Builder::new()
        .name("soak-fault-proxy".to_owned())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("proxy runtime");
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("proxy listener");
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    shared.stats.connections.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(serve(stream, shared.clone()));
                }
            });
        })?;
    Ok(FaultProxy { port, stats })
}

struct Request {
    /// The request head with the tag removed from the path, ready for the mock.
    head: Vec<u8>,
    body_start: usize,
    body_len: usize,
    tag: String,
    stream: bool,
    close: bool,
    key: Option<String>,
}

/// The connection to the mock paired with one gateway connection, opened on first use.
struct Upstream {
    stream: TcpStream,
    buffer: BytesMut,
}

enum Relayed {
    Complete,
    Cut,
}

async fn serve(mut down: TcpStream, shared: Arc<Shared>) {
    let stats = &shared.stats;
    let mut buffer = BytesMut::with_capacity(8192);
    let mut upstream: Option<Upstream> = None;
    loop {
        let Some(request) = read_request(&mut down, &mut buffer).await else {
            return;
        };
        stats.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(key) = &request.key {
            let mut keys = stats.keys.lock().expect("keys");
            if keys.len() < 64 && !keys.contains(key) {
                keys.insert(key.clone());
            }
        }
        let body = &buffer[request.body_start..request.body_start + request.body_len];
        let fault = find_fault(body, &request.tag);
        let mut cut = None;
        match fault {
            Some((Fault::Status500, _)) => {
                stats.injected_500.fetch_add(1, Ordering::Relaxed);
                let key = request.key.as_deref().unwrap_or("");
                let answer = error_response(
                    500,
                    &format!("The server had an error (injected by the soak test). Incorrect API key provided: {key}"),
                );
                buffer.advance(request.body_start + request.body_len);
                if down.write_all(&answer).await.is_err() || request.close {
                    return;
                }
                continue;
            }
            Some((Fault::Status503Once, id)) => {
                let first = shared.failed_once.lock().expect("ids").insert(id);
                if first {
                    stats.injected_503.fetch_add(1, Ordering::Relaxed);
                    let answer = error_response(503, "Overloaded (injected once by the soak test)");
                    buffer.advance(request.body_start + request.body_len);
                    if down.write_all(&answer).await.is_err() || request.close {
                        return;
                    }
                    continue;
                }
                shared.failed_once.lock().expect("ids").remove(&id);
            }
            Some((Fault::Reset, _)) if !request.stream => {
                stats.resets_before_reply.fetch_add(1, Ordering::Relaxed);
                reset(down);
                return;
            }
            Some((Fault::Reset, _)) => cut = Some(CUT_AFTER_EVENTS),
            Some((Fault::Stall, _)) => {
                stats.stalls.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(STALL).await;
                return;
            }
            Some((Fault::Slow, id)) => {
                stats.slow.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(300 + id.wrapping_mul(7919) % 700)).await;
            }
            None => {}
        }
        if upstream.is_none() {
            match TcpStream::connect(shared.mock).await {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    upstream = Some(Upstream {
                        stream,
                        buffer: BytesMut::with_capacity(8192),
                    });
                }
                Err(_) => {
                    stats.mock_failures.fetch_add(1, Ordering::Relaxed);
                    let _ = down
                        .write_all(&error_response(502, "soak proxy: mock unreachable"))
                        .await;
                    return;
                }
            }
        }
        let up = upstream.as_mut().expect("connected above");
        let mut out = request.head.clone();
        out.extend_from_slice(body);
        buffer.advance(request.body_start + request.body_len);
        if up.stream.write_all(&out).await.is_err() {
            stats.mock_failures.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match relay(up, &mut down, cut).await {
            Ok(Relayed::Complete) => {
                stats.forwarded.fetch_add(1, Ordering::Relaxed);
                if request.close {
                    return;
                }
            }
            Ok(Relayed::Cut) => {
                stats.resets_mid_stream.fetch_add(1, Ordering::Relaxed);
                // Let the events reach the gateway before the reset (a reset can discard data
                // the peer has not read yet), so the cut lands mid-stream, after the first byte.
                let _ = down.flush().await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                reset(down);
                return;
            }
            Err(RelayError::Mock) => {
                stats.mock_failures.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Err(RelayError::Gateway) => return,
        }
    }
}

/// Closes with RST instead of FIN (SO_LINGER 0).
fn reset(stream: TcpStream) {
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}

fn error_response(status: u16, message: &str) -> Vec<u8> {
    let body = serde_json::json!({
        "error": {"message": message, "type": "server_error", "param": null, "code": null}
    })
    .to_string();
    let reason = match status {
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        _ => "Service Unavailable",
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The fault a body asks of this tag, with its ID.
fn find_fault(body: &[u8], tag: &str) -> Option<(Fault, u64)> {
    let start = find(body, MARKER.as_bytes())? + MARKER.len();
    let rest = &body[start..];
    let end = find(rest, b"@@")?;
    let text = std::str::from_utf8(&rest[..end]).ok()?;
    let mut parts = text.split(':');
    let fault = Fault::parse(parts.next()?)?;
    let target = parts.next()?;
    let id = parts.next()?.parse().ok()?;
    (target == "*" || target == tag).then_some((fault, id))
}

async fn read_request(stream: &mut TcpStream, buffer: &mut BytesMut) -> Option<Request> {
    let head_end = loop {
        if let Some(i) = find(buffer, b"\r\n\r\n") {
            break i + 4;
        }
        if buffer.len() > MAX_REQUEST_BYTES || stream.read_buf(buffer).await.ok()? == 0 {
            return None;
        }
    };
    let head = std::str::from_utf8(&buffer[..head_end]).ok()?.to_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next()?;
    let mut words = request_line.split(' ');
    let (method, path, version) = (words.next()?, words.next()?, words.next()?);
    let trimmed = path.strip_prefix('/')?;
    let (tag, rest) = trimmed.split_once('/')?;
    let mut out = format!("{method} /{rest} {version}\r\n");
    let mut length = 0usize;
    let mut close = false;
    let mut key = None;
    for line in lines.filter(|line| !line.is_empty()) {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().ok()?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return None;
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        } else if name.eq_ignore_ascii_case("authorization") {
            key = value.strip_prefix("Bearer ").map(str::to_owned);
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    if head_end + length > MAX_REQUEST_BYTES {
        return None;
    }
    while buffer.len() < head_end + length {
        if stream.read_buf(buffer).await.ok()? == 0 {
            return None;
        }
    }
    let body = &buffer[head_end..head_end + length];
    Some(Request {
        head: out.into_bytes(),
        body_start: head_end,
        body_len: length,
        tag: tag.to_owned(),
        stream: find(body, b"\"stream\":true").is_some(),
        close,
        key,
    })
}

enum RelayError {
    /// The mock closed or sent something unreadable.
    Mock,
    /// The gateway's side of the connection is gone.
    Gateway,
}

/// Reads more from the mock into its buffer.
async fn fill(up: &mut Upstream) -> Result<(), RelayError> {
    if up.buffer.len() > MAX_FRAME_BYTES {
        return Err(RelayError::Mock);
    }
    match up.stream.read_buf(&mut up.buffer).await {
        Ok(0) | Err(_) => Err(RelayError::Mock),
        Ok(_) => Ok(()),
    }
}

/// Relays one response from the mock to the gateway: `content-length` bodies whole, chunked
/// bodies frame by frame; with `cut`, stops after that many non-empty chunks.
async fn relay(
    up: &mut Upstream,
    down: &mut TcpStream,
    cut: Option<u32>,
) -> Result<Relayed, RelayError> {
    let head_end = loop {
        if let Some(i) = find(&up.buffer, b"\r\n\r\n") {
            break i + 4;
        }
        fill(up).await?;
    };
    let head = std::str::from_utf8(&up.buffer[..head_end]).map_err(|_| RelayError::Mock)?;
    let mut length = None;
    let mut chunked = false;
    for line in head.split("\r\n").skip(1) {
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(
                    value
                        .trim()
                        .parse::<usize>()
                        .map_err(|_| RelayError::Mock)?,
                );
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.trim().eq_ignore_ascii_case("chunked");
            }
        }
    }
    down.write_all(&up.buffer[..head_end])
        .await
        .map_err(|_| RelayError::Gateway)?;
    up.buffer.advance(head_end);
    if let Some(length) = length {
        while up.buffer.len() < length {
            fill(up).await?;
        }
        down.write_all(&up.buffer[..length])
            .await
            .map_err(|_| RelayError::Gateway)?;
        up.buffer.advance(length);
        return Ok(Relayed::Complete);
    }
    if !chunked {
        return Err(RelayError::Mock);
    }
    let mut frames = 0u32;
    loop {
        let line_end = loop {
            if let Some(i) = find(&up.buffer, b"\r\n") {
                break i;
            }
            fill(up).await?;
        };
        let size_text =
            std::str::from_utf8(&up.buffer[..line_end]).map_err(|_| RelayError::Mock)?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| RelayError::Mock)?;
        // Size line, data, CRLF (for the last chunk: the empty trailer's CRLF).
        let total = line_end + 2 + size + 2;
        while up.buffer.len() < total {
            fill(up).await?;
        }
        down.write_all(&up.buffer[..total])
            .await
            .map_err(|_| RelayError::Gateway)?;
        up.buffer.advance(total);
        if size == 0 {
            return Ok(Relayed::Complete);
        }
        frames += 1;
        if cut == Some(frames) {
            return Ok(Relayed::Cut);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
