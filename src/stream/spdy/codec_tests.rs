//! Tests of the frame codec: round trips, byte layouts from the SPDY/3 draft,
//! malformed input, and arbitrary bytes.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use tokio_util::codec::{Decoder, Encoder};

use super::super::frame::setting;
use super::*;

fn encode(frame: Frame) -> Vec<u8> {
    let mut buf = BytesMut::new();
    FrameCodec::default().encode(frame, &mut buf).expect("encodes");
    buf.to_vec()
}

fn decode_all(bytes: &[u8]) -> Result<Vec<Frame>, FrameError> {
    let mut codec = FrameCodec::default();
    let mut buf = BytesMut::from(bytes);
    let mut frames = Vec::new();
    while let Some(frame) = codec.decode(&mut buf)? {
        frames.push(frame);
    }
    Ok(frames)
}

fn decode_one(bytes: &[u8]) -> Result<Option<Frame>, FrameError> {
    FrameCodec::default().decode(&mut BytesMut::from(bytes))
}

fn every_frame_type() -> Vec<Frame> {
    let block = Bytes::from_static(b"\x78\xbb compressed-looking bytes");
    vec![
        Frame::SynStream(SynStream {
            stream_id: 1,
            associated_to: 0,
            priority: 7,
            slot: 0,
            fin: false,
            unidirectional: true,
            header_block: block.clone(),
        }),
        Frame::SynReply { stream_id: 3, fin: true, header_block: block.clone() },
        Frame::RstStream { stream_id: 5, status: RstStatus::FlowControlError },
        Frame::RstStream { stream_id: 5, status: RstStatus::Other(99) },
        Frame::Settings {
            clear: true,
            entries: vec![
                Setting { flags: 1, id: setting::INITIAL_WINDOW_SIZE, value: 1 << 20 },
                Setting { flags: 0, id: setting::MAX_CONCURRENT_STREAMS, value: 100 },
            ],
        },
        Frame::Settings { clear: false, entries: vec![] },
        Frame::Ping { id: 0xdead_beef },
        Frame::GoAway { last_good_stream_id: 7, status: GoAwayStatus::InternalError },
        Frame::Headers { stream_id: 9, fin: false, header_block: block },
        Frame::WindowUpdate { stream_id: 0, delta: MAX_STREAM_ID },
        Frame::Data { stream_id: 11, fin: true, data: Bytes::from_static(b"hello") },
        Frame::Data { stream_id: MAX_STREAM_ID, fin: false, data: Bytes::new() },
    ]
}

#[test]
fn every_frame_type_round_trips() {
    for frame in every_frame_type() {
        let bytes = encode(frame.clone());
        assert_eq!(decode_all(&bytes).expect("decodes"), vec![frame]);
    }
}

#[test]
fn decodes_incrementally_one_byte_at_a_time() {
    let frames = every_frame_type();
    let wire: Vec<u8> = frames.iter().cloned().flat_map(encode).collect();
    let (mut codec, mut buf, mut got) = (FrameCodec::default(), BytesMut::new(), Vec::new());
    for byte in wire {
        buf.extend_from_slice(&[byte]);
        if let Some(frame) = codec.decode(&mut buf).expect("decodes") {
            got.push(frame);
        }
    }
    assert_eq!(got, frames);
    assert!(buf.is_empty());
}

#[test]
fn syn_stream_matches_the_spec_layout() {
    let wire = [
        0x80, 0x03, 0x00, 0x01, // control bit, version 3, type 1 = SYN_STREAM
        0x03, 0x00, 0x00, 0x0d, // flags FIN|UNIDIRECTIONAL, length 13
        0x80, 0x00, 0x00, 0x05, // reserved bit (ignored) + stream id 5
        0x00, 0x00, 0x00, 0x03, // reserved bit + associated-to stream id 3
        0x60, 0x09, // priority 3 in the top three bits, five unused bits, slot 9
        0xaa, 0xbb, 0xcc, // header block, left compressed
    ];
    let expected = Frame::SynStream(SynStream {
        stream_id: 5,
        associated_to: 3,
        priority: 3,
        slot: 9,
        fin: true,
        unidirectional: true,
        header_block: Bytes::from_static(&[0xaa, 0xbb, 0xcc]),
    });
    assert_eq!(decode_one(&wire).expect("decodes"), Some(expected.clone()));
    let mut reencoded = wire;
    reencoded[8] = 0x00; // the encoder writes the reserved bit as zero
    assert_eq!(encode(expected), reencoded);
}

