//! The audit trail of image provenance: one structured log line (JSON with
//! `--log-format json`) per tag resolution and per pull, under the target
//! `pinshim::audit`, naming what was asked for, what it resolved to, which
//! endpoint answered, bytes, duration and result. Never any credential.

use std::time::Duration;

use super::endpoints::Resolution;
use super::error::ImageError;
use super::reference::ImageReference;
use crate::docker::DockerImage;
use crate::metrics;

/// The audit trail: one structured line per resolution.
pub fn resolution(requested: &ImageReference, result: &Result<Resolution, ImageError>, took: Duration) {
    let duration_ms = took.as_millis() as u64;
    let registry = requested.repository().registry();
    metrics::record_resolution(registry, if result.is_ok() { "ok" } else { "error" }, took);
    match result {
        Ok(r) => {
            let canonical = format!("{}@{}", requested.repository(), r.digest);
            tracing::info!(target: "pinshim::audit", event = "resolve", requested = %requested, canonical = %canonical, host = %r.host, duration_ms, result = "ok", "image resolved");
        }
        Err(e) => {
            tracing::info!(target: "pinshim::audit", event = "resolve", requested = %requested, duration_ms, result = "error", error = %e, "image resolution failed");
        }
    }
}

/// The audit trail: one structured line per pull Docker made.
pub fn pull(
    requested: &ImageReference,
    canonical: &ImageReference,
    host: &str,
    result: &Result<DockerImage, ImageError>,
    took: Duration,
) {
    let duration_ms = took.as_millis() as u64;
    let bytes = result.as_ref().map_or(0, |image| image.size);
    metrics::record_pull(requested.repository().registry(), pull_result(result), bytes, took);
    match result {
        Ok(image) => {
            tracing::info!(target: "pinshim::audit", event = "pull", requested = %requested, canonical = %canonical, host, bytes = image.size, image_id = %image.id, duration_ms, result = "ok", "image pulled");
        }
        Err(e) => {
            tracing::info!(target: "pinshim::audit", event = "pull", requested = %requested, canonical = %canonical, host, duration_ms, result = "error", error = %e, "image pull failed");
        }
    }
}

/// The `result` label of a pull's metrics.
fn pull_result(pulled: &Result<DockerImage, ImageError>) -> &'static str {
    match pulled {
        Ok(_) => "ok",
        Err(ImageError::PullStalled { .. }) => "stalled",
        Err(_) => "error",
    }
}
