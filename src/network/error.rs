//! Errors of the CNI runtime: bad network configs, plugins that fail or hang,
//! and the on-disk result cache.

use std::path::PathBuf;
use std::time::Duration;

/// Why a CNI network configuration file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read file: {0}")]
    Read(#[source] std::io::Error),
    /// The file is not JSON.
    #[error("not valid json: {0}")]
    Json(#[source] serde_json::Error),
    /// The top level (or a plugin entry) is not a JSON object.
    #[error("{0} is not a json object")]
    NotAnObject(&'static str),
    /// A required key is absent.
    #[error("missing key {0:?}")]
    MissingKey(&'static str),
    /// A key holds a value of the wrong JSON type.
    #[error("key {key:?} must be {expected}")]
    WrongType { key: String, expected: &'static str },
    /// The network name breaks the spec's naming rule.
    #[error("invalid network name {0:?}: it must start with a letter or digit, then letters, digits, '_', '.', '-'")]
    InvalidName(String),
    /// The spec version is malformed or newer than this runtime implements.
    #[error("unsupported cniVersion {0:?}: this runtime implements cni spec versions up to 1.1.0")]
    UnsupportedVersion(String),
    /// `plugins` is present but empty.
    #[error("the plugins list is empty")]
    NoPlugins,
    /// A plugin `type` that cannot name a binary.
    #[error("plugin {index} has an invalid type {plugin_type:?}")]
    InvalidPluginType { index: usize, plugin_type: String },
}

/// A config file skipped during discovery, with the reason.
#[derive(Debug)]
pub struct SkippedConfig {
    /// The file that was skipped.
    pub path: PathBuf,
    /// What is wrong with it.
    pub problem: ConfigError,
}

/// Errors from setting up, checking or tearing down pod networks with CNI.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    /// The config directory holds no usable network configuration.
    #[error("no valid cni network config in {dir}{}", skipped_suffix(.skipped))]
    NoNetworkConfig { dir: PathBuf, skipped: Vec<SkippedConfig> },
    /// The config directory itself could not be listed.
    #[error("cannot read cni config directory {dir}: {source}")]
    ReadConfigDir { dir: PathBuf, source: std::io::Error },
    /// The sandbox ID is not usable as a CNI container ID.
    #[error("invalid cni container id {0:?}")]
    InvalidContainerId(String),
    /// ADD or CHECK was asked for without a network namespace.
    #[error("sandbox {container_id} has no network namespace to attach to cni network {network}")]
    MissingNetns { container_id: String, network: String },
    /// ADD was asked for a sandbox that is already attached.
    #[error("sandbox {container_id} is already attached to cni network {network}; delete it first")]
    AlreadyAttached { container_id: String, network: String },
    /// CHECK was asked for a sandbox with no recorded ADD.
    #[error("sandbox {container_id} has no cached cni attachment to check")]
    NotAttached { container_id: String },
    /// The plugin binary is in none of the plugin directories.
    #[error("cni plugin {plugin:?} (network {network}) not found in {dirs}")]
    PluginNotFound { network: String, plugin: String, dirs: String },
    /// The plugin could not be started or talked to.
    #[error("failed to run cni plugin {plugin:?} (network {network}) for {command}: {source}")]
    PluginExec { network: String, plugin: String, command: &'static str, source: std::io::Error },
    /// The plugin reported an error in the CNI error format.
    #[error("cni plugin {plugin:?} (network {network}) failed to {command}: {msg}{} (code {code})", details_suffix(.details))]
    PluginFailed { network: String, plugin: String, command: &'static str, code: u64, msg: String, details: String },
    /// The plugin failed without a CNI error on stdout.
    #[error("cni plugin {plugin:?} (network {network}) failed to {command}: {status}: {output}")]
    PluginExited { network: String, plugin: String, command: &'static str, status: String, output: String },
    /// The plugin did not finish in time and was killed.
    #[error("cni plugin {plugin:?} (network {network}) timed out after {timeout:?} on {command} and was killed")]
    PluginTimeout { network: String, plugin: String, command: &'static str, timeout: Duration },
    /// The plugin succeeded but its result cannot be used.
    #[error("cni plugin {plugin:?} (network {network}) returned an unusable {command} result: {reason}")]
    BadResult { network: String, plugin: String, command: &'static str, reason: String },
    /// The result cache could not be written, read or cleaned.
    #[error("cni result cache {path}: {source}")]
    Cache { path: PathBuf, source: std::io::Error },
}

fn skipped_suffix(skipped: &[SkippedConfig]) -> String {
    let reasons: Vec<String> = skipped.iter().map(|s| format!("{}: {}", s.path.display(), s.problem)).collect();
    if reasons.is_empty() { String::new() } else { format!(" (skipped {})", reasons.join("; ")) }
}

fn details_suffix(details: &str) -> String {
    if details.is_empty() { String::new() } else { format!(": {details}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_failure_names_plugin_message_details_and_code() {
        let err = CniError::PluginFailed {
            network: "podnet".into(),
            plugin: "bridge".into(),
            command: "add",
            code: 7,
            msg: "invalid config".into(),
            details: "subnet too small".into(),
        };
        assert_eq!(
            err.to_string(),
            "cni plugin \"bridge\" (network podnet) failed to add: invalid config: subnet too small (code 7)"
        );
    }

    #[test]
    fn no_config_lists_skipped_files_with_reasons() {
        let err = CniError::NoNetworkConfig {
            dir: "/etc/cni/net.d".into(),
            skipped: vec![SkippedConfig { path: "/etc/cni/net.d/10-a.conf".into(), problem: ConfigError::NoPlugins }],
        };
        assert_eq!(
            err.to_string(),
            "no valid cni network config in /etc/cni/net.d (skipped /etc/cni/net.d/10-a.conf: the plugins list is empty)"
        );
    }
}
