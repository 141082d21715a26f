//! Content digests and the shape checks done before any request.

use sha2::{Digest as _, Sha256, Sha512};

const MAX_REPOSITORY_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// Digest algorithms we can check a body against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Algorithm {
    Sha256,
    Sha512,
}

/// The algorithm of a well-formed `algo:hex` digest, `None` when the
/// string is malformed or the algorithm unknown.
pub(crate) fn algorithm(digest: &str) -> Option<Algorithm> {
    let (algo, hex) = digest.split_once(':')?;
    let (algorithm, len) = match algo {
        "sha256" => (Algorithm::Sha256, 64),
        "sha512" => (Algorithm::Sha512, 128),
        _ => return None,
    };
    let lower_hex = hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    (hex.len() == len && lower_hex).then_some(algorithm)
}

/// `sha256:<hex>` of `body`: the form every pinned reference uses.
pub(crate) fn sha256_of(body: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(body)))
}

/// Whether `body` has `digest`, in whichever supported algorithm it names.
pub(crate) fn matches(digest: &str, body: &[u8]) -> bool {
    match algorithm(digest) {
        Some(Algorithm::Sha256) => sha256_of(body) == digest,
        Some(Algorithm::Sha512) => format!("sha512:{}", hex::encode(Sha512::digest(body))) == digest,
        None => false,
    }
}

/// Checks a repository path against the distribution name grammar, loosely:
/// lowercase components of `[a-z0-9._-]` that start and end alphanumeric.
/// It keeps anything that would change the URL's meaning out of the path.
pub(crate) fn check_repository(repository: &str) -> Result<(), String> {
    if repository.is_empty() {
        return Err("repository is empty".into());
    }
    if repository.len() > MAX_REPOSITORY_LEN {
        return Err(format!("repository is longer than {MAX_REPOSITORY_LEN} characters"));
    }
    for component in repository.split('/') {
        let bytes = component.as_bytes();
        let edges_ok = matches!((bytes.first(), bytes.last()), (Some(a), Some(z)) if is_alnum(*a) && is_alnum(*z));
        let chars_ok = bytes.iter().all(|&b| is_alnum(b) || matches!(b, b'.' | b'_' | b'-'));
        if !edges_ok || !chars_ok {
            return Err(format!("invalid path component {component:?}"));
        }
    }
    Ok(())
}

/// A reference is a digest when it has a colon, else a tag.
pub(crate) fn check_reference(reference: &str) -> Result<(), String> {
    if reference.contains(':') {
        return algorithm(reference).map(|_| ()).ok_or_else(|| format!("invalid digest {reference:?}"));
    }
    let bytes = reference.as_bytes();
    let first_ok = bytes.first().is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'_');
    let rest_ok = bytes.iter().all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if first_ok && rest_ok && bytes.len() <= MAX_TAG_LEN { Ok(()) } else { Err(format!("invalid tag {reference:?}")) }
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_checked_in_their_own_algorithm() {
        let body = b"{}";
        let d256 = sha256_of(body);
        assert_eq!(algorithm(&d256), Some(Algorithm::Sha256));
        assert!(matches(&d256, body));
        assert!(!matches(&d256, b"{ }"));
        let d512 = format!("sha512:{}", hex::encode(Sha512::digest(body)));
        assert!(matches(&d512, body));
        assert_eq!(algorithm("sha256:ABC"), None);
        assert_eq!(algorithm(&d256.to_uppercase()), None);
        assert!(!matches("md5:abc", body));
    }

    #[test]
    fn names_are_checked() {
        assert!(check_repository("library/busybox").is_ok());
        assert!(check_repository("a/b-c/d_e.f").is_ok());
        for bad in ["", "Upper", "a//b", "/a", "a/", "a/../b", "a?b", "a#b", "-a"] {
            assert!(check_repository(bad).is_err(), "{bad}");
        }
        assert!(check_reference("latest").is_ok());
        assert!(check_reference("v1.2_3-rc").is_ok());
        assert!(check_reference(&sha256_of(b"x")).is_ok());
        for bad in ["", ".x", "a/b", "a?b", "sha256:xyz", &"a".repeat(129)] {
            assert!(check_reference(bad).is_err(), "{bad}");
        }
    }
}
