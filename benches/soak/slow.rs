//! Slow clients for the soak (`--slow-clients N`): N connections at a time that send a request
//! head, then their body one byte a second, as a slowloris attack does. The gateway's body
//! timeout (`client_body_timeout_ms`, shortened for the run) must answer each with 408 and close
//! it, while the rest of the traffic goes on unharmed. A new slow client replaces each one cut,
//! until the run ends.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The gateway's body timeout during a run with slow clients.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(2);
/// A slow client not answered this long after its head counts as unexpected.
const ANSWER_WITHIN: Duration = Duration::from_secs(12);
/// The pause between two body bytes.
const BYTE_EVERY: Duration = Duration::from_secs(1);
/// At most this many failure samples are kept for the report.
const SAMPLES: usize = 10;

/// What the slow clients saw.
#[derive(Debug, Default, Clone)]
pub struct SlowStats {
    pub started: u64,
    /// Answered 408 and closed, as they must be.
    pub cut: u64,
    /// Anything else: another answer, no answer in time, a connection that failed to open.
    pub unexpected: u64,
    pub samples: Vec<String>,
}

impl SlowStats {
    fn merge(&mut self, other: SlowStats) {
        self.started += other.started;
        self.cut += other.cut;
        self.unexpected += other.unexpected;
        let room = SAMPLES.saturating_sub(self.samples.len());
        self.samples.extend(other.samples.into_iter().take(room));
    }
}

/// Keeps `count` slow clients going against `port` until `end`.
pub async fn run(port: u16, count: usize, end: Instant) -> SlowStats {
    let lanes: Vec<_> = (0..count)
        .map(|_| actix_rt::spawn(lane(port, end)))
        .collect();
    let mut stats = SlowStats::default();
    for lane in lanes {
        if let Ok(lane_stats) = lane.await {
            stats.merge(lane_stats);
        }
    }
    stats
}

/// One slow client after another, until `end`.
async fn lane(port: u16, end: Instant) -> SlowStats {
    let mut stats = SlowStats::default();
    while Instant::now() < end {
        stats.started += 1;
        match one(port).await {
            Ok(()) => stats.cut += 1,
            Err(why) => {
                stats.unexpected += 1;
                if stats.samples.len() < SAMPLES {
                    stats.samples.push(why);
                }
            }
        }
    }
    stats
}

/// One slow client: a head declaring a 100,000-byte body, then a byte a second. Ok when the
/// gateway answers 408.
async fn one(port: u16) -> Result<(), String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let head = "POST /endpoints/chat/invocations HTTP/1.1\r\nHost: 127.0.0.1\r\n\
        Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{";
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| format!("head: {e}"))?;
    let deadline = Instant::now() + ANSWER_WITHIN;
    let mut answer = Vec::new();
    let mut buffer = [0u8; 1024];
    let mut writing = true;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(format!("no answer within {ANSWER_WITHIN:?}"));
        }
        tokio::select! {
            read = stream.read(&mut buffer) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buffer[..n]),
            },
            _ = tokio::time::sleep(BYTE_EVERY.min(remaining)), if writing => {
                // A failed write means the gateway closed its side; what it said is read next.
                writing = stream.write_all(b" ").await.is_ok();
            }
            _ = tokio::time::sleep(remaining), if !writing => {}
        }
    }
    let text = String::from_utf8_lossy(&answer);
    if text.starts_with("HTTP/1.1 408") {
        Ok(())
    } else {
        let first = text.lines().next().unwrap_or("");
        Err(format!("answered {first:?} instead of 408"))
    }
}
