//! `pinshim audit`: asks a running pinshim, over its CRI socket, which
//! images every container runs (its own and each image volume), by
//! Docker's image ID and by the registry digest it was pulled as, and
//! flags the digests named as denied.

use std::collections::HashMap;
use std::path::PathBuf;

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint};

use crate::api::runtime_service_client::RuntimeServiceClient;
use crate::api::{self, ContainerState};

/// Lists every container with its pod, Docker's image ID and the registry
/// digest reference it was pulled as; exits 1 when a denied digest runs.
#[derive(Debug, clap::Parser)]
#[command(name = "pinshim audit")]
pub struct AuditArgs {
    /// The running pinshim's CRI endpoint.
    #[arg(long, env = "PINSHIM_CONTAINER_RUNTIME_ENDPOINT", default_value = "unix:///run/pinshim/pinshim.sock")]
    pub container_runtime_endpoint: String,
    /// A digest to flag (sha256:…), repeatable or comma-separated.
    #[arg(long = "deny", value_delimiter = ',')]
    pub deny: Vec<String>,
    /// Include exited and created containers, not only running ones.
    #[arg(long)]
    pub all: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub output: AuditFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuditFormat {
    Table,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("unsupported endpoint {0:?}: expected unix:///path/to/socket")]
    Endpoint(String),
    #[error("cannot reach pinshim at {endpoint}: {source}")]
    Connect { endpoint: String, source: tonic::transport::Error },
    #[error("pinshim answered {0}")]
    Call(#[from] tonic::Status),
    #[error("cannot encode the report: {0}")]
    Encode(#[from] serde_json::Error),
}

/// One container's line of the report.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditRow {
    pub pod_namespace: String,
    pub pod_name: String,
    pub container: String,
    pub container_id: String,
    pub state: String,
    pub image_id: String,
    pub canonical_image_id: String,
    pub denied: bool,
    /// Empty for the container's own image; the container path of an
    /// image volume.
    pub mount: String,
}

/// Runs the audit; returns the report and whether any container was flagged.
pub async fn run(args: &AuditArgs) -> Result<(String, bool), AuditError> {
    let rows = collect(args).await?;
    let flagged = rows.iter().any(|r| r.denied);
    let report = match args.output {
        AuditFormat::Table => table(&rows),
        AuditFormat::Json => serde_json::to_string_pretty(&rows)? + "\n",
    };
    Ok((report, flagged))
}

async fn collect(args: &AuditArgs) -> Result<Vec<AuditRow>, AuditError> {
    let mut client = RuntimeServiceClient::new(connect(&args.container_runtime_endpoint).await?);
    let pods: HashMap<String, api::PodSandboxMetadata> = client
        .list_pod_sandbox(api::ListPodSandboxRequest::default())
        .await?
        .into_inner()
        .items
        .into_iter()
        .map(|p| (p.id, p.metadata.unwrap_or_default()))
        .collect();
    let running = api::ContainerFilter {
        state: Some(api::ContainerStateValue { state: ContainerState::ContainerRunning as i32 }),
        ..Default::default()
    };
    let filter = (!args.all).then_some(running);
    let containers = client.list_containers(api::ListContainersRequest { filter }).await?.into_inner().containers;
    let deny: Vec<String> = args.deny.iter().map(|d| d.trim().to_ascii_lowercase()).collect();
    let denied =
        |canonical: &str| canonical.rsplit_once('@').is_some_and(|(_, d)| deny.contains(&d.to_ascii_lowercase()));
    let mut rows = Vec::new();
    for c in containers {
        let pod = pods.get(&c.pod_sandbox_id).cloned().unwrap_or_default();
        let row = AuditRow {
            pod_namespace: pod.namespace,
            pod_name: pod.name,
            container: c.metadata.map(|m| m.name).unwrap_or_default(),
            container_id: c.id.clone(),
            state: ContainerState::try_from(c.state).map(|s| s.as_str_name().to_string()).unwrap_or_default(),
            image_id: c.image_id,
            denied: denied(&c.canonical_image_id),
            canonical_image_id: c.canonical_image_id,
            mount: String::new(),
        };
        for volume in image_volumes(&mut client, &c.id).await? {
            rows.push(AuditRow {
                denied: denied(&volume.canonical),
                image_id: volume.image_id,
                canonical_image_id: volume.canonical,
                mount: volume.container_path,
                ..row.clone()
            });
        }
        rows.push(row);
    }
    rows.sort_by(|a, b| {
        (&a.pod_namespace, &a.pod_name, &a.container, &a.mount).cmp(&(
            &b.pod_namespace,
            &b.pod_name,
            &b.container,
            &b.mount,
        ))
    });
    Ok(rows)
}

/// An image volume as verbose ContainerStatus describes it.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct VolumeInfo {
    container_path: String,
    image_id: String,
    #[serde(default)]
    canonical: String,
}

/// The container's image volumes; none for a container removed meanwhile.
async fn image_volumes(client: &mut RuntimeServiceClient<Channel>, id: &str) -> Result<Vec<VolumeInfo>, AuditError> {
    let request = api::ContainerStatusRequest { container_id: id.to_string(), verbose: true };
    let status = match client.container_status(request).await {
        Ok(status) => status.into_inner(),
        Err(e) if e.code() == tonic::Code::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let info: serde_json::Value =
        status.info.get("info").and_then(|i| serde_json::from_str(i).ok()).unwrap_or_default();
    Ok(serde_json::from_value(info["imageVolumes"].clone()).unwrap_or_default())
}

async fn connect(endpoint: &str) -> Result<Channel, AuditError> {
    let path = match endpoint.strip_prefix("unix://") {
        Some(path) if path.starts_with('/') => PathBuf::from(path),
        _ => return Err(AuditError::Endpoint(endpoint.to_string())),
    };
    // The URI is a placeholder: every connection goes to the socket.
    Endpoint::from_static("http://pinshim.invalid")
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move { tokio::net::UnixStream::connect(path).await.map(TokioIo::new) }
        }))
        .await
        .map_err(|source| AuditError::Connect { endpoint: endpoint.to_string(), source })
}

fn table(rows: &[AuditRow]) -> String {
    let mut out = String::from("NAMESPACE\tPOD\tCONTAINER\tSTATE\tIMAGE ID\tCANONICAL IMAGE ID\tDENIED\tVOLUME\n");
    for r in rows {
        let canonical = if r.canonical_image_id.is_empty() { "-" } else { &r.canonical_image_id };
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            r.pod_namespace,
            r.pod_name,
            r.container,
            r.state.trim_start_matches("CONTAINER_"),
            r.image_id,
            canonical,
            if r.denied { "DENIED" } else { "-" },
            if r.mount.is_empty() { "-" } else { &r.mount },
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_shows_both_ids_and_the_flag() {
        let row = AuditRow {
            pod_namespace: "default".into(),
            pod_name: "web".into(),
            container: "app".into(),
            container_id: "c1".into(),
            state: "CONTAINER_RUNNING".into(),
            image_id: "sha256:aaa".into(),
            canonical_image_id: "reg.local/app@sha256:bbb".into(),
            denied: true,
            mount: String::new(),
        };
        let out = table(std::slice::from_ref(&row));
        assert!(
            out.lines()
                .nth(1)
                .unwrap()
                .contains("default\tweb\tapp\tRUNNING\tsha256:aaa\treg.local/app@sha256:bbb\tDENIED\t-")
        );
        let volume = AuditRow { mount: "/models".into(), denied: false, ..row };
        assert!(table(&[volume]).lines().nth(1).unwrap().ends_with("\t-\t/models"));
    }
}
