//! RuntimeService: unwraps each request, calls the runtime, sandbox or
//! container domain, wraps the answer.

use std::sync::Arc;

use futures::StreamExt;
use tonic::{Request, Response, Status};

use super::status::{missing, not_implemented};
use super::{ResponseStream, batched};
use crate::api::{self, runtime_service_server::RuntimeService};
use crate::container::ContainerService;
use crate::docker::StdioFlags;
use crate::runtime::{CgroupDriver, Condition, RUNTIME_API_VERSION, RUNTIME_NAME, Runtime};
use crate::sandbox::SandboxService;
use crate::stats::StatsService;
use crate::stream::{StreamRequest, Streaming, requested_ports};

pub struct RuntimeApi {
    runtime: Arc<Runtime>,
    sandboxes: Arc<SandboxService>,
    containers: Arc<ContainerService>,
    streaming: Arc<Streaming>,
    stats: Arc<StatsService>,
}

impl RuntimeApi {
    pub fn new(
        runtime: Arc<Runtime>,
        sandboxes: Arc<SandboxService>,
        containers: Arc<ContainerService>,
        streaming: Arc<Streaming>,
        stats: Arc<StatsService>,
    ) -> Self {
        RuntimeApi { runtime, sandboxes, containers, streaming, stats }
    }
}

