//! Tests of the whole ADD/DEL/CHECK/STATUS flow with scripted plugins that
//! record every call (environment and stdin) into a log directory.

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::{Value, json};
use tempfile::TempDir;

use super::*;

/// A test world: config, plugin, cache and log directories, and a stand-in netns file.
struct World {
    root: TempDir,
}

/// One recorded plugin call.
#[derive(Debug)]
struct Call {
    command: String,
    plugin: String,
    env: Vec<String>,
    stdin: Value,
}

impl World {
    fn new() -> Self {
        let world = Self { root: tempfile::tempdir().unwrap() };
        for dir in ["conf", "bin", "cache", "log"] {
            std::fs::create_dir(world.dir(dir)).unwrap();
        }
        std::fs::write(world.dir("netns"), "").unwrap();
        world
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    fn cni(&self) -> Cni {
        let settings = CniSettings {
            conf_dir: self.dir("conf"),
            bin_dirs: vec![self.dir("bin")],
            cache_dir: self.dir("cache"),
            mtu: None,
        };
        Cni::with_plugin_timeout(settings, Duration::from_secs(20))
    }

    fn pod(&self) -> PodNetwork {
        PodNetwork {
            container_id: "sandbox1".into(),
            netns: Some(self.dir("netns")),
            pod_name: "web".into(),
            pod_namespace: "default".into(),
            pod_uid: "u1".into(),
            port_mappings: vec![PortMapping {
                host_port: 8080,
                container_port: 80,
                protocol: "TCP".into(),
                host_ip: String::new(),
            }],
            ..PodNetwork::default()
        }
    }

    /// A plugin that records its call and answers `reply` to `command` (exit 1 if `fails`).
    fn plugin(&self, name: &str, command: &str, reply: &Value, fails: bool) {
        let log = self.dir("log");
        let status = if fails { 1 } else { 0 };
        let body = format!(
            "#!/bin/sh\nn=$(ls {log} | wc -l)\nf={log}/$(printf %03d $n)-$CNI_COMMAND-{name}\n\
             {{ echo \"$CNI_CONTAINERID|$CNI_NETNS|$CNI_IFNAME|$CNI_ARGS\"; cat; }} > $f\n\
             if [ \"$CNI_COMMAND\" = {command} ]; then echo '{reply}'; exit {status}; fi\n",
            log = log.display()
        );
        let path = self.dir("bin").join(name);
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn conf(&self, file: &str, conf: &Value) {
        std::fs::write(self.dir("conf").join(file), conf.to_string()).unwrap();
    }

    fn calls(&self) -> Vec<Call> {
        let mut names: Vec<_> = std::fs::read_dir(self.dir("log")).unwrap().map(|e| e.unwrap().path()).collect();
        names.sort();
        names.iter().map(|path| read_call(path)).collect()
    }
}

fn read_call(path: &Path) -> Call {
    let text = std::fs::read_to_string(path).unwrap();
    let (env, stdin) = text.split_once('\n').unwrap();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let mut parts = name.splitn(3, '-').skip(1);
    Call {
        command: parts.next().unwrap().to_string(),
        plugin: parts.next().unwrap().to_string(),
        env: env.split('|').map(String::from).collect(),
        stdin: serde_json::from_str(stdin).unwrap(),
    }
}

fn iface_result() -> Value {
    json!({"cniVersion": "1.0.0",
           "interfaces": [{"name": "br0"}, {"name": "eth0", "sandbox": "/x"}],
           "ips": [{"address": "10.0.0.1/24", "interface": 0}, {"address": "10.0.0.5/24", "interface": 1}]})
}

fn final_result() -> Value {
    json!({"cniVersion": "1.0.0", "ips": [{"address": "fd00::5/64"}, {"address": "10.0.0.5/24"}]})
}

fn two_plugin_list(version: &str) -> Value {
    json!({"cniVersion": version, "name": "testnet", "plugins": [
        {"type": "iface", "custom": {"kept": true}},
        {"type": "ports", "capabilities": {"portMappings": true}},
    ]})
}

fn setup(version: &str) -> World {
    let world = World::new();
    world.plugin("iface", "ADD", &iface_result(), false);
    world.plugin("ports", "ADD", &final_result(), false);
    world.conf("10-test.conflist", &two_plugin_list(version));
    world
}

#[tokio::test]
async fn add_chains_results_and_caches_the_attachment() {
    let world = setup("1.0.0");
    let ips = world.cni().add(&world.pod()).await.unwrap();
    assert_eq!(ips.ips, ["fd00::5".parse::<IpAddr>().unwrap(), "10.0.0.5".parse().unwrap()]);
    let calls = world.calls();
    assert_eq!(calls.len(), 2);
    let netns = world.dir("netns").display().to_string();
    let args =
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=sandbox1;K8S_POD_UID=u1";
    assert_eq!(calls[0].env, ["sandbox1", netns.as_str(), "eth0", args]);
    assert_eq!(
        calls[0].stdin,
        json!({"type": "iface", "custom": {"kept": true}, "name": "testnet", "cniVersion": "1.0.0"})
    );
    assert_eq!(calls[1].stdin["prevResult"], iface_result());
    let mappings = json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]);
    assert_eq!(calls[1].stdin["runtimeConfig"], json!({"portMappings": mappings}));
    assert!(world.dir("cache").join("results/testnet-sandbox1-eth0").is_file());
}