#[test]
fn fixed_size_control_frames_match_the_spec_layout() {
    let cases: Vec<(Vec<u8>, Frame)> = vec![
        (
            // control, version 3, type 3 = RST_STREAM; flags 0, length 8; stream 1; status 5 = CANCEL
            vec![0x80, 3, 0, 3, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 5],
            Frame::RstStream { stream_id: 1, status: RstStatus::Cancel },
        ),
        (
            // type 6 = PING; length 4; ping id 1
            vec![0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1],
            Frame::Ping { id: 1 },
        ),
        (
            // type 7 = GOAWAY; length 8; last good stream 9; status 1 = PROTOCOL_ERROR
            vec![0x80, 3, 0, 7, 0, 0, 0, 8, 0, 0, 0, 9, 0, 0, 0, 1],
            Frame::GoAway { last_good_stream_id: 9, status: GoAwayStatus::ProtocolError },
        ),
        (
            // type 9 = WINDOW_UPDATE; length 8; stream 0 (the session); delta 0x10000
            vec![0x80, 3, 0, 9, 0, 0, 0, 8, 0, 0, 0, 0, 0, 1, 0, 0],
            Frame::WindowUpdate { stream_id: 0, delta: 0x1_0000 },
        ),
        (
            // type 4 = SETTINGS; flags 1 = CLEAR_SETTINGS, length 12; one entry:
            // flags 1 = PERSIST_VALUE and id 7 = INITIAL_WINDOW_SIZE in one word, value 0x20000
            vec![0x80, 3, 0, 4, 1, 0, 0, 12, 0, 0, 0, 1, 1, 0, 0, 7, 0, 2, 0, 0],
            Frame::Settings { clear: true, entries: vec![Setting { flags: 1, id: 7, value: 0x2_0000 }] },
        ),
        (
            // type 2 = SYN_REPLY; flags FIN, length 6; stream 1; header block "zz"
            vec![0x80, 3, 0, 2, 1, 0, 0, 6, 0, 0, 0, 1, b'z', b'z'],
            Frame::SynReply { stream_id: 1, fin: true, header_block: Bytes::from_static(b"zz") },
        ),
        (
            // type 8 = HEADERS; flags 0, length 5; stream 3; header block "h"
            vec![0x80, 3, 0, 8, 0, 0, 0, 5, 0, 0, 0, 3, b'h'],
            Frame::Headers { stream_id: 3, fin: false, header_block: Bytes::from_static(b"h") },
        ),
        (
            // DATA: control bit clear + stream 1; flags FIN, length 3; payload
            vec![0, 0, 0, 1, 1, 0, 0, 3, b'a', b'b', b'c'],
            Frame::Data { stream_id: 1, fin: true, data: Bytes::from_static(b"abc") },
        ),
    ];
    for (wire, frame) in cases {
        assert_eq!(decode_one(&wire).expect("decodes"), Some(frame.clone()), "decoding {}", frame.name());
        assert_eq!(encode(frame.clone()), wire, "encoding {}", frame.name());
    }
}

#[test]
fn truncated_input_waits_for_more() {
    for frame in every_frame_type() {
        let wire = encode(frame);
        for cut in 0..wire.len() {
            assert!(decode_one(&wire[..cut]).expect("no error on a prefix").is_none());
        }
    }
}

