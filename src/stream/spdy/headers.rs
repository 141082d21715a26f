//! SPDY/3 headers: the [`Headers`] a stream carries, and what can go wrong
//! in building, encoding or compressing a block of them.

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
