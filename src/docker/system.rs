//! Daemon-wide facts: version and `docker info`.

use super::{Docker, DockerError, timed};

/// What `docker version` reports.
#[derive(Debug, Clone)]
pub struct DockerVersion {
    pub version: String,
    pub api_version: String,
}

/// The parts of `docker info` pinshim uses.
#[derive(Debug, Clone, Default)]
pub struct DockerInfo {
    /// `cgroupfs` or `systemd`.
    pub cgroup_driver: String,
    pub root_dir: String,
    pub storage_driver: String,
    pub runtimes: Vec<String>,
    pub default_runtime: String,
}

impl Docker {
    pub async fn version(&self) -> Result<DockerVersion, DockerError> {
        let client = self.client().await?;
        let v = timed("version", client.version()).await.map_err(|e| self.error(e))?;
        Ok(DockerVersion { version: v.version.unwrap_or_default(), api_version: v.api_version.unwrap_or_default() })
    }

    pub async fn info(&self) -> Result<DockerInfo, DockerError> {
        let client = self.client().await?;
        let info = timed("info", client.info()).await.map_err(|e| self.error(e))?;
        let mut runtimes: Vec<String> = info.runtimes.unwrap_or_default().into_keys().collect();
        runtimes.sort();
        Ok(DockerInfo {
            cgroup_driver: info.cgroup_driver.map(|d| d.to_string()).unwrap_or_default(),
            root_dir: info.docker_root_dir.unwrap_or_default(),
            storage_driver: info.driver.unwrap_or_default(),
            runtimes,
            default_runtime: info.default_runtime.unwrap_or_default(),
        })
    }
}
