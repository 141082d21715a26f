//! CNI spec versions: parsing, ordering, and the features each version has.

use std::fmt;

/// A CNI spec version as `major.minor.patch` (missing parts count as 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct SpecVersion(u32, u32, u32);

impl SpecVersion {
    /// The newest spec version this runtime implements.
    pub(crate) const NEWEST: Self = Self(1, 1, 0);
    /// CHECK and `prevResult` on DEL arrived in 0.4.0.
    const CHECK: Self = Self(0, 4, 0);
    /// STATUS (and GC) arrived in 1.1.0.
    const STATUS: Self = Self(1, 1, 0);

    /// Parses `1`, `1.1` or `1.1.0`; `None` for anything else.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let mut parts = [0u32; 3];
        for (index, piece) in text.split('.').enumerate() {
            let slot = parts.get_mut(index)?;
            if piece.is_empty() || !piece.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            *slot = piece.parse().ok()?;
        }
        Some(Self(parts[0], parts[1], parts[2]))
    }

    /// Whether the version defines CHECK and passes `prevResult` on DEL.
    pub(crate) fn has_check(self) -> bool {
        self >= Self::CHECK
    }

    /// Whether the version defines the STATUS command.
    pub(crate) fn has_status(self) -> bool {
        self >= Self::STATUS
    }
}

impl fmt::Display for SpecVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_and_short_forms() {
        assert_eq!(SpecVersion::parse("0.3.1"), Some(SpecVersion(0, 3, 1)));
        assert_eq!(SpecVersion::parse("1.0"), Some(SpecVersion(1, 0, 0)));
        assert_eq!(SpecVersion::parse("1"), Some(SpecVersion(1, 0, 0)));
    }

    #[test]
    fn rejects_malformed_versions() {
        for bad in ["", "1.0.0.0", "v1.0.0", "1..0", "1.0.x", "-1.0.0"] {
            assert_eq!(SpecVersion::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn features_follow_version_order() {
        let v = |s| SpecVersion::parse(s).unwrap();
        assert!(!v("0.3.1").has_check());
        assert!(v("0.4.0").has_check());
        assert!(!v("1.0.0").has_status());
        assert!(v("1.1.0").has_status());
        assert!(v("0.10.0") > v("0.4.0"));
        assert_eq!(v("1.1").to_string(), "1.1.0");
    }
}
