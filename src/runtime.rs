//! What the runtime says about itself: version, readiness, cgroup driver.

use std::sync::Arc;

use crate::config::NetworkPlugin;
use crate::docker::{Docker, DockerError, Engine};
use crate::host::HostLimits;
use crate::network::Cni;

/// Reported as the runtime name so nodes show `docker://<version>`.
pub const RUNTIME_NAME: &str = "docker";
pub const RUNTIME_API_VERSION: &str = crate::build_info::CRI_API_VERSION;

#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeVersion {
    pub runtime_version: String,
    pub api_version: String,
}

/// One readiness condition, as kubelet reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub ready: bool,
    pub reason: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Readiness {
    pub runtime: Condition,
    pub network: Condition,
    /// The runtime handlers a pod can name: `""` (Docker's default
    /// runtime) first, then the runtimes dockerd has configured.
    pub handlers: Vec<String>,
    /// The engine, once dockerd has answered.
    pub engine: Option<Engine>,
    /// What every handler can do; dockerd's runtimes share one runc here.
    pub features: HandlerFeatures,
}

/// What a runtime handler can do, from what the engine and the kernel can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HandlerFeatures {
    /// A read-only mount can include the mounts below it: the engine takes
    /// `ReadOnlyForceRecursive` and the kernel has `mount_setattr`.
    pub recursive_read_only_mounts: bool,
}

/// The handler a pod without a runtime class gets.
pub const DEFAULT_HANDLER: &str = "";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupDriver {
    Systemd,
    Cgroupfs,
}

pub struct Runtime {
    docker: Docker,
    network: NetworkPlugin,
    cni: Option<Arc<Cni>>,
    limits: HostLimits,
}

impl Runtime {
    pub fn new(docker: Docker, network: NetworkPlugin, cni: Option<Arc<Cni>>, limits: HostLimits) -> Self {
        Runtime { docker, network, cni, limits }
    }

    pub async fn version(&self) -> Result<RuntimeVersion, DockerError> {
        let v = self.docker.version().await?;
        Ok(RuntimeVersion { runtime_version: v.version, api_version: v.api_version })
    }

    /// RuntimeReady follows dockerd; NetworkReady follows the network plugin.
    pub async fn readiness(&self) -> Readiness {
        let info = self.docker.info().await;
        let runtime = match &info {
            Ok(_) => ready(),
            Err(e) => Condition { ready: false, reason: "DockerDaemonNotReady".into(), message: e.to_string() },
        };
        let network = match (self.network, &info) {
            (_, Err(_)) => Condition {
                ready: false,
                reason: "DockerDaemonNotReady".into(),
                message: "network state is unknown while docker is unavailable".into(),
            },
            (NetworkPlugin::Docker, Ok(_)) => ready(),
            (NetworkPlugin::Cni, Ok(_)) => self.cni_readiness().await,
        };
        let engine = match &info {
            Ok(_) => self.docker.engine().await.ok(),
            Err(_) => None,
        };
        let mut handlers = vec![DEFAULT_HANDLER.to_string()];
        handlers.extend(info.map(|i| i.runtimes).unwrap_or_default());
        let features = HandlerFeatures {
            recursive_read_only_mounts: self.limits.recursive_read_only
                && engine.as_ref().is_some_and(|e| e.read_only_bind_options()),
        };
        Readiness { runtime, network, handlers, engine, features }
    }

    async fn cni_readiness(&self) -> Condition {
        let Some(cni) = &self.cni else { return ready() };
        match cni.ready().await {
            Ok(()) => ready(),
            Err(e) => Condition { ready: false, reason: "NetworkPluginNotReady".into(), message: e.to_string() },
        }
    }

    pub async fn cgroup_driver(&self) -> Result<CgroupDriver, DockerError> {
        let info = self.docker.info().await?;
        Ok(match info.cgroup_driver.as_str() {
            "systemd" => CgroupDriver::Systemd,
            _ => CgroupDriver::Cgroupfs,
        })
    }
}

fn ready() -> Condition {
    Condition { ready: true, reason: String::new(), message: String::new() }
}
