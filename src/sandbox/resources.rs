//! UpdatePodSandboxResources: after an in-place pod resize kubelet sends
//! the pod's overhead (what the sandbox itself is charged) and the sum of
//! its containers' resources. The overhead is the sandbox container's own
//! share, so it goes onto that container's cgroup through Docker; the pod
//! cgroup above it is kubelet's. What was asked and applied is kept for
//! verbose status until the sandbox is removed or pinshim restarts.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use serde_json::{Value, json};

use crate::api;
use crate::docker::Resources;

/// The last update of each sandbox, as verbose status shows it.
#[derive(Default)]
pub struct Resizes(Mutex<HashMap<String, Value>>);

impl Resizes {
    pub fn record(&self, sandbox_id: &str, update: Value) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(sandbox_id.to_string(), update);
    }

    pub fn last(&self, sandbox_id: &str) -> Option<Value> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).get(sandbox_id).cloned()
    }

    pub fn forget(&self, sandbox_id: &str) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).remove(sandbox_id);
    }
}

/// The request as recorded: both resource sets, what went onto the
/// sandbox container, and what Docker has no way to change on it.
pub fn describe(
    overhead: Option<&api::LinuxContainerResources>,
    resources: Option<&api::LinuxContainerResources>,
    applied: Option<&Resources>,
    at: i64,
) -> Value {
    json!({
        "overhead": overhead.map(requested),
        "resources": resources.map(requested),
        "appliedToSandboxContainer": applied.map(in_force),
        "notApplicable": overhead.map(not_applicable).unwrap_or_default(),
        "podCgroup": "managed by kubelet",
        "at": at,
    })
}

fn requested(r: &api::LinuxContainerResources) -> Value {
    json!({
        "cpuPeriod": r.cpu_period,
        "cpuQuota": r.cpu_quota,
        "cpuShares": r.cpu_shares,
        "memoryLimitInBytes": r.memory_limit_in_bytes,
        "memorySwapLimitInBytes": r.memory_swap_limit_in_bytes,
        "cpusetCpus": r.cpuset_cpus,
        "cpusetMems": r.cpuset_mems,
    })
}

/// Docker's settings for a container, as verbose status shows them.
pub fn in_force(r: &Resources) -> Value {
    json!({
        "cpuPeriod": r.cpu_period,
        "cpuQuota": r.cpu_quota,
        "cpuShares": r.cpu_shares,
        "memory": r.memory,
        "memorySwap": r.memory_swap,
        "cpusetCpus": r.cpuset_cpus,
        "cpusetMems": r.cpuset_mems,
    })
}

/// Overhead fields a running container's cgroup cannot take from Docker.
fn not_applicable(r: &api::LinuxContainerResources) -> Vec<&'static str> {
    let mut fields = Vec::new();
    if r.oom_score_adj != 0 {
        fields.push("oom_score_adj");
    }
    if !r.hugepage_limits.is_empty() {
        fields.push("hugepage_limits");
    }
    if !r.unified.is_empty() {
        fields.push("unified");
    }
    fields
}
