//! Noticing that a client hung up while its request waits for the provider. actix-web only learns
//! of a closed connection when it writes to it, which for a non-streamed reply is after the
//! provider answered; so each connection keeps a duplicate of its socket, and a request waiting
//! on the provider peeks at it now and then: end-of-file means the client is gone, and the wait
//! (with the upstream request and its connection) is dropped.

use std::io::ErrorKind;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use socket2::SockRef;

/// How often a waiting request looks at its client's socket.
const CHECK_EVERY: Duration = Duration::from_millis(200);

/// A duplicate of the client connection's socket, stored in the connection's data.
#[derive(Clone)]
pub struct ClientSocket(Arc<OwnedFd>);

impl ClientSocket {
    /// For `HttpServer::on_connect`: keeps a duplicate of plain TCP connections' sockets.
    pub fn capture(connection: &dyn std::any::Any, data: &mut actix_web::dev::Extensions) {
        if let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
            if let Ok(fd) = tcp.as_fd().try_clone_to_owned() {
                data.insert(ClientSocket(Arc::new(fd)));
            }
        }
    }

    /// True once the peer has closed its side (end-of-file or an error on peek). Bytes waiting
    /// to be read (a pipelined request) mean the client is still there.
    pub fn hung_up(&self) -> bool {
        let mut probe = [MaybeUninit::<u8>::uninit(); 1];
        match SockRef::from(&*self.0).peek(&mut probe) {
            Ok(0) => true,
            Ok(_) => false,
            Err(error) => !matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted),
        }
    }

    /// Resolves when the client hangs up; never, when it does not.
    pub async fn gone(&self) {
        loop {
            tokio::time::sleep(CHECK_EVERY).await;
            if self.hung_up() {
                return;
            }
        }
    }
}
