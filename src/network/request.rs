//! The request configuration one plugin reads on stdin: its own plugin
//! object from the network config plus `name`, `cniVersion`, `prevResult`
//! and the `runtimeConfig` of the capabilities it declares.

use serde_json::{Map, Value};

use super::config::{NetworkConfig, PluginConfig};

/// Plugins that read an `mtu` key for the interfaces they create.
const MTU_PLUGINS: [&str; 2] = ["bridge", "ptp"];

/// What varies between invocations of the same plugin config.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RequestInputs<'a> {
    /// Every capability argument the runtime offers for this attachment.
    pub(crate) capability_args: Option<&'a Map<String, Value>>,
    /// The result to chain from, if any.
    pub(crate) prev_result: Option<&'a Value>,
    /// The node-wide MTU for plugins that take one and set none.
    pub(crate) mtu: Option<u32>,
}

/// Builds the JSON object sent to `plugin` on stdin.
pub(crate) fn plugin_request(net: &NetworkConfig, plugin: &PluginConfig, inputs: RequestInputs<'_>) -> Value {
    let mut request = plugin.raw.clone();
    // The spec reserves `capabilities` for the runtime's eyes only.
    request.remove("capabilities");
    request.insert("name".to_string(), Value::String(net.name.clone()));
    request.insert("cniVersion".to_string(), Value::String(net.version_text.clone()));
    if let Some(prev) = inputs.prev_result {
        request.insert("prevResult".to_string(), prev.clone());
    }
    let runtime_config = runtime_config(plugin, inputs.capability_args);
    if !runtime_config.is_empty() {
        request.insert("runtimeConfig".to_string(), Value::Object(runtime_config));
    }
    if let Some(mtu) = inputs.mtu.filter(|_| MTU_PLUGINS.contains(&plugin.plugin_type.as_str())) {
        request.entry("mtu").or_insert(Value::from(mtu));
    }
    Value::Object(request)
}

/// The capability arguments `plugin` declares, and only those.
fn runtime_config(plugin: &PluginConfig, offered: Option<&Map<String, Value>>) -> Map<String, Value> {
    let Some(offered) = offered else { return Map::new() };
    let declared = offered.iter().filter(|(name, _)| plugin.capabilities.contains(*name));
    declared.map(|(name, value)| (name.clone(), value.clone())).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::network::config::parse_list;

    fn network() -> NetworkConfig {
        let conf = json!({"cniVersion": "1.0.0", "name": "podnet", "plugins": [
            {"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local"}},
            {"type": "portmap", "capabilities": {"portMappings": true, "bandwidth": false}},
            {"type": "ptp", "mtu": 1400, "capabilities": {"dns": true}},
        ]});
        parse_list(conf.to_string().as_bytes()).unwrap()
    }

    fn offered() -> Map<String, Value> {
        let args = json!({"portMappings": [{"hostPort": 80}], "bandwidth": {"egressRate": 1}, "mac": "x"});
        args.as_object().unwrap().clone()
    }

    #[test]
    fn first_plugin_gets_name_and_version_but_no_prev_result() {
        let net = network();
        let args = offered();
        let inputs = RequestInputs { capability_args: Some(&args), ..RequestInputs::default() };
        let request = plugin_request(&net, &net.plugins[0], inputs);
        assert_eq!(
            request,
            json!({"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local"},
                   "name": "podnet", "cniVersion": "1.0.0"})
        );
    }

    #[test]
    fn runtime_config_holds_only_declared_and_enabled_capabilities() {
        let net = network();
        let args = offered();
        let prev = json!({"ips": []});
        let inputs = RequestInputs { capability_args: Some(&args), prev_result: Some(&prev), mtu: None };
        let request = plugin_request(&net, &net.plugins[1], inputs);
        assert_eq!(request["runtimeConfig"], json!({"portMappings": [{"hostPort": 80}]}));
        assert_eq!(request["prevResult"], prev);
        assert!(request.get("capabilities").is_none());
    }

    #[test]
    fn declared_capability_without_a_runtime_value_adds_no_runtime_config() {
        let net = network();
        let args = offered();
        let inputs = RequestInputs { capability_args: Some(&args), ..RequestInputs::default() };
        let request = plugin_request(&net, &net.plugins[2], inputs);
        assert!(request.get("runtimeConfig").is_none());
    }

    #[test]
    fn mtu_goes_only_to_plugins_that_take_it_and_never_overrides() {
        let net = network();
        let inputs = RequestInputs { mtu: Some(1450), ..RequestInputs::default() };
        assert_eq!(plugin_request(&net, &net.plugins[0], inputs)["mtu"], 1450);
        assert!(plugin_request(&net, &net.plugins[1], inputs).get("mtu").is_none());
        assert_eq!(plugin_request(&net, &net.plugins[2], inputs)["mtu"], 1400);
    }
}
