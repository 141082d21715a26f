//! A small client of the OCI distribution API, just enough to resolve a
//! tag to the digest Docker then pulls by, against one configured endpoint
//! (a mirror or the upstream registry) with its own TLS settings, headers
//! and credentials.
//!
//! The digest of a `HEAD` answer (`Docker-Content-Digest`) is trusted
//! without fetching the manifest, as containerd does: the pull by digest
//! that follows verifies the content, so a lying registry can only make a
//! pull fail, not run other content. Only when `HEAD` gives no usable
//! digest is the manifest fetched and hashed.

mod auth;
mod challenge;
mod describe;
mod digest;
mod endpoint;
mod error;
mod host;
mod response;
mod transport;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};

use http::header::{ACCEPT, AUTHORIZATION, HeaderName};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use reqwest::Url;

pub use auth::Credentials;
pub use error::ResolveError;
pub use host::{Capabilities, RegistryHost};
pub use transport::TransportConfig;

use auth::{TokenCache, TokenKey, TokenResponse, basic_header, bearer_header, token_scopes};
use challenge::{AuthScheme, BearerChallenge, pick_scheme};
use endpoint::Endpoint;
use error::Target;
use response::{drain, error_detail, from_get, from_head, header_str, read_limited, status_error};
use transport::Transports;

pub const MEDIA_TYPE_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_TYPE_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Every manifest kind a tag may name; a multi-arch tag resolves to its
/// index and Docker picks the platform.
const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";
const KNOWN_MANIFEST_TYPES: [&str; 4] =
    [MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_MANIFEST, MEDIA_TYPE_DOCKER_LIST, MEDIA_TYPE_DOCKER_MANIFEST];
const DOCKER_CONTENT_DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
/// Registries must accept manifests of at least this size; we refuse larger ones.
const MAX_MANIFEST_BYTES: usize = 4 << 20;
/// Enough of an error body or token answer to read its JSON.
const MAX_SMALL_BODY_BYTES: usize = 1 << 20;

/// The manifest a reference names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// `sha256:<hex>`.
    pub digest: String,
    pub media_type: String,
    pub size: u64,
}

/// Resolves references against registry endpoints. Cheap to share: clients
/// (and their connection pools) and tokens are cached inside.
pub struct DistributionClient {
    transports: Transports,
    tokens: TokenCache,
    /// The last auth challenge per endpoint, so later requests authenticate
    /// up front instead of collecting a 401 first.
    challenges: Mutex<HashMap<String, AuthScheme>>,
}

impl fmt::Debug for DistributionClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DistributionClient").finish_non_exhaustive()
    }
}

impl Default for DistributionClient {
    fn default() -> Self {
        Self::new(TransportConfig::default())
    }
}

/// One endpoint, repository and set of credentials, ready for requests.
struct Call<'a> {
    client: reqwest::Client,
    endpoint: Endpoint,
    repository: &'a str,
    credentials: Option<&'a Credentials>,
    /// The host's configured headers plus `Accept`.
    headers: HeaderMap,
    /// Whether a client certificate is presented, to explain TLS refusals.
    client_cert: bool,
}

impl Call<'_> {
    fn target(&self) -> Target<'_> {
        Target { host: self.endpoint.display(), repository: self.repository }
    }
}

/// How the `Authorization` of the last attempt came about.
#[derive(Clone, PartialEq, Eq)]
enum Sent {
    Nothing,
    Basic,
    /// A token from the cache, which the registry may since have revoked.
    CachedToken(TokenKey),
    FreshToken,
    CallerToken,
}

impl DistributionClient {
    pub fn new(config: TransportConfig) -> Self {
        DistributionClient {
            transports: Transports::new(config),
            tokens: TokenCache::default(),
            challenges: Mutex::default(),
        }
    }

