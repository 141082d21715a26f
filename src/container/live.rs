//! Settings applied to a running container's processes and cgroup, where
//! Docker's create and update carry no field: the CRI's `unified` cgroup v2
//! map, and an updated `oom_score_adj`.

use std::collections::{BTreeMap, HashMap};

use super::error::ContainerError;
use crate::cgroup::CgroupLocation;
use crate::labels;

/// The create's `unified` map, as recorded on the container.
pub fn recorded_unified(container_labels: &HashMap<String, String>) -> BTreeMap<String, String> {
    labels::get_json(container_labels, labels::UNIFIED)
}

/// Writes `unified` into the cgroup of process `pid`; a key whose file is
/// missing refuses them all before any is written.
pub fn apply_unified(pid: i64, unified: &BTreeMap<String, String>) -> Result<(), ContainerError> {
    if unified.is_empty() {
        return Ok(());
    }
    let location = locate(pid)?;
    location.write_unified(unified).map_err(ContainerError::InvalidConfig)
}

/// What the container's cgroup holds now for the recorded keys.
pub fn live_unified(pid: i64, keys: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    match (keys.is_empty(), CgroupLocation::of_pid(pid)) {
        (false, Ok(location)) => location.read_unified(keys.keys()),
        _ => BTreeMap::new(),
    }
}

/// Sets `value` on every process in the cgroup of `pid`. Processes forked
/// later inherit it from their parent; an exec started later gets the
/// create's value from runc, as Docker cannot be told another.
pub fn set_oom_score_adj(pid: i64, value: i64) -> Result<(), ContainerError> {
    let failed = |why: String| ContainerError::Processes(format!("cannot set resources.oom_score_adj {value}: {why}"));
    let processes = locate(pid)?.processes().map_err(|e| failed(e.to_string()))?;
    for process in processes {
        match std::fs::write(format!("/proc/{process}/oom_score_adj"), value.to_string()) {
            // Exited since the list was read.
            Err(e)
                if e.raw_os_error() == Some(nix::errno::Errno::ESRCH as i32)
                    || e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed(format!("process {process}: {e}"))),
            Ok(()) => {}
        }
    }
    Ok(())
}

/// The score the container's first process has now.
pub fn oom_score_adj_of(pid: i64) -> Option<i64> {
    std::fs::read_to_string(format!("/proc/{pid}/oom_score_adj")).ok()?.trim().parse().ok()
}

fn locate(pid: i64) -> Result<CgroupLocation, ContainerError> {
    CgroupLocation::of_pid(pid)
        .map_err(|e| ContainerError::Processes(format!("cannot find the cgroup of process {pid}: {e}")))
}