#[tokio::test]
async fn del_runs_in_reverse_with_the_cached_config_and_result() {
    let world = setup("1.0.0");
    let cni = world.cni();
    cni.add(&world.pod()).await.unwrap();
    std::fs::remove_file(world.dir("conf").join("10-test.conflist")).unwrap();
    cni.del(&world.pod()).await.unwrap();
    let calls = world.calls();
    let order: Vec<_> = calls.iter().map(|c| format!("{} {}", c.command, c.plugin)).collect();
    assert_eq!(order, ["ADD iface", "ADD ports", "DEL ports", "DEL iface"]);
    assert_eq!(calls[2].stdin["prevResult"], final_result());
    assert_eq!(calls[3].stdin["prevResult"], final_result());
    assert!(!world.dir("cache").join("results/testnet-sandbox1-eth0").exists());
    // Nothing cached and no config left: nothing to do, and no error.
    cni.del(&world.pod()).await.unwrap();
    assert_eq!(world.calls().len(), 4);
}

#[tokio::test]
async fn del_of_a_gone_netns_passes_an_empty_netns_and_repeats_fine() {
    let world = setup("1.0.0");
    let cni = world.cni();
    cni.add(&world.pod()).await.unwrap();
    std::fs::remove_file(world.dir("netns")).unwrap();
    cni.del(&world.pod()).await.unwrap();
    let mut gone = world.pod();
    gone.netns = None;
    cni.del(&gone).await.unwrap();
    let calls = world.calls();
    assert_eq!(calls.len(), 6);
    assert!(calls[2..].iter().all(|c| c.command == "DEL" && c.env[1].is_empty()), "{calls:?}");
    assert!(calls[4].stdin.get("prevResult").is_none(), "second DEL has no cached result");
}

#[tokio::test]
async fn failed_add_is_undone_and_leaves_no_cache() {
    let world = setup("1.0.0");
    world.plugin("ports", "ADD", &json!({"code": 7, "msg": "bad mapping", "details": "port 8080"}), true);
    let err = world.cni().add(&world.pod()).await.unwrap_err();
    assert!(matches!(&err, CniError::PluginFailed { plugin, code: 7, .. } if plugin == "ports"), "{err}");
    assert!(err.to_string().contains("bad mapping: port 8080 (code 7)"), "{err}");
    let calls = world.calls();
    let order: Vec<_> = calls.iter().map(|c| format!("{} {}", c.command, c.plugin)).collect();
    assert_eq!(order, ["ADD iface", "ADD ports", "DEL ports", "DEL iface"]);
    // The undo carries what the ADD got so far, so plugins can find what to remove.
    assert_eq!(calls[2].stdin["prevResult"], iface_result());
    assert!(!world.dir("cache").join("results/testnet-sandbox1-eth0").exists());
}

#[tokio::test]
async fn second_add_is_refused_while_attached() {
    let world = setup("1.0.0");
    let cni = world.cni();
    cni.add(&world.pod()).await.unwrap();
    let err = cni.add(&world.pod()).await.unwrap_err();
    assert!(matches!(err, CniError::AlreadyAttached { .. }), "{err}");
    assert_eq!(world.calls().len(), 2);
}

#[tokio::test]
async fn check_sends_the_cached_result_in_chain_order() {
    let world = setup("1.0.0");
    let cni = world.cni();
    let err = cni.check(&world.pod()).await.unwrap_err();
    assert!(matches!(err, CniError::NotAttached { .. }), "{err}");
    cni.add(&world.pod()).await.unwrap();
    cni.check(&world.pod()).await.unwrap();
    let calls = world.calls();
    let order: Vec<_> = calls.iter().map(|c| format!("{} {}", c.command, c.plugin)).collect();
    assert_eq!(order, ["ADD iface", "ADD ports", "CHECK iface", "CHECK ports"]);
    assert_eq!(calls[2].stdin["prevResult"], final_result());
}

#[tokio::test]
async fn old_versions_skip_check_and_send_no_prev_result_on_del() {
    let world = setup("0.3.1");
    let cni = world.cni();
    cni.add(&world.pod()).await.unwrap();
    cni.check(&world.pod()).await.unwrap();
    cni.del(&world.pod()).await.unwrap();
    let calls = world.calls();
    let order: Vec<_> = calls.iter().map(|c| format!("{} {}", c.command, c.plugin)).collect();
    assert_eq!(order, ["ADD iface", "ADD ports", "DEL ports", "DEL iface"]);
    assert!(calls[2].stdin.get("prevResult").is_none());
}

