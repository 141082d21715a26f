//! The bearer-token flow and answer handling, against an in-process server
//! that plays both the registry and its token realm.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use sha2::{Digest as _, Sha256};
use tokio::net::TcpListener;

use pinshim::registry::{Credentials, DistributionClient, MEDIA_TYPE_DOCKER_MANIFEST, RegistryHost, ResolveError};

const REPO: &str = "fake/app";
const MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[]}"#;
const USER: &str = "alice";
const PASSWORD: &str = "hunter2-s3cret";
const CALLER_TOKEN: &str = "caller-token-s3cret";

fn manifest_digest() -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(MANIFEST.as_bytes())))
}

/// How the fake behaves.
#[derive(Clone)]
struct Behaviour {
    /// Send `Docker-Content-Digest` on HEAD.
    head_digest: bool,
    /// Send a wrong `Docker-Content-Digest` on GET.
    wrong_get_digest: bool,
    /// The token server demands these basic credentials.
    token_requires_basic: bool,
    /// Name of the token field in the JSON answer.
    token_field: &'static str,
    /// Answer every manifest request with this status instead.
    manifest_status: Option<StatusCode>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            head_digest: true,
            wrong_get_digest: false,
            token_requires_basic: false,
            token_field: "token",
            manifest_status: None,
        }
    }
}

/// One request as the fake saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    query: Vec<(String, String)>,
    authorization: Option<String>,
    custom_header: Option<String>,
}

#[derive(Default)]
struct State {
    registry: Vec<Seen>,
    token: Vec<Seen>,
    valid_tokens: HashSet<String>,
    issued: usize,
}

struct Fake {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl Fake {
    async fn start(behaviour: Behaviour) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (state, behaviour) = (shared.clone(), behaviour.clone());
                let service = service_fn(move |req| {
                    let (state, behaviour) = (state.clone(), behaviour.clone());
                    async move { Ok::<_, Infallible>(handle(req, addr, &state, &behaviour)) }
                });
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        Fake { addr, state }
    }

    fn host(&self) -> RegistryHost {
        RegistryHost {
            url: format!("http://{}", self.addr),
            headers: vec![("X-Mirror-Key".into(), "mirror-secret".into())],
            ..Default::default()
        }
    }

    fn registry_requests(&self) -> Vec<Seen> {
        self.state.lock().expect("state").registry.clone()
    }

    fn token_requests(&self) -> Vec<Seen> {
        self.state.lock().expect("state").token.clone()
    }

    fn revoke_tokens(&self) {
        self.state.lock().expect("state").valid_tokens.clear();
    }
}

fn handle(req: Request<Incoming>, addr: SocketAddr, state: &Mutex<State>, b: &Behaviour) -> Response<Full<Bytes>> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let seen = Seen {
        method: req.method().clone(),
        path: req.uri().path().to_string(),
        query: req.uri().query().map(url_pairs).unwrap_or_default(),
        authorization: header("authorization"),
        custom_header: header("x-mirror-key"),
    };
    let mut state = state.lock().expect("state");
    if seen.path == "/token" {
        state.token.push(seen.clone());
        let expected = format!("Basic {}", BASE64.encode(format!("{USER}:{PASSWORD}")));
        if b.token_requires_basic && seen.authorization.as_deref() != Some(expected.as_str()) {
            return respond(StatusCode::UNAUTHORIZED, &[], r#"{"details":"bad credentials"}"#);
        }
        state.issued += 1;
        let token = format!("tok-{}", state.issued);
        state.valid_tokens.insert(token.clone());
        return respond(StatusCode::OK, &[], &format!(r#"{{"{}":"{token}","expires_in":300}}"#, b.token_field));
    }
    state.registry.push(seen.clone());
    let Some(reference) = seen.path.strip_prefix(&format!("/v2/{REPO}/manifests/")) else {
        return respond(StatusCode::NOT_FOUND, &[], "");
    };
    let authorized = match seen.authorization.as_deref().and_then(|a| a.strip_prefix("Bearer ")) {
        Some(t) => t == CALLER_TOKEN || state.valid_tokens.contains(t),
        None => false,
    };
    if !authorized {
        let challenge =
            format!(r#"Bearer realm="http://{addr}/token",service="fake-registry",scope="repository:{REPO}:pull""#);
        let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
        return respond(StatusCode::UNAUTHORIZED, &[("www-authenticate", &challenge)], body);
    }
    if let Some(status) = b.manifest_status {
        let body = r#"{"errors":[{"code":"DENIED","message":"nope"}]}"#;
        return respond(status, &[], body);
    }
    let digest = manifest_digest();
    if reference != "latest" && reference != digest {
        let body = r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#;
        return respond(StatusCode::NOT_FOUND, &[], body);
    }
    let wrong = format!("sha256:{}", "1".repeat(64));
    let mut headers = vec![("content-type", MEDIA_TYPE_DOCKER_MANIFEST)];
    let len = MANIFEST.len().to_string();
    if seen.method == Method::HEAD {
        headers.push(("content-length", &len));
        if b.head_digest {
            headers.push(("docker-content-digest", &digest));
        }
        return respond(StatusCode::OK, &headers, "");
    }
    headers.push(("docker-content-digest", if b.wrong_get_digest { &wrong } else { &digest }));
    respond(StatusCode::OK, &headers, MANIFEST)
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    query.split('&').filter_map(|pair| pair.split_once('=')).map(|(k, v)| (k.to_string(), percent_decode(v))).collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).expect("hex escape"));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("utf-8")
}

fn respond(status: StatusCode, headers: &[(&str, &str)], body: &str) -> Response<Full<Bytes>> {
    let mut builder = Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Full::new(Bytes::from(body.to_string()))).expect("response")
}

