//! Pure checks of client-supplied paths and names, shared by the pod and
//! container rules. Each returns the refusal as a message naming the field.

use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};

/// The longest path accepted anywhere (Linux's PATH_MAX).
const PATH_MAX: usize = 4096;

/// The kernel's limit on a hostname (HOST_NAME_MAX).
const HOSTNAME_MAX: usize = 64;

/// `value` as an absolute path with no `..` component (so it means what it
/// says whatever the working directory), no NUL and no newline.
pub fn clean_absolute<'a>(field: &str, value: &'a str) -> Result<&'a Path, String> {
    plain_path(field, value)?;
    let path = Path::new(value);
    if !path.is_absolute() {
        return Err(format!("{field} {value:?} must be an absolute path"));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(format!("{field} {value:?} must not contain \"..\""));
    }
    Ok(path)
}

/// `relative` joined to `directory`, after resolving `.` and `..` lexically;
/// refused when it is absolute, names no file, or leaves `directory`.
/// `directory` is expected to have passed [`clean_absolute`].
pub fn inside(field: &str, dir_field: &str, directory: &Path, relative: &str) -> Result<PathBuf, String> {
    plain_path(field, relative)?;
    let mut kept: Vec<&std::ffi::OsStr> = Vec::new();
    for component in Path::new(relative).components() {
        match component {
            Component::Normal(part) => kept.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                if kept.pop().is_none() {
                    return Err(format!("{field} {relative:?} escapes {dir_field}"));
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("{field} {relative:?} must be relative to {dir_field}"));
            }
        }
    }
    if kept.is_empty() {
        return Err(format!("{field} {relative:?} names no file inside {dir_field}"));
    }
    Ok(kept.iter().fold(directory.to_path_buf(), |path, part| path.join(part)))
}

/// Shared by every path: bounded, no NUL (the kernel would cut it short) and
/// no line break (it would reach labels and logs as a second line).
fn plain_path(field: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("{field} must not be empty"));
    }
    if value.len() > PATH_MAX {
        return Err(format!("{field} is longer than {PATH_MAX} bytes"));
    }
    if value.chars().any(|c| c == '\0' || c == '\n' || c == '\r') {
        return Err(format!("{field} {value:?} contains a NUL byte or a line break"));
    }
    Ok(())
}

/// A cgroup parent as kubelet sends it: a cgroupfs path (`/kubepods/pod1`)
/// or a systemd slice (`kubepods-pod1.slice`). Every component is a plain
/// name, so the path cannot climb out of the cgroup hierarchy's root.
pub fn cgroup_parent(field: &str, value: &str) -> Result<(), String> {
    plain_path(field, value)?;
    let name_ok = |part: &str| {
        !part.is_empty()
            && part != "."
            && part != ".."
            && part.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.:@".contains(&b))
    };
    if !value.strip_prefix('/').unwrap_or(value).split('/').all(name_ok) {
        return Err(format!("{field} {value:?} must be a cgroup path of plain names (letters, digits, _-.:@)"));
    }
    Ok(())
}

/// An RFC 1123 hostname: dot-separated labels of letters, digits and inner
/// hyphens, each at most 63 characters, at most 64 in all (the kernel's limit).
pub fn hostname(field: &str, value: &str) -> Result<(), String> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if value.len() > HOSTNAME_MAX || !value.split('.').all(label_ok) {
        return Err(format!("{field} {value:?} is not a valid RFC 1123 hostname"));
    }
    Ok(())
}

/// One word of a configuration file: non-empty, no whitespace, no control
/// character, so it cannot end its line or start another.
pub fn word(field: &str, value: &str) -> Result<(), String> {
    if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{field} {value:?} must be one word without whitespace or control characters"));
    }
    Ok(())
}

