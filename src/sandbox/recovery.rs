//! Sandboxes a crash left half-made: a pause container created but never
//! started, or running without a finished, cached CNI ADD. Their
//! RunPodSandbox never returned, so nobody holds their ID: they are torn
//! down (plugins' DEL included, in the pinned namespace) and removed, at
//! start-up and when a retry of the same pod meets one. Pins whose sandbox
//! is gone are released.

use super::{SandboxError, SandboxService, is_sandbox, network};
use crate::api;
use crate::docker::ContainerDetails;
use crate::labels;

impl SandboxService {
    /// A leftover with the same name (held under the run lock, so not
    /// being made here) is replaced if it is half-made or stopped; a
    /// finished, running one is a conflict.
    pub(super) async fn replace_leftover(&self, name: &str) -> Result<(), SandboxError> {
        match self.docker.inspect_container(name).await? {
            Some(old) if is_sandbox(&old) && !self.finished_and_running(&old).await => {
                tracing::warn!(name, sandbox_id = %old.id, "removing leftover sandbox container with the same name");
                self.remove(&old.id).await
            }
            _ => Err(SandboxError::AlreadyExists(name.to_string())),
        }
    }

    /// After a restart: tears down and removes this instance's half-made
    /// sandboxes, then releases pins whose sandbox is gone.
    pub async fn recover(&self) -> Result<(), SandboxError> {
        let ours = format!("{}={}", labels::ROOT_DIR, self.root_dir_label());
        let kind = labels::kind_filter(labels::KIND_SANDBOX);
        for summary in self.docker.list_containers(&[&kind, &ours]).await? {
            // Held: a RunPodSandbox of this process is making it right now.
            let Some(_making) = self.runs.try_lock(&summary.name) else { continue };
            let Some((_, details)) = self.find(&summary.id).await? else { continue };
            if self.half_made(&details).await {
                tracing::warn!(sandbox_id = %details.id, name = %summary.name, "removing a sandbox a crash left half-made");
                if let Err(error) = self.remove(&details.id).await {
                    tracing::warn!(sandbox_id = %details.id, %error, "cannot remove half-made sandbox");
                }
            }
        }
        self.release_orphan_pins().await
    }

    async fn half_made(&self, details: &ContainerDetails) -> bool {
        let never_started = details.state.status == "created" && details.state.started_at <= 0;
        never_started || (details.state.running && !self.finished_and_running(details).await)
    }

    async fn finished_and_running(&self, details: &ContainerDetails) -> bool {
        self.read_back(details).await.ready
    }

    /// Pins left by a sandbox removed behind pinshim's back, or by a crash
    /// between removing it and releasing its pin: DEL in the namespace (the
    /// cache says what ADD did), then release.
    async fn release_orphan_pins(&self) -> Result<(), SandboxError> {
        let pinned = self.pins.pinned().await.map_err(|e| self.pin_error("", e))?;
        for id in pinned {
            if self.find(&id).await?.is_some() {
                continue;
            }
            tracing::warn!(sandbox_id = %id, "releasing the network namespace pin of a sandbox that is gone");
            if let Some(cni) = &self.cni
                && self.pins.is_pinned(&id).await
            {
                let pod =
                    network::pod_network(&id, Some(self.pins.path(&id)), &api::PodSandboxConfig::default(), vec![]);
                if let Err(error) = cni.del(&pod).await {
                    tracing::warn!(sandbox_id = %id, %error, "cni del for a gone sandbox failed");
                }
            }
            self.release_pin(&id).await?;
            self.set_networked(&id, false);
        }
        Ok(())
    }
}
