//! Reading `/proc/<pid>/mountinfo` (proc(5)): `id parent dev root
//! mountpoint options [tags] - fstype source superoptions`: which paths are
//! mount points, and where a container's writable layer lives when Docker
//! does not say (the containerd image store's inspect carries no
//! `UpperDir`, but the container's root is an overlay whose options name it).

use std::collections::HashSet;
use std::io;
use std::path::PathBuf;

/// The paths that are mount points in pinshim's own mount namespace.
pub fn mount_points() -> io::Result<HashSet<PathBuf>> {
    Ok(parse(&std::fs::read_to_string("/proc/self/mountinfo")?))
}

/// The fifth field of each line is the mount point.
fn parse(mountinfo: &str) -> HashSet<PathBuf> {
    mountinfo.lines().filter_map(|line| line.split(' ').nth(4)).map(|p| PathBuf::from(unescape(p))).collect()
}

/// mountinfo writes space, tab, newline and backslash as octal escapes.
pub fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| std::str::from_utf8(d).ok());
        match (bytes[i], octal.and_then(|d| u8::from_str_radix(d, 8).ok())) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

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
    options.split(',').find_map(|o| o.strip_prefix("upperdir=")).map(unescape)
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

    #[test]
    fn reads_mount_points_with_escapes() {
        let info = "22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
                    40 22 0:30 / /var/lib/a\\040b rw - tmpfs tmpfs rw\n";
        let points = parse(info);
        assert!(points.contains(&PathBuf::from("/")));
        assert!(points.contains(&PathBuf::from("/var/lib/a b")));
        assert_eq!(points.len(), 2);
    }

    #[test]
    fn unescapes_octal_escapes() {
        assert_eq!(unescape(r"/var/lib/with\040space/fs"), "/var/lib/with space/fs");
        assert_eq!(unescape(r"/trailing\04"), r"/trailing\04");
    }
}
