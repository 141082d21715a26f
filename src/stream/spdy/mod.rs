//! A small SPDY/3.1 server: the framing that kubelet, kubectl and crictl
//! speak on a CRI streaming connection after `Upgrade: SPDY/3.1`.
//!
//! Layers, bottom up: [`frame`] (frames as values), [`codec`] (bytes to
//! frames), [`headers`] and [`compress`] (zlib-compressed header blocks), then a [`Session`]
//! that serves one connection and hands out the client's streams as
//! [`IncomingStream`]s. The server never opens streams; it replies to the
//! ones the client opens.

mod block;
pub mod codec;
pub mod compress;
mod dictionary;
pub mod frame;
pub mod headers;
mod session;
mod stream;
mod stream_error;

pub use codec::{FrameCodec, FrameError};
pub use compress::{HeaderCompressor, HeaderDecompressor};
pub use frame::{Frame, GoAwayStatus, RstStatus};
pub use headers::{HeaderError, Headers};
pub use session::{PeerWindow, Session, SessionConfig};
pub use stream::{IncomingStream, StreamError, StreamReader, StreamWriter};
