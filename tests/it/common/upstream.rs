//! A scripted mock upstream (an OpenAI-like provider) for integration tests.
//!
//! It speaks HTTP/1.1 itself on plain `std` sockets, one thread per connection, so a test has
//! exact control over what goes on the wire: every write is its own TCP segment (`TCP_NODELAY`),
//! chunked bodies can be cut at any byte (mid-line, mid-UTF-8), the head or any part can be
//! delayed, and a response can end by finishing the chunked body, by closing the connection
//! without the terminating chunk (FIN), or by resetting it (RST). While it waits between writes it
//! watches the socket, so it notices when the gateway drops the connection: [`Upstream::aborted`]
//! counts responses cut short that way.
//!
//! Every request is recorded (method, path, query, lowercased headers, body bytes). Replies are
//! taken from a FIFO script ([`Upstream::push`]); when it is empty the fallback reply answers (a
//! 599 JSON error by default, so a missing script line is loud). Only 127.0.0.1 is used.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How often blocked reads and waits look at the socket and the stop flag.
const POLL: Duration = Duration::from_millis(5);
/// Largest request head or body the mock accepts (a guard, not a limit tests should reach).
const MAX_REQUEST: usize = 64 * 1024 * 1024;

/// One request as the mock received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// The path without the query string.
    pub path: String,
    /// The raw query string (after `?`), if any.
    pub query: Option<String>,
    /// Header names lowercased, values as sent, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    /// The first value of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON (key order kept); panics with the body when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("upstream body is not JSON ({e}): {}", self.text()))
    }

    /// The body's top-level keys, in the order they were sent.
    pub fn top_keys(&self) -> Vec<String> {
        match self.json() {
            Value::Object(map) => map.keys().cloned().collect(),
            other => panic!("upstream body is not a JSON object: {other}"),
        }
    }
}

/// How a chunked response ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The terminating zero-length chunk; the connection stays usable (keep-alive).
    Finish,
    /// Close the connection (FIN) without the terminating chunk: a truncated body.
    Close,
    /// Reset the connection (RST, `SO_LINGER` 0) without the terminating chunk.
    Reset,
}

#[derive(Debug, Clone)]
enum Body {
    /// `content-length` framed, one write.
    Full(Vec<u8>),
    /// `transfer-encoding: chunked`: each part is one chunk and one write, after its delay.
    Chunked(Vec<(Duration, Vec<u8>)>, End),
}

/// A scripted response.
#[derive(Debug, Clone)]
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    head_delay: Duration,
    body: Body,
}

impl Reply {
    /// `status` with an `application/json` body.
    pub fn json(status: u16, body: &Value) -> Reply {
        Reply::raw(status, "application/json", body.to_string())
    }

    /// `status` with any content type (an empty one sends no `content-type` header) and body.
    pub fn raw(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
        let mut headers = Vec::new();
        if !content_type.is_empty() {
            headers.push(("content-type".to_owned(), content_type.to_owned()));
        }
        Reply {
            status,
            headers,
            head_delay: Duration::ZERO,
            body: Body::Full(body.into()),
        }
    }

    /// A chunked body written as `parts` (one write each, no delay yet), ending with
    /// [`End::Finish`].
    pub fn chunked(status: u16, content_type: &str, parts: Vec<Vec<u8>>) -> Reply {
        let mut reply = Reply::raw(status, content_type, Vec::new());
        reply.body = Body::Chunked(
            parts.into_iter().map(|p| (Duration::ZERO, p)).collect(),
            End::Finish,
        );
        reply
    }

    /// A 200 `text/event-stream` body written as `parts`.
    pub fn sse(parts: Vec<Vec<u8>>) -> Reply {
        Reply::chunked(200, "text/event-stream; charset=utf-8", parts)
    }

    /// A 200 SSE stream of `data: <json>\n\n` events, one write each, then `data: [DONE]\n\n`
    /// (as OpenAI sends).
    pub fn sse_events(events: &[Value]) -> Reply {
        let mut parts: Vec<Vec<u8>> = events.iter().map(|e| sse_event(e).into_bytes()).collect();
        parts.push(b"data: [DONE]\n\n".to_vec());
        Reply::sse(parts)
    }

    /// Appends one more part, written `delay` after the previous one.
    pub fn part(mut self, delay: Duration, bytes: impl Into<Vec<u8>>) -> Reply {
        self.chunked_parts().push((delay, bytes.into()));
        self
    }

    /// Waits `gap` before every part but the first.
    pub fn gaps(mut self, gap: Duration) -> Reply {
        for (i, part) in self.chunked_parts().iter_mut().enumerate() {
            if i > 0 {
                part.0 = gap;
            }
        }
        self
    }

    /// Waits `delay` before writing part `index`.
    pub fn delay_part(mut self, index: usize, delay: Duration) -> Reply {
        self.chunked_parts()[index].0 = delay;
        self
    }

