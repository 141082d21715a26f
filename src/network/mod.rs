//! Pod networking through CNI plugins: the runtime side of the CNI spec
//! (0.1.0 through 1.1.0), doing for pinshim what Go's libcni does for other
//! runtimes. It finds the network config, runs the plugin chain for a pod
//! sandbox (ADD, DEL, CHECK), caches what ADD used so DEL can undo it later,
//! and reports readiness for the CRI `NetworkReady` condition.

mod cache;
mod chain;
mod config;
mod error;
mod exec;
mod lock;
mod netns;
mod pod;
mod request;
mod result;
mod version;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use error::{CniError, ConfigError, SkippedConfig};
pub(crate) use lock::SandboxLocks;
pub use netns::NetnsPins;
pub use pod::{DnsCapability, PodIps, PodNetwork, PortMapping};

use crate::fault::{self, CrashHook};
use cache::{Attachment, Cache, Cached};
use chain::{Chain, IFNAME, Target};
use exec::{Command, PluginRunner};

/// How long one plugin invocation may take before it is killed.
const PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Where CNI configs, plugins and the attachment cache live.
#[derive(Debug, Clone)]
pub struct CniSettings {
    /// Directory of `.conf`/`.conflist`/`.json` network configs (`--cni-conf-dir`).
    pub conf_dir: PathBuf,
    /// Directories searched for plugin binaries, in order (`--cni-bin-dir`).
    pub bin_dirs: Vec<PathBuf>,
    /// Directory of the attachment cache (libcni's `/var/lib/cni`).
    pub cache_dir: PathBuf,
    /// MTU for plugins that take one (bridge, ptp) when their config sets none.
    pub mtu: Option<u32>,
}

/// Networks pod sandboxes with the first valid CNI config of `conf_dir`.
#[derive(Debug)]
pub struct Cni {
    conf_dir: PathBuf,
    mtu: Option<u32>,
    runner: PluginRunner,
    cache: Cache,
    /// Records of ADDs under way (see `cache`).
    pending: Cache,
    locks: SandboxLocks,
    crash: CrashHook,
}

impl Cni {
    /// A CNI runtime with the default per-plugin time limit of 60 s.
    pub fn new(settings: CniSettings) -> Self {
        Self::with_plugin_timeout(settings, PLUGIN_TIMEOUT)
    }

    pub(crate) fn with_plugin_timeout(settings: CniSettings, timeout: Duration) -> Self {
        Self {
            runner: PluginRunner::new(settings.bin_dirs, timeout),
            cache: Cache::new(&settings.cache_dir),
            pending: Cache::pending(&settings.cache_dir),
            conf_dir: settings.conf_dir,
            mtu: settings.mtu,
            locks: SandboxLocks::default(),
            crash: CrashHook::default(),
        }
    }

    /// Test-only: arms the crash hook (see `CrashHook`).
    pub fn with_crash_hook(self, crash: CrashHook) -> Self {
        Self { crash, ..self }
    }

