//! Bookkeeping shared by a session's two tasks and its stream handles: the
//! stream table, both directions' flow-control windows, and the wake-ups.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::super::frame::{MAX_STREAM_ID, RstStatus};
use super::super::stream_error::StreamError;
use super::command::Command;
use super::{PeerWindow, SessionConfig};

/// Every window, stream or session, starts at 64 KiB in SPDY/3.1.
pub const DEFAULT_WINDOW: u32 = 64 * 1024;
/// Largest DATA payload we send in one frame, so streams interleave fairly.
const MAX_CHUNK: i64 = 16 * 1024;

/// What the tasks and the handles of one session share.
pub struct Shared {
    pub state: Mutex<State>,
    /// Commands for the writer task, in wire order.
    pub out: mpsc::Sender<Command>,
    /// A send window grew, or sending became impossible.
    pub window_open: Notify,
    /// A stream's inbound buffer shrank or lost its reader.
    pub space_freed: Notify,
    /// Ends both tasks at once.
    pub cancel: CancellationToken,
    pub config: SessionConfig,
}

/// The mutable part of a session, behind one lock never held across an await.
pub struct State {
    pub streams: HashMap<u32, StreamState>,
    /// How much DATA the peer still accepts on the whole session.
    pub session_send_window: i64,
    /// The send window new streams start with (the peer's SETTINGS may change it).
    pub initial_send_window: i64,
    /// The highest stream id the client has used; new ones must be higher.
    pub highest_stream_id: u32,
    /// The highest stream id accepted so far (GOAWAY reports it).
    pub last_stream_id: u32,
    /// Bytes received on the session not yet credited back with a WINDOW_UPDATE.
    pub session_unacked: u32,
    /// No more frames will be read.
    pub reading_done: bool,
    /// A GOAWAY or shutdown is queued: nothing more may be queued to send.
    pub closing: bool,
}

/// One stream, as long as it is open or a handle to it lives.
pub struct StreamState {
    pub queue: VecDeque<Bytes>,
    pub buffered: usize,
    /// Bytes the caller consumed that the peer has not been told about.
    pub unacked: u32,
    pub remote_fin: bool,
    pub local_fin: bool,
    pub replied: bool,
    pub reset: Option<RstStatus>,
    pub send_window: i64,
    pub reader_open: bool,
    pub writer_open: bool,
    pub data_ready: Arc<Notify>,
}

impl StreamState {
    pub fn new(send_window: i64, remote_fin: bool, local_fin: bool) -> Self {
        StreamState {
            queue: VecDeque::new(),
            buffered: 0,
            unacked: 0,
            remote_fin,
            local_fin,
            replied: false,
            reset: None,
            send_window,
            reader_open: true,
            writer_open: true,
            data_ready: Arc::new(Notify::new()),
        }
    }

    /// Both directions finished, normally or by a reset.
    pub fn closed(&self) -> bool {
        self.reset.is_some() || (self.remote_fin && self.local_fin)
    }

    /// Why nothing more may be sent on this stream, if so.
    pub fn send_error(&self, id: u32) -> Option<StreamError> {
        match self.reset {
            Some(status) => Some(StreamError::Reset(id, status)),
            None if self.local_fin => Some(StreamError::Closed(id)),
            None => None,
        }
    }
}

impl State {
    pub fn new() -> Self {
        State {
            streams: HashMap::new(),
            session_send_window: i64::from(DEFAULT_WINDOW),
            initial_send_window: i64::from(DEFAULT_WINDOW),
            highest_stream_id: 0,
            last_stream_id: 0,
            session_unacked: 0,
            reading_done: false,
            closing: false,
        }
    }

    /// Streams still open in some direction, for the concurrency limit.
    pub fn open_streams(&self) -> usize {
        self.streams.values().filter(|s| !s.closed()).count()
    }

    /// Takes up to `want` bytes of send window for stream `id`: `Ok(None)`
    /// means wait for a WINDOW_UPDATE. Under [`PeerWindow::Ignore`] only the
    /// frame size limits a chunk.
    pub fn reserve_send(&mut self, id: u32, want: usize, policy: PeerWindow) -> Result<Option<usize>, StreamError> {
        let ended = self.closing;
        let stalled_forever = self.reading_done;
        let session_window = self.session_send_window;
        let stream = self.streams.get_mut(&id).ok_or(StreamError::SessionClosed)?;
        if let Some(err) = stream.send_error(id) {
            return Err(err);
        }
        if ended {
            return Err(StreamError::SessionClosed);
        }
        let want = i64::try_from(want).unwrap_or(MAX_CHUNK).min(MAX_CHUNK);
        let allowed = match policy {
            PeerWindow::Ignore => want,
            PeerWindow::Enforce => want.min(stream.send_window).min(session_window),
        };
        if allowed <= 0 {
            // No WINDOW_UPDATE can arrive once reading stopped.
            return if stalled_forever { Err(StreamError::SessionClosed) } else { Ok(None) };
        }
        stream.send_window -= allowed;
        self.session_send_window -= allowed;
        Ok(Some(allowed as usize))
    }

    /// Applies a WINDOW_UPDATE; `Err` when it pushes a window past 2^31-1.
    pub fn grow_send_window(&mut self, id: u32, delta: u32) -> Result<(), ()> {
        let window = match id {
            0 => &mut self.session_send_window,
            _ => match self.streams.get_mut(&id) {
                Some(stream) => &mut stream.send_window,
                None => return Ok(()),
            },
        };
        *window += i64::from(delta);
        if *window > i64::from(MAX_STREAM_ID) { Err(()) } else { Ok(()) }
    }

    /// Applies SETTINGS_INITIAL_WINDOW_SIZE: every open stream's window moves by the difference.
    pub fn set_initial_send_window(&mut self, value: u32) {
        let delta = i64::from(value) - self.initial_send_window;
        self.initial_send_window = i64::from(value);
        for stream in self.streams.values_mut() {
            stream.send_window += delta;
        }
    }

    /// Drops stream `id` once it is closed and no handle refers to it.
    pub fn forget_if_done(&mut self, id: u32) {
        let done = self.streams.get(&id).is_some_and(|s| s.closed() && !s.reader_open && !s.writer_open);
        if done {
            self.streams.remove(&id);
        }
    }
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere cannot leave the table half-updated in a way that
        // matters more than stopping the whole session would.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a command for the writer.
    pub async fn send(&self, command: Command) -> Result<(), StreamError> {
        self.out.send(command).await.map_err(|_| StreamError::SessionClosed)
    }

    /// Marks the session as no longer reading (and, if `ended`, no longer
    /// writing) and wakes every waiter so it can see that.
    pub fn stop(&self, ended: bool) {
        let mut state = self.lock();
        state.reading_done = true;
        state.closing |= ended;
        for stream in state.streams.values() {
            stream.data_ready.notify_waiters();
        }
        drop(state);
        self.window_open.notify_waiters();
        self.space_freed.notify_waiters();
    }
}

/// Waits until `check` returns a value, re-checking whenever `notify` fires.
/// The waiter registers before checking, so no wake-up can slip between.
pub async fn wait_until<T>(notify: &Notify, mut check: impl FnMut() -> Option<T>) -> T {
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Some(value) = check() {
            return value;
        }
        notified.await;
    }
}
