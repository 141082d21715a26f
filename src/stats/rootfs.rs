//! Where a running container's writable layer lives when Docker does not
//! say: with the containerd image store, inspect carries no `UpperDir`, but
//! the container's root is an overlay mount whose options name it.

/// The `upperdir` of the overlay mounted at `/` in process `pid`'s mount
/// namespace, if that root is an overlay.
pub fn upper_dir(pid: i64) -> Option<String> {
    if pid <= 0 {
        return None;
    }
    let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).ok()?;
    root_upper_dir(&mountinfo)
}

/// See proc(5): `id parent dev root mountpoint options [tags] - fstype
/// source superoptions`. The last mount at `/` is the one in effect.
fn root_upper_dir(mountinfo: &str) -> Option<String> {
    mountinfo.lines().rev().find_map(overlay_root_upper_dir)
}

fn overlay_root_upper_dir(line: &str) -> Option<String> {
    let (mount, fs) = line.split_once(" - ")?;
    if mount.split(' ').nth(4)? != "/" {
        return None;
    }
    let mut fs = fs.split(' ');
    if fs.next()? != "overlay" {
        return None;
    }
    let options = fs.nth(1)?;
    options.split(',').find_map(|o| o.strip_prefix("upperdir=")).map(crate::mountinfo::unescape)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNAPSHOT: &str = "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/42/fs";

    #[test]
    fn finds_the_upper_dir_of_an_overlay_root() {
        let mountinfo = format!(
            "1012 985 0:312 / / rw,relatime master:401 - overlay overlay rw,lowerdir=/a:/b,upperdir={SNAPSHOT},workdir=/w\n\
             1013 1012 0:315 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw\n"
        );
        assert_eq!(root_upper_dir(&mountinfo).as_deref(), Some(SNAPSHOT));
    }

    #[test]
    fn ignores_other_roots_and_mounts() {
        assert_eq!(root_upper_dir("25 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n"), None);
        assert_eq!(root_upper_dir("30 25 0:40 / /data rw - overlay overlay rw,upperdir=/u,workdir=/w\n"), None);
        assert_eq!(root_upper_dir("garbage\n"), None);
        assert_eq!(upper_dir(0), None);
    }
}