fn condition(kind: &str, c: Condition) -> api::RuntimeCondition {
    api::RuntimeCondition { r#type: kind.to_string(), status: c.ready, reason: c.reason, message: c.message }
}

#[tonic::async_trait]
impl RuntimeService for RuntimeApi {
    #[tracing::instrument(skip_all)]
    async fn version(&self, _: Request<api::VersionRequest>) -> Result<Response<api::VersionResponse>, Status> {
        let v = self.runtime.version().await?;
        Ok(Response::new(api::VersionResponse {
            // The version of the kubelet-facing API, as upstream runtimes report it.
            version: "0.1.0".to_string(),
            runtime_name: RUNTIME_NAME.to_string(),
            runtime_version: v.runtime_version,
            runtime_api_version: RUNTIME_API_VERSION.to_string(),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn status(&self, request: Request<api::StatusRequest>) -> Result<Response<api::StatusResponse>, Status> {
        let verbose = request.into_inner().verbose;
        let r = self.runtime.readiness().await;
        let mut info = std::collections::HashMap::new();
        if verbose {
            let detail = serde_json::json!({
                "runtimeReady": r.runtime.ready,
                "networkReady": r.network.ready,
                "runtimeHandlers": r.handlers,
                "engine": r.engine,
            });
            info.insert("info".to_string(), detail.to_string());
        }
        let features = api::RuntimeHandlerFeatures {
            recursive_read_only_mounts: r.features.recursive_read_only_mounts,
            user_namespaces: false,
        };
        let runtime_handlers = r
            .handlers
            .iter()
            .map(|name| api::RuntimeHandler { name: name.clone(), features: Some(features) })
            .collect();
        Ok(Response::new(api::StatusResponse {
            status: Some(api::RuntimeStatus {
                conditions: vec![condition("RuntimeReady", r.runtime), condition("NetworkReady", r.network)],
            }),
            info,
            runtime_handlers,
            // Binds with mount options are prepared on the host (host_mounts).
            features: Some(api::RuntimeFeatures { mount_options: true, ..Default::default() }),
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn runtime_config(
        &self,
        _: Request<api::RuntimeConfigRequest>,
    ) -> Result<Response<api::RuntimeConfigResponse>, Status> {
        let driver = match self.runtime.cgroup_driver().await? {
            CgroupDriver::Systemd => api::CgroupDriver::Systemd,
            CgroupDriver::Cgroupfs => api::CgroupDriver::Cgroupfs,
        };
        Ok(Response::new(api::RuntimeConfigResponse {
            linux: Some(api::LinuxRuntimeConfiguration { cgroup_driver: driver as i32 }),
        }))
    }

    #[tracing::instrument(skip_all, fields(pod))]
    async fn run_pod_sandbox(
        &self,
        request: Request<api::RunPodSandboxRequest>,
    ) -> Result<Response<api::RunPodSandboxResponse>, Status> {
        let request = request.into_inner();
        let config = request.config.ok_or_else(|| missing("config"))?;
        if let Some(m) = &config.metadata {
            tracing::Span::current().record("pod", format!("{}/{}", m.namespace, m.name));
        }
        let pod_sandbox_id = self.sandboxes.run(&config, &request.runtime_handler).await?;
        Ok(Response::new(api::RunPodSandboxResponse { pod_sandbox_id }))
    }

    #[tracing::instrument(skip_all, fields(sandbox_id))]
    async fn stop_pod_sandbox(
        &self,
        request: Request<api::StopPodSandboxRequest>,
    ) -> Result<Response<api::StopPodSandboxResponse>, Status> {
        let id = request.into_inner().pod_sandbox_id;
        tracing::Span::current().record("sandbox_id", id.as_str());
        self.sandboxes.stop(&id).await?;
        Ok(Response::new(api::StopPodSandboxResponse {}))
    }

    #[tracing::instrument(skip_all, fields(sandbox_id))]
    async fn remove_pod_sandbox(
        &self,
        request: Request<api::RemovePodSandboxRequest>,
    ) -> Result<Response<api::RemovePodSandboxResponse>, Status> {
        let id = request.into_inner().pod_sandbox_id;
        tracing::Span::current().record("sandbox_id", id.as_str());
        self.sandboxes.remove(&id).await?;
        Ok(Response::new(api::RemovePodSandboxResponse {}))
    }

    #[tracing::instrument(skip_all, fields(sandbox_id))]
    async fn pod_sandbox_status(
        &self,
        request: Request<api::PodSandboxStatusRequest>,
    ) -> Result<Response<api::PodSandboxStatusResponse>, Status> {
        let request = request.into_inner();
        tracing::Span::current().record("sandbox_id", request.pod_sandbox_id.as_str());
        let mut response = self.sandboxes.status(&request.pod_sandbox_id, request.verbose).await?;
        // A timestamp tells kubelet's Evented PLEG to take the containers'
        // statuses from here, so they must be here.
        if let Some(status) = &response.status {
            response.containers_statuses = self.containers.statuses_in_pod(&status.id).await;
        }
        Ok(Response::new(response))
    }

    #[tracing::instrument(skip_all)]
    async fn list_pod_sandbox(
        &self,
        request: Request<api::ListPodSandboxRequest>,
    ) -> Result<Response<api::ListPodSandboxResponse>, Status> {
        let filter = request.into_inner().filter;
        let items = self.sandboxes.list(filter.as_ref()).await?;
        Ok(Response::new(api::ListPodSandboxResponse { items }))
    }

    type StreamPodSandboxesStream = ResponseStream<api::StreamPodSandboxesResponse>;

    #[tracing::instrument(skip_all)]
    async fn stream_pod_sandboxes(
        &self,
        request: Request<api::StreamPodSandboxesRequest>,
    ) -> Result<Response<Self::StreamPodSandboxesStream>, Status> {
        let filter = request.into_inner().filter;
        let items = self.sandboxes.list(filter.as_ref()).await?;
        Ok(batched(items, |batch| api::StreamPodSandboxesResponse { pod_sandboxes: batch }))
    }

    #[tracing::instrument(skip_all, fields(sandbox_id, container))]
    async fn create_container(
        &self,
        request: Request<api::CreateContainerRequest>,
    ) -> Result<Response<api::CreateContainerResponse>, Status> {
        let request = request.into_inner();
        let config = request.config.ok_or_else(|| missing("config"))?;
        let span = tracing::Span::current();
        span.record("sandbox_id", request.pod_sandbox_id.as_str());
        span.record("container", config.metadata.as_ref().map(|m| m.name.as_str()).unwrap_or_default());
        let container_id = self.containers.create(&request.pod_sandbox_id, &config).await?;
        Ok(Response::new(api::CreateContainerResponse { container_id }))
    }

    #[tracing::instrument(skip_all, fields(container_id))]
    async fn start_container(
        &self,
        request: Request<api::StartContainerRequest>,
    ) -> Result<Response<api::StartContainerResponse>, Status> {
        let id = request.into_inner().container_id;
        tracing::Span::current().record("container_id", id.as_str());
        self.containers.start(&id).await?;
        Ok(Response::new(api::StartContainerResponse {}))
    }

    #[tracing::instrument(skip_all, fields(container_id))]
    async fn stop_container(
        &self,
        request: Request<api::StopContainerRequest>,
    ) -> Result<Response<api::StopContainerResponse>, Status> {
        let request = request.into_inner();
        tracing::Span::current().record("container_id", request.container_id.as_str());
        self.containers.stop(&request.container_id, request.timeout).await?;
        Ok(Response::new(api::StopContainerResponse {}))
    }

    #[tracing::instrument(skip_all, fields(container_id))]
    async fn remove_container(
        &self,
        request: Request<api::RemoveContainerRequest>,
    ) -> Result<Response<api::RemoveContainerResponse>, Status> {
        let id = request.into_inner().container_id;
        tracing::Span::current().record("container_id", id.as_str());
        self.containers.remove(&id).await?;
        Ok(Response::new(api::RemoveContainerResponse {}))
    }

    #[tracing::instrument(skip_all)]
    async fn list_containers(
        &self,
        request: Request<api::ListContainersRequest>,
    ) -> Result<Response<api::ListContainersResponse>, Status> {
        let filter = request.into_inner().filter;
        let containers = self.containers.list(filter.as_ref()).await?;
        Ok(Response::new(api::ListContainersResponse { containers }))
    }

    type StreamContainersStream = ResponseStream<api::StreamContainersResponse>;

    #[tracing::instrument(skip_all)]
    async fn stream_containers(
        &self,
        request: Request<api::StreamContainersRequest>,
    ) -> Result<Response<Self::StreamContainersStream>, Status> {
        let filter = request.into_inner().filter;
        let items = self.containers.list(filter.as_ref()).await?;
        Ok(batched(items, |batch| api::StreamContainersResponse { containers: batch }))
    }

    #[tracing::instrument(skip_all, fields(container_id))]
    async fn container_status(
        &self,
        request: Request<api::ContainerStatusRequest>,
    ) -> Result<Response<api::ContainerStatusResponse>, Status> {
        let request = request.into_inner();
        tracing::Span::current().record("container_id", request.container_id.as_str());
        Ok(Response::new(self.containers.status(&request.container_id, request.verbose).await?))
    }

    #[tracing::instrument(skip_all, fields(container_id))]
    async fn update_container_resources(
        &self,
        request: Request<api::UpdateContainerResourcesRequest>,
    ) -> Result<Response<api::UpdateContainerResourcesResponse>, Status> {
        let request = request.into_inner();
        tracing::Span::current().record("container_id", request.container_id.as_str());
        self.containers.update_resources(&request.container_id, request.linux.as_ref()).await?;
        Ok(Response::new(api::UpdateContainerResourcesResponse {}))
    }

    #[tracing::instrument(skip_all, fields(container_id))]
    async fn reopen_container_log(
        &self,
        request: Request<api::ReopenContainerLogRequest>,
    ) -> Result<Response<api::ReopenContainerLogResponse>, Status> {
        let id = request.into_inner().container_id;
        tracing::Span::current().record("container_id", id.as_str());
        self.containers.reopen_log(&id).await?;
        Ok(Response::new(api::ReopenContainerLogResponse {}))
    }

    #[tracing::instrument(skip_all, fields(container_id))]
    async fn exec_sync(
        &self,
        request: Request<api::ExecSyncRequest>,
    ) -> Result<Response<api::ExecSyncResponse>, Status> {
        let request = request.into_inner();
        tracing::Span::current().record("container_id", request.container_id.as_str());
        Ok(Response::new(self.containers.exec_sync(&request.container_id, request.cmd, request.timeout).await?))
    }

    #[tracing::instrument(skip_all, fields(container_id))]
    async fn exec(&self, request: Request<api::ExecRequest>) -> Result<Response<api::ExecResponse>, Status> {
        let r = request.into_inner();
        tracing::Span::current().record("container_id", r.container_id.as_str());
        let flags = StdioFlags { stdin: r.stdin, stdout: r.stdout, stderr: r.stderr, tty: r.tty };
        let container_id = self.containers.exec_target(&r.container_id, &r.cmd, flags).await?;
        let stream = StreamRequest::Exec { container_id, cmd: r.cmd, flags };
        Ok(Response::new(api::ExecResponse { url: self.streaming.url(stream)? }))
    }

    #[tracing::instrument(skip_all, fields(container_id))]
    async fn attach(&self, request: Request<api::AttachRequest>) -> Result<Response<api::AttachResponse>, Status> {
        let r = request.into_inner();
        tracing::Span::current().record("container_id", r.container_id.as_str());
        let flags = StdioFlags { stdin: r.stdin, stdout: r.stdout, stderr: r.stderr, tty: r.tty };
        let (container_id, flags) = self.containers.attach_target(&r.container_id, flags).await?;
        let stream = StreamRequest::Attach { container_id, flags };
        Ok(Response::new(api::AttachResponse { url: self.streaming.url(stream)? }))
    }

    #[tracing::instrument(skip_all, fields(sandbox_id))]
    async fn port_forward(
        &self,
        request: Request<api::PortForwardRequest>,
    ) -> Result<Response<api::PortForwardResponse>, Status> {
        let r = request.into_inner();
        tracing::Span::current().record("sandbox_id", r.pod_sandbox_id.as_str());
        let ports = requested_ports(&r.port).map_err(Status::invalid_argument)?;
        let (sandbox_id, pid) = self.sandboxes.port_forward_target(&r.pod_sandbox_id).await?;
        let stream = StreamRequest::PortForward { sandbox_id, pid, ports };
        Ok(Response::new(api::PortForwardResponse { url: self.streaming.url(stream)? }))
    }

    #[tracing::instrument(skip_all, fields(container_id))]
    async fn container_stats(
        &self,
        request: Request<api::ContainerStatsRequest>,
    ) -> Result<Response<api::ContainerStatsResponse>, Status> {
        let id = request.into_inner().container_id;
        tracing::Span::current().record("container_id", id.as_str());
        Ok(Response::new(api::ContainerStatsResponse { stats: Some(self.stats.container(&id).await?) }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_container_stats(
        &self,
        request: Request<api::ListContainerStatsRequest>,
    ) -> Result<Response<api::ListContainerStatsResponse>, Status> {
        let filter = request.into_inner().filter;
        Ok(Response::new(api::ListContainerStatsResponse { stats: self.stats.containers(filter.as_ref()).await? }))
    }

    type StreamContainerStatsStream = ResponseStream<api::StreamContainerStatsResponse>;

    #[tracing::instrument(skip_all)]
    async fn stream_container_stats(
        &self,
        request: Request<api::StreamContainerStatsRequest>,
    ) -> Result<Response<Self::StreamContainerStatsStream>, Status> {
        let filter = request.into_inner().filter;
        let stats = self.stats.containers(filter.as_ref()).await?;
        Ok(batched(stats, |batch| api::StreamContainerStatsResponse { container_stats: batch }))
    }

    #[tracing::instrument(skip_all, fields(sandbox_id))]
    async fn pod_sandbox_stats(
        &self,
        request: Request<api::PodSandboxStatsRequest>,
    ) -> Result<Response<api::PodSandboxStatsResponse>, Status> {
        let id = request.into_inner().pod_sandbox_id;
        tracing::Span::current().record("sandbox_id", id.as_str());
        Ok(Response::new(api::PodSandboxStatsResponse { stats: Some(self.stats.pod(&id).await?) }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_pod_sandbox_stats(
        &self,
        request: Request<api::ListPodSandboxStatsRequest>,
    ) -> Result<Response<api::ListPodSandboxStatsResponse>, Status> {
        let filter = request.into_inner().filter;
        Ok(Response::new(api::ListPodSandboxStatsResponse { stats: self.stats.pods(filter.as_ref()).await? }))
    }

    type StreamPodSandboxStatsStream = ResponseStream<api::StreamPodSandboxStatsResponse>;

    #[tracing::instrument(skip_all)]
    async fn stream_pod_sandbox_stats(
        &self,
        request: Request<api::StreamPodSandboxStatsRequest>,
    ) -> Result<Response<Self::StreamPodSandboxStatsStream>, Status> {
        let filter = request.into_inner().filter;
        let stats = self.stats.pods(filter.as_ref()).await?;
        Ok(batched(stats, |batch| api::StreamPodSandboxStatsResponse { pod_sandbox_stats: batch }))
    }

    #[tracing::instrument(skip_all)]
    async fn update_runtime_config(
        &self,
        request: Request<api::UpdateRuntimeConfigRequest>,
    ) -> Result<Response<api::UpdateRuntimeConfigResponse>, Status> {
        let config = request.into_inner().runtime_config.and_then(|c| c.network_config);
        if let Some(network) = config.filter(|n| !n.pod_cidr.is_empty()) {
            self.sandboxes.set_pod_cidr(&network.pod_cidr);
        }
        Ok(Response::new(api::UpdateRuntimeConfigResponse {}))
    }

    #[tracing::instrument(skip_all, fields(container_id))]
    async fn checkpoint_container(
        &self,
        request: Request<api::CheckpointContainerRequest>,
    ) -> Result<Response<api::CheckpointContainerResponse>, Status> {
        let r = request.into_inner();
        tracing::Span::current().record("container_id", r.container_id.as_str());
        self.containers.checkpoint(&r.container_id, &r.location, r.timeout).await?;
        Ok(Response::new(api::CheckpointContainerResponse {}))
    }

    async fn checkpoint_pod(
        &self,
        _: Request<api::CheckpointPodRequest>,
    ) -> Result<Response<api::CheckpointPodResponse>, Status> {
        Err(not_implemented(
            "CheckpointPod",
            "Docker checkpoints one container at a time, so a pod's containers cannot be frozen as one snapshot; \
             CheckpointContainer is served",
        ))
    }

    async fn restore_pod(
        &self,
        _: Request<api::RestorePodRequest>,
    ) -> Result<Response<api::RestorePodResponse>, Status> {
        Err(not_implemented(
            "RestorePod",
            "Docker starts a container from a checkpoint only out of that container's own checkpoint \
             directory (it refuses a custom one), not from an archive",
        ))
    }

    type GetContainerEventsStream = ResponseStream<api::ContainerEventResponse>;

    #[tracing::instrument(skip_all)]
    async fn get_container_events(
        &self,
        _: Request<api::GetEventsRequest>,
    ) -> Result<Response<Self::GetContainerEventsStream>, Status> {
        let events = tokio_stream::wrappers::ReceiverStream::new(self.containers.events()).map(Ok);
        Ok(Response::new(Box::pin(events)))
    }

    #[tracing::instrument(skip_all)]
    async fn list_metric_descriptors(
        &self,
        _: Request<api::ListMetricDescriptorsRequest>,
    ) -> Result<Response<api::ListMetricDescriptorsResponse>, Status> {
        Ok(Response::new(api::ListMetricDescriptorsResponse { descriptors: self.stats.metric_descriptors() }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_pod_sandbox_metrics(
        &self,
        _: Request<api::ListPodSandboxMetricsRequest>,
    ) -> Result<Response<api::ListPodSandboxMetricsResponse>, Status> {
        Ok(Response::new(api::ListPodSandboxMetricsResponse { pod_metrics: self.stats.pod_metrics().await? }))
    }

    type StreamPodSandboxMetricsStream = ResponseStream<api::StreamPodSandboxMetricsResponse>;

    #[tracing::instrument(skip_all)]
    async fn stream_pod_sandbox_metrics(
        &self,
        _: Request<api::StreamPodSandboxMetricsRequest>,
    ) -> Result<Response<Self::StreamPodSandboxMetricsStream>, Status> {
        let metrics = self.stats.pod_metrics().await?;
        Ok(batched(metrics, |batch| api::StreamPodSandboxMetricsResponse { pod_sandbox_metrics: batch }))
    }

    #[tracing::instrument(skip_all, fields(sandbox_id))]
    async fn update_pod_sandbox_resources(
        &self,
        request: Request<api::UpdatePodSandboxResourcesRequest>,
    ) -> Result<Response<api::UpdatePodSandboxResourcesResponse>, Status> {
        let r = request.into_inner();
        tracing::Span::current().record("sandbox_id", r.pod_sandbox_id.as_str());
        self.sandboxes.update_resources(&r.pod_sandbox_id, r.overhead.as_ref(), r.resources.as_ref()).await?;
        Ok(Response::new(api::UpdatePodSandboxResourcesResponse {}))
    }
}
