//! SPDY/3 header blocks: the [`Headers`] a stream carries and the per-session
//! zlib contexts that compress them. Each direction of a session has ONE
//! stateful context primed with the SPDY/3 dictionary; every block ends with a
//! sync flush, and blocks must be (de)compressed in wire order.

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::block::{decode_block, encode_block};
use super::dictionary::{DICTIONARY, DICTIONARY_ID};

/// Default bound on an inflated header block: 1 MiB.
pub const DEFAULT_MAX_HEADER_BLOCK: usize = 1024 * 1024;

/// A header block that cannot be built, compressed or inflated.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    #[error("header block is truncated")]
    Truncated,
    #[error("header block has {0} unexpected trailing bytes")]
    TrailingBytes(usize),
    #[error("invalid header name {0:?}")]
    InvalidName(String),
    #[error("header {0} has a value containing a nul byte")]
    InvalidValue(String),
    #[error("duplicate header name {0}")]
    DuplicateName(String),
    #[error("header block is not valid utf-8")]
    NotUtf8,
    #[error("header block inflates beyond {limit} bytes")]
    TooLarge { limit: usize },
    #[error("header block names zlib dictionary {0:#010x}, not the spdy/3 one")]
    WrongDictionary(u32),
    #[error("header block ends the zlib stream, which spdy never does")]
    StreamEnded,
    #[error("header block is not valid zlib data: {0}")]
    Inflate(#[from] flate2::DecompressError),
    #[error("header compression made no progress")]
    DeflateStalled,
    #[error("header compression failed: {0}")]
    Deflate(#[from] flate2::CompressError),
}

/// The headers of a stream: lowercase names, each with one or more values,
/// in the order they were added.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<(String, String)>,
}

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Headers::default()
    }

    pub(crate) fn with_capacity(n: usize) -> Self {
        Headers { entries: Vec::with_capacity(n) }
    }

    /// Adds a value for `name`, lowercased as SPDY requires; earlier values stay.
    pub fn append(&mut self, name: &str, value: impl Into<String>) {
        self.entries.push((name.to_ascii_lowercase(), value.into()));
    }

    /// The first value of `name`, compared case-insensitively.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, compared case-insensitively, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.entries.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// All (name, value) pairs in order; a multi-valued header appears once per value.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Number of (name, value) pairs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no headers.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<N: AsRef<str>, V: Into<String>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        let mut headers = Headers::new();
        for (name, value) in iter {
            headers.append(name.as_ref(), value);
        }
        headers
    }
}

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
#[path = "headers_tests.rs"]
mod tests;