fn param<'a>(seen: &'a Seen, name: &str) -> Vec<&'a str> {
    seen.query.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
}

#[tokio::test]
async fn anonymous_token_is_fetched_once_and_reused() {
    let fake = Fake::start(Behaviour::default()).await;
    let client = DistributionClient::default();

    let got = client.resolve(&fake.host(), REPO, "latest", None).await.expect("resolve");
    assert_eq!(got.digest, manifest_digest());
    assert_eq!(got.media_type, MEDIA_TYPE_DOCKER_MANIFEST);
    assert_eq!(got.size, MANIFEST.len() as u64);

    let tokens = fake.token_requests();
    assert_eq!(tokens.len(), 1);
    assert_eq!(param(&tokens[0], "scope"), [format!("repository:{REPO}:pull").as_str()]);
    assert_eq!(param(&tokens[0], "service"), ["fake-registry"]);
    assert_eq!(tokens[0].authorization, None, "anonymous token request");
    assert_eq!(tokens[0].custom_header, None, "endpoint headers stay with the endpoint");
    assert_eq!(fake.registry_requests().len(), 2, "a 401, then the retry with the token");

    // Second resolve: the remembered challenge and cached token are used up front.
    assert_eq!(client.resolve(&fake.host(), REPO, "latest", None).await.expect("again"), got);
    assert_eq!(fake.token_requests().len(), 1, "no second token request");
    let registry = fake.registry_requests();
    assert_eq!(registry.len(), 3, "one request, no 401 round trip");
    assert_eq!(registry[2].authorization.as_deref(), Some("Bearer tok-1"));
    assert!(registry.iter().all(|r| r.custom_header.as_deref() == Some("mirror-secret") && r.method == Method::HEAD));
}

#[tokio::test]
async fn basic_credentials_go_to_the_token_server_only() {
    let fake =
        Fake::start(Behaviour { token_requires_basic: true, token_field: "access_token", ..Default::default() }).await;
    let client = DistributionClient::default();
    let creds = Credentials::Basic { username: USER.into(), password: PASSWORD.into() };

    let got = client.resolve(&fake.host(), REPO, "latest", Some(&creds)).await.expect("resolve");
    assert_eq!(got.digest, manifest_digest());
    let tokens = fake.token_requests();
    assert_eq!(tokens.len(), 1);
    assert_eq!(param(&tokens[0], "account"), [USER]);
    assert!(tokens[0].authorization.as_deref().is_some_and(|a| a.starts_with("Basic ")));
    assert!(fake.registry_requests().iter().all(|r| !r.authorization.as_deref().unwrap_or("").starts_with("Basic")));

    // Tokens are per credentials: anonymous callers do not get alice's token.
    let err = client.resolve(&fake.host(), REPO, "latest", None).await.expect_err("anonymous");
    assert!(matches!(err, ResolveError::Unauthorized { .. }), "{err}");

    let wrong = Credentials::Basic { username: USER.into(), password: "wrong-s3cret".into() };
    let err = client.resolve(&fake.host(), REPO, "latest", Some(&wrong)).await.expect_err("wrong password");
    assert!(matches!(err, ResolveError::Unauthorized { .. }), "{err}");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("wrong-s3cret") && !shown.contains(PASSWORD), "{shown}");
    assert!(shown.contains("token server"), "{shown}");
}