#[tokio::test]
async fn ready_needs_a_config_its_plugins_and_their_status() {
    let world = World::new();
    let cni = world.cni();
    assert!(matches!(cni.ready().await, Err(CniError::NoNetworkConfig { .. })));
    world.conf("10-test.conflist", &two_plugin_list("1.1.0"));
    let err = cni.ready().await.unwrap_err();
    assert!(matches!(&err, CniError::PluginNotFound { plugin, .. } if plugin == "iface"), "{err}");
    world.plugin("iface", "STATUS", &json!({"code": 50, "msg": "no addresses left"}), true);
    world.plugin("ports", "STATUS", &json!({}), false);
    let err = cni.ready().await.unwrap_err();
    assert!(matches!(&err, CniError::PluginFailed { code: 50, .. }), "{err}");
    world.plugin("iface", "STATUS", &json!({}), false);
    cni.ready().await.unwrap();
    let statuses: Vec<_> = world.calls().into_iter().filter(|c| c.command == "STATUS").collect();
    assert_eq!(statuses.last().unwrap().env, ["", "", "", ""]);
    assert!(statuses.iter().all(|c| c.stdin.get("runtimeConfig").is_none()));
}

#[tokio::test]
async fn ready_skips_status_before_spec_1_1_0() {
    let world = setup("1.0.0");
    world.cni().ready().await.unwrap();
    assert!(world.calls().is_empty());
}

#[tokio::test]
async fn invalid_container_ids_are_refused_before_any_plugin_runs() {
    let world = setup("1.0.0");
    let mut pod = world.pod();
    pod.container_id = "../escape".into();
    assert!(matches!(world.cni().add(&pod).await, Err(CniError::InvalidContainerId(_))));
    assert!(matches!(world.cni().del(&pod).await, Err(CniError::InvalidContainerId(_))));
    assert!(world.calls().is_empty());
}

#[test]
fn operations_can_run_on_any_runtime_thread() {
    fn assert_send<T: Send>(_: &T) {}
    let world = World::new();
    let (cni, pod) = (world.cni(), world.pod());
    assert_send(&cni.ready());
    assert_send(&cni.add(&pod));
    assert_send(&cni.del(&pod));
    assert_send(&cni.check(&pod));
}

#[tokio::test]
async fn unusable_cache_entry_falls_back_to_the_current_config_and_is_removed() {
    let world = setup("1.0.0");
    let stale = world.dir("cache").join("results/oldnet-sandbox1-eth0");
    std::fs::create_dir_all(stale.parent().unwrap()).unwrap();
    std::fs::write(&stale, "{garbage").unwrap();
    let cni = world.cni();
    std::fs::rename(world.dir("conf/10-test.conflist"), world.dir("saved")).unwrap();
    let err = cni.del(&world.pod()).await.unwrap_err();
    assert!(matches!(err, CniError::NoNetworkConfig { .. }), "something was attached, so no config is an error: {err}");
    assert!(stale.exists());
    std::fs::rename(world.dir("saved"), world.dir("conf/10-test.conflist")).unwrap();
    cni.del(&world.pod()).await.unwrap();
    let order: Vec<_> = world.calls().iter().map(|c| format!("{} {}", c.command, c.plugin)).collect();
    assert_eq!(order, ["DEL ports", "DEL iface"]);
    assert!(!stale.exists());
}

#[tokio::test]
async fn add_cut_short_leaves_a_pending_record_that_del_undoes() {
    let world = setup("1.0.0");
    // The second plugin never answers: the ADD is dropped midway, as a crash would.
    let hang = world.dir("bin").join("ports");
    std::fs::write(&hang, "#!/bin/sh\n[ \"$CNI_COMMAND\" = ADD ] && exec sleep 30\ncat > /dev/null\n").unwrap();
    let cni = world.cni();
    assert!(tokio::time::timeout(Duration::from_millis(1500), cni.add(&world.pod())).await.is_err());
    assert!(world.dir("cache").join("pending/testnet-sandbox1-eth0").is_file());
    assert!(cni.attached_among(&["sandbox1"]).await.unwrap().is_empty(), "an unfinished ADD is not attached");
    assert_eq!(cni.ips("sandbox1").await.unwrap(), None);
    cni.del(&world.pod()).await.unwrap();
    let calls = world.calls();
    let dels: Vec<_> = calls.iter().filter(|c| c.command == "DEL").collect();
    assert_eq!(dels.len(), 1, "{calls:?}");
    assert_eq!(dels[0].stdin["prevResult"], iface_result(), "DEL gets what the ADD got so far");
    assert!(!world.dir("cache").join("pending/testnet-sandbox1-eth0").exists());
}

#[tokio::test]
async fn finished_add_leaves_no_pending_record_and_counts_as_attached() {
    let world = setup("1.0.0");
    let cni = world.cni();
    cni.add(&world.pod()).await.unwrap();
    assert!(!world.dir("cache").join("pending/testnet-sandbox1-eth0").exists());
    assert_eq!(cni.attached_among(&["sandbox1", "other"]).await.unwrap(), ["sandbox1"]);
}