/// An IP address, IPv6 optionally with a `%zone` (for link-local servers).
pub fn ip_address(field: &str, value: &str) -> Result<IpAddr, String> {
    let (address, zone) = value.split_once('%').unwrap_or((value, ""));
    let zone_ok = zone.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    match address.parse::<IpAddr>() {
        Ok(ip) if zone.is_empty() || (ip.is_ipv6() && zone_ok) => Ok(ip),
        _ => Err(format!("{field} {value:?} is not an IP address")),
    }
}

/// A value of a CRI enum that this proto knows: prost reads an unknown
/// number back as the default, which would silently change its meaning.
pub fn known<E: TryFrom<i32>>(field: &str, value: i32) -> Result<(), String> {
    E::try_from(value).map(|_| ()).map_err(|_| format!("{field} has unknown value {value}"))
}

/// A Docker object ID or a prefix of one: what the CRI hands out as an ID.
/// Docker also resolves names (`k8s_POD_…`); those must not pass for IDs.
pub fn is_id_prefix(value: &str) -> bool {
    !value.is_empty() && value.len() <= 64 && value.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_paths_are_clean() {
        assert!(clean_absolute("f", "/var/log/pods/x").is_ok());
        assert!(clean_absolute("f", "/var/log/./pods//x/").is_ok());
        for bad in ["", "var/log", "./x", "/var/../etc", "/x/..", "/x\n/y", "/x\0"] {
            let err = clean_absolute("log_directory", bad).expect_err(bad);
            assert!(err.starts_with("log_directory"), "{err}");
        }
    }

    #[test]
    fn relative_paths_stay_inside() {
        let dir = Path::new("/logs/pod");
        assert_eq!(inside("p", "d", dir, "c/0.log").unwrap(), Path::new("/logs/pod/c/0.log"));
        assert_eq!(inside("p", "d", dir, "./c/../c/./0.log").unwrap(), Path::new("/logs/pod/c/0.log"));
        let escape = inside("log_path", "log_directory", dir, "../../../x/0.log").unwrap_err();
        assert_eq!(escape, "log_path \"../../../x/0.log\" escapes log_directory");
        assert!(inside("log_path", "d", dir, "/etc/passwd").unwrap_err().contains("must be relative"));
        assert!(inside("log_path", "d", dir, "c/..").unwrap_err().contains("names no file"));
        assert!(inside("log_path", "d", dir, "").is_err());
    }

    #[test]
    fn cgroup_parents() {
        for good in ["/kubepods/burstable/pod1", "kubepods-burstable-pod1_2.slice"] {
            assert!(cgroup_parent("cgroup_parent", good).is_ok(), "{good}");
        }
        for bad in ["/", "/../../../x", "/a/../b", "/a//b", "/a/", "a b", "/a\n", "/a/./b", ""] {
            assert!(cgroup_parent("cgroup_parent", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hostnames() {
        for good in ["web-0", "a", "a.b-c.d9", "WEB", &"a".repeat(63)] {
            assert!(hostname("hostname", good).is_ok(), "{good}");
        }
        for bad in ["", "-a", "a-", "a..b", "a/b", "a\nb", "a_b", &"a".repeat(64), &"a.".repeat(33)] {
            assert!(hostname("hostname", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn words_and_addresses() {
        assert!(word("dns_config.options", "ndots:5").is_ok());
        for bad in ["", "a b", "ndots:1\noptions ndots:99", "a\tb", "x\0"] {
            assert!(word("dns_config.options", bad).is_err(), "{bad:?}");
        }
        assert!(ip_address("s", "10.0.0.10").is_ok());
        assert!(ip_address("s", "fe80::1%eth0").is_ok());
        for bad in ["", "10.0.0.10\nnameserver 1.1.1.1", "dns.example", "10.0.0.1%eth0", "::1%a b"] {
            assert!(ip_address("s", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ids_are_hex_prefixes() {
        assert!(is_id_prefix("0123abcdef"));
        assert!(is_id_prefix(&"a".repeat(64)));
        for bad in ["", "k8s_POD_web_ns_u1_0", "ABC", &"a".repeat(65)] {
            assert!(!is_id_prefix(bad), "{bad}");
        }
    }
}