    /// Resolves `reference` (a tag or a digest) in `repository` on `host`
    /// to the manifest's digest, media type and size.
    pub async fn resolve(
        &self,
        host: &RegistryHost,
        repository: &str,
        reference: &str,
        credentials: Option<&Credentials>,
    ) -> Result<Resolved, ResolveError> {
        let call = self.prepare(host, repository, reference, credentials).await?;
        let target = call.target();
        let url = call.endpoint.manifest_url(repository, reference).map_err(|e| target.protocol(e))?;
        let head = self.send(&call, Method::HEAD, &url).await?;
        match head.status() {
            s if s.is_success() => {
                if let Some(resolved) = from_head(head.headers(), reference).map_err(|e| target.protocol(e))? {
                    tracing::debug!(host = target.host, repository, reference, digest = %resolved.digest, "resolved");
                    return Ok(resolved);
                }
                tracing::debug!(host = target.host, repository, reference, "HEAD gave no usable digest; fetching");
            }
            // Some registries do not serve HEAD on manifests.
            StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED => {}
            _ => return Err(status_error(&call, head, reference).await),
        }
        let get = self.send(&call, Method::GET, &url).await?;
        if !get.status().is_success() {
            return Err(status_error(&call, get, reference).await);
        }
        let resolved = from_get(&call, get, reference).await?;
        tracing::debug!(host = target.host, repository, reference, digest = %resolved.digest, "resolved by GET");
        Ok(resolved)
    }

    /// Whether `host` holds the manifest `digest` in `repository`, to pick an
    /// endpoint that can serve a pull by digest.
    pub async fn has_manifest(
        &self,
        host: &RegistryHost,
        repository: &str,
        digest: &str,
        credentials: Option<&Credentials>,
    ) -> Result<bool, ResolveError> {
        if digest::algorithm(digest).is_none() {
            let reason = format!("invalid digest {digest:?}");
            return Err(ResolveError::InvalidRequest { repository: repository.into(), reason });
        }
        let call = self.prepare(host, repository, digest, credentials).await?;
        let target = call.target();
        let url = call.endpoint.manifest_url(repository, digest).map_err(|e| target.protocol(e))?;
        let head = self.send(&call, Method::HEAD, &url).await?;
        match head.status() {
            s if s.is_success() => match header_str(head.headers(), &DOCKER_CONTENT_DIGEST) {
                Some(d) if d != digest => Err(target.protocol(format!("asked for {digest}, the registry named {d}"))),
                _ => Ok(true),
            },
            StatusCode::NOT_FOUND => Ok(false),
            StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED => {
                let get = self.send(&call, Method::GET, &url).await?;
                match get.status() {
                    s if s.is_success() => from_get(&call, get, digest).await.map(|_| true),
                    StatusCode::NOT_FOUND => Ok(false),
                    _ => Err(status_error(&call, get, digest).await),
                }
            }
            _ => Err(status_error(&call, head, digest).await),
        }
    }

    /// The certificate `host` presents (DER), accepted without checks: for
    /// pinning a `skip_verify` endpoint's current certificate where a
    /// verifying client (Docker) must trust it.
    pub async fn peer_certificate(&self, host: &RegistryHost) -> Result<Option<Vec<u8>>, ResolveError> {
        let endpoint = Endpoint::new(host).map_err(|reason| ResolveError::Config { host: host.url.clone(), reason })?;
        if !endpoint.is_https() {
            return Ok(None);
        }
        let unavailable = |e: reqwest::Error| ResolveError::Unavailable {
            host: endpoint.display().to_string(),
            repository: String::new(),
            reason: e.to_string(),
        };
        let client = reqwest::Client::builder()
            .tls_danger_accept_invalid_certs(true)
            .tls_info(true)
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(unavailable)?;
        let url = endpoint.api_root().map_err(|reason| ResolveError::Config { host: host.url.clone(), reason })?;
        let response = client.get(url).send().await.map_err(unavailable)?;
        let info = response.extensions().get::<reqwest::tls::TlsInfo>();
        Ok(info.and_then(|i| i.peer_certificate()).map(<[u8]>::to_vec))
    }

    /// The name Docker pulls `repository` from `host` by, and the
    /// `host[:port]` its certs.d directory is named after; `None` when
    /// Docker cannot reach that endpoint's API root.
    /// `host[:port]` of an endpoint, as certs.d and credential stores name it.
    pub fn authority(host: &RegistryHost) -> Option<String> {
        Endpoint::new(host).ok()?.authority()
    }

