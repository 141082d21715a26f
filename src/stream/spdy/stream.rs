//! Handles to one client-opened SPDY stream: [`IncomingStream`] as the
//! session hands it out, splittable into a [`StreamReader`] and a
//! [`StreamWriter`] so both directions can run in separate tasks.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::Notify;

use super::block::check_headers;
use super::frame::{Frame, RstStatus};
use super::headers::Headers;
use super::session::command::Command;
use super::session::state::{Shared, State, StreamState, wait_until};
pub use super::stream_error::StreamError;

/// A stream the client opened with SYN_STREAM. Reply to it promptly:
/// Kubernetes clients open their streams one after another and wait for
/// each SYN_REPLY before opening the next.
pub struct IncomingStream {
    id: u32,
    headers: Headers,
    reader: StreamReader,
    writer: StreamWriter,
}

/// The receiving half of a stream: the client's DATA, in order.
pub struct StreamReader {
    id: u32,
    shared: Arc<Shared>,
    data_ready: Arc<Notify>,
}

/// The sending half of a stream: SYN_REPLY, DATA, FIN and RST_STREAM.
/// Dropping it without [`close`](StreamWriter::close) still sends FIN.
pub struct StreamWriter {
    id: u32,
    shared: Arc<Shared>,
}

impl IncomingStream {
    pub(crate) fn new(id: u32, headers: Headers, shared: Arc<Shared>, data_ready: Arc<Notify>) -> Self {
        let reader = StreamReader { id, shared: shared.clone(), data_ready };
        IncomingStream { id, headers, reader, writer: StreamWriter { id, shared } }
    }

    /// The stream id the client chose (odd, increasing).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The headers of the client's SYN_STREAM, e.g. `streamtype` and `port`.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// See [`StreamWriter::reply`].
    pub async fn reply(&self, headers: Headers) -> Result<(), StreamError> {
        self.writer.reply(headers).await
    }

    /// See [`StreamReader::read`].
    pub async fn read(&mut self) -> Result<Option<Bytes>, StreamError> {
        self.reader.read().await
    }

    /// See [`StreamWriter::write`].
    pub async fn write(&self, data: Bytes) -> Result<(), StreamError> {
        self.writer.write(data).await
    }

    /// See [`StreamWriter::close`].
    pub async fn close(&self) -> Result<(), StreamError> {
        self.writer.close().await
    }

    /// See [`StreamWriter::reset`].
    pub async fn reset(&self) -> Result<(), StreamError> {
        self.writer.reset().await
    }

    /// Separates the two directions so that each can be driven by its own task.
    pub fn into_split(self) -> (StreamReader, StreamWriter) {
        (self.reader, self.writer)
    }
}

impl StreamReader {
    /// The stream id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The next chunk of the client's data; `Ok(None)` once the client sent
    /// FIN. Reading is what reopens the client's window: a stream nobody
    /// reads stops the client (or, if it ignores windows, the connection).
    pub async fn read(&mut self) -> Result<Option<Bytes>, StreamError> {
        let shared = self.shared.clone();
        let (result, credit) = wait_until(&self.data_ready, || take(&shared, self.id)).await;
        if let Some(delta) = credit {
            // Best effort: if the session is closing, the peer needs no more window.
            let _ = shared.send(Command::Frame(Frame::WindowUpdate { stream_id: self.id, delta })).await;
        }
        result
    }
}

type Taken = (Result<Option<Bytes>, StreamError>, Option<u32>);

/// One attempt to read: the outcome, and a window credit to send, if due.
fn take(shared: &Shared, id: u32) -> Option<Taken> {
    let mut state = shared.lock();
    let reading_done = state.reading_done;
    let Some(stream) = state.streams.get_mut(&id) else { return Some((Err(StreamError::SessionClosed), None)) };
    if let Some(chunk) = stream.queue.pop_front() {
        stream.buffered -= chunk.len();
        stream.unacked = stream.unacked.saturating_add(chunk.len() as u32);
        let due = stream.unacked >= shared.config.receive_window / 2 && !stream.remote_fin && stream.reset.is_none();
        let credit = due.then(|| std::mem::take(&mut stream.unacked));
        drop(state);
        shared.space_freed.notify_waiters();
        return Some((Ok(Some(chunk)), credit));
    }
    let outcome = match stream.reset {
        Some(status) => Err(StreamError::Reset(id, status)),
        None if stream.remote_fin => Ok(None),
        None if reading_done => Err(StreamError::SessionClosed),
        None => return None,
    };
    Some((outcome, None))
}

impl StreamWriter {
    /// The stream id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Sends SYN_REPLY with `headers` (Kubernetes servers send none). Writing
    /// or closing first sends an empty reply automatically.
    pub async fn reply(&self, headers: Headers) -> Result<(), StreamError> {
        check_headers(&headers).map_err(|source| StreamError::Headers { id: self.id, source })?;
        self.claim_reply(false)?;
        self.shared.send(Command::Reply { stream_id: self.id, headers, fin: false }).await
    }

