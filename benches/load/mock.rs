//! The mock OpenAI upstream: a minimal HTTP/1.1 keep-alive server in its own process, answering
//! from precomputed bytes so that it costs as little CPU as possible and the load core measures
//! the gateway, not the mock.
//!
//! Behaviour is chosen by path segments before `/v1`, so one mock serves every scenario and the
//! gateway's `openai_api_base` selects it: `/lat50/v1/...` waits 50 ms before answering,
//! `/ev20/v1/...` streams 20 content events, `/ev20/gap500/v1/...` spaces them 500 ms apart.
//! Requests with `"stream":true` in the body get a `text/event-stream` answer in OpenAI's chunk
//! format ending with `data: [DONE]`; others get one JSON body. Bodies must carry a
//! `content-length` (awc and the gateway always send one).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Length of the embedding vectors, as OpenAI's `text-embedding-3-small`.
pub const EMBEDDING_DIMS: usize = 1536;
/// Largest request head plus body the mock accepts.
const MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// Listen backlog: the 10,000-stream scenario connects in bursts.
const BACKLOG: u32 = 8192;
/// Content events in a stream when the path names none.
const DEFAULT_EVENTS: u32 = 20;

const CREATED: u64 = 1_700_000_000;
const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

/// A running mock; it lives until the process exits.
pub struct Mock {
    pub port: u16,
}

/// Flag that turns the bench binary into the mock (see [`MockProcess`]).
pub const CHILD_FLAG: &str = "--mock-upstream-child";

/// Runs the mock in this process until standard input closes (the parent went away), so it
/// never outlives the load test. The port goes to stdout as one line.
pub fn child_main() -> ! {
    use std::io::{Read, Write};
    let mock = start().expect("mock upstream");
    println!("{}", mock.port);
    let _ = std::io::stdout().flush();
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    std::process::exit(0)
}

/// The mock in its own process: the 10,000-stream scenario needs a descriptor per stream on
/// each side, and this process and the mock together would pass a 20,000 hard limit.
pub struct MockProcess {
    child: std::process::Child,
    pub pid: u32,
    pub port: u16,
}

impl MockProcess {
    /// Starts this same binary in mock mode; it inherits this process's CPU pinning.
    pub fn spawn() -> std::io::Result<MockProcess> {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let mut child = Command::new(std::env::current_exe()?)
            .arg(CHILD_FLAG)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        let port = line.trim().parse().map_err(|_| {
            let _ = child.kill();
            std::io::Error::other(format!("the mock printed {line:?}, not a port"))
        })?;
        Ok(MockProcess {
            pid: child.id(),
            child,
            port,
        })
    }
}

impl Drop for MockProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the mock on 127.0.0.1, port chosen by the OS.
pub fn start() -> std::io::Result<Mock> {
    // Bound here so the port is known before the thread starts; `listen` needs the runtime.
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let port = socket.local_addr()?.port();
    let bodies = Arc::new(Bodies::new());
    std::thread::Builder::new()
        .name("mock-upstream".to_owned())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("mock runtime");
            runtime.block_on(async move {
                let listener = socket.listen(BACKLOG).expect("mock listen");
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        // EMFILE and friends: back off instead of spinning.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve(stream, bodies.clone()));
                }
            });
        })?;
    Ok(Mock { port })
}

/// Precomputed answers.
struct Bodies {
    chat: Bytes,
    completions: Bytes,
    embeddings: Bytes,
    not_found: Bytes,
    /// Stream pieces per event count: head + first event, the middle events, the tail.
    streams: Mutex<HashMap<u32, Arc<StreamFrames>>>,
}

struct StreamFrames {
    /// Response head, then the first event, as one write (so TTFB is one write away).
    first: Bytes,
    /// Events 2..N, each one chunked-encoding frame.
    middle: Vec<Bytes>,
    /// The last content event, `data: [DONE]` and the chunked terminator.
    tail: Bytes,
    /// Everything at once, for streams without gaps.
    whole: Bytes,
}