    pub fn docker_names(host: &RegistryHost, repository: &str) -> Option<(String, String)> {
        let endpoint = Endpoint::new(host).ok()?;
        Some((endpoint.docker_repository(repository)?, endpoint.authority()?))
    }

    async fn prepare<'a>(
        &self,
        host: &RegistryHost,
        repository: &'a str,
        reference: &str,
        credentials: Option<&'a Credentials>,
    ) -> Result<Call<'a>, ResolveError> {
        let invalid = |reason| ResolveError::InvalidRequest { repository: repository.into(), reason };
        digest::check_repository(repository).map_err(invalid)?;
        digest::check_reference(reference).map_err(invalid)?;
        let endpoint =
            Endpoint::new(host).map_err(|reason| ResolveError::Config { host: redacted_url(&host.url), reason })?;
        let target = Target { host: endpoint.display(), repository };
        let mut headers = HeaderMap::new();
        for (name, value) in &host.headers {
            // Values may be secrets (an API key header): never echo them.
            let name = HeaderName::try_from(name.as_str())
                .map_err(|_| target.config(format!("invalid header name {name:?}")))?;
            let mut value = HeaderValue::try_from(value.as_str())
                .map_err(|_| target.config(format!("invalid value for header {name}")))?;
            value.set_sensitive(true);
            headers.append(name, value);
        }
        headers.insert(ACCEPT, HeaderValue::from_static(ACCEPT_MANIFESTS));
        let client = self.transports.client(host).await.map_err(|e| target.config(e))?;
        let client_cert = !host.client_pairs.is_empty();
        Ok(Call { client, endpoint, repository, credentials, headers, client_cert })
    }

    /// Sends a request, answering auth challenges: a remembered challenge
    /// is answered up front; a 401 is answered once per scheme. The final
    /// response is returned whatever its status.
    async fn send(&self, call: &Call<'_>, method: Method, url: &Url) -> Result<reqwest::Response, ResolveError> {
        let (mut authorization, mut sent) = self.preemptive(call).await?;
        let mut tried_basic = sent == Sent::Basic;
        loop {
            let mut headers = call.headers.clone();
            if let Some(value) = &authorization {
                headers.insert(AUTHORIZATION, value.clone());
            }
            let response = call
                .client
                .request(method.clone(), url.clone())
                .headers(headers)
                .send()
                .await
                .map_err(|e| call.target().unavailable(describe::send_error(e, call.client_cert)))?;
            if response.status() != StatusCode::UNAUTHORIZED || sent == Sent::CallerToken {
                return Ok(response);
            }
            let Some(scheme) = pick_scheme(response.headers()) else { return Ok(response) };
            self.remember(&call.endpoint, &scheme);
            match scheme {
                AuthScheme::Basic => {
                    let Some(Credentials::Basic { username, password }) = call.credentials else {
                        return Ok(response);
                    };
                    if tried_basic {
                        return Ok(response);
                    }
                    tried_basic = true;
                    drain(response).await;
                    authorization = Some(basic_header(username, password).map_err(|e| call.target().config(e))?);
                    sent = Sent::Basic;
                }
                AuthScheme::Bearer(challenge) => {
                    if sent == Sent::FreshToken {
                        return Ok(response);
                    }
                    // A cached token was refused (expired early, revoked) or
                    // none was sent: get a new one.
                    drain(response).await;
                    if let Sent::CachedToken(refused) = &sent {
                        self.tokens.remove(refused);
                    }
                    let token = self.token(call, &challenge).await?;
                    authorization = Some(bearer_header(&token).map_err(|e| call.target().protocol(e))?);
                    sent = Sent::FreshToken;
                }
            }
        }
    }

    /// The `Authorization` to send before any challenge: the caller's token,
    /// or what this endpoint asked for last time.
    async fn preemptive(&self, call: &Call<'_>) -> Result<(Option<HeaderValue>, Sent), ResolveError> {
        if let Some(Credentials::Bearer(token)) = call.credentials {
            let header = bearer_header(token).map_err(|e| call.target().config(e))?;
            return Ok((Some(header), Sent::CallerToken));
        }
        let remembered =
            self.challenges.lock().unwrap_or_else(PoisonError::into_inner).get(call.endpoint.key()).cloned();
        match (remembered, call.credentials) {
            (Some(AuthScheme::Basic), Some(Credentials::Basic { username, password })) => {
                let header = basic_header(username, password).map_err(|e| call.target().config(e))?;
                Ok((Some(header), Sent::Basic))
            }
            (Some(AuthScheme::Bearer(challenge)), _) => {
                let key = token_key(call, &challenge);
                let (token, sent) = match self.tokens.get(&key) {
                    Some(token) => (token, Sent::CachedToken(key)),
                    None => (self.token(call, &challenge).await?, Sent::FreshToken),
                };
                let header = bearer_header(&token).map_err(|e| call.target().protocol(e))?;
                Ok((Some(header), sent))
            }
            _ => Ok((None, Sent::Nothing)),
        }
    }

    fn remember(&self, endpoint: &Endpoint, scheme: &AuthScheme) {
        // The scope belongs to the request that was challenged, not to the endpoint.
        let scheme = match scheme {
            AuthScheme::Bearer(b) => AuthScheme::Bearer(BearerChallenge { scope: None, ..b.clone() }),
            AuthScheme::Basic => AuthScheme::Basic,
        };
        self.challenges.lock().unwrap_or_else(PoisonError::into_inner).insert(endpoint.key().to_string(), scheme);
    }

    /// A token for `call`'s repository from the challenge's realm: cached,
    /// or fetched with the caller's basic credentials (anonymously without).
    async fn token(&self, call: &Call<'_>, challenge: &BearerChallenge) -> Result<String, ResolveError> {
        let key = token_key(call, challenge);
        if let Some(token) = self.tokens.get(&key) {
            return Ok(token);
        }
        let target = call.target();
        let mut url = Url::parse(&challenge.realm).map_err(|e| target.protocol(format!("invalid token realm: {e}")))?;
        match url.scheme() {
            "https" => {}
            // Never send a password in the clear when the registry itself is on TLS.
            "http" if call.endpoint.is_https() && call.credentials.is_some() => {
                return Err(target.protocol(format!("refusing to send credentials to plain-http token realm {url}")));
            }
            "http" => {}
            other => return Err(target.protocol(format!("unsupported token realm scheme {other:?}"))),
        }
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = &key.service {
                query.append_pair("service", service);
            }
            for scope in &key.scopes {
                query.append_pair("scope", scope);
            }
            if let Some(Credentials::Basic { username, .. }) = call.credentials {
                query.append_pair("account", username);
            }
        }
        // Endpoint headers stay with the endpoint: the realm is often another party.
        let mut request = call.client.get(url.clone());
        if let Some(Credentials::Basic { username, password }) = call.credentials {
            request = request.header(AUTHORIZATION, basic_header(username, password).map_err(|e| target.config(e))?);
        }
        let realm = challenge.realm.as_str();
        let response = request.send().await.map_err(|e| {
            target.unavailable(format!("token server {realm}: {}", describe::send_error(e, call.client_cert)))
        })?;
        let status = response.status();
        if !status.is_success() {
            let detail = error_detail(response).await;
            let reason = format!("token server {realm} answered HTTP {status}{detail}");
            return Err(match status {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => target.unauthorized(reason),
                s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => target.unavailable(reason),
                _ => target.protocol(reason),
            });
        }
        let body = read_limited(response, MAX_SMALL_BODY_BYTES, call.client_cert)
            .await
            .map_err(|e| target.unavailable(format!("token server {realm}: {e}")))?;
        // The serde message could quote part of the body; leave it out.
        let (token, lifetime) = serde_json::from_slice::<TokenResponse>(&body)
            .ok()
            .and_then(TokenResponse::into_token)
            .ok_or_else(|| target.protocol(format!("token server {realm} sent no token")))?;
        tracing::debug!(
            host = target.host,
            realm,
            scopes = ?key.scopes,
            expires_in = lifetime.as_secs(),
            "fetched registry token"
        );
        self.tokens.insert(key, token.clone(), lifetime);
        Ok(token)
    }
}