    /// Sends `data`, in frames of at most 16 KiB, waiting for the peer's
    /// window when [`PeerWindow::Enforce`](super::PeerWindow) is set.
    pub async fn write(&self, mut data: Bytes) -> Result<(), StreamError> {
        if self.claim_reply(true)? {
            self.shared.send(Command::Reply { stream_id: self.id, headers: Headers::new(), fin: false }).await?;
        }
        let policy = self.shared.config.peer_window;
        while !data.is_empty() {
            let want = data.len();
            let n = wait_until(&self.shared.window_open, || {
                self.shared.lock().reserve_send(self.id, want, policy).transpose()
            })
            .await?;
            let chunk = data.split_to(n);
            self.shared.send(Command::Frame(Frame::Data { stream_id: self.id, fin: false, data: chunk })).await?;
        }
        Ok(())
    }

    /// Half-closes the stream with FIN: the client reads end of stream.
    pub async fn close(&self) -> Result<(), StreamError> {
        let command = {
            let mut state = self.shared.lock();
            let stream = sendable(&mut state, self.id)?;
            stream.local_fin = true;
            fin_command(self.id, &mut stream.replied)
        };
        self.shared.send(command).await
    }

    /// Aborts the stream in both directions with RST_STREAM (CANCEL).
    pub async fn reset(&self) -> Result<(), StreamError> {
        {
            let mut state = self.shared.lock();
            let stream = state.streams.get_mut(&self.id).ok_or(StreamError::SessionClosed)?;
            if stream.closed() {
                return Ok(());
            }
            stream.reset = Some(RstStatus::Cancel);
            stream.data_ready.notify_waiters();
        }
        self.shared.space_freed.notify_waiters();
        self.shared.window_open.notify_waiters();
        self.shared.send(Command::Frame(Frame::RstStream { stream_id: self.id, status: RstStatus::Cancel })).await
    }

    /// Marks the reply as sent; true if the caller must send it. With
    /// `implicit`, an earlier reply is fine; without, it is an error.
    fn claim_reply(&self, implicit: bool) -> Result<bool, StreamError> {
        let mut state = self.shared.lock();
        let stream = sendable(&mut state, self.id)?;
        match (stream.replied, implicit) {
            (true, true) => Ok(false),
            (true, false) => Err(StreamError::AlreadyReplied(self.id)),
            (false, _) => {
                stream.replied = true;
                Ok(true)
            }
        }
    }
}

/// The stream `id`, if we may still send on it: it exists, is not reset or
/// finished by us, and the session is not closing.
fn sendable(state: &mut State, id: u32) -> Result<&mut StreamState, StreamError> {
    let closing = state.closing;
    let stream = state.streams.get_mut(&id).ok_or(StreamError::SessionClosed)?;
    if let Some(err) = stream.send_error(id) {
        return Err(err);
    }
    if closing {
        return Err(StreamError::SessionClosed);
    }
    Ok(stream)
}

/// The frame carrying FIN: on the SYN_REPLY itself if none was sent yet.
fn fin_command(stream_id: u32, replied: &mut bool) -> Command {
    if std::mem::replace(replied, true) {
        Command::Frame(Frame::Data { stream_id, fin: true, data: Bytes::new() })
    } else {
        Command::Reply { stream_id, headers: Headers::new(), fin: true }
    }
}

impl Drop for StreamReader {
    fn drop(&mut self) {
        release(&self.shared, self.id, Half::Reader);
    }
}

impl Drop for StreamWriter {
    fn drop(&mut self) {
        release(&self.shared, self.id, Half::Writer);
    }
}

#[derive(PartialEq)]
enum Half {
    Reader,
    Writer,
}

/// A handle went away: a dropped writer ends our side with FIN, a dropped
/// reader discards what it left unread, and a stream left with no handle
/// while still open is reset. Frames go out only if the writer queue has
/// room, since `drop` cannot wait.
fn release(shared: &Shared, id: u32, half: Half) {
    let mut state = shared.lock();
    let closing = state.closing;
    let Some(stream) = state.streams.get_mut(&id) else { return };
    let mut command = None;
    if half == Half::Reader {
        stream.reader_open = false;
        stream.queue.clear();
        stream.buffered = 0;
    } else {
        stream.writer_open = false;
        if stream.send_error(id).is_none() {
            stream.local_fin = true;
            command = Some(fin_command(id, &mut stream.replied));
        }
    }
    if !stream.reader_open && !stream.writer_open && !stream.closed() {
        stream.reset = Some(RstStatus::Cancel);
        command = Some(Command::Frame(Frame::RstStream { stream_id: id, status: RstStatus::Cancel }));
    }
    state.forget_if_done(id);
    drop(state);
    shared.space_freed.notify_waiters();
    if let Some(command) = command.filter(|_| !closing) {
        let _ = shared.out.try_send(command);
    }
}
