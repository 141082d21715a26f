//! Reading registry answers: descriptors from headers or bodies, and
//! failures mapped to what a caller acts on.

use std::fmt;

use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName};
use http::{HeaderMap, StatusCode};
use serde::Deserialize;

use super::{
    Call, DOCKER_CONTENT_DIGEST, KNOWN_MANIFEST_TYPES, MAX_MANIFEST_BYTES, MAX_SMALL_BODY_BYTES, MEDIA_TYPE_OCI_INDEX,
    MEDIA_TYPE_OCI_MANIFEST, ResolveError, Resolved, describe, digest,
};

/// The descriptor a `HEAD` answer gives, or `None` when it lacks a sha256
/// digest, a media type or a size and the manifest must be fetched.
pub(super) fn from_head(headers: &HeaderMap, reference: &str) -> Result<Option<Resolved>, String> {
    let named = header_str(headers, &DOCKER_CONTENT_DIGEST);
    let by_digest = reference.contains(':');
    if let Some(named) = named {
        if digest::algorithm(named).is_none() {
            return Err(format!("invalid Docker-Content-Digest {named:?}"));
        }
        if by_digest && named != reference {
            return Err(format!("asked for {reference}, the registry named {named}"));
        }
    }
    let digest = match named.or(by_digest.then_some(reference)) {
        Some(d) if digest::algorithm(d) == Some(digest::Algorithm::Sha256) => d,
        _ => return Ok(None),
    };
    let media_type = header_str(headers, &CONTENT_TYPE).map(media_type_essence).filter(|m| !m.is_empty());
    let size = header_str(headers, &CONTENT_LENGTH).and_then(|s| s.parse::<u64>().ok());
    Ok(match (media_type, size) {
        (Some(media_type), Some(size)) => Some(Resolved { digest: digest.to_string(), media_type, size }),
        _ => None,
    })
}

/// Reads a manifest and describes it, checking the body against the digest
/// the registry named and the one asked for.
pub(super) async fn from_get(
    call: &Call<'_>,
    response: reqwest::Response,
    reference: &str,
) -> Result<Resolved, ResolveError> {
    let target = call.target();
    let headers = response.headers().clone();
    let body = read_limited(response, MAX_MANIFEST_BYTES, call.client_cert).await.map_err(|e| match e {
        ReadError::TooLarge => target.protocol(format!("manifest is larger than {MAX_MANIFEST_BYTES} bytes")),
        ReadError::Transport(e) => target.unavailable(e),
    })?;
    let digest = digest::sha256_of(&body);
    if let Some(named) = header_str(&headers, &DOCKER_CONTENT_DIGEST)
        && !digest::matches(named, &body)
    {
        return Err(target.protocol(format!("manifest content does not match Docker-Content-Digest {named}")));
    }
    if reference.contains(':') && !digest::matches(reference, &body) {
        return Err(target.protocol(format!("manifest content does not match the requested digest {reference}")));
    }
    let header_type = header_str(&headers, &CONTENT_TYPE).map(media_type_essence);
    let media_type = match header_type {
        Some(t) if KNOWN_MANIFEST_TYPES.contains(&t.as_str()) => t,
        other => body_media_type(&body)
            .or(other.filter(|t| !t.is_empty()))
            .ok_or_else(|| target.protocol("manifest has no media type"))?,
    };
    Ok(Resolved { digest, media_type, size: body.len() as u64 })
}

/// The media type a manifest declares, or the one its shape implies.
fn body_media_type(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Shape {
        #[serde(default, rename = "mediaType")]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
        #[serde(default)]
        layers: Option<serde_json::Value>,
    }
    let shape: Shape = serde_json::from_slice(body).ok()?;
    match (shape.media_type, shape.manifests, shape.layers) {
        (Some(t), _, _) if !t.is_empty() => Some(t),
        (_, Some(_), _) => Some(MEDIA_TYPE_OCI_INDEX.to_string()),
        (_, _, Some(_)) => Some(MEDIA_TYPE_OCI_MANIFEST.to_string()),
        _ => None,
    }
}

/// Maps a failed answer to the error a caller can act on.
pub(super) async fn status_error(call: &Call<'_>, response: reqwest::Response, reference: &str) -> ResolveError {
    let target = call.target();
    let status = response.status();
    let detail = error_detail(response).await;
    match status {
        StatusCode::NOT_FOUND => target.not_found(reference),
        StatusCode::UNAUTHORIZED if call.credentials.is_none() => {
            target.unauthorized(format!("authentication required{detail}"))
        }
        StatusCode::UNAUTHORIZED => target.unauthorized(format!("the credentials were rejected{detail}")),
        StatusCode::FORBIDDEN => target.unauthorized(format!("access forbidden{detail}")),
        StatusCode::TOO_MANY_REQUESTS => target.unavailable(format!("rate limited (HTTP 429){detail}")),
        s if s.is_server_error() => target.unavailable(format!("HTTP {s}{detail}")),
        // What a TLS server answers to plain HTTP.
        StatusCode::BAD_REQUEST if !call.endpoint.is_https() && detail.is_empty() => {
            target.protocol(format!("unexpected HTTP {status} (is it an https endpoint?)"))
        }
        s => target.protocol(format!("unexpected HTTP {s}{detail}")),
    }
}

