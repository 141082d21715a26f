//! The reader task: decodes the peer's frames in order, inflates every header
//! block (even ones it then ignores, to keep the zlib context in step) and
//! applies each frame to the session state.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use tokio::io::AsyncRead;
use tokio::sync::mpsc;
use tokio_util::codec::FramedRead;

use super::super::codec::FrameCodec;
use super::super::compress::HeaderDecompressor;
use super::super::frame::{Frame, MAX_STREAM_ID, RstStatus, Setting, SynStream, setting};
use super::super::stream::IncomingStream;
use super::command::Command;
use super::state::{DEFAULT_WINDOW, Shared, StreamState, wait_until};
use super::{SessionError, shutdown};

/// Runs until the peer closes the connection, breaks the protocol, or the session is cancelled.
pub async fn run<R: AsyncRead + Unpin>(shared: Arc<Shared>, incoming: mpsc::Sender<IncomingStream>, io: R) {
    let cancel = shared.cancel.clone();
    let inflate = HeaderDecompressor::new(shared.config.max_header_block);
    let mut reader = Reader { shared: shared.clone(), incoming, inflate };
    let frames = FramedRead::new(io, FrameCodec::new(shared.config.max_frame_size));
    let outcome = tokio::select! {
        () = cancel.cancelled() => None,
        outcome = reader.read_all(frames) => Some(outcome),
    };
    shared.stop(false);
    // Dropping the reader closes the channel of incoming streams.
    drop(reader);
    match outcome {
        None => {}
        Some(Ok(())) => shutdown(&shared, None).await,
        Some(Err(error)) => {
            tracing::debug!(%error, "spdy session stopped reading");
            shutdown(&shared, error.goaway()).await;
        }
    }
}

struct Reader {
    shared: Arc<Shared>,
    incoming: mpsc::Sender<IncomingStream>,
    inflate: HeaderDecompressor,
}

/// What became of a DATA frame.
enum Delivery {
    Accepted,
    AfterFin,
}

impl Reader {
    async fn read_all<R: AsyncRead + Unpin>(
        &mut self,
        mut frames: FramedRead<R, FrameCodec>,
    ) -> Result<(), SessionError> {
        while let Some(frame) = frames.next().await {
            self.handle(frame?).await?;
        }
        Ok(())
    }

    async fn handle(&mut self, frame: Frame) -> Result<(), SessionError> {
        match frame {
            Frame::SynStream(syn) => self.on_syn_stream(syn).await,
            Frame::SynReply { stream_id, header_block, .. } => {
                // This server opens no streams, so nothing can be replied to.
                self.inflate.decompress(&header_block)?;
                self.reset(stream_id, RstStatus::ProtocolError).await
            }
            Frame::Headers { stream_id, fin, header_block } => {
                self.inflate.decompress(&header_block)?;
                if fin {
                    self.deliver(stream_id, true, Bytes::new()).await?;
                }
                Ok(())
            }
            Frame::RstStream { stream_id, status } => {
                self.mark_reset(stream_id, status);
                Ok(())
            }
            Frame::Settings { entries, .. } => self.on_settings(&entries),
            // Odd ids are the client's own pings; even ones would answer ours, and we send none.
            Frame::Ping { id } if id % 2 == 1 => self.send(Frame::Ping { id }).await,
            Frame::Ping { .. } => Ok(()),
            // Streams already open may go on; the peer closes the connection when done.
            Frame::GoAway { .. } => Ok(()),
            Frame::WindowUpdate { stream_id, delta } => self.on_window_update(stream_id, delta).await,
            Frame::Data { stream_id, fin, data } => {
                self.credit_session(data.len()).await?;
                self.deliver(stream_id, fin, data).await
            }
        }
    }

    async fn send(&self, frame: Frame) -> Result<(), SessionError> {
        self.shared.send(Command::Frame(frame)).await.map_err(|_| SessionError::Closed)
    }

    async fn reset(&self, stream_id: u32, status: RstStatus) -> Result<(), SessionError> {
        self.mark_reset(stream_id, status);
        self.send(Frame::RstStream { stream_id, status }).await
    }

    async fn on_syn_stream(&mut self, syn: SynStream) -> Result<(), SessionError> {
        let headers = self.inflate.decompress(&syn.header_block)?;
        let id = syn.stream_id;
        let data_ready = match self.admit(&syn) {
            Ok(data_ready) => data_ready,
            Err(status) => return self.send(Frame::RstStream { stream_id: id, status }).await,
        };
        let stream = IncomingStream::new(id, headers, self.shared.clone(), data_ready);
        if let Err(mpsc::error::SendError(stream)) = self.incoming.send(stream).await {
            // Nobody accepts streams any more.
            self.mark_reset(id, RstStatus::RefusedStream);
            drop(stream);
            return self.send(Frame::RstStream { stream_id: id, status: RstStatus::RefusedStream }).await;
        }
        Ok(())
    }

