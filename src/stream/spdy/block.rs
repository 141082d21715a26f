//! The uncompressed SPDY/3 name/value header block: a 32-bit pair count, then
//! per pair a 32-bit length and a lowercase name, a 32-bit length and a value
//! in which NUL bytes separate the values of a multi-valued header.

use std::collections::HashSet;

use bytes::{Buf, BufMut};

use super::headers::{HeaderError, Headers};

/// Separates the values of one header inside a pair's value field.
const VALUE_SEPARATOR: char = '\0';

/// Checks that `headers` can be sent: non-empty lowercase names, and no NUL
/// inside a value (it would split the value in two on the other side).
pub fn check_headers(headers: &Headers) -> Result<(), HeaderError> {
    for (name, value) in headers.iter() {
        check_name(name)?;
        if value.contains(VALUE_SEPARATOR) {
            return Err(HeaderError::InvalidValue(name.to_string()));
        }
    }
    Ok(())
}

/// Serializes `headers`, merging repeated names into one NUL-separated value.
pub fn encode_block(headers: &Headers) -> Result<Vec<u8>, HeaderError> {
    check_headers(headers)?;
    let mut names: Vec<&str> = Vec::new();
    for (name, _) in headers.iter() {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let mut out = Vec::new();
    out.put_u32(length(names.len())?);
    for name in names {
        let value = headers.get_all(name).collect::<Vec<_>>().join("\0");
        out.put_u32(length(name.len())?);
        out.put_slice(name.as_bytes());
        out.put_u32(length(value.len())?);
        out.put_slice(value.as_bytes());
    }
    Ok(out)
}

/// Parses an inflated block. Names must be non-empty, lowercase and unique,
/// as the spec requires; the whole input must be used.
pub fn decode_block(mut src: &[u8]) -> Result<Headers, HeaderError> {
    let count = read_u32(&mut src)? as usize;
    // Every pair takes at least eight bytes, so a larger count cannot be honest
    // and must not size an allocation.
    if count > src.len() / 8 {
        return Err(HeaderError::Truncated);
    }
    let mut headers = Headers::with_capacity(count);
    let mut seen = HashSet::with_capacity(count);
    for _ in 0..count {
        let name = read_str(&mut src)?;
        check_name(name)?;
        if !seen.insert(name) {
            return Err(HeaderError::DuplicateName(name.to_string()));
        }
        for value in read_str(&mut src)?.split(VALUE_SEPARATOR) {
            headers.append(name, value);
        }
    }
    if !src.is_empty() {
        return Err(HeaderError::TrailingBytes(src.len()));
    }
    Ok(headers)
}

fn check_name(name: &str) -> Result<(), HeaderError> {
    let bad = |c: char| c.is_ascii_uppercase() || c == VALUE_SEPARATOR;
    if name.is_empty() || name.contains(bad) { Err(HeaderError::InvalidName(name.to_string())) } else { Ok(()) }
}

fn length(len: usize) -> Result<u32, HeaderError> {
    u32::try_from(len).map_err(|_| HeaderError::TooLarge { limit: u32::MAX as usize })
}

fn read_u32(src: &mut &[u8]) -> Result<u32, HeaderError> {
    src.try_get_u32().map_err(|_| HeaderError::Truncated)
}

fn read_str<'a>(src: &mut &'a [u8]) -> Result<&'a str, HeaderError> {
    let len = read_u32(src)? as usize;
    let Some((field, rest)) = src.split_at_checked(len) else { return Err(HeaderError::Truncated) };
    *src = rest;
    std::str::from_utf8(field).map_err(|_| HeaderError::NotUtf8)
}
