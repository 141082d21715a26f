//! Tests of header blocks: the name/value layout, stateful compression across
//! blocks, blocks made by another zlib, and hostile input.

use flate2::{Compress, Compression, FlushCompress};
use proptest::prelude::*;

use super::super::block::{decode_block, encode_block};
use super::*;

const LIMIT: usize = DEFAULT_MAX_HEADER_BLOCK;

fn headers(pairs: &[(&str, &str)]) -> Headers {
    pairs.iter().copied().collect()
}

/// Three consecutive blocks from one deflate context at level 9 (as Go's
/// spdy framer compresses), made with a zlib independent of this crate:
/// {streamtype: error, requestid: 0}, {streamtype: stdin, requestid: 0},
/// {port: 8080, x-multi: a NUL b}. The first starts with the zlib head
/// 78 f9 and the dictionary id e3 c6 a7 c2; each ends with a sync flush.
const FOREIGN_BLOCKS: [&[u8]; 3] = [
    &[
        0x78, 0xf9, 0xe3, 0xc6, 0xa7, 0xc2, 0x02, 0xe5, 0x0e, 0x70, 0x3a, 0x2b, 0x29, 0x4a, 0x4d, 0xcc, 0x85, 0x16,
        0x25, 0xac, 0xa9, 0xa0, 0x80, 0x06, 0x32, 0x38, 0x8b, 0x20, 0xd1, 0x96, 0x09, 0x4a, 0xce, 0x8c, 0x06, 0x00,
        0x00, 0x00, 0x00, 0xff, 0xff,
    ],
    &[0xc2, 0xae, 0xb8, 0xb8, 0x04, 0x98, 0x81, 0x30, 0x15, 0x03, 0x00, 0x00, 0x00, 0xff, 0xff],
    &[
        0x82, 0x2a, 0x06, 0x96, 0xec, 0x45, 0xe0, 0x4c, 0x64, 0x61, 0x60, 0x01, 0x12, 0x63, 0xaf, 0xd0, 0xcd, 0x2d,
        0xcd, 0x29, 0xc9, 0x04, 0x97, 0xbf, 0x0c, 0x49, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff,
    ],
];

#[test]
fn name_value_block_matches_the_spec_layout() {
    let block = encode_block(&headers(&[("Port", "8080"), ("x", "a"), ("x", "b")])).expect("encodes");
    let expected: &[u8] = &[
        0, 0, 0, 2, // two name/value pairs
        0, 0, 0, 4, b'p', b'o', b'r', b't', // name length 4, lowercased name
        0, 0, 0, 4, b'8', b'0', b'8', b'0', // value length 4, value
        0, 0, 0, 1, b'x', // the repeated name appears once...
        0, 0, 0, 3, b'a', 0, b'b', // ...with its values joined by a NUL
    ];
    assert_eq!(block, expected);
    assert_eq!(decode_block(expected).expect("decodes"), headers(&[("port", "8080"), ("x", "a"), ("x", "b")]));
}

#[test]
fn consecutive_blocks_share_one_context_each_way() {
    let blocks = [
        headers(&[("streamtype", "error"), ("requestid", "0")]),
        headers(&[("streamtype", "stdout"), ("requestid", "0")]),
        Headers::new(),
        headers(&[("port", "8080"), ("streamtype", "data"), ("requestid", "12")]),
    ];
    let mut deflate = HeaderCompressor::new().expect("deflater");
    let mut inflate = HeaderDecompressor::new(LIMIT);
    let compressed: Vec<Bytes> = blocks.iter().map(|h| deflate.compress(h).expect("compresses")).collect();
    // Only the first block carries the zlib head naming the SPDY/3 dictionary.
    assert_eq!(&compressed[0][..6], &[0x78, 0xbb, 0xe3, 0xc6, 0xa7, 0xc2]);
    for (block, expected) in compressed.iter().zip(&blocks) {
        assert!(block.ends_with(&[0, 0, 0xff, 0xff]), "sync flush marker");
        assert_eq!(&inflate.decompress(block).expect("inflates"), expected);
    }
    // A later block means nothing to a fresh context: the state is per session.
    assert!(HeaderDecompressor::new(LIMIT).decompress(&compressed[1]).is_err());
    // Repetition makes later blocks smaller than the first.
    assert!(compressed[1].len() < compressed[0].len());
}

#[test]
fn inflates_blocks_from_another_zlib() {
    let mut inflate = HeaderDecompressor::new(LIMIT);
    let got: Vec<Headers> = FOREIGN_BLOCKS.iter().map(|b| inflate.decompress(b).expect("inflates")).collect();
    assert_eq!(got[0], headers(&[("streamtype", "error"), ("requestid", "0")]));
    assert_eq!(got[1], headers(&[("streamtype", "stdin"), ("requestid", "0")]));
    assert_eq!(got[2], headers(&[("port", "8080"), ("x-multi", "a"), ("x-multi", "b")]));
    assert_eq!(got[2].get_all("X-Multi").collect::<Vec<_>>(), ["a", "b"]);
}

#[test]
fn rejects_garbage_zlib() {
    for garbage in [&b""[..], b"\x00", b"not zlib at all", b"\x78\xbb", &[0xff; 64]] {
        assert!(HeaderDecompressor::new(LIMIT).decompress(garbage).is_err(), "{garbage:?}");
    }
    let mut inflate = HeaderDecompressor::new(LIMIT);
    inflate.decompress(FOREIGN_BLOCKS[0]).expect("inflates");
    assert!(inflate.decompress(b"\xff\xff\xff\xff garbage").is_err());
}

