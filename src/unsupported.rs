//! Requests Docker cannot carry out, shared by the pod and container rules:
//! refused with the reason, so that nothing runs other than it was asked to.

use crate::api;

/// The identity parts of a pod's or container's security context Docker
/// cannot give: a user namespace of its own, and strict supplemental groups.
pub fn identity(namespaces: Option<&api::NamespaceOption>, groups_policy: i32) -> Result<(), String> {
    user_namespace("security_context.namespace_options", namespaces)?;
    supplemental_groups_policy("security_context.supplemental_groups_policy", groups_policy)
}

/// A user namespace of the pod's own: Docker has only the daemon-wide
/// `userns-remap`. The host's (mode NODE, what kubelet sends for
/// `hostUsers: true`) is what every container gets.
fn user_namespace(field: &str, namespaces: Option<&api::NamespaceOption>) -> Result<(), String> {
    match namespaces.and_then(|n| n.userns_options.as_ref()) {
        Some(userns) if userns.mode() != api::NamespaceMode::Node => Err(format!(
            "{field}.userns_options: pods with a user namespace of their own are not supported: Docker has only \
             the daemon-wide userns-remap (Status reports user_namespaces = false)"
        )),
        _ => Ok(()),
    }
}

/// `Strict`: Docker always adds the groups the image's /etc/group gives
/// the user.
fn supplemental_groups_policy(field: &str, policy: i32) -> Result<(), String> {
    match api::SupplementalGroupsPolicy::try_from(policy) {
        Ok(api::SupplementalGroupsPolicy::Merge) => Ok(()),
        Ok(api::SupplementalGroupsPolicy::Strict) => Err(format!(
            "{field} Strict is not supported: Docker always merges the groups of the image's /etc/group \
             (Status reports supplemental_groups_policy = false)"
        )),
        Err(_) => Err(format!("{field} has unknown value {policy}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_host_user_namespace() {
        let with = |mode: api::NamespaceMode| api::NamespaceOption {
            userns_options: Some(api::UserNamespace { mode: mode as i32, ..Default::default() }),
            ..Default::default()
        };
        assert!(user_namespace("n", None).is_ok());
        assert!(user_namespace("n", Some(&api::NamespaceOption::default())).is_ok());
        assert!(user_namespace("n", Some(&with(api::NamespaceMode::Node))).is_ok());
        let err = user_namespace("n", Some(&with(api::NamespaceMode::Pod))).unwrap_err();
        assert!(err.contains("userns-remap"), "{err}");
    }

    #[test]
    fn only_merged_groups() {
        assert!(supplemental_groups_policy("p", 0).is_ok());
        assert!(supplemental_groups_policy("p", 1).unwrap_err().contains("Strict"));
        assert!(supplemental_groups_policy("p", 9).unwrap_err().contains("unknown"));
    }
}
