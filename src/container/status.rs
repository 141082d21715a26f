//! Docker's view of a container → the CRI's ContainerStatus and Container.

use std::collections::HashMap;

use crate::api;
use crate::docker::{ContainerDetails, ContainerSummary, MountInfo, Resources};
use crate::host_mounts::{self, PreparedBind};
use crate::labels;

/// CRI state for Docker's status word.
pub fn state_of(docker_status: &str) -> api::ContainerState {
    match docker_status {
        "created" => api::ContainerState::ContainerCreated,
        "running" | "paused" | "restarting" => api::ContainerState::ContainerRunning,
        "exited" | "dead" => api::ContainerState::ContainerExited,
        _ => api::ContainerState::ContainerUnknown,
    }
}

/// The image as the user asked for it, untouched.
fn image_spec(l: &HashMap<String, String>) -> api::ImageSpec {
    let user_specified = labels::get(l, labels::IMAGE_USER_SPECIFIED);
    let image =
        if user_specified.is_empty() { labels::get(l, labels::IMAGE_REQUESTED) } else { user_specified.clone() };
    api::ImageSpec { image, user_specified_image: user_specified, ..Default::default() }
}

/// `image_ref` is the canonical reference; a local image without one
/// reports its ID, so the field is never empty.
fn image_ref(l: &HashMap<String, String>) -> String {
    let canonical = labels::get(l, labels::CANONICAL_IMAGE_ID);
    if canonical.is_empty() { labels::get(l, labels::IMAGE_ID) } else { canonical }
}

fn metadata(l: &HashMap<String, String>) -> api::ContainerMetadata {
    api::ContainerMetadata { name: labels::get(l, labels::NAME), attempt: labels::get_u32(l, labels::ATTEMPT) }
}

fn created_at(l: &HashMap<String, String>, docker_created: i64) -> i64 {
    l.get(labels::CREATED_AT).and_then(|v| v.parse().ok()).unwrap_or(docker_created)
}

pub fn container(s: &ContainerSummary) -> api::Container {
    listed(&s.id, &s.labels, &s.status, s.created * 1_000_000_000)
}

/// The same listing entry, from a full inspection (as the index holds).
pub fn container_of(d: &ContainerDetails) -> api::Container {
    listed(&d.id, &d.labels, &d.state.status, d.created_at)
}

fn listed(id: &str, l: &HashMap<String, String>, docker_status: &str, docker_created: i64) -> api::Container {
    api::Container {
        id: id.to_string(),
        pod_sandbox_id: labels::get(l, labels::SANDBOX_ID),
        metadata: Some(metadata(l)),
        image: Some(image_spec(l)),
        image_ref: image_ref(l),
        state: state_of(docker_status) as i32,
        created_at: created_at(l, docker_created),
        labels: labels::decode_map(l, labels::LABELS),
        annotations: labels::decode_map(l, labels::ANNOTATIONS),
        image_id: labels::get(l, labels::IMAGE_ID),
        canonical_image_id: labels::get(l, labels::CANONICAL_IMAGE_ID),
    }
}

/// Why a container is in its state, in kubelet's words.
fn reason(d: &ContainerDetails, state: api::ContainerState) -> String {
    match state {
        api::ContainerState::ContainerExited if d.state.oom_killed => "OOMKilled",
        api::ContainerState::ContainerExited if d.state.exit_code == 0 => "Completed",
        api::ContainerState::ContainerExited => "Error",
        api::ContainerState::ContainerCreated if !d.state.error.is_empty() => "ContainerCannotRun",
        _ => "",
    }
    .to_string()
}

