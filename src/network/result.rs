//! Reading plugin results: the pod's IP addresses out of an ADD result, for
//! the result shapes of spec 0.1.0/0.2.0 (`ip4`/`ip6`) and 0.3.0 through
//! 1.1.0 (`ips` with CIDR `address` and an index into `interfaces`).

use std::net::IpAddr;

use serde_json::Value;

/// The addresses of the pod's interface `ifname`, in result order.
///
/// An address whose `interface` index names an interface outside the pod
/// (no `sandbox`, or another name) is left out; one without an index (or an
/// index the result does not resolve) is the pod's, since plugins may omit
/// interfaces.
pub(crate) fn pod_ips(result: &Value, ifname: &str) -> Result<Vec<IpAddr>, String> {
    let object = result.as_object().ok_or("the result is not a json object")?;
    match object.get("ips") {
        Some(Value::Array(ips)) => current_ips(ips, object.get("interfaces"), ifname),
        Some(Value::Null) | None => legacy_ips(result),
        Some(_) => Err("\"ips\" is not a list".to_string()),
    }
}

fn current_ips(ips: &[Value], interfaces: Option<&Value>, ifname: &str) -> Result<Vec<IpAddr>, String> {
    let interfaces = interfaces.and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let mut found = Vec::new();
    for entry in ips {
        let address = entry.get("address").and_then(Value::as_str).ok_or("an ips entry has no address")?;
        let index = entry.get("interface").and_then(Value::as_u64);
        let interface = index.and_then(|i| usize::try_from(i).ok()).and_then(|i| interfaces.get(i));
        if interface.is_none_or(|iface| is_pod_interface(iface, ifname)) {
            found.push(parse_cidr(address)?);
        }
    }
    Ok(found)
}

fn is_pod_interface(interface: &Value, ifname: &str) -> bool {
    let sandbox = interface.get("sandbox").and_then(Value::as_str).unwrap_or_default();
    let name = interface.get("name").and_then(Value::as_str).unwrap_or_default();
    !sandbox.is_empty() && name == ifname
}

/// Spec 0.1.0 and 0.2.0: `{"ip4": {"ip": "10.0.0.2/24"}, "ip6": {...}}`.
fn legacy_ips(result: &Value) -> Result<Vec<IpAddr>, String> {
    let mut found = Vec::new();
    for family in ["ip4", "ip6"] {
        if let Some(config) = result.get(family).filter(|v| !v.is_null()) {
            let address = config.get("ip").and_then(Value::as_str).ok_or(format!("{family} has no ip"))?;
            found.push(parse_cidr(address)?);
        }
    }
    Ok(found)
}

/// The address part of `10.0.0.2/24` (a bare address is accepted too).
fn parse_cidr(text: &str) -> Result<IpAddr, String> {
    let address = text.split_once('/').map_or(text, |(address, _)| address);
    address.parse().map_err(|_| format!("invalid address {text:?}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ips(result: Value) -> Vec<String> {
        pod_ips(&result, "eth0").unwrap().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn reads_a_1_0_0_bridge_result_skipping_host_side_addresses() {
        let result = json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "cni0", "mac": "aa:bb:cc:dd:ee:ff"},
                {"name": "veth1", "mac": "aa:bb:cc:dd:ee:01"},
                {"name": "eth0", "mac": "aa:bb:cc:dd:ee:02", "sandbox": "/proc/42/ns/net"},
            ],
            "ips": [
                {"address": "10.22.0.1/24", "interface": 0},
                {"address": "10.22.0.5/24", "gateway": "10.22.0.1", "interface": 2},
                {"address": "fd00::5/64", "interface": 2},
            ],
        });
        assert_eq!(ips(result), ["10.22.0.5", "fd00::5"]);
    }

    #[test]
    fn reads_0_3_x_and_0_4_0_results_with_version_fields() {
        for version in ["0.3.0", "0.3.1", "0.4.0"] {
            let result = json!({
                "cniVersion": version,
                "interfaces": [{"name": "eth0", "sandbox": "/var/run/netns/x"}],
                "ips": [{"version": "4", "address": "10.1.0.5/16", "gateway": "10.1.0.1", "interface": 0}],
                "dns": {},
            });
            assert_eq!(ips(result), ["10.1.0.5"], "{version}");
        }
    }

    #[test]
    fn reads_a_1_1_0_result_and_ips_without_interface_index() {
        let result =
            json!({"cniVersion": "1.1.0", "ips": [{"address": "192.168.1.3/24"}, {"address": "2001:db8::3/64"}]});
        assert_eq!(ips(result), ["192.168.1.3", "2001:db8::3"]);
    }

    #[test]
    fn reads_legacy_0_2_0_results() {
        let result = json!({"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.2/24", "gateway": "10.0.0.1"}, "ip6": null});
        assert_eq!(ips(result), ["10.0.0.2"]);
    }

    #[test]
    fn rejects_unusable_results() {
        for bad in [
            json!([]),
            json!({"ips": {}}),
            json!({"ips": [{"gateway": "1.2.3.4"}]}),
            json!({"ips": [{"address": "nope/24"}]}),
        ] {
            assert!(pod_ips(&bad, "eth0").is_err(), "{bad}");
        }
    }
}
