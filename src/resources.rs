//! CRI Linux resources: checked, and as Docker's cgroup settings. Shared by
//! containers (create, UpdateContainerResources) and pod sandboxes
//! (UpdatePodSandboxResources).

use crate::api;
use crate::docker::Resources;

/// Limits kubelet leaves unset are 0; -1 means "unlimited" where the
/// kernel knows it (CFS quota, swap). Anything else negative is a mistake.
pub fn check(r: &api::LinuxContainerResources) -> Result<(), String> {
    let at_least = |field: &str, value: i64, min: i64| {
        if value < min { Err(format!("resources.{field} {value} must not be below {min}")) } else { Ok(()) }
    };
    at_least("cpu_period", r.cpu_period, 0)?;
    at_least("cpu_quota", r.cpu_quota, -1)?;
    at_least("cpu_shares", r.cpu_shares, 0)?;
    at_least("memory_limit_in_bytes", r.memory_limit_in_bytes, 0)?;
    at_least("memory_swap_limit_in_bytes", r.memory_swap_limit_in_bytes, -1)?;
    if !(-1000..=1000).contains(&r.oom_score_adj) {
        return Err(format!("resources.oom_score_adj {} is outside -1000..1000", r.oom_score_adj));
    }
    r.unified.keys().try_for_each(|k| crate::cgroup::check_unified_key(k))?;
    for (field, list) in [("cpuset_cpus", &r.cpuset_cpus), ("cpuset_mems", &r.cpuset_mems)] {
        if !list.bytes().all(|b| b.is_ascii_digit() || b == b',' || b == b'-') {
            return Err(format!("resources.{field} {list:?} is not a list of ranges like 0-3,5"));
        }
    }
    Ok(())
}

/// Docker's settings for CRI resources, refused when out of range.
pub fn for_docker(r: &api::LinuxContainerResources) -> Result<Resources, String> {
    check(r)?;
    let positive = |v: i64| (v > 0).then_some(v);
    // -1 is "no limit", which an update must be able to say.
    let set = |v: i64| (v > 0 || v == -1).then_some(v);
    let memory = positive(r.memory_limit_in_bytes);
    Ok(Resources {
        cpu_period: positive(r.cpu_period),
        cpu_quota: set(r.cpu_quota),
        cpu_shares: positive(r.cpu_shares),
        memory,
        // No swap beyond the memory limit unless kubelet asks for it.
        memory_swap: set(r.memory_swap_limit_in_bytes).or(memory),
        cpuset_cpus: (!r.cpuset_cpus.is_empty()).then(|| r.cpuset_cpus.clone()),
        cpuset_mems: (!r.cpuset_mems.is_empty()).then(|| r.cpuset_mems.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(r: api::LinuxContainerResources, field: &str) {
        let err = check(&r).expect_err(field);
        assert!(err.contains(field), "{err}");
    }

    #[test]
    fn resources_in_range() {
        let unlimited =
            api::LinuxContainerResources { cpu_quota: -1, memory_swap_limit_in_bytes: -1, ..Default::default() };
        assert!(check(&unlimited).is_ok());
        refused(api::LinuxContainerResources { cpu_shares: -2, ..Default::default() }, "cpu_shares");
        refused(api::LinuxContainerResources { memory_limit_in_bytes: -1, ..Default::default() }, "memory_limit");
        refused(api::LinuxContainerResources { oom_score_adj: 1001, ..Default::default() }, "oom_score_adj");
        refused(api::LinuxContainerResources { cpuset_cpus: "0\n1".into(), ..Default::default() }, "cpuset_cpus");
    }

    #[test]
    fn minus_one_lifts_the_limit() {
        let r = api::LinuxContainerResources {
            cpu_quota: -1,
            memory_limit_in_bytes: 1 << 24,
            memory_swap_limit_in_bytes: -1,
            ..Default::default()
        };
        let d = for_docker(&r).unwrap();
        assert_eq!((d.cpu_quota, d.memory_swap), (Some(-1), Some(-1)));
    }

    #[test]
    fn memory_limit_implies_no_swap() {
        let r = api::LinuxContainerResources { memory_limit_in_bytes: 1 << 24, cpu_shares: 2, ..Default::default() };
        let d = for_docker(&r).unwrap();
        assert_eq!((d.memory, d.memory_swap, d.cpu_shares, d.cpu_quota), (Some(1 << 24), Some(1 << 24), Some(2), None));
    }
}
