//! Seccomp and AppArmor profiles and SELinux labels → Docker `SecurityOpt`
//! entries, for pod sandboxes and containers alike.

use crate::api::security_profile::ProfileType;
use crate::api::{SeLinuxOption, SecurityProfile};

/// The `seccomp=…` option for a profile; `None` keeps Docker's default
/// profile. No profile at all is unconfined, as the CRI defines it (kubelet
/// asks for RuntimeDefault explicitly). A localhost profile is read from
/// disk and passed inline, as Docker's API wants its JSON; its path must be
/// absolute (kubelet's `<root-dir>/seccomp/…`), never read from pinshim's cwd.
pub fn seccomp_option(profile: Option<&SecurityProfile>, legacy_path: &str) -> Result<Option<String>, String> {
    let (kind, reference, field) = match profile {
        Some(p) => (profile_type("seccomp", p)?, p.localhost_ref.as_str(), "seccomp.localhost_ref"),
        None => match legacy_path {
            "runtime/default" | "docker/default" => return Ok(None),
            "" | "unconfined" => (ProfileType::Unconfined, "", ""),
            other => match other.strip_prefix("localhost/") {
                Some(path) => (ProfileType::Localhost, path, "seccomp_profile_path"),
                None => return Err(format!("unsupported seccomp profile path {other:?}")),
            },
        },
    };
    match kind {
        ProfileType::RuntimeDefault => Ok(None),
        ProfileType::Unconfined => Ok(Some("seccomp=unconfined".to_string())),
        ProfileType::Localhost => {
            let path = crate::validate::clean_absolute(field, reference)?;
            let json = std::fs::read_to_string(path)
                .map_err(|e| format!("{field}: cannot read seccomp profile {reference:?}: {e}"))?;
            Ok(Some(format!("seccomp={json}")))
        }
    }
}

/// The `apparmor=…` option; `None` keeps Docker's default profile. A
/// profile name is one word: Docker splits its options on whitespace.
pub fn apparmor_option(profile: Option<&SecurityProfile>, legacy_name: &str) -> Result<Option<String>, String> {
    let (name, field) = match profile {
        Some(p) => match profile_type("apparmor", p)? {
            ProfileType::RuntimeDefault => return Ok(None),
            ProfileType::Unconfined => return Ok(Some("apparmor=unconfined".to_string())),
            ProfileType::Localhost => (p.localhost_ref.as_str(), "apparmor.localhost_ref"),
        },
        None => match legacy_name {
            "" | "runtime/default" => return Ok(None),
            "unconfined" => return Ok(Some("apparmor=unconfined".to_string())),
            other => (other.strip_prefix("localhost/").unwrap_or(other), "apparmor_profile"),
        },
    };
    crate::validate::word(field, name)?;
    Ok(Some(format!("apparmor={name}")))
}

/// The `label=…` options for an SELinux context. Docker applies them
/// where SELinux is enabled and ignores them elsewhere. Each part is one
/// word: Docker splits its options on whitespace.
pub fn selinux_options(option: Option<&SeLinuxOption>) -> Result<Vec<String>, String> {
    let Some(o) = option else { return Ok(Vec::new()) };
    let mut options = Vec::new();
    for (part, value) in [("user", &o.user), ("role", &o.role), ("type", &o.r#type), ("level", &o.level)] {
        if !value.is_empty() {
            crate::validate::word(&format!("selinux_options.{part}"), value)?;
            options.push(format!("label={part}:{value}"));
        }
    }
    Ok(options)
}

/// The profile's type, refused when out of range (prost would read it as RuntimeDefault).
fn profile_type(field: &str, p: &SecurityProfile) -> Result<ProfileType, String> {
    ProfileType::try_from(p.profile_type)
        .map_err(|_| format!("{field}.profile_type has unknown value {}", p.profile_type))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selinux_parts_become_label_options() {
        let o = SeLinuxOption { r#type: "spc_t".into(), level: "s0:c1,c2".into(), ..Default::default() };
        assert_eq!(selinux_options(Some(&o)).unwrap(), ["label=type:spc_t", "label=level:s0:c1,c2"]);
        assert!(selinux_options(None).unwrap().is_empty());
        let bad = SeLinuxOption { user: "u x".into(), ..Default::default() };
        assert!(selinux_options(Some(&bad)).unwrap_err().contains("selinux_options.user"));
    }

    fn profile(kind: ProfileType, reference: &str) -> SecurityProfile {
        SecurityProfile { profile_type: kind as i32, localhost_ref: reference.to_string() }
    }

    #[test]
    fn seccomp_profiles() {
        assert_eq!(seccomp_option(None, ""), Ok(Some("seccomp=unconfined".into())));
        assert_eq!(seccomp_option(None, "runtime/default"), Ok(None));
        assert_eq!(
            seccomp_option(Some(&profile(ProfileType::Unconfined, "")), ""),
            Ok(Some("seccomp=unconfined".into()))
        );
        assert!(seccomp_option(Some(&profile(ProfileType::Localhost, "/nonexistent/profile.json")), "").is_err());
        for relative in ["../../../../etc/passwd", "profile.json", "/a/../etc/passwd"] {
            let err = seccomp_option(Some(&profile(ProfileType::Localhost, relative)), "").unwrap_err();
            assert!(err.starts_with("seccomp.localhost_ref"), "{err}");
            let err = seccomp_option(None, &format!("localhost/{relative}")).unwrap_err();
            assert!(err.starts_with("seccomp_profile_path"), "{err}");
        }
        let unknown = SecurityProfile { profile_type: 7, localhost_ref: String::new() };
        assert!(seccomp_option(Some(&unknown), "").unwrap_err().contains("profile_type"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        std::fs::write(&path, "{\"defaultAction\":\"SCMP_ACT_ALLOW\"}").unwrap();
        let opt = seccomp_option(Some(&profile(ProfileType::Localhost, path.to_str().unwrap())), "").unwrap();
        assert_eq!(opt.as_deref(), Some("seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\"}"));
    }

    #[test]
    fn apparmor_profiles() {
        assert_eq!(apparmor_option(None, ""), Ok(None));
        assert_eq!(
            apparmor_option(Some(&profile(ProfileType::Localhost, "k8s-x")), ""),
            Ok(Some("apparmor=k8s-x".into()))
        );
        assert!(apparmor_option(Some(&profile(ProfileType::Localhost, "a\nb")), "").is_err());
    }
}