    /// Drops every part from `index` on (to cut a stream short before its natural end).
    pub fn truncate(mut self, index: usize) -> Reply {
        self.chunked_parts().truncate(index);
        self
    }

    /// How the chunked body ends.
    pub fn end(mut self, end: End) -> Reply {
        match &mut self.body {
            Body::Chunked(_, e) => *e = end,
            Body::Full(_) => panic!("end() needs a chunked reply"),
        }
        self
    }

    /// Waits `delay` before sending the response head.
    pub fn head_delay(mut self, delay: Duration) -> Reply {
        self.head_delay = delay;
        self
    }

    /// Adds a response header.
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    fn chunked_parts(&mut self) -> &mut Vec<(Duration, Vec<u8>)> {
        match &mut self.body {
            Body::Chunked(parts, _) => parts,
            Body::Full(_) => panic!("needs a chunked reply"),
        }
    }
}

/// One SSE event as OpenAI frames it.
pub fn sse_event(value: &Value) -> String {
    format!("data: {value}\n\n")
}

/// A port on 127.0.0.1 that nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

struct Shared {
    script: Mutex<VecDeque<Reply>>,
    fallback: Mutex<Reply>,
    requests: Mutex<Vec<Recorded>>,
    /// Responses cut short because the peer closed or reset the connection.
    aborted: AtomicUsize,
    /// Responses written completely (including scripted Close/Reset endings).
    finished: AtomicUsize,
    connections: AtomicUsize,
    stop: AtomicBool,
}