impl Bodies {
    fn new() -> Self {
        let chat = format!(
            r#"{{"id":"chatcmpl-bench","object":"chat.completion","created":{CREATED},"model":"gpt-4o-mini","choices":[{{"index":0,"message":{{"role":"assistant","content":"Hello! I am the mock upstream of the Switchyard load test."}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":9,"completion_tokens":13,"total_tokens":22}}}}"#
        );
        let completions = format!(
            r#"{{"id":"cmpl-bench","object":"text_completion","created":{CREATED},"model":"gpt-3.5-turbo-instruct","choices":[{{"index":0,"text":"Hello! I am the mock upstream of the Switchyard load test.","finish_reason":"stop"}}],"usage":{{"prompt_tokens":1,"completion_tokens":13,"total_tokens":14}}}}"#
        );
        Self {
            chat: json_response(200, &chat),
            completions: json_response(200, &completions),
            embeddings: json_response(200, &embeddings_body()),
            not_found: json_response(404, r#"{"error":{"message":"not found"}}"#),
            streams: Mutex::new(HashMap::new()),
        }
    }

    fn stream(&self, events: u32) -> Arc<StreamFrames> {
        let mut streams = self.streams.lock().expect("mock stream cache");
        streams
            .entry(events)
            .or_insert_with(|| Arc::new(stream_frames(events)))
            .clone()
    }
}

fn json_response(status: u16, body: &str) -> Bytes {
    let reason = if status == 200 { "OK" } else { "Not Found" };
    Bytes::from(format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    ))
}

/// A 1536-float vector with realistic digits (OpenAI sends about ten significant digits).
fn embeddings_body() -> String {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let values: Vec<String> = (0..EMBEDDING_DIMS)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let unit = (state >> 11) as f64 / (1u64 << 53) as f64;
            format!("{:.10}", (unit - 0.5) * 0.08)
        })
        .collect();
    format!(
        r#"{{"object":"list","data":[{{"object":"embedding","embedding":[{}],"index":0}}],"model":"text-embedding-3-small","usage":{{"prompt_tokens":2,"total_tokens":2}}}}"#,
        values.join(",")
    )
}

/// One SSE event as one chunked-encoding frame.
fn chunk_frame(json: &str) -> Bytes {
    let event = format!("data: {json}\n\n");
    Bytes::from(format!("{:x}\r\n{event}\r\n", event.len()))
}

fn stream_frames(events: u32) -> StreamFrames {
    let events = events.max(1);
    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n";
    let event = |index: u32| {
        let role = if index == 0 {
            r#""role":"assistant","#
        } else {
            ""
        };
        let finish = if index + 1 == events {
            r#""stop""#
        } else {
            "null"
        };
        chunk_frame(&format!(
            r#"{{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":{CREATED},"model":"gpt-4o-mini","choices":[{{"index":0,"delta":{{{role}"content":"tok{index} "}},"finish_reason":{finish}}}]}}"#
        ))
    };
    let mut first = BytesMut::from(head.as_bytes());
    first.extend_from_slice(&event(0));
    let middle: Vec<Bytes> = (1..events.saturating_sub(1)).map(event).collect();
    let mut tail = BytesMut::new();
    if events > 1 {
        tail.extend_from_slice(&event(events - 1));
    }
    tail.extend_from_slice(&chunk_frame("[DONE]"));
    tail.extend_from_slice(b"0\r\n\r\n");
    let mut whole = first.clone();
    for frame in &middle {
        whole.extend_from_slice(frame);
    }
    whole.extend_from_slice(&tail);
    StreamFrames {
        first: first.freeze(),
        middle,
        tail: tail.freeze(),
        whole: whole.freeze(),
    }
}

/// What the path asks for.
#[derive(Debug, Default, PartialEq)]
struct Behaviour {
    latency_ms: u64,
    events: Option<u32>,
    gap_ms: u64,
    route: Route,
}

#[derive(Debug, Default, PartialEq)]
enum Route {
    Chat,
    Completions,
    Embeddings,
    #[default]
    Unknown,
}

