//! Frame parsing and header rewriting of `authority.rs`, on hand-built HTTP/2 input.

use super::*;

const SETTINGS: [u8; 9] = [0, 0, 0, 4, 0, 0, 0, 0, 0];
const SOCKET: &[u8] = b"%2Frun%2Fpinshim%2Fpinshim.sock";

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    put_frame_head(&mut out, payload.len(), kind, flags, stream);
    out.extend_from_slice(payload);
    out.to_vec()
}

/// A literal with incremental indexing and a static-table name, as
/// C-core sends `:authority` (static index 1).
fn indexed_literal(name_index: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![0x40 | name_index];
    put_string(&mut out, value);
    out
}

/// `:method POST`, `:scheme http`, `:path /runtime.v1.RuntimeService/Version`.
fn request_start() -> Vec<u8> {
    let mut out = vec![0x83, 0x86, 0x04];
    put_string(&mut out, b"/runtime.v1.RuntimeService/Version");
    out
}

fn run(input: &[u8], chunk: usize) -> io::Result<(Vec<u8>, Flow)> {
    let mut filter = Filter::default();
    let mut out = BytesMut::new();
    let mut flow = Flow::Continue;
    for piece in input.chunks(chunk) {
        if flow == Flow::PassThrough {
            out.extend_from_slice(piece);
            continue;
        }
        flow = filter.feed(piece, &mut out)?;
    }
    Ok((out.to_vec(), flow))
}

/// The frames after the preface.
fn frames(mut bytes: &[u8]) -> Vec<(FrameHead, Vec<u8>)> {
    assert_eq!(&bytes[..PREFACE.len()], PREFACE);
    bytes = &bytes[PREFACE.len()..];
    let mut frames = Vec::new();
    while let Some(head) = FrameHead::parse(bytes) {
        let end = FRAME_HEAD_LEN + head.len;
        frames.push((head, bytes[FRAME_HEAD_LEN..end].to_vec()));
        bytes = &bytes[end..];
    }
    assert!(bytes.is_empty(), "trailing partial frame");
    frames
}

/// What h2 would decode from each header block of the output, with a
/// table of its own that must never be needed.
fn server_blocks(output: &[u8]) -> Vec<Vec<Field>> {
    let mut blocks = Vec::new();
    let mut fragment = Vec::new();
    for (head, payload) in frames(output) {
        match head.kind {
            HEADERS => {
                assert_eq!(head.flags & PADDED, 0);
                let skip = if head.flags & PRIORITY != 0 { 5 } else { 0 };
                fragment = payload[skip..].to_vec();
            }
            CONTINUATION => fragment.extend_from_slice(&payload),
            _ => continue,
        }
        assert!(head.len <= MAX_FRAME_SIZE);
        if head.flags & END_HEADERS != 0 {
            // A fresh decoder each time: no block may refer to a table.
            blocks.push(Decoder::new().decode(&fragment).expect("h2 decodes the block"));
        }
    }
    blocks
}

fn authority(fields: &[Field]) -> Option<&[u8]> {
    fields.iter().find(|(name, _)| name == AUTHORITY).map(|(_, value)| &value[..])
}

fn connection(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = PREFACE.to_vec();
    out.extend_from_slice(&SETTINGS);
    frames.iter().for_each(|f| out.extend_from_slice(f));
    out
}

#[test]
fn valid_or_absent_authority_passes_through_unchanged() {
    for block in [[request_start(), indexed_literal(1, b"localhost")].concat(), request_start()] {
        let input = connection(&[frame(HEADERS, END_HEADERS, 1, &block), frame(0x0, END_STREAM, 1, b"\0\0\0\0\0")]);
        for chunk in [1, 7, input.len()] {
            let (output, flow) = run(&input, chunk).unwrap();
            assert_eq!(output, input);
            assert_eq!(flow, Flow::PassThrough);
        }
    }
}

#[test]
fn percent_encoded_authority_is_rewritten() {
    let block = [request_start(), indexed_literal(1, SOCKET), indexed_literal(31, b"application/grpc")].concat();
    let data = frame(0x0, 0, 1, b"\0\0\0\0\0");
    let input = connection(&[frame(HEADERS, END_HEADERS, 1, &block), data.clone()]);
    let (output, flow) = run(&input, input.len()).unwrap();
    assert_eq!(flow, Flow::Continue);
    let blocks = server_blocks(&output);
    assert_eq!(blocks.len(), 1);
    assert_eq!(authority(&blocks[0]), Some(REPLACEMENT));
    let mut expected = Decoder::new().decode(&block).unwrap();
    expected[3].1 = REPLACEMENT.to_vec();
    assert_eq!(blocks[0], expected);
    assert!(output.ends_with(&data), "DATA frames pass unchanged");
    assert_eq!(run(&input, 1).unwrap().0, output, "same output whatever the read sizes");
}

#[test]
fn raw_path_split_over_continuation_with_padding_and_priority() {
    let block = [request_start(), indexed_literal(1, b"/run/pinshim/pinshim.sock")].concat();
    let (a, rest) = block.split_at(10);
    let (b, c) = rest.split_at(5);
    let mut headers = vec![3];
    headers.extend_from_slice(&[0, 0, 0, 0, 15]);
    headers.extend_from_slice(a);
    headers.extend_from_slice(&[0; 3]);
    let input = connection(&[
        frame(HEADERS, END_STREAM | PADDED | PRIORITY, 1, &headers),
        frame(CONTINUATION, 0, 1, b),
        frame(CONTINUATION, END_HEADERS, 1, c),
    ]);
    let (output, _) = run(&input, 3).unwrap();
    let frames = frames(&output);
    let (head, payload) = &frames[1];
    assert_eq!((head.kind, head.flags, head.stream), (HEADERS, END_STREAM | PRIORITY | END_HEADERS, 1));
    assert_eq!(&payload[..5], &[0, 0, 0, 0, 15]);
    assert_eq!(authority(&server_blocks(&output)[0]), Some(REPLACEMENT));
}

