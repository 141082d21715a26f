//! The per-session zlib contexts that compress SPDY/3 header blocks. Each
//! direction of a session has ONE stateful context primed with the SPDY/3
//! dictionary; every block ends with a sync flush, and blocks must be
//! (de)compressed in wire order.

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::block::{decode_block, encode_block};
use super::dictionary::{DICTIONARY, DICTIONARY_ID};
use super::headers::{HeaderError, Headers};

/// Default bound on an inflated header block: 1 MiB.
pub const DEFAULT_MAX_HEADER_BLOCK: usize = 1024 * 1024;

/// The sending half of a session's header compression.
pub struct HeaderCompressor {
    zlib: Compress,
}

impl HeaderCompressor {
    /// A fresh deflate context primed with the SPDY/3 dictionary.
    pub fn new() -> Result<Self, HeaderError> {
        let mut zlib = Compress::new(Compression::default(), true);
        zlib.set_dictionary(&DICTIONARY)?;
        Ok(HeaderCompressor { zlib })
    }

    /// Compresses one header block, continuing the session's zlib stream and
    /// ending with a sync flush so the peer can inflate it on its own.
    pub fn compress(&mut self, headers: &Headers) -> Result<Bytes, HeaderError> {
        let raw = encode_block(headers)?;
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut used = 0;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(raw.len().max(256));
            }
            let (before_in, before_out) = (self.zlib.total_in(), self.zlib.total_out());
            let input = raw.get(used..).unwrap_or_default();
            self.zlib.compress_vec(input, &mut out, FlushCompress::Sync)?;
            used += (self.zlib.total_in() - before_in) as usize;
            let stalled = self.zlib.total_in() == before_in && self.zlib.total_out() == before_out;
            // The flush is complete once zlib returns with output space to
            // spare, or has nothing more to give for the input it has.
            if used == raw.len() && (out.len() < out.capacity() || stalled) {
                return Ok(Bytes::from(out));
            }
            if stalled {
                return Err(HeaderError::DeflateStalled);
            }
        }
    }
}

/// The receiving half of a session's header compression, bounded so that a
/// small block cannot inflate into an unbounded allocation.
pub struct HeaderDecompressor {
    zlib: Decompress,
    limit: usize,
}

impl HeaderDecompressor {
    /// A fresh inflate context refusing blocks that inflate beyond `limit` bytes.
    pub fn new(limit: usize) -> Self {
        HeaderDecompressor { zlib: Decompress::new(true), limit }
    }

    /// Inflates and parses one header block, continuing the session's zlib stream.
    pub fn decompress(&mut self, block: &[u8]) -> Result<Headers, HeaderError> {
        decode_block(&self.inflate(block)?)
    }

    fn inflate(&mut self, input: &[u8]) -> Result<Vec<u8>, HeaderError> {
        // Capacity never exceeds limit + 1: filling that last byte proves the block too large.
        let ceiling = self.limit.saturating_add(1);
        let mut out = Vec::with_capacity(input.len().saturating_mul(4).max(256).min(ceiling));
        let mut used = 0;
        loop {
            if out.len() == out.capacity() {
                if out.len() >= ceiling {
                    return Err(HeaderError::TooLarge { limit: self.limit });
                }
                out.reserve_exact(out.len().max(256).min(ceiling - out.len()));
            }
            let (before_in, before_out) = (self.zlib.total_in(), self.zlib.total_out());
            let input_left = input.get(used..).unwrap_or_default();
            let primed = self.step(input_left, &mut out)?;
            used += (self.zlib.total_in() - before_in) as usize;
            let progressed = primed || self.zlib.total_in() != before_in || self.zlib.total_out() != before_out;
            if out.len() > self.limit {
                return Err(HeaderError::TooLarge { limit: self.limit });
            }
            if used == input.len() && (out.len() < out.capacity() || !progressed) {
                return Ok(out);
            }
            if !progressed {
                return Err(HeaderError::Truncated);
            }
        }
    }

    /// One inflate call; true when it stopped to load the dictionary instead.
    fn step(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<bool, HeaderError> {
        match self.zlib.decompress_vec(input, out, FlushDecompress::Sync) {
            Ok(Status::StreamEnd) => Err(HeaderError::StreamEnded),
            Ok(Status::Ok | Status::BufError) => Ok(false),
            Err(e) => match e.needs_dictionary() {
                Some(DICTIONARY_ID) => {
                    self.zlib.set_dictionary(&DICTIONARY)?;
                    Ok(true)
                }
                Some(other) => Err(HeaderError::WrongDictionary(other)),
                None => Err(HeaderError::Inflate(e)),
            },
        }
    }
}

#[cfg(test)]
#[path = "compress_tests.rs"]
mod tests;
