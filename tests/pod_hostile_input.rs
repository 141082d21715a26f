//! Requests a hostile or careless client could send: paths that leave the
//! log directory, strings that would add lines to a file, enum values and
//! numbers out of range, names passed as IDs, unbounded IDs. Each is refused
//! with the right code, naming the field; nothing is written outside the
//! allowed directories and nothing is left half-created in Docker.

mod common;

use std::path::Path;

use common::pods::{self, IDLE, Pod, Rt, TestImage, container_config};
use common::{Shim, unique};
use pinshim::api::{self, PodSandboxFilter};
use tonic::Code;

/// A container config with a unique label value, to find anything it left in Docker.
fn traced(pod: &Pod, image: &TestImage) -> (api::ContainerConfig, String) {
    let token = unique("trace");
    let mut config = container_config(pod, &unique("hostile"), image, IDLE);
    config.labels.insert("pinshim.test/trace".to_string(), token.clone());
    (config, token)
}

/// CreateContainer exactly as given: no log directory made first.
async fn create_raw(rt: &Rt, pod: &Pod, config: api::ContainerConfig) -> Result<String, tonic::Status> {
    Ok(rt.clone().create_container(pods::create_request(pod, config)).await?.into_inner().container_id)
}

/// Refused with `code` and a message naming `field`; nothing created.
async fn assert_refused(
    rt: &Rt,
    pod: &Pod,
    config: api::ContainerConfig,
    token: &str,
    code: Code,
    field: &str,
) -> tonic::Status {
    let err = create_raw(rt, pod, config).await.expect_err(field);
    assert_eq!(err.code(), code, "{field}: {err}");
    assert!(err.message().contains(field), "names {field}: {err}");
    assert!(pods::containers_of(rt, &pod.id).await.is_empty(), "ListContainers shows nothing");
    assert_eq!(pods::docker_leftovers(token).await, Vec::<String>::new(), "Docker holds nothing for {token}");
    err
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        found.push(path.display().to_string());
        if path.is_dir() && !path.is_symlink() {
            found.extend(files_under(&path));
        }
    }
    found
}

#[tokio::test]
async fn log_paths_never_leave_the_log_directory() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "logescape").await;
    // The pod logs three levels down in a temp dir; "outside" sits beside them.
    let pod = pods::run_pod_with(rt, "logescape", |c| c.log_directory = format!("{}/a/b/c", c.log_directory)).await;
    let base = pod.log_dir().parent().and_then(Path::parent).and_then(Path::parent).unwrap().to_path_buf();
    let outside = base.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir_all(pod.log_dir()).unwrap();
    let victim = outside.join("victim.log");
    std::fs::write(&victim, "operator data\n").unwrap();
    std::os::unix::fs::symlink(&outside, pod.log_dir().join("link")).unwrap();
    std::fs::write(pod.log_dir().join("taken.log"), "not a CRI log\n").unwrap();

    let escapes = [
        ("../../../outside/0.log", "escapes log_directory"),
        (&*format!("{}/abs.log", outside.display()), "must be relative"),
        ("link/0.log", "symlink"),
        ("link/../../../../outside/victim.log", "escapes log_directory"),
        ("taken.log", "already exists"),
    ];
    for (log_path, why) in escapes {
        let (mut config, token) = traced(&pod, &image);
        config.log_path = log_path.to_string();
        let err = assert_refused(rt, &pod, config, &token, Code::InvalidArgument, "log_path").await;
        assert!(err.message().contains(why), "{log_path}: {err}");
    }

    // A symlink swapped in between CreateContainer and StartContainer.
    let (mut config, _) = traced(&pod, &image);
    config.log_path = "late/0.log".to_string();
    let id = create_raw(rt, &pod, config).await.expect("create with a clean log path");
    std::os::unix::fs::symlink(&outside, pod.log_dir().join("late")).unwrap();
    let err = rt.clone().start_container(api::StartContainerRequest { container_id: id.clone() }).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.message().contains("log_path") && err.message().contains("symlink"), "{err}");
    let status = pods::status(rt, &id).await;
    assert_eq!(status.state(), api::ContainerState::ContainerCreated, "the container did not start");

    assert_eq!(files_under(&outside), vec![victim.display().to_string()], "nothing written outside");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "operator data\n");
    assert_eq!(std::fs::read_to_string(pod.log_dir().join("taken.log")).unwrap(), "not a CRI log\n");
    assert!(!Path::new("/outside").exists() && !Path::new("/abs.log").exists());
    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

