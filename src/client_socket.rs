//! Noticing that a client hung up while its request waits for the provider. actix-web only learns
//! of a closed connection when it writes to it, which for a non-streamed reply is after the
//! provider answered; so a request that has waited a while on the provider peeks at its client's
//! socket now and then: end-of-file means the client is gone, and the wait (with the upstream
//! request and its connection) is dropped.

use std::io::ErrorKind;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use socket2::SockRef;

/// How often a waiting request looks at its client's socket.
const CHECK_EVERY: Duration = Duration::from_millis(200);

/// The client connection's socket, stored in the connection's data by number only: holding a
/// duplicate would cost a descriptor per connection, or per waiting request, which the
/// connection cap (`Settings::connection_cap`) would have to leave room for. The number is
/// borrowed afresh at each check instead, which is sound because of where it is polled.
///
/// Not `Send`: it is only valid inside the request's own handler future, which actix polls while
/// its connection (and so the descriptor) is open.
#[derive(Clone, Copy)]
pub struct ClientSocket {
    fd: RawFd,
    handler_only: PhantomData<*const ()>,
}

impl ClientSocket {
    /// For `HttpServer::on_connect`: notes plain TCP connections' socket.
    pub fn capture(connection: &dyn std::any::Any, data: &mut actix_web::dev::Extensions) {
        if let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
            data.insert(ClientSocket {
                fd: tcp.as_raw_fd(),
                handler_only: PhantomData,
            });
        }
    }

    /// Resolves when the client hangs up; never, when it does not. Must be polled only from the
    /// handler future of a request on this connection.
    pub async fn gone(self) {
        loop {
            tokio::time::sleep(CHECK_EVERY).await;
            // SAFETY: the descriptor belongs to the connection that carries this request. actix
            // polls a request's handler (and so this future) only from that connection's
            // dispatcher, which owns the socket and closes it only when it is dropped, together
            // with the handler; so whenever this runs, the descriptor is open and is this
            // connection's. The borrow ends before the next await.
            let socket = unsafe { BorrowedFd::borrow_raw(self.fd) };
            if hung_up(socket) {
                return;
            }
        }
    }
}

/// True once the peer has closed its side (end-of-file or an error on peek). Bytes waiting to
/// be read (a pipelined request) mean the client is still there.
fn hung_up(socket: BorrowedFd<'_>) -> bool {
    let mut probe = [MaybeUninit::<u8>::uninit(); 1];
    match SockRef::from(&socket).peek(&mut probe) {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) => !matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted),
    }
}
