//! A pull that stops making progress is cancelled after
//! --image-pull-progress-deadline. No real registry can be told to stall,
//! so a loopback server serves a real manifest and then never sends a blob.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Shim, ShimOptions, env, unique};
use oci_client::secrets::RegistryAuth;
use pinshim::api::image_service_client::ImageServiceClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tonic::Code;

/// How long Docker gets to close its downloads once pinshim has gone.
const RELEASE_WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn stalled_pull_is_cancelled_after_the_progress_deadline() {
    let (manifest, media_type, digest) = real_manifest().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let stalled = Arc::new(Stalls::default());
    let counter = stalled.clone();
    let served = digest.clone();
    let server = tokio::spawn(async move {
        loop {
            let Ok((conn, _)) = listener.accept().await else { return };
            tokio::spawn(serve(conn, manifest.clone(), media_type.clone(), served.clone(), counter.clone()));
        }
    });

    let args = vec!["--image-pull-progress-deadline".to_string(), "2s".to_string()];
    let mut shim = Shim::start_with(ShimOptions { args, env: Vec::new() }).await;
    let reference = format!("127.0.0.1:{port}/pinshim-test/{}@{digest}", unique("stall"));
    let started = Instant::now();
    let err = shim.pull(&reference).await.expect_err("the pull stalls");
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err}");
    assert!(err.message().contains("no progress"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30), "cancelled promptly: {:?}", started.elapsed());
    assert!(shim.status(&reference).await.is_none(), "nothing pulled");
    // The stall was mid-download, not on the way to the registry.
    assert!(stalled.started.load(Ordering::SeqCst) > 0, "docker was downloading a blob when the pull was given up");
    let gave_up = Instant::now();
    while stalled.open.load(Ordering::SeqCst) > 0 && gave_up.elapsed() < RELEASE_WAIT {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let open = stalled.open.load(Ordering::SeqCst);
    println!("blob downloads still open {:?} after pinshim gave up: {open}", gave_up.elapsed());
    // The containerd image store ends its downloads with the pull's API
    // call. The graph-driver store (20.10 to 28) keeps them open, and its
    // API has no call that cancels a pull: that is left to the engine.
    if common::containerd_store().await {
        assert_eq!(open, 0, "the engine let go of the downloads once pinshim gave up");
    }
    server.abort();
}

async fn real_digest() -> String {
    common::registry::served_digest(&env("PINSHIM_TEST_BUSYBOX"), &RegistryAuth::Anonymous).await
}

/// The manifest of a busybox variant of this test's own, as the real
/// registry serves it: its config is in no image store yet, so the engine
/// has to download it (a content-addressed store already holding every
/// blob would have nothing to fetch, and nothing to stall on).
async fn real_manifest() -> (Vec<u8>, String, String) {
    let client = oci_client::Client::new(oci_client::client::ClientConfig {
        protocol: oci_client::client::ClientProtocol::Http,
        ..Default::default()
    });
    let variant = format!("{}/pinshim-test/{}:v1", env("PINSHIM_TEST_REGISTRY"), unique("stall-source"));
    let nonce = unique("nonce");
    common::registry::push_variant(&env("PINSHIM_TEST_BUSYBOX"), &variant, &nonce, &RegistryAuth::Anonymous).await;
    let reference: oci_client::Reference = variant.parse().expect("reference");
    let accepted = [oci_client::manifest::IMAGE_MANIFEST_MEDIA_TYPE, oci_client::manifest::OCI_IMAGE_MEDIA_TYPE];
    let (body, digest) =
        client.pull_manifest_raw(&reference, &RegistryAuth::Anonymous, &accepted).await.expect("manifest");
    let media_type = serde_json::from_slice::<serde_json::Value>(&body).expect("json")["mediaType"]
        .as_str()
        .unwrap_or(oci_client::manifest::IMAGE_MANIFEST_MEDIA_TYPE)
        .to_string();
    (body.to_vec(), media_type, digest)
}

/// Blob downloads the server has stalled: ever, and still open.
#[derive(Default)]
struct Stalls {
    started: AtomicUsize,
    open: AtomicUsize,
}

/// The size the manifest gives for blob `digest` (config or layer).
fn blob_size(manifest: &[u8], digest: &str) -> u64 {
    let manifest: serde_json::Value = serde_json::from_slice(manifest).expect("manifest JSON");
    let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
    std::iter::once(&manifest["config"])
        .chain(layers.iter())
        .find(|d| d["digest"] == digest)
        .and_then(|d| d["size"].as_u64())
        .unwrap_or(1 << 20)
}