/// After a refused RunPodSandbox: nothing listed, nothing in Docker.
async fn assert_pod_refused(rt: &Rt, config: api::PodSandboxConfig, field: &str) {
    let name = config.metadata.as_ref().expect("metadata").name.clone();
    let err = pods::run_pod_in(rt, config).await.err().unwrap_or_else(|| panic!("{field} accepted"));
    assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err}");
    assert!(err.message().contains(field), "names {field}: {err}");
    let label_selector = [("app".to_string(), name.clone())].into();
    let listed = pods::list_pods(rt, Some(PodSandboxFilter { label_selector, ..Default::default() })).await;
    assert!(listed.is_empty(), "{field}: {listed:?}");
    assert_eq!(pods::docker_leftovers(&name).await, Vec::<String>::new(), "{field}: Docker holds nothing");
}

#[tokio::test]
async fn pod_configs_that_would_reach_files_or_the_kernel_are_refused() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let dir = pods::log_dir();
    type Adjust = fn(&mut api::PodSandboxConfig);
    let cases: [(&str, Adjust); 12] = [
        ("log_directory", |c| c.log_directory = "relative/logs".into()),
        ("log_directory", |c| c.log_directory = format!("{}/../x", c.log_directory)),
        ("cgroup_parent", |c| c.linux.get_or_insert_default().cgroup_parent = "/../../../x".into()),
        ("hostname", |c| c.hostname = "web/0\nnameserver 1.1.1.1".into()),
        ("dns_config.servers", |c| c.dns_config.as_mut().unwrap().servers = vec!["192.0.2.1\noptions ndots:99".into()]),
        ("dns_config.searches", |c| c.dns_config.as_mut().unwrap().searches = vec!["a\noptions ndots:99".into()]),
        ("dns_config.options", |c| c.dns_config.as_mut().unwrap().options = vec!["ndots:1 ndots:99".into()]),
        ("container_port", |c| {
            c.port_mappings = vec![api::PortMapping { container_port: 70000, ..Default::default() }]
        }),
        ("host_port", |c| {
            c.port_mappings = vec![api::PortMapping { container_port: 80, host_port: -1, ..Default::default() }]
        }),
        ("protocol", |c| {
            c.port_mappings = vec![api::PortMapping { container_port: 80, protocol: 7, ..Default::default() }]
        }),
        ("namespace_options.ipc", |c| {
            let ns = c
                .linux
                .get_or_insert_default()
                .security_context
                .get_or_insert_default()
                .namespace_options
                .get_or_insert_default();
            ns.ipc = 99;
        }),
        // Docker takes it and fails the start with a bare 500.
        ("sysctls", |c| {
            c.linux.get_or_insert_default().sysctls = [("kernel.foo".to_string(), "1".to_string())].into();
        }),
    ];
    for (field, adjust) in cases {
        let mut config = pods::sandbox_config(&unique("hostilepod"), dir.path());
        adjust(&mut config);
        assert_pod_refused(rt, config, field).await;
    }
    assert!(!Path::new("relative").exists(), "nothing made under pinshim's working directory");
}

