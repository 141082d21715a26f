//! Flow-control tests: a client that ignores our window meets back-pressure
//! instead of unbounded buffering, and the peer's windows bound what we send
//! when enforcement is on.

use bytes::Bytes;
use futures::StreamExt;

use super::super::frame::{Frame, MAX_STREAM_ID, RstStatus, Setting, setting};
use super::super::headers::Headers;
use super::test_client::{Client, PATIENCE, accept, connect, read_to_end};
use super::*;

const KIB: usize = 1024;

/// Distinct bytes so a reordering or loss would show.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// Receives DATA for stream 1 until the server goes quiet; returns bytes and whether FIN came.
async fn drain_data(client: &mut Client) -> (usize, bool) {
    let (mut total, mut fin) = (0, false);
    while !fin {
        let frame = tokio::time::timeout(std::time::Duration::from_millis(300), client.frames.next()).await;
        match frame {
            Err(_) => break,
            Ok(Some(Ok(Frame::Data { stream_id: 1, fin: f, data }))) => {
                total += data.len();
                fin = f;
            }
            Ok(Some(Ok(Frame::WindowUpdate { stream_id: 0, .. }))) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    (total, fin)
}

#[tokio::test(start_paused = true)]
async fn a_client_ignoring_our_window_is_held_back_not_buffered() {
    let (mut client, session, mut incoming) = connect(SessionConfig::default(), 4 * KIB);
    client.open(1, &[("streamtype", "stdin")], false).await;
    let mut stream = accept(&mut incoming).await;
    stream.reply(Headers::new()).await.expect("replies");
    client.expect_reply(1).await;
    let payload = pattern(320 * KIB);

    // Exactly one window's worth: accepted and buffered, but unread, so no
    // WINDOW_UPDATE for the stream may come back.
    for chunk in payload[..64 * KIB].chunks(8 * KIB) {
        client.data(1, chunk, false).await;
    }
    assert!(client.is_quiet().await, "no stream credit while the caller does not read");

    // The rest, as a client that ignores windows would send it: the session
    // stops reading the connection instead of buffering past the window.
    let rest = payload[64 * KIB..].to_vec();
    let sender = tokio::spawn(async move {
        for (i, chunk) in rest.chunks(8 * KIB).enumerate() {
            let last = i == rest.len() / (8 * KIB) - 1;
            client.data(1, chunk, last).await;
        }
        client
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!sender.is_finished(), "the client is held back by the full pipe");
    let buffered = session.shared.lock().streams.get(&1).map(|s| s.buffered);
    assert_eq!(buffered, Some(64 * KIB), "buffered exactly one window");

    // Reading drains the buffer, lets the reader task continue, and loses nothing.
    assert_eq!(read_to_end(&mut stream).await, payload);
    let mut client = tokio::time::timeout(PATIENCE, sender).await.expect("client finishes").expect("joins");
    let mut stream_credit = 0;
    while let Ok(Some(Ok(frame))) =
        tokio::time::timeout(std::time::Duration::from_millis(200), client.frames.next()).await
    {
        if let Frame::WindowUpdate { stream_id: 1, delta } = frame {
            stream_credit += delta as usize;
        }
    }
    assert!(stream_credit >= 64 * KIB, "reading sent stream credit ({stream_credit} bytes)");
}

#[tokio::test(start_paused = true)]
async fn enforced_peer_windows_bound_what_the_server_sends() {
    let config = SessionConfig { peer_window: PeerWindow::Enforce, ..SessionConfig::default() };
    let (mut client, _session, mut incoming) = connect(config, 256 * KIB);
    client.open(1, &[], false).await;
    let stream = accept(&mut incoming).await;
    let writer = tokio::spawn(async move {
        stream.write(Bytes::from(pattern(100 * KIB))).await.expect("writes");
        stream.close().await.expect("closes");
        stream
    });
    client.expect_reply(1).await;
    assert_eq!(drain_data(&mut client).await, (64 * KIB, false), "one 64 KiB window, then silence");

    // A stream credit alone is not enough: the session window is spent too.
    client.send(Frame::WindowUpdate { stream_id: 1, delta: 64 * KIB as u32 }).await;
    assert_eq!(drain_data(&mut client).await, (0, false));
    client.send(Frame::WindowUpdate { stream_id: 0, delta: 64 * KIB as u32 }).await;
    assert_eq!(drain_data(&mut client).await, (36 * KIB, true));
    tokio::time::timeout(PATIENCE, writer).await.expect("writer finishes").expect("joins");
}

#[tokio::test(start_paused = true)]
async fn settings_move_the_initial_stream_window() {
    let config = SessionConfig { peer_window: PeerWindow::Enforce, ..SessionConfig::default() };
    let (mut client, _session, mut incoming) = connect(config, 64 * KIB);
    let initial = |value| Frame::Settings {
        clear: false,
        entries: vec![Setting { flags: 0, id: setting::INITIAL_WINDOW_SIZE, value }],
    };
    client.send(initial(1000)).await;
    client.open(1, &[], false).await;
    let stream = accept(&mut incoming).await;
    let writer = tokio::spawn(async move { stream.write(Bytes::from(pattern(5000))).await.map(|()| stream) });
    client.expect_reply(1).await;
    assert_eq!(drain_data(&mut client).await, (1000, false));
    // Raising the setting grows open streams' windows by the difference.
    client.send(initial(3000)).await;
    assert_eq!(drain_data(&mut client).await, (2000, false));
    client.send(Frame::WindowUpdate { stream_id: 1, delta: 2000 }).await;
    assert_eq!(drain_data(&mut client).await, (2000, false));
    tokio::time::timeout(PATIENCE, writer).await.expect("writer finishes").expect("joins").expect("wrote");
}

#[tokio::test(start_paused = true)]
async fn ignoring_peer_windows_sends_everything() {
    let (mut client, _session, mut incoming) = connect(SessionConfig::default(), 512 * KIB);
    client.open(1, &[], false).await;
    let stream = accept(&mut incoming).await;
    stream.write(Bytes::from(pattern(200 * KIB))).await.expect("writes");
    stream.close().await.expect("closes");
    client.expect_reply(1).await;
    assert_eq!(drain_data(&mut client).await, (200 * KIB, true));
}

#[tokio::test(start_paused = true)]
async fn a_larger_receive_window_is_announced_and_used() {
    let config = SessionConfig { receive_window: 128 * KIB as u32, ..SessionConfig::default() };
    let (mut client, session, mut incoming) = connect(config, 4 * KIB);
    let settings = client.next().await;
    let entry = Setting { flags: 0, id: setting::INITIAL_WINDOW_SIZE, value: 128 * KIB as u32 };
    assert_eq!(settings, Some(Frame::Settings { clear: false, entries: vec![entry] }));
    client.open(1, &[], false).await;
    let _stream = accept(&mut incoming).await;
    for chunk in pattern(128 * KIB).chunks(16 * KIB) {
        client.data(1, chunk, false).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(session.shared.lock().streams.get(&1).map(|s| s.buffered), Some(128 * KIB));
}

#[tokio::test(start_paused = true)]
async fn a_window_pushed_past_two_to_the_31_resets_the_stream() {
    let (mut client, _session, mut incoming) = connect(SessionConfig::default(), 4 * KIB);
    client.open(1, &[], false).await;
    let _stream = accept(&mut incoming).await;
    client.send(Frame::WindowUpdate { stream_id: 1, delta: MAX_STREAM_ID }).await;
    assert_eq!(client.next().await, Some(Frame::RstStream { stream_id: 1, status: RstStatus::FlowControlError }));
}
