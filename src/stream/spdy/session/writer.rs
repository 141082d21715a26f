//! The writer task: the one place frames are encoded and reply headers are
//! compressed, so the order of header blocks on the wire is the order the
//! session's single deflate context saw them in.

use std::sync::Arc;

use futures::SinkExt;
use tokio::io::AsyncWrite;
use tokio::sync::mpsc;
use tokio_util::codec::FramedWrite;

use super::super::codec::FrameCodec;
use super::super::compress::HeaderCompressor;
use super::super::frame::Frame;
use super::SessionError;
use super::command::Command;
use super::state::Shared;

/// Runs until a [`Command::Close`] is done, a write fails or the session is cancelled.
pub async fn run<W: AsyncWrite + Unpin>(shared: Arc<Shared>, commands: mpsc::Receiver<Command>, io: W) {
    let cancel = shared.cancel.clone();
    tokio::select! {
        () = cancel.cancelled() => {}
        result = write_all(&shared, commands, io) => {
            if let Err(error) = result {
                tracing::debug!(%error, "spdy session stopped writing");
            }
        }
    }
    shared.stop(true);
    cancel.cancel();
}

async fn write_all<W: AsyncWrite + Unpin>(
    shared: &Shared,
    mut commands: mpsc::Receiver<Command>,
    io: W,
) -> Result<(), SessionError> {
    let mut sink = FramedWrite::new(io, FrameCodec::new(shared.config.max_frame_size));
    let mut deflate = HeaderCompressor::new()?;
    while let Some(command) = commands.recv().await {
        match command {
            Command::Frame(frame) => sink.feed(frame).await?,
            Command::Reply { stream_id, headers, fin } => {
                let header_block = deflate.compress(&headers)?;
                sink.feed(Frame::SynReply { stream_id, fin, header_block }).await?;
            }
            Command::Close => {
                // Flushes, then shuts down the write half.
                sink.close().await?;
                return Ok(());
            }
        }
        // Batch whatever is already queued into one write.
        if commands.is_empty() {
            sink.flush().await?;
        }
    }
    Ok(())
}
