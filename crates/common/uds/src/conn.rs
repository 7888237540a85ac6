//! The I/O side of the adapter: an accepted Unix stream whose client bytes go through an
//! [`AuthorityRewriter`] on their way to h2.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{UnixListener, UnixStream};
use tokio_stream::{Stream, StreamExt as _, wrappers::UnixListenerStream};
use tonic::transport::server::{Connected, UdsConnectInfo};

use crate::AuthorityRewriter;

/// Bytes read from the socket per read when they go through the rewriter.
const READ_CHUNK: usize = 16 * 1024;

/// An accepted connection whose client header blocks are rewritten for h2.
///
/// Reads come from the client through an [`AuthorityRewriter`]; writes (server → client) go
/// to the socket untouched. A rewriting error surfaces as an `InvalidData` read error, which
/// makes hyper/h2 close the connection. Its connect info is tonic's [`UdsConnectInfo`] (peer
/// address and SO_PEERCRED of the underlying stream), so handlers read it as they would on a
/// plain `UnixStream`.
#[derive(Debug)]
pub struct FixedConn {
    stream: UnixStream,
    rewriter: AuthorityRewriter,
    input: BytesMut,
    info: UdsConnectInfo,
    eof: bool,
}

/// The connections accepted on `listener`, each wrapped in a [`FixedConn`]: pass this to
/// tonic's `serve_with_incoming`.
pub fn incoming(
    listener: UnixListener,
) -> impl Stream<Item = io::Result<FixedConn>> + Send + 'static {
    UnixListenerStream::new(listener).map(|accepted| accepted.map(FixedConn::new))
}

// === impl FixedConn ===

impl FixedConn {
    /// Wraps an accepted stream, taking its connect info first.
    pub fn new(stream: UnixStream) -> Self {
        let info = stream.connect_info();
        Self {
            stream,
            rewriter: AuthorityRewriter::new(),
            input: BytesMut::new(),
            info,
            eof: false,
        }
    }

    /// How many `:authority` values this connection has had replaced so far.
    pub fn rewritten(&self) -> u64 {
        self.rewriter.rewritten()
    }
}

impl Connected for FixedConn {
    type ConnectInfo = UdsConnectInfo;

    fn connect_info(&self) -> UdsConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for FixedConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            if let Some(chunk) = this.rewriter.next_output(buf.remaining()) {
                buf.put_slice(&chunk);
                return Poll::Ready(Ok(()));
            }
            if this.eof {
                return Poll::Ready(Ok(()));
            }
            // Fast path: the payload of a forwarded frame (DATA, mostly) goes from the socket
            // straight into h2's buffer.
            let direct = this.rewriter.passthrough_left();
            if direct > 0 && this.input.is_empty() {
                let dst = buf.initialize_unfilled_to(direct.min(buf.remaining()));
                let mut direct_buf = ReadBuf::new(dst);
                ready!(Pin::new(&mut this.stream).poll_read(cx, &mut direct_buf))?;
                let n = direct_buf.filled().len();
                buf.advance(n);
                this.rewriter.forwarded(n);
                this.eof = n == 0;
                return Poll::Ready(Ok(()));
            }
            let start = this.input.len();
            this.input.resize(start + READ_CHUNK, 0);
            let mut read_buf = ReadBuf::new(&mut this.input[start..]);
            let polled = Pin::new(&mut this.stream).poll_read(cx, &mut read_buf);
            let n = read_buf.filled().len();
            this.input.truncate(start + n);
            ready!(polled)?;
            if n == 0 {
                this.eof = true; // h2 sees the truncation, if any, as an unexpected EOF
                continue;
            }
            this.rewriter
                .process(&mut this.input)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        }
    }
}

impl AsyncWrite for FixedConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
