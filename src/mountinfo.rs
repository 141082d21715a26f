//! Reading `/proc/<pid>/mountinfo` (proc(5)): `id parent dev root
//! mountpoint options [tags] - fstype source superoptions`.

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

#[cfg(test)]
mod tests {
    use super::*;

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
