//! RuntimeService: version, status and runtime config now; pods and
//! containers arrive with sandbox and container support.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tonic::{Request, Response, Status};

use super::api::{self, runtime_service_server::RuntimeService};
use super::status::not_implemented;
use crate::runtime::{CgroupDriver, Condition, RUNTIME_API_VERSION, RUNTIME_NAME, Runtime};

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

pub struct RuntimeApi {
    runtime: Arc<Runtime>,
}

impl RuntimeApi {
    pub fn new(runtime: Arc<Runtime>) -> Self {
        RuntimeApi { runtime }
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
            });
            info.insert("info".to_string(), detail.to_string());
        }
        let runtime_handlers = r
            .handlers
            .iter()
            .map(|name| api::RuntimeHandler {
                name: name.clone(),
                features: Some(api::RuntimeHandlerFeatures::default()),
            })
            .collect();
        Ok(Response::new(api::StatusResponse {
            status: Some(api::RuntimeStatus {
                conditions: vec![condition("RuntimeReady", r.runtime), condition("NetworkReady", r.network)],
            }),
            info,
            runtime_handlers,
            features: Some(api::RuntimeFeatures::default()),
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

    async fn run_pod_sandbox(
        &self,
        _: Request<api::RunPodSandboxRequest>,
    ) -> Result<Response<api::RunPodSandboxResponse>, Status> {
        Err(not_implemented("RunPodSandbox"))
    }

    async fn stop_pod_sandbox(
        &self,
        _: Request<api::StopPodSandboxRequest>,
    ) -> Result<Response<api::StopPodSandboxResponse>, Status> {
        Err(not_implemented("StopPodSandbox"))
    }

    async fn remove_pod_sandbox(
        &self,
        _: Request<api::RemovePodSandboxRequest>,
    ) -> Result<Response<api::RemovePodSandboxResponse>, Status> {
        Err(not_implemented("RemovePodSandbox"))
    }

    async fn pod_sandbox_status(
        &self,
        _: Request<api::PodSandboxStatusRequest>,
    ) -> Result<Response<api::PodSandboxStatusResponse>, Status> {
        Err(not_implemented("PodSandboxStatus"))
    }

    async fn list_pod_sandbox(
        &self,
        _: Request<api::ListPodSandboxRequest>,
    ) -> Result<Response<api::ListPodSandboxResponse>, Status> {
        Err(not_implemented("ListPodSandbox"))
    }

    type StreamPodSandboxesStream = ResponseStream<api::StreamPodSandboxesResponse>;

    async fn stream_pod_sandboxes(
        &self,
        _: Request<api::StreamPodSandboxesRequest>,
    ) -> Result<Response<Self::StreamPodSandboxesStream>, Status> {
        Err(not_implemented("StreamPodSandboxes"))
    }

    async fn create_container(
        &self,
        _: Request<api::CreateContainerRequest>,
    ) -> Result<Response<api::CreateContainerResponse>, Status> {
        Err(not_implemented("CreateContainer"))
    }

    async fn start_container(
        &self,
        _: Request<api::StartContainerRequest>,
    ) -> Result<Response<api::StartContainerResponse>, Status> {
        Err(not_implemented("StartContainer"))
    }

    async fn stop_container(
        &self,
        _: Request<api::StopContainerRequest>,
    ) -> Result<Response<api::StopContainerResponse>, Status> {
        Err(not_implemented("StopContainer"))
    }

    async fn remove_container(
        &self,
        _: Request<api::RemoveContainerRequest>,
    ) -> Result<Response<api::RemoveContainerResponse>, Status> {
        Err(not_implemented("RemoveContainer"))
    }

    async fn list_containers(
        &self,
        _: Request<api::ListContainersRequest>,
    ) -> Result<Response<api::ListContainersResponse>, Status> {
        Err(not_implemented("ListContainers"))
    }

    type StreamContainersStream = ResponseStream<api::StreamContainersResponse>;

    async fn stream_containers(
        &self,
        _: Request<api::StreamContainersRequest>,
    ) -> Result<Response<Self::StreamContainersStream>, Status> {
        Err(not_implemented("StreamContainers"))
    }

    async fn container_status(
        &self,
        _: Request<api::ContainerStatusRequest>,
    ) -> Result<Response<api::ContainerStatusResponse>, Status> {
        Err(not_implemented("ContainerStatus"))
    }

    async fn update_container_resources(
        &self,
        _: Request<api::UpdateContainerResourcesRequest>,
    ) -> Result<Response<api::UpdateContainerResourcesResponse>, Status> {
        Err(not_implemented("UpdateContainerResources"))
    }

    async fn reopen_container_log(
        &self,
        _: Request<api::ReopenContainerLogRequest>,
    ) -> Result<Response<api::ReopenContainerLogResponse>, Status> {
        Err(not_implemented("ReopenContainerLog"))
    }

    async fn exec_sync(&self, _: Request<api::ExecSyncRequest>) -> Result<Response<api::ExecSyncResponse>, Status> {
        Err(not_implemented("ExecSync"))
    }

    async fn exec(&self, _: Request<api::ExecRequest>) -> Result<Response<api::ExecResponse>, Status> {
        Err(not_implemented("Exec"))
    }

    async fn attach(&self, _: Request<api::AttachRequest>) -> Result<Response<api::AttachResponse>, Status> {
        Err(not_implemented("Attach"))
    }

    async fn port_forward(
        &self,
        _: Request<api::PortForwardRequest>,
    ) -> Result<Response<api::PortForwardResponse>, Status> {
        Err(not_implemented("PortForward"))
    }

    async fn container_stats(
        &self,
        _: Request<api::ContainerStatsRequest>,
    ) -> Result<Response<api::ContainerStatsResponse>, Status> {
        Err(not_implemented("ContainerStats"))
    }

    async fn list_container_stats(
        &self,
        _: Request<api::ListContainerStatsRequest>,
    ) -> Result<Response<api::ListContainerStatsResponse>, Status> {
        Err(not_implemented("ListContainerStats"))
    }

    type StreamContainerStatsStream = ResponseStream<api::StreamContainerStatsResponse>;

    async fn stream_container_stats(
        &self,
        _: Request<api::StreamContainerStatsRequest>,
    ) -> Result<Response<Self::StreamContainerStatsStream>, Status> {
        Err(not_implemented("StreamContainerStats"))
    }

    async fn pod_sandbox_stats(
        &self,
        _: Request<api::PodSandboxStatsRequest>,
    ) -> Result<Response<api::PodSandboxStatsResponse>, Status> {
        Err(not_implemented("PodSandboxStats"))
    }

    async fn list_pod_sandbox_stats(
        &self,
        _: Request<api::ListPodSandboxStatsRequest>,
    ) -> Result<Response<api::ListPodSandboxStatsResponse>, Status> {
        Err(not_implemented("ListPodSandboxStats"))
    }

    type StreamPodSandboxStatsStream = ResponseStream<api::StreamPodSandboxStatsResponse>;

    async fn stream_pod_sandbox_stats(
        &self,
        _: Request<api::StreamPodSandboxStatsRequest>,
    ) -> Result<Response<Self::StreamPodSandboxStatsStream>, Status> {
        Err(not_implemented("StreamPodSandboxStats"))
    }

    async fn update_runtime_config(
        &self,
        _: Request<api::UpdateRuntimeConfigRequest>,
    ) -> Result<Response<api::UpdateRuntimeConfigResponse>, Status> {
        Err(not_implemented("UpdateRuntimeConfig"))
    }

    async fn checkpoint_container(
        &self,
        _: Request<api::CheckpointContainerRequest>,
    ) -> Result<Response<api::CheckpointContainerResponse>, Status> {
        Err(not_implemented("CheckpointContainer"))
    }

    async fn checkpoint_pod(
        &self,
        _: Request<api::CheckpointPodRequest>,
    ) -> Result<Response<api::CheckpointPodResponse>, Status> {
        Err(not_implemented("CheckpointPod"))
    }

    async fn restore_pod(
        &self,
        _: Request<api::RestorePodRequest>,
    ) -> Result<Response<api::RestorePodResponse>, Status> {
        Err(not_implemented("RestorePod"))
    }

    type GetContainerEventsStream = ResponseStream<api::ContainerEventResponse>;

    async fn get_container_events(
        &self,
        _: Request<api::GetEventsRequest>,
    ) -> Result<Response<Self::GetContainerEventsStream>, Status> {
        Err(not_implemented("GetContainerEvents"))
    }

    async fn list_metric_descriptors(
        &self,
        _: Request<api::ListMetricDescriptorsRequest>,
    ) -> Result<Response<api::ListMetricDescriptorsResponse>, Status> {
        Err(not_implemented("ListMetricDescriptors"))
    }

    async fn list_pod_sandbox_metrics(
        &self,
        _: Request<api::ListPodSandboxMetricsRequest>,
    ) -> Result<Response<api::ListPodSandboxMetricsResponse>, Status> {
        Err(not_implemented("ListPodSandboxMetrics"))
    }

    type StreamPodSandboxMetricsStream = ResponseStream<api::StreamPodSandboxMetricsResponse>;

    async fn stream_pod_sandbox_metrics(
        &self,
        _: Request<api::StreamPodSandboxMetricsRequest>,
    ) -> Result<Response<Self::StreamPodSandboxMetricsStream>, Status> {
        Err(not_implemented("StreamPodSandboxMetrics"))
    }

    async fn update_pod_sandbox_resources(
        &self,
        _: Request<api::UpdatePodSandboxResourcesRequest>,
    ) -> Result<Response<api::UpdatePodSandboxResourcesResponse>, Status> {
        Err(not_implemented("UpdatePodSandboxResources"))
    }
}
