//! Prometheus metrics: what pinshim serves, pulls and asks Docker.
//!
//! One process-wide registry, created on first use; recording is a map
//! lookup and an atomic add, never blocks on I/O and never panics. With
//! `--metrics-bind-addr` the registry is served as OpenMetrics text at
//! `/metrics` ([`serve`]); without it nothing listens and the numbers are
//! simply never read.
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `pinshim_cri_requests_total` | method | CRI calls answered |
//! | `pinshim_cri_request_errors_total` | method, code | calls answered with a gRPC error, by code name |
//! | `pinshim_cri_request_duration_seconds` | method | time to the response headers |
//! | `pinshim_image_resolution_duration_seconds` | registry, result | tag resolutions (`_count`: how many) |
//! | `pinshim_image_pull_duration_seconds` | registry, result | pulls through Docker (`_count`: how many) |
//! | `pinshim_image_pull_bytes_total` | registry, result | size of the images pulled |
//! | `pinshim_docker_request_duration_seconds` | operation | Docker API calls |
//! | `pinshim_docker_request_errors_total` | operation | Docker API calls that failed (404s included) |
//! | `pinshim_index_entries` | kind | entries in pinshim's in-memory indexes |
//! | `pinshim_build_info` | version, commit | always 1 |

mod http;
mod rpc;

pub use http::serve;
pub use rpc::RpcMetricsLayer;

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::build_info;

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    method: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RegistryLabels {
    registry: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    commit: &'static str,
}

struct Metrics {
    registry: Registry,
    rpc_requests: Family<MethodLabels, Counter>,
    rpc_errors: Family<ErrorLabels, Counter>,
    rpc_duration: Histograms<MethodLabels>,
    resolution_duration: Histograms<RegistryLabels>,
    pull_duration: Histograms<RegistryLabels>,
    pull_bytes: Family<RegistryLabels, Counter>,
    docker_duration: Histograms<OperationLabels>,
    docker_errors: Family<OperationLabels, Counter>,
    index_entries: Family<KindLabels, Gauge>,
}

/// 0.5 ms to 16 s: CRI calls and Docker requests.
fn request_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// 5 ms to 10 s: a round trip or two to a registry.
fn resolution_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 12))
}

/// 0.25 s to 8.5 min: whole image pulls.
fn pull_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.25, 2.0, 12))
}

impl Metrics {
    fn new() -> Self {
        let mut m = Metrics {
            rpc_requests: Family::default(),
            rpc_errors: Family::default(),
            rpc_duration: Family::new_with_constructor(request_buckets),
            resolution_duration: Family::new_with_constructor(resolution_buckets),
            pull_duration: Family::new_with_constructor(pull_buckets),
            pull_bytes: Family::default(),
            docker_duration: Family::new_with_constructor(request_buckets),
            docker_errors: Family::default(),
            index_entries: Family::default(),
            registry: Registry::default(),
        };
        let registry = &mut m.registry;
        registry.register("pinshim_cri_requests", "CRI calls answered", m.rpc_requests.clone());
        registry.register(
            "pinshim_cri_request_errors",
            "CRI calls answered with a gRPC error, by code",
            m.rpc_errors.clone(),
        );
        registry.register_with_unit(
            "pinshim_cri_request_duration",
            "Time from a CRI call to its response headers",
            Unit::Seconds,
            m.rpc_duration.clone(),
        );
        registry.register_with_unit(
            "pinshim_image_resolution_duration",
            "Tag resolutions at registries",
            Unit::Seconds,
            m.resolution_duration.clone(),
        );
        registry.register_with_unit(
            "pinshim_image_pull_duration",
            "Image pulls by digest through Docker",
            Unit::Seconds,
            m.pull_duration.clone(),
        );
        registry.register_with_unit(
            "pinshim_image_pull",
            "Size of the images pulled, as Docker reports it",
            Unit::Bytes,
            m.pull_bytes.clone(),
        );
        registry.register_with_unit(
            "pinshim_docker_request_duration",
            "Docker Engine API calls",
            Unit::Seconds,
            m.docker_duration.clone(),
        );
        registry.register(
            "pinshim_docker_request_errors",
            "Docker Engine API calls that failed",
            m.docker_errors.clone(),
        );
        registry.register("pinshim_index_entries", "Entries in pinshim's in-memory indexes", m.index_entries.clone());
        let build = Family::<BuildLabels, Gauge>::default();
        build.get_or_create(&BuildLabels { version: build_info::VERSION, commit: build_info::COMMIT }).set(1);
        registry.register("pinshim_build_info", "The running pinshim's version and commit", build);
        m
    }
}

fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// One answered CRI call; `code` is the gRPC status name (`OK`, `NotFound`).
pub fn record_rpc(method: &str, code: tonic::Code, elapsed: Duration) {
    let m = metrics();
    let labels = MethodLabels { method: method.to_string() };
    m.rpc_requests.get_or_create(&labels).inc();
    m.rpc_duration.get_or_create(&labels).observe(elapsed.as_secs_f64());
    if code != tonic::Code::Ok {
        let labels = ErrorLabels { method: labels.method, code: format!("{code:?}") };
        m.rpc_errors.get_or_create(&labels).inc();
    }
}

/// A finished tag resolution at `registry`; `result` is `ok` or `error`.
pub fn record_resolution(registry: &str, result: &str, duration: Duration) {
    let labels = RegistryLabels { registry: registry.to_string(), result: result.to_string() };
    metrics().resolution_duration.get_or_create(&labels).observe(duration.as_secs_f64());
}

/// A finished pull from `registry`; `result` is `ok`, `stalled` or `error`,
/// `bytes` the pulled image's size (0 when it failed).
pub fn record_pull(registry: &str, result: &str, bytes: u64, duration: Duration) {
    let m = metrics();
    let labels = RegistryLabels { registry: registry.to_string(), result: result.to_string() };
    m.pull_duration.get_or_create(&labels).observe(duration.as_secs_f64());
    m.pull_bytes.get_or_create(&labels).inc_by(bytes);
}

/// One Docker Engine API call.
pub fn record_docker_call(operation: &'static str, ok: bool, duration: Duration) {
    let m = metrics();
    let labels = OperationLabels { operation };
    m.docker_duration.get_or_create(&labels).observe(duration.as_secs_f64());
    if !ok {
        m.docker_errors.get_or_create(&labels).inc();
    }
}

/// A Docker API failure outside a timed call (the event stream).
pub fn record_docker_error(operation: &'static str) {
    metrics().docker_errors.get_or_create(&OperationLabels { operation }).inc();
}

/// How many entries an in-memory index (`kind`: e.g. `containers`) holds now.
pub fn set_index_size(kind: &str, n: usize) {
    let n = i64::try_from(n).unwrap_or(i64::MAX);
    metrics().index_entries.get_or_create(&KindLabels { kind: kind.to_string() }).set(n);
}

/// Everything, in the OpenMetrics text format.
pub fn render() -> String {
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &metrics().registry) {
        tracing::warn!(error = %e, "cannot encode metrics");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample line that starts with `prefix`.
    pub(super) fn sample(text: &str, prefix: &str) -> Option<f64> {
        text.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }

    #[test]
    fn recorded_values_are_rendered() {
        record_resolution("registry.test", "ok", Duration::from_millis(20));
        record_pull("registry.test", "ok", 1000, Duration::from_secs(3));
        record_pull("registry.test", "ok", 24, Duration::from_secs(1));
        record_docker_call("test_op", false, Duration::from_millis(2));
        set_index_size("test-kind", 7);
        let text = render();
        let registry = r#"registry="registry.test",result="ok""#;
        assert_eq!(sample(&text, &format!("pinshim_image_resolution_duration_seconds_count{{{registry}}}")), Some(1.0));
        assert_eq!(sample(&text, &format!("pinshim_image_pull_duration_seconds_count{{{registry}}}")), Some(2.0));
        assert_eq!(sample(&text, &format!("pinshim_image_pull_bytes_total{{{registry}}}")), Some(1024.0));
        assert_eq!(sample(&text, r#"pinshim_docker_request_errors_total{operation="test_op"}"#), Some(1.0));
        assert_eq!(sample(&text, r#"pinshim_index_entries{kind="test-kind"}"#), Some(7.0));
        let build =
            format!(r#"pinshim_build_info{{version="{}",commit="{}"}} 1"#, build_info::VERSION, build_info::COMMIT);
        assert!(text.lines().any(|l| l == build), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
