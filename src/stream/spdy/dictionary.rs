//! The fixed zlib dictionary that SPDY/3 header compression starts from: 65
//! length-prefixed header words, then a run of common header text. Every
//! SPDY/3 peer primes both its inflater and its deflater with these exact
//! 1423 bytes; zlib identifies them by their Adler-32, [`DICTIONARY_ID`].

/// Adler-32 of [`DICTIONARY`], as a zlib stream that uses it names it.
pub const DICTIONARY_ID: u32 = 0xe3c6_a7c2;

/// Header names and values, each written with a 32-bit big-endian length before it.
const WORDS: [&str; 65] = [
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
];

/// Raw text after the words, with no length prefixes and no terminating NUL.
/// Split into pieces only for line length; the pieces join with nothing between.
const TAIL: &str = concat!(
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
    "203 Non-Authoritative Information",
    "204 No Content",
    "301 Moved Permanently",
    "400 Bad Request",
    "401 Unauthorized",
    "403 Forbidden",
    "404 Not Found",
    "500 Internal Server Error",
    "501 Not Implemented",
    "503 Service Unavailable",
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec",
    " 00:00:00",
    " Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT",
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,",
    "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
);

const fn dictionary_len() -> usize {
    let mut len = TAIL.len();
    let mut i = 0;
    while i < WORDS.len() {
        len += 4 + WORDS[i].len();
        i += 1;
    }
    len
}

/// Writes `src` into `out` at `pos`; returns the position after it.
const fn put(out: &mut [u8; DICTIONARY_LEN], mut pos: usize, src: &[u8]) -> usize {
    let mut i = 0;
    while i < src.len() {
        out[pos] = src[i];
        pos += 1;
        i += 1;
    }
    pos
}

const fn build() -> [u8; DICTIONARY_LEN] {
    let mut out = [0u8; DICTIONARY_LEN];
    let mut pos = 0;
    let mut i = 0;
    while i < WORDS.len() {
        let word = WORDS[i].as_bytes();
        pos = put(&mut out, pos, &(word.len() as u32).to_be_bytes());
        pos = put(&mut out, pos, word);
        i += 1;
    }
    put(&mut out, pos, TAIL.as_bytes());
    out
}

/// Length of [`DICTIONARY`] in bytes (1423).
pub const DICTIONARY_LEN: usize = dictionary_len();

/// The SPDY/3 header compression dictionary.
pub static DICTIONARY: [u8; DICTIONARY_LEN] = build();

#[cfg(test)]
mod tests {
    use super::*;

    /// Adler-32 as RFC 1950 defines it, written out so the test does not
    /// trust the zlib implementation it is checking.
    fn adler32(data: &[u8]) -> u32 {
        let (mut a, mut b) = (1u32, 0u32);
        for byte in data {
            a = (a + u32::from(*byte)) % 65521;
            b = (b + a) % 65521;
        }
        (b << 16) | a
    }

    #[test]
    fn dictionary_has_the_spec_length_and_checksum() {
        assert_eq!(DICTIONARY_LEN, 1423);
        assert_eq!(adler32(&DICTIONARY), DICTIONARY_ID);
    }

    #[test]
    fn dictionary_starts_and_ends_as_the_spec_does() {
        // Length 7 then "options"; the text run ends with "enq=0.".
        assert_eq!(&DICTIONARY[..11], b"\x00\x00\x00\x07options");
        assert!(DICTIONARY.ends_with(b",*,enq=0."));
    }
}