    /// Records a new stream, or says why it is refused.
    fn admit(&self, syn: &SynStream) -> Result<Arc<tokio::sync::Notify>, RstStatus> {
        let mut state = self.shared.lock();
        // Clients open odd, increasing stream ids.
        if syn.stream_id.is_multiple_of(2) || syn.stream_id <= state.highest_stream_id {
            return Err(RstStatus::ProtocolError);
        }
        state.highest_stream_id = syn.stream_id;
        if state.closing || state.open_streams() >= self.shared.config.max_streams {
            return Err(RstStatus::RefusedStream);
        }
        state.last_stream_id = syn.stream_id;
        let stream = StreamState::new(state.initial_send_window, syn.fin, syn.unidirectional);
        let data_ready = stream.data_ready.clone();
        state.streams.insert(syn.stream_id, stream);
        Ok(data_ready)
    }

    fn mark_reset(&self, id: u32, status: RstStatus) {
        let mut state = self.shared.lock();
        if let Some(stream) = state.streams.get_mut(&id) {
            stream.reset.get_or_insert(status);
            stream.data_ready.notify_waiters();
        }
        state.forget_if_done(id);
        drop(state);
        self.shared.window_open.notify_waiters();
    }

    fn on_settings(&self, entries: &[Setting]) -> Result<(), SessionError> {
        for entry in entries.iter().filter(|e| e.id == setting::INITIAL_WINDOW_SIZE) {
            if entry.value > MAX_STREAM_ID {
                return Err(SessionError::Protocol("initial window size beyond 2^31-1"));
            }
            self.shared.lock().set_initial_send_window(entry.value);
        }
        self.shared.window_open.notify_waiters();
        Ok(())
    }

    async fn on_window_update(&self, stream_id: u32, delta: u32) -> Result<(), SessionError> {
        let grown = self.shared.lock().grow_send_window(stream_id, delta);
        self.shared.window_open.notify_waiters();
        match (grown, stream_id) {
            (Ok(()), _) => Ok(()),
            (Err(()), 0) => Err(SessionError::Protocol("session window beyond 2^31-1")),
            (Err(()), id) => self.reset(id, RstStatus::FlowControlError).await,
        }
    }

    /// Counts received bytes against the session window and credits them back
    /// in batches; per-stream windows are what bound buffering.
    async fn credit_session(&self, len: usize) -> Result<(), SessionError> {
        let delta = {
            let mut state = self.shared.lock();
            state.session_unacked = state.session_unacked.saturating_add(len as u32);
            if state.session_unacked < DEFAULT_WINDOW / 2 {
                return Ok(());
            }
            std::mem::take(&mut state.session_unacked)
        };
        self.send(Frame::WindowUpdate { stream_id: 0, delta }).await
    }

    /// Queues DATA (and FIN) for a stream's reader. When the stream's buffer
    /// already holds a window's worth, waits for the caller to read: a peer
    /// that ignores our window gets back-pressure, not unbounded buffering.
    async fn deliver(&self, id: u32, fin: bool, data: Bytes) -> Result<(), SessionError> {
        let shared = self.shared.clone();
        let window = shared.config.receive_window as usize;
        let delivery = wait_until(&shared.space_freed, || try_deliver(&shared, id, fin, &data, window)).await;
        match delivery {
            Delivery::Accepted => Ok(()),
            Delivery::AfterFin => self.reset(id, RstStatus::StreamAlreadyClosed).await,
        }
    }
}

/// One attempt to queue DATA; `None` means the stream's buffer is full.
fn try_deliver(shared: &Shared, id: u32, fin: bool, data: &Bytes, window: usize) -> Option<Delivery> {
    let mut state = shared.lock();
    // Unknown streams are ones already closed and forgotten: drop the data.
    let Some(stream) = state.streams.get_mut(&id) else { return Some(Delivery::Accepted) };
    if stream.remote_fin {
        return Some(Delivery::AfterFin);
    }
    if stream.reset.is_none() && stream.reader_open {
        if stream.buffered > 0 && stream.buffered + data.len() > window {
            return None;
        }
        if !data.is_empty() {
            stream.buffered += data.len();
            stream.queue.push_back(data.clone());
        }
    }
    stream.remote_fin = fin;
    stream.data_ready.notify_waiters();
    state.forget_if_done(id);
    Some(Delivery::Accepted)
}
