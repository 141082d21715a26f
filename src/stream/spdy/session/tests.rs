//! Session tests against a hand-written client over an in-memory pipe:
//! stream exchange, pings, resets and every way a session can end.

use bytes::Bytes;
use tokio::io::AsyncWriteExt;

use super::super::frame::{Frame, GoAwayStatus, RstStatus};
use super::super::headers::Headers;
use super::super::stream::StreamError;
use super::test_client::{PATIENCE, accept, connect, headers, read_to_end};
use super::*;

#[tokio::test(start_paused = true)]
async fn client_opens_a_stream_and_both_sides_exchange_data() {
    let (mut client, _session, mut incoming) = connect(SessionConfig::default(), 64 * 1024);
    client.open(1, &[("streamtype", "stdin"), ("requestid", "0")], false).await;
    let mut stream = accept(&mut incoming).await;
    assert_eq!(stream.id(), 1);
    assert_eq!(stream.headers().get("streamtype"), Some("stdin"));

    stream.reply(headers(&[("x-reply", "yes")])).await.expect("replies");
    let (reply, fin) = client.expect_reply(1).await;
    assert_eq!((reply.get("x-reply"), fin), (Some("yes"), false));

    client.data(1, b"hello ", false).await;
    client.data(1, b"server", true).await;
    assert_eq!(read_to_end(&mut stream).await, b"hello server");

    stream.write(Bytes::from_static(b"hi client")).await.expect("writes");
    stream.close().await.expect("closes");
    let data = client.next_skipping_session_credit().await;
    assert_eq!(data, Some(Frame::Data { stream_id: 1, fin: false, data: Bytes::from_static(b"hi client") }));
    assert_eq!(
        client.next_skipping_session_credit().await,
        Some(Frame::Data { stream_id: 1, fin: true, data: Bytes::new() })
    );
    // Closed both ways and still readable: reads keep saying end of stream.
    assert_eq!(stream.read().await.expect("readable"), None);
    assert!(matches!(stream.write(Bytes::from_static(b"late")).await, Err(StreamError::Closed(1))));
}

#[tokio::test(start_paused = true)]
async fn pings_from_the_client_are_echoed() {
    let (mut client, _session, _incoming) = connect(SessionConfig::default(), 4096);
    client.send(Frame::Ping { id: 1 }).await;
    assert_eq!(client.next().await, Some(Frame::Ping { id: 1 }));
    // An even id would be the answer to a server ping, so it is not echoed.
    client.send(Frame::Ping { id: 2 }).await;
    client.send(Frame::Ping { id: 3 }).await;
    assert_eq!(client.next().await, Some(Frame::Ping { id: 3 }));
}

#[tokio::test(start_paused = true)]
async fn header_contexts_carry_across_streams() {
    let (mut client, _session, mut incoming) = connect(SessionConfig::default(), 64 * 1024);
    let kinds = ["error", "stdin", "stdout", "stderr", "resize"];
    // Kept open: dropping a stream's handles would reset it.
    let mut streams = Vec::new();
    for (n, kind) in kinds.iter().enumerate() {
        let id = 2 * n as u32 + 1;
        client.open(id, &[("streamtype", kind), ("requestid", "7")], false).await;
        let stream = accept(&mut incoming).await;
        assert_eq!((stream.id(), stream.headers().get("streamtype")), (id, Some(*kind)));
        stream.reply(headers(&[("n", &n.to_string())])).await.expect("replies");
        let (reply, _) = client.expect_reply(id).await;
        assert_eq!(reply.get("n"), Some(n.to_string().as_str()));
        streams.push(stream);
    }
}

#[tokio::test(start_paused = true)]
async fn writing_or_closing_before_replying_replies_first() {
    let (mut client, _session, mut incoming) = connect(SessionConfig::default(), 4096);
    client.open(1, &[("streamtype", "stdout")], false).await;
    client.open(3, &[("streamtype", "stderr")], false).await;
    let (one, three) = (accept(&mut incoming).await, accept(&mut incoming).await);
    one.write(Bytes::from_static(b"x")).await.expect("writes");
    assert!(!client.expect_reply(1).await.1);
    assert!(matches!(client.next().await, Some(Frame::Data { stream_id: 1, fin: false, .. })));
    three.close().await.expect("closes");
    // Nothing was sent on stream 3, so FIN rides on the reply itself.
    assert!(client.expect_reply(3).await.1);
    assert!(matches!(one.reply(Headers::new()).await, Err(StreamError::AlreadyReplied(1))));
}

