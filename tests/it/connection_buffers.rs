//! Guards the vendored actix-codec patch (vendor/README.md): an upstream connection that waits on
//! its peer holds no read or write buffer, so thousands of slow streams cost no buffer memory
//! between their events. If the `[patch.crates-io]` entry is dropped, this fails.

use std::{future::poll_fn, task::Poll};

use actix_codec::{BytesCodec, Framed};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;

#[actix_rt::test]
async fn a_waiting_connection_holds_no_buffers() {
    let (ours, mut peer) = tokio::io::duplex(64 * 1024);
    let mut framed = Framed::new(ours, BytesCodec);

    // The request goes out whole, then the write buffer is given back.
    framed
        .send(Bytes::from_static(
            b"POST /v1/chat/completions HTTP/1.1\r\n\r\n",
        ))
        .await
        .unwrap();

    // One event arrives and is decoded; the next read finds nothing and must wait.
    peer.write_all(b"data: {\"n\":1}\n\n").await.unwrap();
    let event = framed.next().await.unwrap().unwrap();
    assert_eq!(&event[..], b"data: {\"n\":1}\n\n");
    let waited = poll_fn(|cx| Poll::Ready(framed.poll_next_unpin(cx).is_pending())).await;
    assert!(
        waited,
        "no second event was sent, so the read must be pending"
    );

    let parts = framed.into_parts();
    assert_eq!(
        parts.write_buf.capacity(),
        0,
        "write buffer kept after the flush"
    );
    assert_eq!(
        parts.read_buf.capacity(),
        0,
        "read buffer kept while waiting"
    );

    // The connection still works after giving its buffers back.
    let mut framed = Framed::from_parts(parts);
    peer.write_all(b"data: [DONE]\n\n").await.unwrap();
    let done = framed.next().await.unwrap().unwrap();
    assert_eq!(&done[..], b"data: [DONE]\n\n");
}