#[tokio::test]
async fn container_configs_out_of_range_are_refused() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "hostilectr").await;
    let pod = pods::run_pod(rt, "hostilectr").await;
    type Adjust = fn(&mut api::ContainerConfig);
    let cases: [(&str, Code, Adjust); 10] = [
        ("seccomp.localhost_ref", Code::InvalidArgument, |c| {
            let s = c.linux.get_or_insert_default().security_context.get_or_insert_default();
            s.seccomp = Some(api::SecurityProfile {
                profile_type: api::security_profile::ProfileType::Localhost as i32,
                localhost_ref: "../../../../etc/passwd".into(),
            });
        }),
        ("envs key", Code::InvalidArgument, |c| {
            c.envs.push(api::KeyValue { key: "A\0B".into(), value: b"x".to_vec() })
        }),
        ("envs value", Code::InvalidArgument, |c| {
            c.envs.push(api::KeyValue { key: "A".into(), value: b"x\0y".to_vec() })
        }),
        ("devices[0].host_path", Code::InvalidArgument, |c| {
            c.devices = vec![api::Device {
                host_path: "/dev/pinshim-none".into(),
                container_path: "/dev/x".into(),
                permissions: "rw".into(),
            }];
        }),
        ("mounts[0].propagation", Code::InvalidArgument, |c| {
            c.mounts = vec![api::Mount {
                host_path: "/tmp".into(),
                container_path: "/x".into(),
                propagation: 42,
                ..Default::default()
            }];
        }),
        ("stop_signal", Code::InvalidArgument, |c| c.stop_signal = 999),
        ("namespace_options.pid", Code::InvalidArgument, |c| {
            let s = c.linux.get_or_insert_default().security_context.get_or_insert_default();
            s.namespace_options.get_or_insert_default().pid = 99;
        }),
        ("resources.cpu_shares", Code::InvalidArgument, |c| {
            c.linux.get_or_insert_default().resources.get_or_insert_default().cpu_shares = -5
        }),
        ("resources.memory_limit_in_bytes", Code::InvalidArgument, |c| {
            c.linux.get_or_insert_default().resources.get_or_insert_default().memory_limit_in_bytes = -1;
        }),
        ("resources.oom_score_adj", Code::InvalidArgument, |c| {
            c.linux.get_or_insert_default().resources.get_or_insert_default().oom_score_adj = 5000
        }),
    ];
    for (field, code, adjust) in cases {
        let (mut config, token) = traced(&pod, &image);
        pods::make_log_dir(&pod.config, &config);
        adjust(&mut config);
        assert_refused(rt, &pod, config, &token, code, field).await;
    }
    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

#[tokio::test]
async fn create_container_in_a_stopped_pod_is_failed_precondition() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "stoppedpod").await;
    let pod = pods::run_pod(rt, "stoppedpod").await;
    pods::stop_pod(rt, &pod.id).await;
    let (config, token) = traced(&pod, &image);
    pods::make_log_dir(&pod.config, &config);
    assert_refused(rt, &pod, config, &token, Code::FailedPrecondition, "not ready").await;
    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

#[tokio::test]
async fn ids_are_ids_and_errors_do_not_echo_them_whole() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "hostileids").await;
    let pod = pods::run_pod(rt, "hostileids").await;
    let (config, _) = traced(&pod, &image);
    let id = pods::create(rt, &pod, config).await;

    // Docker resolves its own names; the CRI knows IDs only.
    let docker_names: Vec<String> = pods::docker_containers(pod.name()).await.into_iter().map(|(n, _)| n).collect();
    assert_eq!(docker_names.len(), 2, "{docker_names:?}");
    for name in &docker_names {
        let err = pods::try_status(rt, name, false).await.expect_err(name);
        assert_eq!(err.code(), Code::NotFound, "{name}: {err}");
        let request = api::PodSandboxStatusRequest { pod_sandbox_id: name.clone(), verbose: false };
        let err = rt.clone().pod_sandbox_status(request).await.expect_err(name);
        assert_eq!(err.code(), Code::NotFound, "{name}: {err}");
    }
    assert_eq!(pods::status(rt, &id[..12]).await.id, id, "a unique prefix still works");

    let err = rt.clone().container_stats(api::ContainerStatsRequest { container_id: String::new() }).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");

    for long in ["a".repeat(10_000), format!("{} {}", "/".repeat(5_000), "é".repeat(5_000))] {
        let err = pods::try_status(rt, &long, false).await.expect_err("long id");
        assert_eq!(err.code(), Code::NotFound);
        assert!(err.message().len() <= 1100, "bounded: {} bytes", err.message().len());
        assert!(err.message().contains("…("), "says it was cut: {}", err.message());
    }
    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

