//! What this host lets containers do, detected once at start-up so pinshim
//! degrades with one warning instead of failing every pod.

use serde::Serialize;

/// `CAP_SYS_RESOURCE`: needed to give a process a negative OOM score.
const CAP_SYS_RESOURCE: u32 = 24;

/// Present where selinuxfs is mounted, i.e. SELinux is enabled.
const SELINUX_ENFORCE: &str = "/sys/fs/selinux/enforce";

/// Kubelet's customary OOM score for pod infra containers.
pub const SANDBOX_OOM_SCORE_ADJ: i64 = -998;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostLimits {
    /// Negative `oom_score_adj` values can be set.
    pub negative_oom_score_adj: bool,
    /// The capability bounding set is complete. Where it is not, runc
    /// cannot grant privileged containers every capability, and engines
    /// before Docker 23 ask it to.
    pub full_bounding_set: bool,
    /// SELinux is enabled, so relabelling a mount means something.
    pub selinux: bool,
    /// The kernel has `mount_setattr` (Linux 5.12), which runc needs to
    /// make a mount read-only with every mount below it.
    pub recursive_read_only: bool,
}

impl HostLimits {
    pub fn detect() -> Self {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let last_cap: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(40);
        let effective = cap_mask(&status, "CapEff:");
        let bounding = cap_mask(&status, "CapBnd:");
        let all = if last_cap >= 63 { u64::MAX } else { (1u64 << (last_cap + 1)) - 1 };
        let limits = HostLimits {
            negative_oom_score_adj: effective & (1 << CAP_SYS_RESOURCE) != 0,
            full_bounding_set: bounding & all == all,
            selinux: std::path::Path::new(SELINUX_ENFORCE).exists(),
            recursive_read_only: has_mount_setattr(),
        };
        if !limits.negative_oom_score_adj {
            tracing::warn!("no CAP_SYS_RESOURCE: negative OOM scores (sandboxes, guaranteed pods) are raised to 0");
        }
        limits
    }

    /// The OOM score to ask for, raised to 0 where negative ones are refused.
    pub fn oom_score_adj(&self, wanted: i64) -> i64 {
        if wanted < 0 && !self.negative_oom_score_adj { 0 } else { wanted }
    }
}

/// Linux 5.12 brought `mount_setattr`.
const MOUNT_SETATTR_KERNEL: (u32, u32) = (5, 12);

fn has_mount_setattr() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    kernel_version(&release).is_some_and(|v| v >= MOUNT_SETATTR_KERNEL)
}

/// `6.1.0-18-amd64` → (6, 1).
fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

fn cap_mask(status: &str, field: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_capability_masks() {
        let status = "Name:\tx\nCapEff:\t000001fffeffffff\nCapBnd:\t000001ffffffffff\n";
        assert_eq!(cap_mask(status, "CapEff:") & (1 << CAP_SYS_RESOURCE), 0);
        assert_eq!(cap_mask(status, "CapBnd:"), 0x1ff_ffff_ffff);
    }

    #[test]
    fn reads_kernel_releases() {
        assert_eq!(kernel_version("6.1.0-18-amd64\n"), Some((6, 1)));
        assert_eq!(kernel_version("5.12.0"), Some((5, 12)));
        assert!(kernel_version("5.4.0-150-generic").is_some_and(|v| v < MOUNT_SETATTR_KERNEL));
        assert_eq!(kernel_version("garbage"), None);
    }

    #[test]
    fn clamps_only_when_unsupported() {
        let limited = HostLimits {
            negative_oom_score_adj: false,
            full_bounding_set: false,
            selinux: false,
            recursive_read_only: false,
        };
        assert_eq!(limited.oom_score_adj(-998), 0);
        assert_eq!(limited.oom_score_adj(500), 500);
        let full = HostLimits {
            negative_oom_score_adj: true,
            full_bounding_set: true,
            selinux: false,
            recursive_read_only: true,
        };
        assert_eq!(full.oom_score_adj(-998), -998);
    }
}