pub fn container_status(d: &ContainerDetails, user: Option<api::ContainerUser>) -> api::ContainerStatus {
    let l = &d.labels;
    let state = state_of(&d.state.status);
    let exited = state == api::ContainerState::ContainerExited;
    let running_pid = (d.state.running && d.state.pid > 0).then_some(d.state.pid);
    api::ContainerStatus {
        id: d.id.clone(),
        metadata: Some(metadata(l)),
        state: state as i32,
        created_at: created_at(l, d.created_at),
        started_at: d.state.started_at,
        finished_at: if exited { d.state.finished_at } else { 0 },
        exit_code: if exited { d.state.exit_code as i32 } else { 0 },
        image: Some(image_spec(l)),
        image_ref: image_ref(l),
        reason: reason(d, state),
        message: d.state.error.clone(),
        labels: labels::decode_map(l, labels::LABELS),
        annotations: labels::decode_map(l, labels::ANNOTATIONS),
        mounts: mounts(d),
        log_path: labels::get(l, labels::LOG_PATH),
        resources: Some(api::ContainerResources {
            linux: Some(api::LinuxContainerResources {
                oom_score_adj: running_pid.and_then(super::live::oom_score_adj_of).unwrap_or(d.oom_score_adj),
                unified: unified(d, running_pid),
                ..resources(&d.resources)
            }),
            windows: None,
        }),
        image_id: labels::get(l, labels::IMAGE_ID),
        user,
        stop_signal: super::signal::from_docker(&d.stop_signal) as i32,
        canonical_image_id: labels::get(l, labels::CANONICAL_IMAGE_ID),
    }
}

/// The container's mounts as the CRI asked for them.
fn mounts(d: &ContainerDetails) -> Vec<api::Mount> {
    let prepared = host_mounts::recorded(&d.labels);
    let volumes = super::mounts::recorded(&d.labels);
    let recursive = labels::get_json::<Vec<String>>(&d.labels, labels::RECURSIVE_READ_ONLY);
    let relabelled = labels::get_json::<Vec<String>>(&d.labels, labels::SELINUX_RELABEL);
    let shown = |m: &MountInfo| match volumes.iter().find(|v| v.container_path == m.destination) {
        Some(v) => image_volume(v),
        None => api::Mount {
            recursive_read_only: recursive.contains(&m.destination),
            selinux_relabel: relabelled.contains(&m.destination),
            ..mount(m, &prepared)
        },
    };
    d.mounts.iter().map(shown).collect()
}

/// An image volume, with the digest it was pinned to at create (KEP-5365).
fn image_volume(v: &super::mounts::ImageVolume) -> api::Mount {
    api::Mount {
        container_path: v.container_path.clone(),
        readonly: true,
        image: Some(api::ImageSpec {
            image: v.requested.clone(),
            user_specified_image: v.user_specified.clone(),
            image_ref: v.image_ref().to_string(),
            ..Default::default()
        }),
        image_sub_path: v.sub_path.clone(),
        ..Default::default()
    }
}

/// A mount as the CRI asked for it: a bind pinshim prepared on the host
/// shows the host path and options it stands for.
fn mount(m: &MountInfo, prepared: &[PreparedBind]) -> api::Mount {
    let propagation = match m.propagation.as_str() {
        "rslave" | "slave" => api::MountPropagation::PropagationHostToContainer,
        "rshared" | "shared" => api::MountPropagation::PropagationBidirectional,
        _ => api::MountPropagation::PropagationPrivate,
    };
    let prepared = prepared.iter().find(|p| p.target.as_os_str() == m.source.as_str());
    api::Mount {
        container_path: m.destination.clone(),
        host_path: prepared.map_or_else(|| m.source.clone(), |p| p.source.display().to_string()),
        readonly: m.read_only,
        propagation: propagation as i32,
        mount_options: prepared.map(|p| p.options.clone()).unwrap_or_default(),
        ..Default::default()
    }
}

/// The create's `unified` keys, with what the cgroup holds now while the
/// container runs.
fn unified(d: &ContainerDetails, running_pid: Option<i64>) -> HashMap<String, String> {
    let recorded = super::live::recorded_unified(&d.labels);
    match running_pid {
        Some(pid) => super::live::live_unified(pid, &recorded).into_iter().collect(),
        None => recorded.into_iter().collect(),
    }
}

fn resources(r: &Resources) -> api::LinuxContainerResources {
    api::LinuxContainerResources {
        cpu_period: r.cpu_period.unwrap_or_default(),
        cpu_quota: r.cpu_quota.unwrap_or_default(),
        cpu_shares: r.cpu_shares.unwrap_or_default(),
        memory_limit_in_bytes: r.memory.unwrap_or_default(),
        cpuset_cpus: r.cpuset_cpus.clone().unwrap_or_default(),
        cpuset_mems: r.cpuset_mems.clone().unwrap_or_default(),
        memory_swap_limit_in_bytes: r.memory_swap.unwrap_or_default(),
        ..Default::default()
    }
}