    fn chain(&self) -> Chain<'_> {
        Chain { runner: &self.runner, mtu: self.mtu }
    }

    /// Whether pods can be networked now: a valid network config exists (the
    /// first valid file in lexical order), its plugin binaries are installed
    /// and, for configs of spec 1.1.0 and later, every plugin's STATUS
    /// succeeds. The directory is read on every call, so a config dropped in
    /// later is picked up without a restart. An error is what the CRI
    /// reports as `NetworkReady=false` (reason `NetworkPluginNotReady`).
    pub async fn ready(&self) -> Result<(), CniError> {
        let net = config::discover(&self.conf_dir).await?;
        for plugin in &net.plugins {
            self.runner.find(&net.name, &plugin.plugin_type).await?;
        }
        if net.version.has_status() {
            self.chain().status(&net).await?;
        }
        Ok(())
    }

    /// ADD: runs the current network's plugin chain for the sandbox and
    /// returns its addresses. What ADD used and returned is cached under
    /// `cache_dir` (per network, sandbox and interface, as libcni does), so
    /// DEL uses the same config even if `conf_dir` changes. When a plugin
    /// fails, the chain is deleted again before the error is returned, so a
    /// failed ADD leaves nothing behind. While it runs, its progress is
    /// recorded as pending, for a DEL after a crash.
    pub async fn add(&self, pod: &PodNetwork) -> Result<PodIps, CniError> {
        check_container_id(&pod.container_id)?;
        let _guard = self.locks.lock(&pod.container_id).await;
        let network = config::discover(&self.conf_dir).await?;
        let netns = pod.netns.as_deref().map(|p| p.display().to_string());
        let netns = netns.ok_or_else(|| missing_netns(pod, &network.name))?;
        if let Some(existing) = self.usable_cached(pod).await?.into_iter().next() {
            let network = existing.1.network.name;
            return Err(CniError::AlreadyAttached { container_id: pod.container_id.clone(), network });
        }
        let cni_args = pod.cni_args();
        let capability_args = pod.capability_args();
        let mut attachment = Attachment {
            network,
            container_id: pod.container_id.clone(),
            ifname: IFNAME.to_string(),
            netns,
            cni_args,
            capability_args,
            result: None,
        };
        let added = self.attach(&mut attachment).await;
        if added.is_err() {
            let args = joined(&attachment);
            let target = target(&attachment, &attachment.netns, &args);
            self.chain().undo_add(&attachment.network, target, attachment.result.as_ref()).await;
        }
        // A stale record only makes a later DEL run once more (DEL is
        // idempotent): failing a finished ADD over it would leak the pod's
        // network, as nobody would undo it.
        let pending = self.pending.path(&attachment.network.name, &attachment.container_id, &attachment.ifname);
        if let Err(error) = self.pending.remove(&pending).await {
            tracing::warn!(path = %pending.display(), %error, "cannot remove the record of a finished cni add");
        }
        added
    }

    /// Runs the ADD chain, keeping its latest result in `attachment.result`
    /// (also on failure, for the undo) and in the pending record, and
    /// caches the attachment once every plugin succeeded.
    async fn attach(&self, attachment: &mut Attachment) -> Result<PodIps, CniError> {
        let args = joined(attachment);
        self.pending.store(attachment).await?;
        for plugin in &attachment.network.plugins {
            let target = Target {
                container_id: &attachment.container_id,
                netns: &attachment.netns,
                cni_args: &args,
                capability_args: &attachment.capability_args,
            };
            self.chain().add_one(&attachment.network, plugin, target, &mut attachment.result).await?;
            self.pending.store(attachment).await?;
        }
        self.crash.at(fault::point::AFTER_CNI_ADD);
        let result = attachment.result.as_ref().unwrap_or(&serde_json::Value::Null);
        let ips = result::pod_ips(result, IFNAME).map_err(|reason| CniError::BadResult {
            network: attachment.network.name.clone(),
            plugin: attachment.network.plugins.last().map(|p| p.plugin_type.clone()).unwrap_or_default(),
            command: Command::Add.verb(),
            reason,
        })?;
        self.cache.store(attachment).await?;
        Ok(PodIps { ips })
    }

    /// DEL: undoes the sandbox's attachment with the config and result
    /// cached by ADD (or recorded by an ADD a crash cut short; else with the
    /// current config), and removes the cache entries. Safe to repeat.
    /// Works after a pinshim restart and when the network namespace is gone (`netns` is `None` or no longer exists):
    /// plugins then get an empty `CNI_NETNS`, as the spec allows for DEL.
    /// With nothing cached and no valid config there is nothing to run, and
    /// that is not an error.
    pub async fn del(&self, pod: &PodNetwork) -> Result<(), CniError> {
        check_container_id(&pod.container_id)?;
        let _guard = self.locks.lock(&pod.container_id).await;
        let netns = live_netns(pod.netns.as_deref()).await;
        let (mut usable, mut stale) = split_cached(self.cache.find(&pod.container_id, IFNAME).await?);
        let (pending, pending_stale) = split_cached(self.pending.find(&pod.container_id, IFNAME).await?);
        usable.extend(pending);
        stale.extend(pending_stale);
        if usable.is_empty() {
            self.del_with_current_config(pod, &netns, !stale.is_empty()).await?;
        }
        for (path, attachment) in &usable {
            let args = joined(attachment);
            self.chain()
                .del(&attachment.network, target(attachment, &netns, &args), attachment.result.as_ref())
                .await?;
            self.cache.remove(path).await?;
        }
        for path in &stale {
            self.cache.remove(path).await?;
        }
        Ok(())
    }

    async fn del_with_current_config(&self, pod: &PodNetwork, netns: &str, had_cache: bool) -> Result<(), CniError> {
        let network = match config::discover(&self.conf_dir).await {
            Ok(network) => network,
            Err(CniError::NoNetworkConfig { .. }) if !had_cache => {
                tracing::warn!(container_id = %pod.container_id, "no cni attachment cached and no cni config: nothing to delete");
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        let (cni_args, capability_args) = (pod::join_cni_args(&pod.cni_args()), pod.capability_args());
        let target =
            Target { container_id: &pod.container_id, netns, cni_args: &cni_args, capability_args: &capability_args };
        self.chain().del(&network, target, None).await
    }

    /// CHECK: asks every plugin whether the sandbox's attachment is still as
    /// ADD left it, with the cached config and result. Configs older than
    /// spec 0.4.0 (no CHECK) and those with `disableCheck` pass unchecked.
    pub async fn check(&self, pod: &PodNetwork) -> Result<(), CniError> {
        check_container_id(&pod.container_id)?;
        let _guard = self.locks.lock(&pod.container_id).await;
        let not_attached = || CniError::NotAttached { container_id: pod.container_id.clone() };
        let (_, attachment) = self.usable_cached(pod).await?.into_iter().next().ok_or_else(not_attached)?;
        if !attachment.network.version.has_check() || attachment.network.disable_check {
            return Ok(());
        }
        let added = attachment.result.as_ref().ok_or_else(not_attached)?;
        let netns = pod.netns.as_deref().map(|p| p.display().to_string());
        let netns = netns.ok_or_else(|| missing_netns(pod, &attachment.network.name))?;
        let args = joined(&attachment);
        self.chain().check(&attachment.network, target(&attachment, &netns, &args), added).await
    }

    /// The addresses ADD gave the sandbox, read back from the attachment
    /// cache (no plugin runs); `None` when it is not attached.
    pub async fn ips(&self, container_id: &str) -> Result<Option<PodIps>, CniError> {
        check_container_id(container_id)?;
        let cached = split_cached(self.cache.find(container_id, IFNAME).await?).0;
        let Some((_, attachment)) = cached.into_iter().next() else { return Ok(None) };
        let result = attachment.result.unwrap_or(serde_json::Value::Null);
        Ok(result::pod_ips(&result, IFNAME).ok().map(|ips| PodIps { ips }))
    }

    /// Which of `container_ids` have finished an ADD and are recorded as
    /// attached, from one listing of the cache (no entry is read).
    pub async fn attached_among(&self, container_ids: &[&str]) -> Result<Vec<String>, CniError> {
        self.cache.holding(container_ids, IFNAME).await
    }

    async fn usable_cached(&self, pod: &PodNetwork) -> Result<Vec<(PathBuf, Attachment)>, CniError> {
        Ok(split_cached(self.cache.find(&pod.container_id, IFNAME).await?).0)
    }
}

/// Separates usable cache entries from unusable ones, which are logged.
fn split_cached(cached: Vec<Cached>) -> (Vec<(PathBuf, Attachment)>, Vec<PathBuf>) {
    let mut usable = Vec::new();
    let mut unusable = Vec::new();
    for entry in cached {
        match entry {
            Cached::Usable { path, attachment } => usable.push((path, *attachment)),
            Cached::Unusable { path, reason } => {
                tracing::warn!(path = %path.display(), %reason, "ignoring unusable cni cache entry");
                unusable.push(path);
            }
        }
    }
    (usable, unusable)
}

fn check_container_id(id: &str) -> Result<(), CniError> {
    if config::is_valid_identifier(id) { Ok(()) } else { Err(CniError::InvalidContainerId(id.to_string())) }
}

fn missing_netns(pod: &PodNetwork, network: &str) -> CniError {
    CniError::MissingNetns { container_id: pod.container_id.clone(), network: network.to_string() }
}

/// The namespace path if it still exists, else empty.
async fn live_netns(netns: Option<&Path>) -> String {
    match netns {
        Some(path) if tokio::fs::try_exists(path).await.unwrap_or(false) => path.display().to_string(),
        _ => String::new(),
    }
}

fn joined(attachment: &Attachment) -> String {
    pod::join_cni_args(&attachment.cni_args)
}

fn target<'a>(attachment: &'a Attachment, netns: &'a str, cni_args: &'a str) -> Target<'a> {
    Target { container_id: &attachment.container_id, netns, cni_args, capability_args: &attachment.capability_args }
}