#[tokio::test(start_paused = true)]
async fn a_client_reset_fails_both_directions() {
    let (mut client, _session, mut incoming) = connect(SessionConfig::default(), 4096);
    client.open(1, &[("streamtype", "data")], false).await;
    let mut stream = accept(&mut incoming).await;
    client.send(Frame::RstStream { stream_id: 1, status: RstStatus::Cancel }).await;
    let read = tokio::time::timeout(PATIENCE, stream.read()).await.expect("read ends");
    assert!(matches!(read, Err(StreamError::Reset(1, RstStatus::Cancel))), "{read:?}");
    assert!(matches!(stream.write(Bytes::from_static(b"x")).await, Err(StreamError::Reset(1, _))));
}

#[tokio::test(start_paused = true)]
async fn server_reset_reaches_the_client() {
    let (mut client, _session, mut incoming) = connect(SessionConfig::default(), 4096);
    client.open(1, &[], false).await;
    let stream = accept(&mut incoming).await;
    stream.reset().await.expect("resets");
    assert_eq!(client.next().await, Some(Frame::RstStream { stream_id: 1, status: RstStatus::Cancel }));
}

#[tokio::test(start_paused = true)]
async fn close_sends_goaway_after_queued_data_and_ends_the_session() {
    let (mut client, session, mut incoming) = connect(SessionConfig::default(), 64 * 1024);
    client.open(1, &[], false).await;
    client.open(3, &[], false).await;
    let stream = accept(&mut incoming).await;
    let _second = accept(&mut incoming).await;
    stream.write(Bytes::from_static(b"last words")).await.expect("writes");
    tokio::time::timeout(PATIENCE, session.close()).await.expect("closes in time");
    assert!(matches!(client.expect_reply(1).await, (_, false)));
    assert!(matches!(client.next().await, Some(Frame::Data { stream_id: 1, .. })));
    let goaway = client.next().await;
    assert_eq!(goaway, Some(Frame::GoAway { last_good_stream_id: 3, status: GoAwayStatus::Ok }));
    assert_eq!(client.next().await, None);
    assert!(incoming.recv().await.is_none());
    assert!(matches!(stream.write(Bytes::from_static(b"x")).await, Err(StreamError::SessionClosed)));
}