#[test]
fn rejects_malformed_frames() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1], "unsupported spdy version 2"),
        (vec![0x80, 3, 0, 3, 0, 0, 0, 4, 0, 0, 0, 1], "RST_STREAM frame has invalid length 4"),
        (vec![0x80, 3, 0, 6, 0, 0, 0, 8], "PING frame has invalid length 8"),
        (vec![0x80, 3, 0, 7, 0, 0, 0, 4], "GOAWAY frame has invalid length 4"),
        (vec![0x80, 3, 0, 9, 0, 0, 0, 9], "WINDOW_UPDATE frame has invalid length 9"),
        (vec![0x80, 3, 0, 1, 0, 0, 0, 9], "SYN_STREAM frame has invalid length 9"),
        (vec![0x80, 3, 0, 2, 0, 0, 0, 3], "SYN_REPLY frame has invalid length 3"),
        (vec![0x80, 3, 0, 4, 0, 0, 0, 5], "SETTINGS frame has invalid length 5"),
        (vec![0x80, 3, 0, 4, 0, 0, 0, 4, 0, 0, 0, 1], "settings frame declares 1 entries in 4 bytes"),
        (vec![0, 0, 0, 0, 0, 0, 0, 1, b'x'], "DATA frame on stream 0"),
        (vec![0x80, 3, 0, 3, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1], "RST_STREAM frame on stream 0"),
        (vec![0x80, 3, 0, 1, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], "SYN_STREAM frame on stream 0"),
    ];
    for (wire, message) in cases {
        let err = decode_one(&wire).expect_err(message);
        assert_eq!(err.to_string(), message);
    }
}

#[test]
fn rejects_an_oversized_frame_from_its_head_alone() {
    // A DATA head announcing 0xffffff bytes, with none of them sent: the codec
    // must refuse before buffering or reserving anything for the payload.
    let mut buf = BytesMut::from(&[0, 0, 0, 1, 0, 0xff, 0xff, 0xff][..]);
    let err = FrameCodec::new(1024).decode(&mut buf).expect_err("too large");
    assert!(matches!(err, FrameError::TooLarge { length: 0xff_ffff, max: 1024 }), "{err}");
    assert!(buf.capacity() < 1024);
}

#[test]
fn encoder_refuses_what_the_wire_cannot_carry() {
    let mut codec = FrameCodec::default();
    let mut buf = BytesMut::new();
    let big = Frame::Data { stream_id: 1, fin: false, data: Bytes::from(vec![0; MAX_PAYLOAD + 1]) };
    assert!(matches!(codec.encode(big, &mut buf), Err(FrameError::TooLarge { .. })));
    let wide = Frame::WindowUpdate { stream_id: 1, delta: 0x8000_0000 };
    assert!(matches!(codec.encode(wide, &mut buf), Err(FrameError::Overflow { .. })));
    assert!(buf.is_empty());
}

#[test]
fn skips_unknown_control_frames() {
    let mut wire = vec![
        0x80, 0x03, 0x00, 0x0a, // type 10 = CREDENTIAL (SPDY/3 only): skipped
        0x00, 0x00, 0x00, 0x03, 0x01, 0x02, 0x03, // length 3 and its payload
        0x80, 0x03, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, // type 0xffff, empty: skipped
    ];
    wire.extend(encode(Frame::Ping { id: 7 }));
    assert_eq!(decode_all(&wire).expect("decodes"), vec![Frame::Ping { id: 7 }]);
    // The skip also works when the unknown payload arrives in pieces.
    let (mut codec, mut buf) = (FrameCodec::default(), BytesMut::new());
    let mut got = Vec::new();
    for byte in wire {
        buf.extend_from_slice(&[byte]);
        got.extend(codec.decode(&mut buf).expect("decodes"));
    }
    assert_eq!(got, vec![Frame::Ping { id: 7 }]);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), limit in 0usize..64) {
        let mut codec = FrameCodec::new(limit * 8);
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(_)) = codec.decode(&mut buf) {}
    }

    #[test]
    fn any_split_decodes_the_same_frames(cuts in proptest::collection::vec(0usize..400, 0..8)) {
        let frames = every_frame_type();
        let wire: Vec<u8> = frames.iter().cloned().flat_map(encode).collect();
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % wire.len()).collect();
        cuts.sort_unstable();
        let (mut codec, mut buf, mut got, mut from) = (FrameCodec::default(), BytesMut::new(), Vec::new(), 0);
        for to in cuts.into_iter().chain([wire.len()]) {
            buf.extend_from_slice(&wire[from..to]);
            from = to;
            while let Some(frame) = codec.decode(&mut buf).expect("decodes") {
                got.push(frame);
            }
        }
        prop_assert_eq!(got, frames);
    }
}