fn token_key(call: &Call<'_>, challenge: &BearerChallenge) -> TokenKey {
    TokenKey {
        realm: challenge.realm.clone(),
        service: challenge.service.clone(),
        scopes: token_scopes(call.repository, challenge.scope.as_deref()),
        credentials: call.credentials.map(Credentials::fingerprint).unwrap_or_default(),
    }
}

/// The host URL for an error about the URL itself: user info, query and
/// fragment could hold secrets, so only scheme, host and port are kept.
fn redacted_url(url: &str) -> String {
    match Url::parse(url.trim()) {
        Ok(u) => match u.host_str() {
            Some(host) => match u.port() {
                Some(port) => format!("{}://{host}:{port}", u.scheme()),
                None => format!("{}://{host}", u.scheme()),
            },
            None => "<invalid url>".into(),
        },
        Err(_) => "<invalid url>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_can_move_between_threads() {
        fn send<T: Send>(_: T) {}
        let client = DistributionClient::default();
        let host = RegistryHost::default();
        send(client.resolve(&host, "a", "b", None));
        send(client.has_manifest(&host, "a", "b", None));
    }

    #[test]
    fn urls_in_errors_lose_secrets() {
        assert_eq!(redacted_url("https://u:p@h:5000/x?token=t"), "https://h:5000");
        assert_eq!(redacted_url("nope"), "<invalid url>");
    }

    #[test]
    fn client_debug_is_opaque() {
        assert_eq!(format!("{:?}", DistributionClient::default()), "DistributionClient { .. }");
    }

    #[tokio::test]
    async fn malformed_input_is_refused_before_any_request() {
        let client = DistributionClient::default();
        let host = RegistryHost { url: "https://127.0.0.1:9".into(), ..Default::default() };
        let err = client.resolve(&host, "Bad/Name", "latest", None).await.unwrap_err();
        assert!(matches!(err, ResolveError::InvalidRequest { .. }), "{err}");
        let err = client.has_manifest(&host, "a/b", "latest", None).await.unwrap_err();
        assert!(matches!(err, ResolveError::InvalidRequest { .. }), "{err}");
        let bad = RegistryHost { url: "https://u:hunter2@h".into(), ..Default::default() };
        let err = client.resolve(&bad, "a/b", "latest", None).await.unwrap_err();
        assert!(matches!(err, ResolveError::Config { .. }) && !err.to_string().contains("hunter2"), "{err}");
        let hdr = RegistryHost { headers: vec![("X-Key".into(), "s3cret\n".into())], ..host };
        let err = client.resolve(&hdr, "a/b", "latest", None).await.unwrap_err();
        assert!(matches!(err, ResolveError::Config { .. }) && !err.to_string().contains("s3cret"), "{err}");
    }

    #[tokio::test]
    async fn missing_tls_files_are_configuration_errors() {
        let client = DistributionClient::default();
        let host = RegistryHost {
            url: "https://127.0.0.1:9".into(),
            ca_files: vec!["/nonexistent/ca.pem".into()],
            ..Default::default()
        };
        let err = client.resolve(&host, "a/b", "latest", None).await.unwrap_err();
        assert!(matches!(&err, ResolveError::Config { reason, .. } if reason.contains("/nonexistent/ca.pem")), "{err}");

        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("ca.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let host = RegistryHost { ca_files: vec![junk], ..host };
        let err = client.resolve(&host, "a/b", "latest", None).await.unwrap_err();
        assert!(matches!(err, ResolveError::Config { .. }), "{err}");
    }

    #[tokio::test]
    async fn connection_failures_are_unavailable() {
        let client = DistributionClient::default();
        // Port 9 (discard) on loopback: nothing listens in a test environment.
        let host = RegistryHost { url: "http://127.0.0.1:9".into(), ..Default::default() };
        let err = client.resolve(&host, "a/b", "latest", None).await.unwrap_err();
        assert!(err.is_unavailable(), "{err}");
        assert!(err.to_string().contains("refused"), "{err}");
    }
}