#[test]
fn rejects_a_truncated_block() {
    // The last seven bytes hold the final bits of the block and the sync flush
    // marker; any shorter prefix lacks part of the name/value block.
    let block = FOREIGN_BLOCKS[0];
    for cut in 0..block.len() - 7 {
        let err = HeaderDecompressor::new(LIMIT).decompress(&block[..cut]);
        assert!(err.is_err(), "cut at {cut}");
    }
}

#[test]
fn rejects_another_dictionary() {
    let mut zlib = Compress::new(Compression::default(), true);
    zlib.set_dictionary(b"some other dictionary").expect("dictionary");
    let mut out = Vec::with_capacity(256);
    zlib.compress_vec(&[0, 0, 0, 0], &mut out, FlushCompress::Sync).expect("compresses");
    let err = HeaderDecompressor::new(LIMIT).decompress(&out).expect_err("wrong dictionary");
    assert!(matches!(err, HeaderError::WrongDictionary(_)), "{err}");
}

#[test]
fn a_block_inflating_past_the_limit_is_refused() {
    let big = "a".repeat(4 * 1024 * 1024);
    let block = HeaderCompressor::new().expect("deflater").compress(&headers(&[("x", &big)])).expect("compresses");
    assert!(block.len() < 64 * 1024, "a zip bomb: small in, big out");
    let err = HeaderDecompressor::new(LIMIT).decompress(&block).expect_err("too large");
    assert!(matches!(err, HeaderError::TooLarge { limit: LIMIT }), "{err}");
}

#[test]
fn tiny_limits_are_enforced_without_panicking() {
    let block = &FOREIGN_BLOCKS[0];
    for limit in [0, 1, 10, 44] {
        let err = HeaderDecompressor::new(limit).decompress(block).expect_err("over the limit");
        assert!(matches!(err, HeaderError::TooLarge { .. }), "limit {limit}: {err}");
    }
    // The first block inflates to exactly 45 bytes.
    assert!(HeaderDecompressor::new(45).decompress(block).is_ok());
}

#[test]
fn rejects_malformed_name_value_blocks() {
    let cases: Vec<(&[u8], &str)> = vec![
        (&[0, 0, 0], "header block is truncated"),
        (&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0], "header block is truncated"),
        (&[0, 0, 0, 1, 0, 0, 0, 1, b'a', 0, 0, 0, 9, b'v'], "header block is truncated"),
        (&[0, 0, 0, 1, 0, 0, 0, 1, b'A', 0, 0, 0, 0], "invalid header name \"A\""),
        (&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0], "invalid header name \"\""),
        (&[0, 0, 0, 2, 0, 0, 0, 1, b'a', 0, 0, 0, 0, 0, 0, 0, 1, b'a', 0, 0, 0, 0], "duplicate header name a"),
        (&[0, 0, 0, 0, 7], "header block has 1 unexpected trailing bytes"),
        (&[0, 0, 0, 1, 0, 0, 0, 1, b'a', 0, 0, 0, 1, 0xff], "header block is not valid utf-8"),
    ];
    for (block, message) in cases {
        assert_eq!(decode_block(block).expect_err(message).to_string(), message);
    }
}

#[test]
fn refuses_to_encode_ambiguous_headers() {
    let err = encode_block(&headers(&[("x", "a\0b")])).expect_err("nul in value");
    assert_eq!(err.to_string(), "header x has a value containing a nul byte");
}

#[test]
fn lookups_ignore_case() {
    let h = headers(&[("StreamType", "stdout"), ("port", "1"), ("port", "2")]);
    assert_eq!(h.get("streamtype"), Some("stdout"));
    assert_eq!(h.get("STREAMTYPE"), Some("stdout"));
    assert_eq!(h.get_all("port").collect::<Vec<_>>(), ["1", "2"]);
    assert_eq!(h.get("missing"), None);
    assert_eq!(h.iter().next(), Some(("streamtype", "stdout")));
    assert_eq!(h.len(), 3);
}

fn header_strategy() -> impl Strategy<Value = Headers> {
    proptest::collection::vec(("[a-z][a-z0-9-]{0,12}", "[ -~]{0,40}"), 0..8).prop_map(|pairs| {
        // Group repeated names together so the decoded order matches.
        let mut sorted = pairs;
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        sorted.into_iter().collect()
    })
}

proptest! {
    #[test]
    fn arbitrary_headers_round_trip_on_shared_contexts(blocks in proptest::collection::vec(header_strategy(), 1..6)) {
        let mut deflate = HeaderCompressor::new().expect("deflater");
        let mut inflate = HeaderDecompressor::new(LIMIT);
        for block in blocks {
            let compressed = deflate.compress(&block).expect("compresses");
            prop_assert_eq!(inflate.decompress(&compressed).expect("inflates"), block);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decompressor(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        limit in 0usize..2048,
    ) {
        let _ = HeaderDecompressor::new(limit).decompress(&bytes);
        let mut primed = HeaderDecompressor::new(1024);
        primed.decompress(FOREIGN_BLOCKS[0]).expect("inflates");
        let _ = primed.decompress(&bytes);
        let _ = decode_block(&bytes);
    }
}
