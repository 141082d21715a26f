//! What this binary is: crate version and the commit it was built from.

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Short git hash, or "unknown" for builds outside a git checkout without
/// `PINSHIM_GIT_COMMIT` (see build.rs).
pub const COMMIT: &str = env!("PINSHIM_BUILD_COMMIT");
/// The CRI API version this build serves (`Version.runtime_api_version`).
pub const CRI_API_VERSION: &str = "v1";
/// What `pinshim --version` prints after the program name; the literal
/// repeats `CRI_API_VERSION` because `concat!` takes literals only.
pub const LONG_VERSION: &str =
    concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("PINSHIM_BUILD_COMMIT"), ", CRI API v1)");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_version_names_the_cri_api_this_build_serves() {
        assert!(LONG_VERSION.starts_with(VERSION));
        assert!(LONG_VERSION.contains(COMMIT));
        assert!(LONG_VERSION.ends_with(&format!("CRI API {})", CRI_API_VERSION)));
    }
}