fn parse_path(path: &str) -> Behaviour {
    let mut behaviour = Behaviour::default();
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    for segment in segments.by_ref() {
        if segment == "v1" {
            break;
        }
        let number = |prefix: &str| segment.strip_prefix(prefix)?.parse::<u64>().ok();
        if let Some(ms) = number("lat") {
            behaviour.latency_ms = ms;
        } else if let Some(n) = number("ev") {
            behaviour.events = Some(n.min(100_000) as u32);
        } else if let Some(ms) = number("gap") {
            behaviour.gap_ms = ms;
        }
    }
    let rest: Vec<&str> = segments.collect();
    behaviour.route = match rest.as_slice() {
        ["chat", "completions"] => Route::Chat,
        ["completions"] => Route::Completions,
        ["embeddings"] => Route::Embeddings,
        _ => Route::Unknown,
    };
    behaviour
}

/// One connection: requests in order, each answered in full before the next is read.
async fn serve(mut stream: TcpStream, bodies: Arc<Bodies>) {
    let mut buffer = BytesMut::with_capacity(4096);
    loop {
        let Some(request) = read_request(&mut stream, &mut buffer).await else {
            return;
        };
        let behaviour = parse_path(&request.path);
        if behaviour.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(behaviour.latency_ms)).await;
        }
        let written = match behaviour.route {
            Route::Chat if request.stream => {
                let frames = bodies.stream(behaviour.events.unwrap_or(DEFAULT_EVENTS));
                write_stream(&mut stream, &frames, behaviour.gap_ms).await
            }
            Route::Chat => stream.write_all(&bodies.chat).await,
            Route::Completions => stream.write_all(&bodies.completions).await,
            Route::Embeddings => stream.write_all(&bodies.embeddings).await,
            Route::Unknown => stream.write_all(&bodies.not_found).await,
        };
        if written.is_err() || request.close {
            return;
        }
    }
}

async fn write_stream(
    stream: &mut TcpStream,
    frames: &StreamFrames,
    gap_ms: u64,
) -> std::io::Result<()> {
    if gap_ms == 0 {
        return stream.write_all(&frames.whole).await;
    }
    let gap = Duration::from_millis(gap_ms);
    stream.write_all(&frames.first).await?;
    for frame in &frames.middle {
        tokio::time::sleep(gap).await;
        stream.write_all(frame).await?;
    }
    tokio::time::sleep(gap).await;
    stream.write_all(&frames.tail).await
}

struct Request {
    path: String,
    stream: bool,
    close: bool,
}

/// Reads one request (head and `content-length` body) from the connection; `None` when the
/// peer closed or sent something this mock does not speak (the connection is then dropped).
async fn read_request(stream: &mut TcpStream, buffer: &mut BytesMut) -> Option<Request> {
    let head_end = loop {
        if let Some(i) = find(buffer, b"\r\n\r\n") {
            break i + 4;
        }
        if buffer.len() > MAX_REQUEST_BYTES || stream.read_buf(buffer).await.ok()? == 0 {
            return None;
        }
    };
    let head = std::str::from_utf8(&buffer[..head_end]).ok()?;
    let mut lines = head.split("\r\n");
    let path = lines.next()?.split(' ').nth(1)?.to_owned();
    let mut length = 0usize;
    let mut close = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().ok()?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked request bodies: not needed by any client here.
            let _ = stream.write_all(BAD_REQUEST).await;
            return None;
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    if head_end + length > MAX_REQUEST_BYTES {
        return None;
    }
    while buffer.len() < head_end + length {
        if stream.read_buf(buffer).await.ok()? == 0 {
            return None;
        }
    }
    let body = &buffer[head_end..head_end + length];
    let wants_stream = find(body, b"\"stream\":true").is_some();
    buffer.advance(head_end + length);
    Some(Request {
        path,
        stream: wants_stream,
        close,
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// The mock's base URL for a behaviour prefix such as `"/lat50"` (empty for the plain mock).
pub fn base_url(port: u16, prefix: &str) -> String {
    format!(
        "http://{}{prefix}/v1",
        SocketAddr::from(([127, 0, 0, 1], port))
    )
}