#[tokio::test]
async fn an_ambiguous_id_prefix_says_so() {
    let shim = Shim::start().await;
    let docker = common::docker();
    let token = unique("ambiguous");
    let mut made = Vec::new();
    // Seventeen containers: two of them must share a first hex digit.
    for i in 0..17 {
        let body = bollard::models::ContainerCreateBody {
            image: Some(common::env("PINSHIM_TEST_PAUSE")),
            ..Default::default()
        };
        let options =
            bollard::query_parameters::CreateContainerOptionsBuilder::default().name(&format!("{token}-{i}")).build();
        made.push(docker.create_container(Some(options), body).await.expect("docker create").id);
    }
    let shared =
        (0..16).map(|d| format!("{d:x}")).find(|p| made.iter().filter(|id| id.starts_with(p.as_str())).count() >= 2);
    let prefix = shared.expect("pigeonhole");
    let err = pods::try_status(&shim.runtime, &prefix, false).await.expect_err("ambiguous prefix");
    for id in &made {
        let options = bollard::query_parameters::RemoveContainerOptionsBuilder::default().force(true).build();
        let _ = docker.remove_container(id, Some(options)).await;
    }
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.message().contains("ambiguous"), "{err}");
}

fn security(c: &mut api::ContainerConfig) -> &mut api::LinuxContainerSecurityContext {
    c.linux.get_or_insert_default().security_context.get_or_insert_default()
}

fn user_namespace(mode: api::NamespaceMode) -> Option<api::UserNamespace> {
    let mapping = api::IdMapping { host_id: 100_000, container_id: 0, length: 65_536 };
    Some(api::UserNamespace { mode: mode as i32, uids: vec![mapping], gids: vec![mapping] })
}

#[tokio::test]
async fn what_docker_cannot_carry_is_refused_not_ignored() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "cannot").await;
    let pod = pods::run_pod(rt, "cannot").await;
    type Adjust = fn(&mut api::ContainerConfig);
    let cases: [(&str, Adjust); 6] = [
        ("CDI_devices[0].name", |c| c.cdi_devices = vec![api::CdiDevice { name: "no-kind".into() }]),
        ("userns_options", |c| {
            security(c).namespace_options.get_or_insert_default().userns_options =
                user_namespace(api::NamespaceMode::Pod);
        }),
        ("supplemental_groups_policy", |c| {
            security(c).supplemental_groups_policy = api::SupplementalGroupsPolicy::Strict as i32;
        }),
        ("add_ambient_capabilities", |c| {
            security(c).capabilities.get_or_insert_default().add_ambient_capabilities = vec!["CAP_NET_RAW".into()];
        }),
        ("hugepage_limits", |c| {
            let limit = api::HugepageLimit { page_size: "2MB".into(), limit: 2 << 20 };
            c.linux.get_or_insert_default().resources.get_or_insert_default().hugepage_limits = vec![limit];
        }),
        ("mounts[0]", |c| {
            let mapping = api::IdMapping { host_id: 1000, container_id: 0, length: 1 };
            c.mounts = vec![api::Mount {
                host_path: "/tmp".into(),
                container_path: "/x".into(),
                uid_mappings: vec![mapping],
                ..Default::default()
            }];
        }),
    ];
    for (field, adjust) in cases {
        let (mut config, token) = traced(&pod, &image);
        pods::make_log_dir(&pod.config, &config);
        adjust(&mut config);
        assert_refused(rt, &pod, config, &token, Code::InvalidArgument, field).await;
    }

    // What kubelet sends by default still runs: the host's user namespace,
    // and every huge page size listed with no limit.
    let (mut config, _) = traced(&pod, &image);
    pods::make_log_dir(&pod.config, &config);
    security(&mut config).namespace_options.get_or_insert_default().userns_options =
        Some(api::UserNamespace { mode: api::NamespaceMode::Node as i32, ..Default::default() });
    let unlimited = api::HugepageLimit { page_size: "2MB".into(), limit: 0 };
    config.linux.get_or_insert_default().resources.get_or_insert_default().hugepage_limits = vec![unlimited];
    create_raw(rt, &pod, config).await.expect("kubelet's defaults are accepted");

    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = pods::sandbox_config(&unique("cannotpod"), dir.path());
    let ns = config.linux.get_or_insert_default().security_context.get_or_insert_default();
    ns.namespace_options.get_or_insert_default().userns_options = user_namespace(api::NamespaceMode::Pod);
    assert_pod_refused(rt, config, "userns_options").await;
    let mut config = pods::sandbox_config(&unique("cannotpod"), dir.path());
    config.linux.get_or_insert_default().security_context.get_or_insert_default().supplemental_groups_policy =
        api::SupplementalGroupsPolicy::Strict as i32;
    assert_pod_refused(rt, config, "supplemental_groups_policy").await;
    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}
