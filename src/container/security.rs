//! Seccomp and AppArmor profiles → Docker `SecurityOpt` entries.

use crate::cri::api::SecurityProfile;
use crate::cri::api::security_profile::ProfileType;

/// The `seccomp=…` option for a profile; `None` keeps Docker's default
/// profile. No profile at all is unconfined, as the CRI defines it (kubelet
/// asks for RuntimeDefault explicitly). A localhost profile is read from
/// disk and passed inline, as Docker's API wants its JSON.
pub fn seccomp_option(profile: Option<&SecurityProfile>, legacy_path: &str) -> Result<Option<String>, String> {
    let (kind, reference) = match profile {
        Some(p) => (p.profile_type(), p.localhost_ref.as_str()),
        None => match legacy_path {
            "runtime/default" | "docker/default" => return Ok(None),
            "" | "unconfined" => (ProfileType::Unconfined, ""),
            other => match other.strip_prefix("localhost/") {
                Some(path) => (ProfileType::Localhost, path),
                None => return Err(format!("unsupported seccomp profile path {other:?}")),
            },
        },
    };
    match kind {
        ProfileType::RuntimeDefault => Ok(None),
        ProfileType::Unconfined => Ok(Some("seccomp=unconfined".to_string())),
        ProfileType::Localhost => {
            let json = std::fs::read_to_string(reference)
                .map_err(|e| format!("cannot read seccomp profile {reference:?}: {e}"))?;
            Ok(Some(format!("seccomp={json}")))
        }
    }
}

/// The `apparmor=…` option; `None` keeps Docker's default profile.
pub fn apparmor_option(profile: Option<&SecurityProfile>, legacy_name: &str) -> Option<String> {
    match profile {
        Some(p) => match p.profile_type() {
            ProfileType::RuntimeDefault => None,
            ProfileType::Unconfined => Some("apparmor=unconfined".to_string()),
            ProfileType::Localhost => Some(format!("apparmor={}", p.localhost_ref)),
        },
        None => match legacy_name {
            "" | "runtime/default" => None,
            "unconfined" => Some("apparmor=unconfined".to_string()),
            other => Some(format!("apparmor={}", other.strip_prefix("localhost/").unwrap_or(other))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        std::fs::write(&path, "{\"defaultAction\":\"SCMP_ACT_ALLOW\"}").unwrap();
        let opt = seccomp_option(Some(&profile(ProfileType::Localhost, path.to_str().unwrap())), "").unwrap();
        assert_eq!(opt.as_deref(), Some("seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\"}"));
    }

    #[test]
    fn apparmor_profiles() {
        assert_eq!(apparmor_option(None, ""), None);
        assert_eq!(apparmor_option(Some(&profile(ProfileType::Localhost, "k8s-x")), ""), Some("apparmor=k8s-x".into()));
    }
}
