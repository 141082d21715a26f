//! Running a network's plugin chain: ADD in order (one plugin at a time, so
//! the caller can record progress) with each result feeding the next
//! plugin, DEL in reverse order with the ADD result, CHECK in order with the
//! ADD result, and STATUS to ask whether the plugins are ready.

use serde_json::{Map, Value};

use super::config::{NetworkConfig, PluginConfig};
use super::error::CniError;
use super::exec::{Command, Invocation, PluginRunner};
use super::request::{RequestInputs, plugin_request};

/// The interface name every pod gets.
pub(crate) const IFNAME: &str = "eth0";

/// The per-attachment protocol parameters.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    pub(crate) container_id: &'a str,
    /// Empty when the namespace is gone (allowed for DEL only).
    pub(crate) netns: &'a str,
    /// `CNI_ARGS`, already joined.
    pub(crate) cni_args: &'a str,
    pub(crate) capability_args: &'a Map<String, Value>,
}

/// Runs plugin chains with one runner and node-wide settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Chain<'a> {
    pub(crate) runner: &'a PluginRunner,
    pub(crate) mtu: Option<u32>,
}

impl Chain<'_> {
    /// ADD of one plugin of the chain, getting the previous result. The
    /// latest result is kept in `progress`, so a failed ADD can be undone
    /// with what it had set up so far; after the last plugin it is the final
    /// result.
    pub(crate) async fn add_one(
        &self,
        net: &NetworkConfig,
        plugin: &PluginConfig,
        target: Target<'_>,
        progress: &mut Option<Value>,
    ) -> Result<(), CniError> {
        let stdout = self.invoke(Command::Add, net, plugin, Some(target), progress.as_ref()).await?;
        *progress = Some(parse_result(net, plugin, &stdout)?);
        Ok(())
    }

    /// DEL: every plugin in reverse order, stopping at the first error. The
    /// ADD result goes along as `prevResult` from spec 0.4.0 on.
    pub(crate) async fn del(
        &self,
        net: &NetworkConfig,
        target: Target<'_>,
        added: Option<&Value>,
    ) -> Result<(), CniError> {
        let prev = added.filter(|_| net.version.has_check());
        for plugin in net.plugins.iter().rev() {
            self.invoke(Command::Del, net, plugin, Some(target), prev).await?;
        }
        Ok(())
    }

    /// DEL after a failed ADD: every plugin in reverse order with the last
    /// result the ADD got, logging and going past failures, so whatever the
    /// ADD managed to set up is undone.
    pub(crate) async fn undo_add(&self, net: &NetworkConfig, target: Target<'_>, partial: Option<&Value>) {
        let prev = partial.filter(|_| net.version.has_check());
        for plugin in net.plugins.iter().rev() {
            if let Err(error) = self.invoke(Command::Del, net, plugin, Some(target), prev).await {
                tracing::warn!(container_id = target.container_id, %error, "cleanup after failed cni add");
            }
        }
    }

    /// CHECK: every plugin in order with the ADD result.
    pub(crate) async fn check(&self, net: &NetworkConfig, target: Target<'_>, added: &Value) -> Result<(), CniError> {
        for plugin in &net.plugins {
            self.invoke(Command::Check, net, plugin, Some(target), Some(added)).await?;
        }
        Ok(())
    }

    /// STATUS: every plugin in order, stopping at the first that is not ready.
    pub(crate) async fn status(&self, net: &NetworkConfig) -> Result<(), CniError> {
        for plugin in &net.plugins {
            self.invoke(Command::Status, net, plugin, None, None).await?;
        }
        Ok(())
    }

    async fn invoke(
        &self,
        command: Command,
        net: &NetworkConfig,
        plugin: &PluginConfig,
        target: Option<Target<'_>>,
        prev_result: Option<&Value>,
    ) -> Result<Vec<u8>, CniError> {
        let capability_args = target.map(|t| t.capability_args);
        let inputs = RequestInputs { capability_args, prev_result, mtu: self.mtu };
        let stdin = plugin_request(net, plugin, inputs).to_string();
        let invocation = Invocation {
            command,
            network: &net.name,
            plugin: &plugin.plugin_type,
            container_id: target.map_or("", |t| t.container_id),
            netns: target.map_or("", |t| t.netns),
            ifname: if target.is_some() { IFNAME } else { "" },
            cni_args: target.map_or("", |t| t.cni_args),
        };
        self.runner.run(&invocation, stdin.as_bytes()).await
    }
}

/// Reads an ADD result; one without `cniVersion` is taken to be in the
/// version of the request, as libcni does.
fn parse_result(net: &NetworkConfig, plugin: &PluginConfig, stdout: &[u8]) -> Result<Value, CniError> {
    let bad = |reason: String| CniError::BadResult {
        network: net.name.clone(),
        plugin: plugin.plugin_type.clone(),
        command: Command::Add.verb(),
        reason,
    };
    let mut result: Value = serde_json::from_slice(stdout).map_err(|e| bad(format!("not json: {e}")))?;
    let object = result.as_object_mut().ok_or_else(|| bad("not a json object".into()))?;
    object.entry("cniVersion").or_insert_with(|| Value::String(net.version_text.clone()));
    Ok(result)
}