/// `": CODE: message; ..."` from a distribution error body, or nothing.
pub(super) async fn error_detail(response: reqwest::Response) -> String {
    #[derive(Deserialize)]
    struct Envelope {
        #[serde(default)]
        errors: Vec<Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let Ok(body) = read_limited(response, MAX_SMALL_BODY_BYTES, false).await else { return String::new() };
    let Ok(envelope) = serde_json::from_slice::<Envelope>(&body) else { return String::new() };
    let parts: Vec<String> = envelope
        .errors
        .iter()
        .map(|e| format!("{} {}", e.code, e.message).trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if parts.is_empty() { String::new() } else { format!(": {}", parts.join("; ")) }
}

pub(super) enum ReadError {
    TooLarge,
    Transport(String),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::TooLarge => f.write_str("answer too large"),
            ReadError::Transport(e) => f.write_str(e),
        }
    }
}

/// Reads a body, refusing more than `limit` bytes before buffering them.
pub(super) async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
    client_cert: bool,
) -> Result<Vec<u8>, ReadError> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(ReadError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) =
        response.chunk().await.map_err(|e| ReadError::Transport(describe::send_error(e, client_cert)))?
    {
        if body.len() + chunk.len() > limit {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads what is left of a refused answer so its connection can be reused.
pub(super) async fn drain(response: reqwest::Response) {
    let _ = read_limited(response, MAX_SMALL_BODY_BYTES, false).await;
}

pub(super) fn header_str<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<&'h str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|s| !s.is_empty())
}

/// `application/json; charset=utf-8` → `application/json`.
fn media_type_essence(value: &str) -> String {
    value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::super::MEDIA_TYPE_DOCKER_MANIFEST;
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.insert(HeaderName::from_bytes(n.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn head_answers_are_used_when_complete() {
        let d = digest::sha256_of(b"m");
        let h = headers(&[
            ("docker-content-digest", &d),
            ("content-type", "application/vnd.oci.image.index.v1+json; charset=utf-8"),
            ("content-length", "123"),
        ]);
        let r = from_head(&h, "latest").unwrap().unwrap();
        assert_eq!((r.digest.as_str(), r.media_type.as_str(), r.size), (d.as_str(), MEDIA_TYPE_OCI_INDEX, 123));
        // By digest: the reference stands in for a missing header.
        let h2 = headers(&[("content-type", MEDIA_TYPE_DOCKER_MANIFEST), ("content-length", "5")]);
        assert_eq!(from_head(&h2, &d).unwrap().unwrap().digest, d);
        assert!(from_head(&h, &digest::sha256_of(b"other")).is_err(), "a different digest is an error");
    }

    #[test]
    fn incomplete_head_answers_fall_back_to_get() {
        let d = digest::sha256_of(b"m");
        assert_eq!(
            from_head(&headers(&[("content-type", MEDIA_TYPE_OCI_INDEX), ("content-length", "1")]), "t"),
            Ok(None)
        );
        assert_eq!(from_head(&headers(&[("docker-content-digest", &d), ("content-length", "1")]), "t"), Ok(None));
        assert_eq!(from_head(&headers(&[("docker-content-digest", &d), ("content-type", "x")]), "t"), Ok(None));
        let d512 = format!("sha512:{}", "a".repeat(128));
        let h = headers(&[("docker-content-digest", &d512), ("content-type", "x"), ("content-length", "1")]);
        assert_eq!(from_head(&h, "t"), Ok(None), "sha512 needs the body for a sha256");
        assert!(from_head(&headers(&[("docker-content-digest", "junk")]), "t").is_err());
    }

    #[test]
    fn body_media_types() {
        assert_eq!(body_media_type(br#"{"mediaType":"x/y"}"#).as_deref(), Some("x/y"));
        assert_eq!(body_media_type(br#"{"manifests":[]}"#).as_deref(), Some(MEDIA_TYPE_OCI_INDEX));
        assert_eq!(body_media_type(br#"{"config":{},"layers":[]}"#).as_deref(), Some(MEDIA_TYPE_OCI_MANIFEST));
        assert_eq!(body_media_type(b"{}"), None);
        assert_eq!(body_media_type(b"not json"), None);
    }

    #[tokio::test]
    async fn error_bodies_are_summarised() {
        let body =
            r#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"},{"code":"X"}]}"#;
        let response = reqwest::Response::from(http::Response::new(body));
        assert_eq!(error_detail(response).await, ": DENIED requested access to the resource is denied; X");
        assert_eq!(error_detail(reqwest::Response::from(http::Response::new("<html>"))).await, "");
    }
}