/// Answers `/v2/` and manifests; a blob request gets headers and then
/// silence, counted in `stalled`.
async fn serve(mut conn: TcpStream, manifest: Vec<u8>, media_type: String, digest: String, stalled: Arc<Stalls>) {
    let mut buf = Vec::new();
    loop {
        let mut chunk = [0u8; 4096];
        let Ok(n) = conn.read(&mut chunk).await else { return };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        // Docker tries TLS first. Answer its hello in plain HTTP, as a plain
        // registry would: containerd's resolver (the containerd image store)
        // falls back to HTTP on that answer, not on a closed connection.
        if buf.first() == Some(&0x16) {
            let _ = conn.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
            return;
        }
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            buf.drain(..end + 4);
            let mut words = head.split_whitespace();
            let (method, path) = (words.next().unwrap_or_default(), words.next().unwrap_or_default());
            let response = if path.contains("/blobs/") {
                // The blob's real size: containerd's resolver drops a
                // response whose length differs from the descriptor's.
                let size = blob_size(&manifest, path.rsplit('/').next().unwrap_or_default());
                let stall = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {size}\r\n\r\n"
                );
                let _ = conn.write_all(stall.as_bytes()).await;
                stalled.started.fetch_add(1, Ordering::SeqCst);
                stalled.open.fetch_add(1, Ordering::SeqCst);
                while conn.read(&mut chunk).await.is_ok_and(|n| n > 0) {}
                stalled.open.fetch_sub(1, Ordering::SeqCst);
                return;
            } else if path.contains("/manifests/") {
                let headers = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: {media_type}\r\nDocker-Content-Digest: {digest}\r\nContent-Length: {}\r\n\r\n",
                    manifest.len()
                );
                let mut response = headers.into_bytes();
                if method != "HEAD" {
                    response.extend_from_slice(&manifest);
                }
                response
            } else {
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nDocker-Distribution-API-Version: registry/2.0\r\n\r\n{}"
                    .to_vec()
            };
            if conn.write_all(&response).await.is_err() {
                return;
            }
        }
    }
}

/// The caller's own deadline ends the call with DeadlineExceeded (not
/// Cancelled), even while the registry still holds the resolution open.
#[tokio::test]
async fn pull_past_the_callers_deadline_is_deadline_exceeded() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    // Accepts and never answers.
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    let mut shim = Shim::start().await;
    let reference = format!("127.0.0.1:{port}/pinshim-test/{}:v1", unique("deadline"));
    let mut request = tonic::Request::new(pinshim::api::PullImageRequest {
        image: Some(common::spec(&reference)),
        ..Default::default()
    });
    request.set_timeout(Duration::from_millis(700));
    let started = Instant::now();
    let err = patient_client(&shim).await.pull_image(request).await.expect_err("the registry never answers");
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err}");
    assert!(started.elapsed() < Duration::from_secs(10), "ended at the deadline: {:?}", started.elapsed());
    assert!(shim.status(&reference).await.is_none(), "nothing pulled");
    server.abort();
}

type RawService =
    tower::util::BoxCloneService<http::Request<tonic::body::Body>, http::Response<hyper::body::Incoming>, hyper::Error>;

/// An image client that sends `grpc-timeout` but does not enforce it
/// itself, as tonic's channel would: the code is the server's.
async fn patient_client(shim: &Shim) -> ImageServiceClient<RawService> {
    let conn = tokio::net::UnixStream::connect(shim.socket()).await.expect("connect");
    let (send, connection) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), hyper_util::rt::TokioIo::new(conn))
            .await
            .expect("http/2 handshake");
    tokio::spawn(connection);
    let service = tower::service_fn(move |request: http::Request<tonic::body::Body>| {
        let mut send = send.clone();
        async move { send.send_request(request).await }
    });
    ImageServiceClient::with_origin(RawService::new(service), http::Uri::from_static("http://localhost"))
}

/// A pull by digest from a registry that answers 500 is Unavailable, like
/// one that cannot be reached, and pulls nothing.
#[tokio::test]
async fn pull_by_digest_from_a_failing_registry_is_unavailable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                while let Ok(n) = conn.read(&mut buf).await {
                    let answer = "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n";
                    if n == 0 || conn.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let mut shim = Shim::start().await;
    let reference = format!("127.0.0.1:{port}/pinshim-test/{}@{}", unique("five-hundred"), real_digest().await);
    let err = shim.pull(&reference).await.expect_err("the registry fails");
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert!(shim.status(&reference).await.is_none(), "nothing pulled");
    server.abort();
}