/// The running mock; stops (all its threads end within a few ms) when dropped.
pub struct Upstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Upstream {
    pub fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind mock upstream");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let shared = Arc::new(Shared {
            script: Mutex::new(VecDeque::new()),
            fallback: Mutex::new(Reply::json(
                599,
                &serde_json::json!({"error": {"message": "mock upstream: no scripted reply"}}),
            )),
            requests: Mutex::new(Vec::new()),
            aborted: AtomicUsize::new(0),
            finished: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let accept_shared = shared.clone();
        std::thread::spawn(move || accept_loop(listener, accept_shared));
        Upstream { addr, shared }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:<port>`
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `127.0.0.1:<port>`, to check that the address leaks nowhere.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// Queues the reply for the next request.
    pub fn push(&self, reply: Reply) {
        self.shared.script.lock().unwrap().push_back(reply);
    }

    /// The reply used once the script is empty.
    pub fn set_fallback(&self, reply: Reply) {
        *self.shared.fallback.lock().unwrap() = reply;
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    pub fn request_count(&self) -> usize {
        self.shared.requests.lock().unwrap().len()
    }

    /// Returns and forgets the recorded requests.
    pub fn take_requests(&self) -> Vec<Recorded> {
        std::mem::take(&mut *self.shared.requests.lock().unwrap())
    }

    /// Takes the recorded requests, asserting there was exactly one.
    pub fn only_request(&self) -> Recorded {
        let mut requests = self.take_requests();
        assert_eq!(
            requests.len(),
            1,
            "expected exactly one upstream request, got: {:#?}",
            requests
                .iter()
                .map(|r| format!("{} {} {}", r.method, r.path, r.text()))
                .collect::<Vec<_>>()
        );
        requests.pop().unwrap()
    }

    pub fn aborted(&self) -> usize {
        self.shared.aborted.load(Ordering::SeqCst)
    }

    pub fn finished(&self) -> usize {
        self.shared.finished.load(Ordering::SeqCst)
    }

    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Waits (bounded, without blocking the test's runtime) until at least `count` responses
    /// were cut short by the peer.
    pub async fn wait_aborted(&self, count: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.aborted() >= count {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            actix_rt::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits (bounded) until at least `count` requests were recorded.
    pub async fn wait_requests(&self, count: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.request_count() >= count {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            actix_rt::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let shared = shared.clone();
                std::thread::spawn(move || serve(stream, shared));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

enum Outcome {
    /// Response complete; the connection may carry another request.
    Done,
    /// Scripted ending: close or reset now.
    End(End),
    /// The peer went away before the response was complete.
    Aborted,
}

fn serve(mut stream: TcpStream, shared: Arc<Shared>) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(POLL));
    let mut buffer = Vec::new();
    loop {
        let Some(request) = read_request(&mut stream, &mut buffer, &shared) else {
            return;
        };
        let close_after = request
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        shared.requests.lock().unwrap().push(request);
        let reply = shared
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| shared.fallback.lock().unwrap().clone());
        match respond(&mut stream, &mut buffer, &reply, &shared) {
            Outcome::Done => {
                shared.finished.fetch_add(1, Ordering::SeqCst);
                if close_after {
                    let _ = stream.shutdown(Shutdown::Both);
                    return;
                }
            }
            Outcome::End(End::Close) => {
                shared.finished.fetch_add(1, Ordering::SeqCst);
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
            Outcome::End(End::Reset) => {
                shared.finished.fetch_add(1, Ordering::SeqCst);
                // SO_LINGER 0 makes the close send RST. tokio's `TcpSocket` (in the tree through
                // actix) sets it from safe code; it is never registered with a runtime.
                let socket = tokio::net::TcpSocket::from_std_stream(stream);
                let _ = socket.set_zero_linger();
                drop(socket);
                return;
            }
            Outcome::End(End::Finish) => unreachable!("Finish is reported as Done"),
            Outcome::Aborted => {
                shared.aborted.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
    }
}

/// Fills `buffer` with at least one more byte. `None` when the peer closed, the socket failed or
/// the mock is stopping.
fn fill(stream: &mut TcpStream, buffer: &mut Vec<u8>, shared: &Shared) -> Option<()> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return None;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => {
                buffer.extend_from_slice(&chunk[..n]);
                if buffer.len() > MAX_REQUEST {
                    return None;
                }
                return Some(());
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>, shared: &Shared) -> Option<Recorded> {
    let head_end = loop {
        if let Some(i) = find(buffer, b"\r\n\r\n") {
            break i;
        }
        fill(stream, buffer, shared)?;
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    buffer.drain(..head_end + 4);
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let target = request_line.next()?.to_owned();
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (target, None),
    };
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        read_chunked_body(stream, buffer, shared)?
    } else {
        let length: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if length > MAX_REQUEST {
            return None;
        }
        while buffer.len() < length {
            fill(stream, buffer, shared)?;
        }
        buffer.drain(..length).collect()
    };
    Some(Recorded {
        method,
        path,
        query,
        headers,
        body,
    })
}

fn read_chunked_body(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
    shared: &Shared,
) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(i) = find(buffer, b"\r\n") {
                break i;
            }
            fill(stream, buffer, shared)?;
        };
        let size_text = String::from_utf8_lossy(&buffer[..line_end]).into_owned();
        let size_text = size_text.split(';').next().unwrap_or("").trim().to_owned();
        let size = usize::from_str_radix(&size_text, 16).ok()?;
        buffer.drain(..line_end + 2);
        if size == 0 {
            // Trailers (none expected) end with an empty line.
            loop {
                if let Some(i) = find(buffer, b"\r\n") {
                    let empty = i == 0;
                    buffer.drain(..i + 2);
                    if empty {
                        return Some(body);
                    }
                } else {
                    fill(stream, buffer, shared)?;
                }
            }
        }
        while buffer.len() < size + 2 {
            fill(stream, buffer, shared)?;
        }
        body.extend(buffer.drain(..size));
        buffer.drain(..2);
        if body.len() > MAX_REQUEST {
            return None;
        }
    }
}

/// Waits `delay` while watching the socket: false when the peer closed or reset the
/// connection (or the mock is stopping). Bytes the peer sends meanwhile are kept in `buffer`.
fn pause(stream: &mut TcpStream, buffer: &mut Vec<u8>, delay: Duration, shared: &Shared) -> bool {
    if delay.is_zero() {
        return !shared.stop.load(Ordering::SeqCst);
    }
    let deadline = Instant::now() + delay;
    let mut chunk = [0u8; 4096];
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        let wait = (deadline - now).min(POLL).max(Duration::from_millis(1));
        let _ = stream.set_read_timeout(Some(wait));
        let result = stream.read(&mut chunk);
        let _ = stream.set_read_timeout(Some(POLL));
        match result {
            Ok(0) => return false,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => return false,
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn respond(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
    reply: &Reply,
    shared: &Shared,
) -> Outcome {
    if !pause(stream, buffer, reply.head_delay, shared) {
        return Outcome::Aborted;
    }
    let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    match &reply.body {
        Body::Full(body) => {
            head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
            let mut bytes = head.into_bytes();
            bytes.extend_from_slice(body);
            if stream
                .write_all(&bytes)
                .and_then(|()| stream.flush())
                .is_err()
            {
                return Outcome::Aborted;
            }
            Outcome::Done
        }
        Body::Chunked(parts, end) => {
            head.push_str("transfer-encoding: chunked\r\n\r\n");
            if stream.write_all(head.as_bytes()).is_err() {
                return Outcome::Aborted;
            }
            for (delay, part) in parts {
                if !pause(stream, buffer, *delay, shared) {
                    return Outcome::Aborted;
                }
                if part.is_empty() {
                    continue; // a zero-length chunk would end the body
                }
                let mut chunk = format!("{:x}\r\n", part.len()).into_bytes();
                chunk.extend_from_slice(part);
                chunk.extend_from_slice(b"\r\n");
                if stream
                    .write_all(&chunk)
                    .and_then(|()| stream.flush())
                    .is_err()
                {
                    return Outcome::Aborted;
                }
            }
            match end {
                End::Finish => {
                    if stream.write_all(b"0\r\n\r\n").is_err() {
                        return Outcome::Aborted;
                    }
                    Outcome::Done
                }
                other => Outcome::End(*other),
            }
        }
    }
}