#[test]
fn dynamic_table_references_across_requests() {
    // The second request names the first one's entries by dynamic index:
    // 62 is the newest (`te`), 63 the authority.
    let te = [0x40, 2, b't', b'e', 8, b't', b'r', b'a', b'i', b'l', b'e', b'r', b's'];
    let first = [request_start(), indexed_literal(1, SOCKET), te.to_vec()].concat();
    let second = [request_start(), vec![0x80 | 63, 0x80 | 62]].concat();
    let input = connection(&[frame(HEADERS, END_HEADERS, 1, &first), frame(HEADERS, END_HEADERS, 3, &second)]);
    let (output, _) = run(&input, 5).unwrap();
    let blocks = server_blocks(&output);
    assert_eq!(blocks.len(), 2);
    for block in &blocks {
        assert_eq!(authority(block), Some(REPLACEMENT));
        assert!(block.contains(&(b"te".to_vec(), b"trailers".to_vec())));
    }
}

#[test]
fn list_over_the_limit_is_cut_and_resplit_into_legal_frames() {
    let big = vec![b'x'; 4000];
    let mut first = [request_start(), indexed_literal(1, SOCKET)].concat();
    first.push(0x40);
    put_string(&mut first, b"x-big");
    put_string(&mut first, &big);
    // Six references to the 4000-byte entry: 24 kB from six bytes.
    let second = [request_start(), vec![0x80 | 62; 6]].concat();
    let input = connection(&[frame(HEADERS, END_HEADERS, 1, &first), frame(HEADERS, END_HEADERS, 3, &second)]);
    let (output, _) = run(&input, input.len()).unwrap();
    let kinds: Vec<_> = frames(&output).iter().map(|(head, _)| (head.kind, head.flags)).collect();
    assert_eq!(kinds[2..], [(HEADERS, 0), (CONTINUATION, END_HEADERS)]);
    let blocks = server_blocks(&output);
    assert_eq!(blocks[1].len(), 3 + 5, "the sixth reference is past the limit");
    let size: usize = blocks[1].iter().map(|(n, v)| n.len() + v.len() + 32).sum();
    assert!(size >= MAX_HEADER_LIST_SIZE, "h2 must still see a list over its limit");
}

#[test]
fn encoding_leaves_the_server_table_alone() {
    let long = vec![b'v'; 200];
    let fields = [(AUTHORITY.to_vec(), SOCKET.to_vec()), (b"k".to_vec(), long.clone())];
    let mut expected = vec![0x00, 10];
    expected.extend_from_slice(AUTHORITY);
    expected.push(9);
    expected.extend_from_slice(REPLACEMENT);
    expected.extend_from_slice(&[0x00, 1, b'k', 127, 73]);
    expected.extend_from_slice(&long);
    assert_eq!(encode(&fields), expected);
}

#[test]
fn malformed_before_the_decision_reaches_h2_unchanged() {
    let rewrite = [request_start(), indexed_literal(1, SOCKET)].concat();
    let cases = [
        connection(&[frame(CONTINUATION, END_HEADERS, 1, &rewrite)]),
        connection(&[frame(HEADERS, 0, 1, &rewrite), frame(0x0, 0, 1, b"")]),
        connection(&[frame(HEADERS, END_HEADERS | PADDED, 1, &[200, 0x83])]),
        connection(&[frame(HEADERS, END_HEADERS, 1, &[0x80 | 70])]),
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
    ];
    for input in cases {
        assert_eq!(run(&input, 4).unwrap(), (input.clone(), Flow::PassThrough));
    }
}

#[test]
fn malformed_after_rewriting_began_fails_the_connection() {
    let rewrite = [request_start(), indexed_literal(1, SOCKET)].concat();
    let input = connection(&[frame(HEADERS, END_HEADERS, 1, &rewrite), frame(HEADERS, END_HEADERS, 3, &[0x80 | 90])]);
    assert_eq!(run(&input, input.len()).unwrap_err().kind(), io::ErrorKind::InvalidData);
}

#[test]
fn header_block_is_bounded() {
    let rewrite = [request_start(), indexed_literal(1, SOCKET)].concat();
    let mut frames = vec![frame(HEADERS, END_HEADERS, 1, &rewrite), frame(HEADERS, 0, 3, &rewrite)];
    frames.extend((0..3).map(|_| frame(CONTINUATION, 0, 3, &[0; MAX_FRAME_SIZE])));
    let input = connection(&frames);
    assert!(run(&input, 1000).is_err());
}

proptest::proptest! {
    #[test]
    fn arbitrary_input_never_panics_whatever_the_read_sizes(
        rewriting in proptest::bool::ANY,
        body in proptest::collection::vec(proptest::num::u8::ANY, 0..2000),
        chunk in 1usize..64,
    ) {
        let first = [request_start(), indexed_literal(1, SOCKET)].concat();
        let mut frames = vec![body];
        if rewriting {
            frames.insert(0, frame(HEADERS, END_HEADERS, 1, &first));
        }
        let input = connection(&frames);
        let whole = run(&input, input.len()).map_err(|e| e.kind());
        proptest::prop_assert_eq!(run(&input, chunk).map_err(|e| e.kind()), whole);
    }
}
