//! Messages between the runtime's actors, each a documented struct named for what happened.

use std::sync::Arc;

use actix::prelude::*;
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::config::GatewayConfig;
use crate::dispatch::Dispatcher;
use crate::error::GatewayError;
use crate::schema::UnifiedRequest;

/// The watcher read new config-file content (or `SIGHUP` asked for a reload): the registry should
/// validate it and, when valid, publish it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ConfigChanged {
    pub text: String,
    /// Reload even when the content is byte-identical (env vars or key files may have changed).
    pub forced: bool,
}

/// Force a re-read of the config file now (sent on `SIGHUP`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ForceReload;

/// A notify event concerned the config file (or the `..data` symlink swap); the watcher
/// debounces these. Events for other files in the directory are dropped before they are sent.
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
#[rtype(result = "()")]
pub struct FileSystemEvent {
    pub change: FileChange,
}

/// What a relevant event says about the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileChange {
    /// Its content was written in place: a writer has it open and may not be done.
    Written,
    /// A writer closed it after writing: an in-place save is complete.
    Closed,
    /// Its metadata changed (touch, chmod): an open write, if any, is still open.
    Touched,
    /// Anything else (renamed over, created, removed, symlink swapped, rescan): the hash decides.
    Replaced,
}

/// A worker's dispatcher came up and wants every future config.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RegisterWorker {
    pub dispatcher: Addr<Dispatcher>,
}

/// A new validated config, numbered by generation so a worker never goes back to an older one.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct RoutesUpdated {
    pub generation: u64,
    pub config: Arc<GatewayConfig>,
}

/// One client request for one endpoint's provider: the hot-path message, sent by a handler to the
/// provider actor on its own worker thread.
#[derive(Message)]
#[rtype(result = "Result<InvokeReply, GatewayError>")]
pub struct Invoke {
    pub request: UnifiedRequest,
    /// Resolves when the handler is dropped (the client went away) before the reply.
    pub cancelled: tokio::sync::oneshot::Receiver<()>,
}

/// What a provider answers once it knows the outcome: a whole JSON body, or (for `stream: true`)
/// a stream whose upstream already answered 2xx. Failures known before that are `Err`, so the
/// handler can still send a proper status.
pub enum InvokeReply {
    /// A serialised unified response (compact JSON) and the tokens it reported.
    Json { body: Bytes, usage: Usage },
    /// Serialised unified chunks, one JSON document each; an `Err` item ends the stream.
    Stream(ChunkReceiver),
}

/// Tokens a provider reported, for metrics and the access log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
}

impl Usage {
    pub fn new(input_tokens: Option<u64>, output_tokens: Option<u64>) -> Self {
        Self {
            input_tokens,
            output_tokens,
        }
    }

    /// Keeps the latest figure of each kind (stream usage arrives cumulatively, usually last).
    pub fn merge(&mut self, other: Usage) {
        self.input_tokens = other.input_tokens.or(self.input_tokens);
        self.output_tokens = other.output_tokens.or(self.output_tokens);
    }
}

/// One unified stream chunk, serialised, with the usage it carried if any.
#[derive(Debug, Clone)]
pub struct StreamChunk {
    pub json: Bytes,
    pub usage: Option<Usage>,
}

impl StreamChunk {
    pub fn new(json: Bytes) -> Self {
        Self { json, usage: None }
    }
}

/// The bounded channel a streaming provider task fills. Dropping the receiver (client gone) makes
/// the producer's next send fail, which ends the task and drops the upstream connection.
pub type ChunkReceiver = mpsc::Receiver<ChunkResult>;
/// One item of a stream. The error is boxed: channel memory is reserved 32 items at a time per
/// stream, and an unboxed error would make every item as large as the rare failure.
pub type ChunkResult = Result<StreamChunk, Box<GatewayError>>;
pub type ChunkSender = mpsc::Sender<ChunkResult>;