#[tokio::test]
async fn a_revoked_token_is_replaced_once() {
    let fake = Fake::start(Behaviour::default()).await;
    let client = DistributionClient::default();
    client.resolve(&fake.host(), REPO, "latest", None).await.expect("first");
    fake.revoke_tokens();
    client.resolve(&fake.host(), REPO, "latest", None).await.expect("after revocation");
    assert_eq!(fake.token_requests().len(), 2);
    let last = fake.registry_requests().pop().unwrap();
    assert_eq!(last.authorization.as_deref(), Some("Bearer tok-2"));
}

#[tokio::test]
async fn a_callers_registry_token_is_sent_as_is() {
    let fake = Fake::start(Behaviour::default()).await;
    let client = DistributionClient::default();
    let creds = Credentials::Bearer(CALLER_TOKEN.into());
    let got = client.resolve(&fake.host(), REPO, "latest", Some(&creds)).await.expect("resolve");
    assert_eq!(got.digest, manifest_digest());
    assert_eq!(fake.registry_requests().len(), 1);
    assert!(fake.token_requests().is_empty());

    let bad = Credentials::Bearer("stale-token-s3cret".into());
    let err = client.resolve(&fake.host(), REPO, "latest", Some(&bad)).await.expect_err("refused token");
    assert!(matches!(err, ResolveError::Unauthorized { .. }), "{err}");
    assert!(!format!("{err} {err:?}").contains("s3cret"));
    assert!(fake.token_requests().is_empty(), "a caller's token is not swapped for another");
}

#[tokio::test]
async fn without_a_head_digest_the_manifest_is_fetched_and_hashed() {
    let fake = Fake::start(Behaviour { head_digest: false, ..Default::default() }).await;
    let client = DistributionClient::default();
    let got = client.resolve(&fake.host(), REPO, "latest", None).await.expect("resolve");
    assert_eq!(got.digest, manifest_digest());
    let methods: Vec<Method> = fake.registry_requests().into_iter().map(|r| r.method).collect();
    assert_eq!(methods, [Method::HEAD, Method::HEAD, Method::GET]);
}

#[tokio::test]
async fn a_body_that_does_not_match_its_digest_is_refused() {
    let fake = Fake::start(Behaviour { head_digest: false, wrong_get_digest: true, ..Default::default() }).await;
    let client = DistributionClient::default();
    let err = client.resolve(&fake.host(), REPO, "latest", None).await.expect_err("mismatch");
    assert!(matches!(err, ResolveError::Protocol { .. }), "{err}");
    assert!(err.to_string().contains("does not match"), "{err}");
}

#[tokio::test]
async fn manifests_by_digest() {
    let fake = Fake::start(Behaviour::default()).await;
    let client = DistributionClient::default();
    assert!(client.has_manifest(&fake.host(), REPO, &manifest_digest(), None).await.expect("present"));
    let other = format!("sha256:{}", "2".repeat(64));
    assert!(!client.has_manifest(&fake.host(), REPO, &other, None).await.expect("absent"));
    let err = client.resolve(&fake.host(), REPO, "v9", None).await.expect_err("unknown tag");
    assert!(matches!(err, ResolveError::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn statuses_map_to_what_a_caller_acts_on() {
    for (status, unavailable, unauthorized) in [
        (StatusCode::SERVICE_UNAVAILABLE, true, false),
        (StatusCode::INTERNAL_SERVER_ERROR, true, false),
        (StatusCode::TOO_MANY_REQUESTS, true, false),
        (StatusCode::FORBIDDEN, false, true),
        (StatusCode::IM_A_TEAPOT, false, false),
    ] {
        let fake = Fake::start(Behaviour { manifest_status: Some(status), ..Default::default() }).await;
        let client = DistributionClient::default();
        let err = client.resolve(&fake.host(), REPO, "latest", None).await.expect_err("failure status");
        assert_eq!(err.is_unavailable(), unavailable, "{status}: {err}");
        assert_eq!(matches!(err, ResolveError::Unauthorized { .. }), unauthorized, "{status}: {err}");
        if status == StatusCode::IM_A_TEAPOT {
            assert!(matches!(err, ResolveError::Protocol { .. }), "{err}");
            assert!(err.to_string().contains("418"), "{err}");
        }
    }
}