#[tokio::test(start_paused = true)]
async fn the_client_hanging_up_ends_the_session_and_its_tasks() {
    let (mut client, session, mut incoming) = connect(SessionConfig::default(), 4096);
    client.open(1, &[], false).await;
    let mut stream = accept(&mut incoming).await;
    client.data(1, b"partial", false).await;
    drop(client);
    tokio::time::timeout(PATIENCE, session.closed()).await.expect("tasks end");
    assert_eq!(stream.read().await.expect("buffered data survives").as_deref(), Some(&b"partial"[..]));
    assert!(matches!(stream.read().await, Err(StreamError::SessionClosed)));
    assert!(incoming.recv().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn dropping_the_session_stops_its_tasks() {
    let (_client, session, mut incoming) = connect(SessionConfig::default(), 4096);
    let tasks = session.tasks.clone();
    drop(session);
    tokio::time::timeout(PATIENCE, tasks.wait()).await.expect("tasks end");
    assert!(incoming.recv().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_malformed_frame_gets_goaway_protocol_error() {
    let (mut client, session, _incoming) = connect(SessionConfig::default(), 4096);
    // A PING head with version 2: the codec refuses it and framing is lost.
    client.frames.get_mut().write_all_buf(&mut &[0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1][..]).await.expect("writes");
    let goaway = client.next().await;
    assert_eq!(goaway, Some(Frame::GoAway { last_good_stream_id: 0, status: GoAwayStatus::ProtocolError }));
    assert_eq!(client.next().await, None);
    tokio::time::timeout(PATIENCE, session.closed()).await.expect("tasks end");
}

#[tokio::test(start_paused = true)]
async fn a_bad_header_block_gets_goaway_protocol_error() {
    let (mut client, _session, _incoming) = connect(SessionConfig::default(), 4096);
    let syn = super::super::frame::SynStream {
        stream_id: 1,
        header_block: Bytes::from_static(b"definitely not zlib"),
        ..Default::default()
    };
    client.send(Frame::SynStream(syn)).await;
    assert!(matches!(client.next().await, Some(Frame::GoAway { status: GoAwayStatus::ProtocolError, .. })));
}

#[tokio::test(start_paused = true)]
async fn refuses_stream_ids_a_client_may_not_use() {
    let (mut client, _session, mut incoming) = connect(SessionConfig::default(), 4096);
    client.open(2, &[], false).await;
    assert_eq!(client.next().await, Some(Frame::RstStream { stream_id: 2, status: RstStatus::ProtocolError }));
    client.open(5, &[], false).await;
    let _five = accept(&mut incoming).await;
    client.open(3, &[], false).await;
    assert_eq!(client.next().await, Some(Frame::RstStream { stream_id: 3, status: RstStatus::ProtocolError }));
}

#[tokio::test(start_paused = true)]
async fn data_after_fin_resets_the_stream() {
    let (mut client, _session, mut incoming) = connect(SessionConfig::default(), 4096);
    client.open(1, &[], true).await;
    let _stream = accept(&mut incoming).await;
    client.data(1, b"too late", false).await;
    let reset = client.next_skipping_session_credit().await;
    assert_eq!(reset, Some(Frame::RstStream { stream_id: 1, status: RstStatus::StreamAlreadyClosed }));
}

#[tokio::test(start_paused = true)]
async fn dropped_handles_end_the_stream() {
    let (mut client, session, mut incoming) = connect(SessionConfig::default(), 4096);
    client.open(1, &[], false).await;
    client.open(3, &[], false).await;
    let (reader, writer) = accept(&mut incoming).await.into_split();
    drop(writer);
    assert!(client.expect_reply(1).await.1, "a dropped writer sends FIN");
    drop(reader);
    assert_eq!(client.next().await, Some(Frame::RstStream { stream_id: 1, status: RstStatus::Cancel }));
    drop(accept(&mut incoming).await);
    assert_eq!(client.next().await, Some(Frame::RstStream { stream_id: 3, status: RstStatus::Cancel }));
    assert!(session.shared.lock().streams.is_empty(), "closed streams without handles are forgotten");
}

#[tokio::test(start_paused = true)]
async fn streams_beyond_the_limit_are_refused() {
    let config = SessionConfig { max_streams: 1, ..SessionConfig::default() };
    let (mut client, session, mut incoming) = connect(config, 4096);
    client.open(1, &[], false).await;
    let _one = accept(&mut incoming).await;
    client.open(3, &[], false).await;
    assert_eq!(client.next().await, Some(Frame::RstStream { stream_id: 3, status: RstStatus::RefusedStream }));
    // GOAWAY names the last stream accepted, not the last one refused.
    tokio::time::timeout(PATIENCE, session.close()).await.expect("closes");
    assert_eq!(client.next().await, Some(Frame::GoAway { last_good_stream_id: 1, status: GoAwayStatus::Ok }));
}

#[tokio::test(start_paused = true)]
async fn headers_frames_keep_the_inflater_in_step() {
    let (mut client, _session, mut incoming) = connect(SessionConfig::default(), 4096);
    client.open(1, &[("streamtype", "stdin")], false).await;
    let mut stream = accept(&mut incoming).await;
    // A HEADERS frame in between uses the client's deflater; the server must
    // inflate it too or the next SYN_STREAM would not decode.
    let header_block = client.compress(&headers(&[("extra", "1")]));
    client.send(Frame::Headers { stream_id: 1, fin: true, header_block }).await;
    client.open(3, &[("streamtype", "stdout")], false).await;
    assert_eq!(accept(&mut incoming).await.headers().get("streamtype"), Some("stdout"));
    assert_eq!(stream.read().await.expect("readable"), None, "FIN on HEADERS ends the stream");
}

#[test]
fn handles_can_move_between_tasks() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Session>();
    send_sync::<IncomingStream>();
    send_sync::<super::super::stream::StreamReader>();
    send_sync::<super::super::stream::StreamWriter>();
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// After a valid stream opening, anything the client sends may end the
    /// session, but never panics it, and the session always winds down.
    #[test]
    fn arbitrary_client_bytes_end_cleanly(tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build();
        runtime.expect("runtime").block_on(async move {
            let (mut client, session, mut incoming) = connect(SessionConfig::default(), 4096);
            client.open(1, &[("streamtype", "data")], false).await;
            let mut stream = accept(&mut incoming).await;
            let _ = client.frames.get_mut().write_all(&tail).await;
            drop(client);
            tokio::time::timeout(PATIENCE, session.closed()).await.expect("session ends");
            while let Ok(Some(_)) = stream.read().await {}
        });
    }
}
