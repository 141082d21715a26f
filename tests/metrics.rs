//! `/metrics` on `--metrics-bind-addr`: per-RPC counts and error codes,
//! Docker call latencies, build info.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Shim, ShimOptions};
use pinshim::api::{ContainerStatusRequest, VersionRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

/// The address pinshim logged for its metrics server (it bound port 0).
async fn metrics_addr(shim: &Shim) -> SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = shim.logs().lines().find_map(|line| {
            let entry: serde_json::Value = serde_json::from_str(line).ok()?;
            let fields = entry.get("fields")?;
            (fields.get("message")?.as_str()? == "serving metrics at /metrics")
                .then(|| fields.get("addr")?.as_str()?.parse().ok())
                .flatten()
        });
        if let Some(addr) = found {
            return addr;
        }
        assert!(Instant::now() < deadline, "metrics address not logged:\n{}", shim.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn scrape(addr: SocketAddr, path: &str) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect to metrics");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    (head.to_string(), body.to_string())
}

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))?.rsplit(' ').next()?.parse().ok()
}

#[tokio::test]
async fn counts_calls_errors_and_docker_requests() {
    let args = vec!["--metrics-bind-addr".to_string(), "127.0.0.1:0".to_string()];
    let mut shim = Shim::start_with(ShimOptions { args, env: Vec::new() }).await;
    let addr = metrics_addr(&shim).await;

    for _ in 0..2 {
        shim.runtime.version(VersionRequest::default()).await.expect("version");
    }
    let missing = ContainerStatusRequest { container_id: "no-such-container".into(), verbose: false };
    let err = shim.runtime.container_status(missing).await.expect_err("missing container");
    assert_eq!(err.code(), Code::NotFound);

    let (head, text) = scrape(addr, "/metrics").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: application/openmetrics-text"), "{head}");
    assert_eq!(value(&text, r#"pinshim_cri_requests_total{method="Version"}"#), Some(2.0), "{text}");
    assert_eq!(value(&text, r#"pinshim_cri_requests_total{method="ContainerStatus"}"#), Some(1.0), "{text}");
    let not_found = r#"pinshim_cri_request_errors_total{method="ContainerStatus",code="NotFound"}"#;
    assert_eq!(value(&text, not_found), Some(1.0), "{text}");
    assert_eq!(value(&text, r#"pinshim_cri_request_duration_seconds_count{method="Version"}"#), Some(2.0));
    assert!(!text.contains(r#"pinshim_cri_request_errors_total{method="Version""#), "{text}");
    let docker_versions = value(&text, r#"pinshim_docker_request_duration_seconds_count{operation="version"}"#);
    assert!(docker_versions.is_some_and(|n| n >= 2.0), "{text}");
    let build = text.lines().find(|l| l.starts_with("pinshim_build_info{")).expect("build info");
    assert!(build.starts_with(&format!(r#"pinshim_build_info{{version="{}",commit=""#, env!("CARGO_PKG_VERSION"))));
    assert!(build.ends_with("} 1"), "{build}");

    let (head, _) = scrape(addr, "/other").await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
}

#[tokio::test]
async fn nothing_listens_without_the_flag() {
    let shim = Shim::start().await;
    shim.logs().lines().for_each(|l| assert!(!l.contains("serving metrics"), "{l}"));
}
