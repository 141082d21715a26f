//! A server-side SPDY/3.1 session over one upgraded connection: a reader task
//! and a writer task, bounded queues between them and the caller, and the
//! streams the client opens handed out as [`IncomingStream`]s.

pub(crate) mod command;
mod reader;
pub(crate) mod state;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::codec::{DEFAULT_MAX_FRAME_SIZE, FrameError};
use super::compress::DEFAULT_MAX_HEADER_BLOCK;
use super::frame::{Frame, GoAwayStatus, Setting, setting};
use super::headers::HeaderError;
use super::stream::IncomingStream;
use command::Command;
use state::{DEFAULT_WINDOW, Shared, State};

/// Commands queued for the writer before callers wait.
const WRITE_QUEUE: usize = 64;
/// How long a closing session may take to flush what it queued.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Whether to wait on the peer's flow-control windows before sending DATA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerWindow {
    /// SPDY/3.1 as written: never send more than the peer's stream and
    /// session windows allow; wait for its WINDOW_UPDATEs.
    Enforce,
    /// Send without waiting. moby/spdystream, the SPDY library behind kubectl,
    /// kubelet and crictl, never sends WINDOW_UPDATE (and ignores ours), so
    /// enforcing windows would stall every stream after its first 64 KiB.
    Ignore,
}

/// Limits and policies of a [`Session`].
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Largest frame payload accepted from the peer (default 16 MiB).
    pub max_frame_size: usize,
    /// Largest inflated header block accepted from the peer (default 1 MiB).
    pub max_header_block: usize,
    /// Bytes buffered per stream before the caller must read (default 64 KiB,
    /// the SPDY/3.1 initial window; any other value is announced with SETTINGS).
    pub receive_window: u32,
    /// Streams open at once; more are refused with RST_STREAM (default 256).
    pub max_streams: usize,
    /// New streams queued for the caller before the session waits (default 16).
    pub accept_backlog: usize,
    /// Whether to honour the peer's windows (default [`PeerWindow::Ignore`],
    /// which is what Kubernetes clients need).
    pub peer_window: PeerWindow,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_header_block: DEFAULT_MAX_HEADER_BLOCK,
            receive_window: DEFAULT_WINDOW,
            max_streams: 256,
            accept_backlog: 16,
            peer_window: PeerWindow::Ignore,
        }
    }
}

/// Why a session ended early; logged, since the connection is gone either way.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Header(#[from] HeaderError),
    #[error("spdy peer broke the protocol: {0}")]
    Protocol(&'static str),
    #[error("spdy session writer is gone")]
    Closed,
}

impl SessionError {
    /// The GOAWAY to send for this error, if the connection can still carry one.
    fn goaway(&self) -> Option<GoAwayStatus> {
        match self {
            SessionError::Frame(FrameError::Io(_)) | SessionError::Closed => None,
            _ => Some(GoAwayStatus::ProtocolError),
        }
    }
}

/// A running server session. Dropping it ends the session at once; use
/// [`close`](Session::close) to end it with GOAWAY after queued data is sent.
pub struct Session {
    shared: Arc<Shared>,
    tasks: TaskTracker,
}

impl Session {
    /// Starts serving SPDY/3.1 on `io` (the connection after the HTTP upgrade
    /// response) with default limits. Must be called inside a tokio runtime.
    /// The receiver yields each stream the client opens; it ends with the session.
    pub fn new<T>(io: T) -> (Session, mpsc::Receiver<IncomingStream>)
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        Session::with_config(io, SessionConfig::default())
    }

    /// Like [`new`](Session::new), with explicit limits and policies.
    pub fn with_config<T>(io: T, config: SessionConfig) -> (Session, mpsc::Receiver<IncomingStream>)
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read_half, write_half) = tokio::io::split(io);
        let (out, commands) = mpsc::channel(WRITE_QUEUE);
        let (accept, incoming) = mpsc::channel(config.accept_backlog.max(1));
        if config.receive_window != DEFAULT_WINDOW {
            let entry = Setting { flags: 0, id: setting::INITIAL_WINDOW_SIZE, value: config.receive_window };
            // The queue is new and empty, so this cannot fail for lack of room.
            let _ = out.try_send(Command::Frame(Frame::Settings { clear: false, entries: vec![entry] }));
        }
        let shared = Arc::new(Shared {
            state: std::sync::Mutex::new(State::new()),
            out,
            window_open: Notify::new(),
            space_freed: Notify::new(),
            cancel: CancellationToken::new(),
            config,
        });
        let tasks = TaskTracker::new();
        tasks.spawn(reader::run(shared.clone(), accept, read_half));
        tasks.spawn(writer::run(shared.clone(), commands, write_half));
        tasks.close();
        (Session { shared, tasks }, incoming)
    }

    /// Ends the session: refuses new streams and writes, sends GOAWAY after
    /// everything already queued, closes the connection and waits for both
    /// tasks (at most a few seconds if the peer stops reading).
    pub async fn close(&self) {
        shutdown(&self.shared, Some(GoAwayStatus::Ok)).await;
        self.tasks.wait().await;
    }

    /// Waits until the session has ended and its tasks have finished.
    pub async fn closed(&self) {
        self.tasks.wait().await;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
    }
}

/// Stops new writes, queues an optional GOAWAY and the close of the
/// connection behind what is already queued, and gives the writer a grace
/// period to get it out before cancelling both tasks.
async fn shutdown(shared: &Shared, goaway: Option<GoAwayStatus>) {
    let last_good_stream_id = {
        let mut state = shared.lock();
        let already = std::mem::replace(&mut state.closing, true);
        (!already).then_some(state.last_stream_id)
    };
    shared.window_open.notify_waiters();
    let flush = async {
        if let Some(last_good_stream_id) = last_good_stream_id {
            if let Some(status) = goaway {
                let _ = shared.send(Command::Frame(Frame::GoAway { last_good_stream_id, status })).await;
            }
            let _ = shared.send(Command::Close).await;
        }
        shared.cancel.cancelled().await;
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, flush).await;
    shared.cancel.cancel();
}

#[cfg(test)]
mod flow_tests;
#[cfg(test)]
mod test_client;
#[cfg(test)]
mod tests;
