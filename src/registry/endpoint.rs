//! Where a host's distribution API lives, and how it is named in errors.

use reqwest::Url;

use super::RegistryHost;

/// The API root of one configured host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// API root without a trailing slash, e.g. `https://r:5000/v2`.
    base: String,
    /// The configured URL for messages, e.g. `https://r:5000`.
    display: String,
    https: bool,
}

impl Endpoint {
    /// Validates `host.url` and derives the API root. Without
    /// `override_path` the root is the URL's path plus `/v2` (not doubled
    /// when the path already ends in it); with it, the path is the root.
    pub fn new(host: &RegistryHost) -> Result<Self, String> {
        // The parse error never echoes the input, which could hold user info.
        let mut url = Url::parse(host.url.trim()).map_err(|e| format!("invalid registry url: {e}"))?;
        let https = match url.scheme() {
            "https" => true,
            "http" => false,
            other => return Err(format!("unsupported url scheme {other:?}; use http or https")),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err("credentials inside the registry url are not supported".into());
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("registry url has no host".into());
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err("registry url must not have a query or fragment".into());
        }
        let path = url.path().trim_end_matches('/').to_string();
        url.set_path(&path);
        let display = url.as_str().trim_end_matches('/').to_string();
        let root = if host.override_path || path.ends_with("/v2") { path } else { format!("{path}/v2") };
        url.set_path(&root);
        let base = url.as_str().trim_end_matches('/').to_string();
        Ok(Endpoint { base, display, https })
    }

    /// `<root>/<repository>/manifests/<reference>`; both parts must have
    /// been checked, so they hold nothing that changes the URL's structure.
    pub fn manifest_url(&self, repository: &str, reference: &str) -> Result<Url, String> {
        Url::parse(&format!("{}/{repository}/manifests/{reference}", self.base))
            .map_err(|e| format!("cannot build manifest url: {e}"))
    }

    /// The API root itself (`GET` on it is the version check).
    pub fn api_root(&self) -> Result<Url, String> {
        Url::parse(&format!("{}/", self.base)).map_err(|e| format!("cannot build api url: {e}"))
    }

    /// The name Docker pulls `repository` from this endpoint by: Docker
    /// always speaks to `host[:port]/v2/…`, so an API root elsewhere than
    /// below `/v2` cannot be reached through Docker.
    pub fn docker_repository(&self, repository: &str) -> Option<String> {
        let url = Url::parse(&self.base).ok()?;
        let prefix = url.path().strip_prefix("/v2")?;
        if !(prefix.is_empty() || prefix.starts_with('/')) {
            return None;
        }
        let host = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str()?),
            None => url.host_str()?.to_string(),
        };
        Some(format!("{host}{prefix}/{repository}"))
    }

    /// `host[:port]` as Docker's certs.d names it.
    pub fn authority(&self) -> Option<String> {
        let url = Url::parse(&self.base).ok()?;
        let host = url.host_str()?;
        Some(match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        })
    }

    /// Key for state remembered about this endpoint (its auth challenge).
    pub fn key(&self) -> &str {
        &self.base
    }

    pub fn display(&self) -> &str {
        &self.display
    }

    pub fn is_https(&self) -> bool {
        self.https
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_names_follow_the_api_root() {
        let at = |url: &str, override_path| {
            Endpoint::new(&RegistryHost { url: url.into(), override_path, ..Default::default() }).unwrap()
        };
        assert_eq!(at("https://m:5000", false).docker_repository("lib/a").as_deref(), Some("m:5000/lib/a"));
        assert_eq!(at("https://m/v2/mirrors", true).docker_repository("a").as_deref(), Some("m/mirrors/a"));
        assert_eq!(at("https://m/proxy", false).docker_repository("a"), None);
        assert_eq!(at("https://m:443/x", false).authority().as_deref(), Some("m"));
        assert_eq!(at("http://127.0.0.1:5000", false).authority().as_deref(), Some("127.0.0.1:5000"));
    }

    fn endpoint(url: &str, override_path: bool) -> Result<Endpoint, String> {
        Endpoint::new(&RegistryHost { url: url.into(), override_path, ..Default::default() })
    }

    fn manifest(url: &str, override_path: bool) -> String {
        endpoint(url, override_path).unwrap().manifest_url("library/busybox", "latest").unwrap().to_string()
    }

    #[test]
    fn v2_is_appended_unless_the_path_is_overridden() {
        assert_eq!(
            manifest("https://r.example:5000", false),
            "https://r.example:5000/v2/library/busybox/manifests/latest"
        );
        assert_eq!(manifest("https://r.example/", false), "https://r.example/v2/library/busybox/manifests/latest");
        assert_eq!(
            manifest("http://127.0.0.1:5000", false),
            "http://127.0.0.1:5000/v2/library/busybox/manifests/latest"
        );
        assert_eq!(manifest("https://[::1]:5000", false), "https://[::1]:5000/v2/library/busybox/manifests/latest");
    }

    #[test]
    fn a_path_in_the_base_url_is_kept() {
        assert_eq!(manifest("https://m/cache", false), "https://m/cache/v2/library/busybox/manifests/latest");
        assert_eq!(manifest("https://m/cache/v2/", false), "https://m/cache/v2/library/busybox/manifests/latest");
        assert_eq!(manifest("https://m/v2/mirrors", true), "https://m/v2/mirrors/library/busybox/manifests/latest");
        assert_eq!(manifest("https://m/v2/mirrors/", true), "https://m/v2/mirrors/library/busybox/manifests/latest");
        assert_eq!(manifest("https://m", true), "https://m/library/busybox/manifests/latest");
    }

    #[test]
    fn display_is_the_configured_url() {
        let e = endpoint("https://m/v2/mirrors/", true).unwrap();
        assert_eq!(e.display(), "https://m/v2/mirrors");
        assert_eq!(endpoint("https://r:5002", false).unwrap().display(), "https://r:5002");
        assert!(endpoint("https://r:5002", false).unwrap().is_https());
        assert!(!endpoint("http://r:5002", false).unwrap().is_https());
    }

    #[test]
    fn unusable_urls_are_rejected_without_echoing_secrets() {
        let err = endpoint("https://user:hunter2@r", false).unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(endpoint("ftp://r", false).is_err());
        assert!(endpoint("r:5000", false).is_err());
        assert!(endpoint("https://r/?x=1", false).is_err());
        assert!(endpoint("not a url", false).is_err());
    }
}