/// The identity the container's first process really runs with, read from
/// /proc while it runs (image defaults and `run_as_*` already applied).
pub fn process_user(pid: i64) -> Option<api::ContainerUser> {
    if pid <= 0 {
        return None;
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Vec<i64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.split_whitespace().filter_map(|n| n.parse().ok()).collect())
            .unwrap_or_default()
    };
    let uid = *field("Uid:").first()?;
    let gid = *field("Gid:").first()?;
    Some(api::ContainerUser {
        linux: Some(api::LinuxContainerUser { uid, gid, supplemental_groups: field("Groups:") }),
    })
}

/// Whether a listed container passes a CRI filter.
/// `matches` on an indexed container, before building its listing entry:
/// only the label selector needs the labels decoded.
pub fn details_match(d: &ContainerDetails, f: &api::ContainerFilter) -> bool {
    (f.id.is_empty() || d.id.starts_with(&f.id))
        && (f.pod_sandbox_id.is_empty() || labels::get(&d.labels, labels::SANDBOX_ID).starts_with(&f.pod_sandbox_id))
        && f.state.as_ref().is_none_or(|v| v.state == state_of(&d.state.status) as i32)
        && (f.label_selector.is_empty() || {
            let decoded = labels::decode_map(&d.labels, labels::LABELS);
            f.label_selector.iter().all(|(k, v)| decoded.get(k) == Some(v))
        })
}

pub fn matches(c: &api::Container, f: &api::ContainerFilter) -> bool {
    (f.id.is_empty() || c.id.starts_with(&f.id))
        && (f.pod_sandbox_id.is_empty() || c.pod_sandbox_id.starts_with(&f.pod_sandbox_id))
        && f.state.as_ref().is_none_or(|v| v.state == c.state)
        && f.label_selector.iter().all(|(k, v)| c.labels.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::RunState;

    fn exited(code: i64, oom: bool) -> ContainerDetails {
        ContainerDetails {
            state: RunState { status: "exited".into(), exit_code: code, oom_killed: oom, ..Default::default() },
            ..Default::default()
        }
    }

    #[test]
    fn filtering_details_agrees_with_filtering_listings() {
        let mut d = exited(0, false);
        d.id = "abc123".into();
        d.labels.insert(labels::SANDBOX_ID.into(), "pod42".into());
        let user_labels = HashMap::from([("app".to_string(), "web".to_string())]);
        d.labels.insert(labels::LABELS.into(), labels::encode_map(&user_labels));
        let exited_state = Some(api::ContainerStateValue { state: api::ContainerState::ContainerExited as i32 });
        let running_state = Some(api::ContainerStateValue { state: api::ContainerState::ContainerRunning as i32 });
        let filters = [
            api::ContainerFilter::default(),
            api::ContainerFilter { id: "abc".into(), ..Default::default() },
            api::ContainerFilter { id: "abd".into(), ..Default::default() },
            api::ContainerFilter { pod_sandbox_id: "pod4".into(), ..Default::default() },
            api::ContainerFilter { pod_sandbox_id: "other".into(), ..Default::default() },
            api::ContainerFilter { state: exited_state, ..Default::default() },
            api::ContainerFilter { state: running_state, ..Default::default() },
            api::ContainerFilter { label_selector: user_labels.clone(), ..Default::default() },
            api::ContainerFilter {
                label_selector: HashMap::from([("app".to_string(), "db".to_string())]),
                ..Default::default()
            },
        ];
        for f in &filters {
            assert_eq!(details_match(&d, f), matches(&container_of(&d), f), "{f:?}");
        }
    }

    #[test]
    fn reasons_follow_kubelet_words() {
        assert_eq!(container_status(&exited(0, false), None).reason, "Completed");
        assert_eq!(container_status(&exited(1, false), None).reason, "Error");
        assert_eq!(container_status(&exited(137, true), None).reason, "OOMKilled");
    }

    #[test]
    fn image_ref_falls_back_to_the_id_for_local_images() {
        let mut l = HashMap::from([(labels::IMAGE_ID.to_string(), "sha256:abc".to_string())]);
        assert_eq!(image_ref(&l), "sha256:abc");
        l.insert(labels::CANONICAL_IMAGE_ID.into(), "r/x@sha256:d".into());
        assert_eq!(image_ref(&l), "r/x@sha256:d");
    }

    #[test]
    fn reads_own_process_user() {
        let user = process_user(std::process::id() as i64).unwrap().linux.unwrap();
        assert!(user.uid >= 0 && user.gid >= 0);
    }
}
