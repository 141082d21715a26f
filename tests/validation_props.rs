//! Property tests of the path checks CRI requests pass: whatever log
//! directory, log path, cgroup parent or seccomp profile path a client
//! sends, what is accepted stays inside the directory it must stay in.
//! Pure functions: no Docker.

use std::path::{Component, Path, PathBuf};

use pinshim::api::SecurityProfile;
use pinshim::api::security_profile::ProfileType;
use pinshim::security_opt::seccomp_option;
use pinshim::validate::{cgroup_parent, clean_absolute, inside};
use proptest::prelude::*;

/// Paths built from the parts that make escapes: `..`, `.`, empty
/// components, names, a leading `/`, and now and then anything at all.
fn hostile_path() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        Just("..".to_string()),
        Just(".".to_string()),
        Just(String::new()),
        "[a-c]{1,2}",
        "[a-z.]{1,4}",
        "\\PC{1,3}",
    ];
    let joined = (any::<bool>(), prop::collection::vec(part, 0..8))
        .prop_map(|(absolute, parts)| format!("{}{}", if absolute { "/" } else { "" }, parts.join("/")));
    prop_oneof![4 => joined, 1 => ".*"]
}

/// Resolves `.` and `..` the way the kernel would if no component were a symlink.
fn resolve(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(part) => out.push(part),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn accepted_log_files_stay_in_the_log_directory(dir in hostile_path(), rel in hostile_path()) {
        let Ok(root) = clean_absolute("log_directory", &dir) else { return Ok(()) };
        prop_assert_eq!(resolve(root), root.components().collect::<PathBuf>(), "a clean directory means itself");
        if let Ok(file) = inside("log_path", "log_directory", root, &rel) {
            let resolved = resolve(&file);
            prop_assert!(resolved.starts_with(resolve(root)), "{:?} + {:?} -> {:?}", dir, rel, file);
            prop_assert!(resolved != resolve(root), "names a file, not the directory");
            prop_assert_eq!(resolved, file.components().collect::<PathBuf>(), "no `.` or `..` left to resolve");
        }
    }

    #[test]
    fn accepted_cgroup_parents_stay_under_the_cgroup_root(parent in hostile_path()) {
        if cgroup_parent("cgroup_parent", &parent).is_ok() {
            let root = Path::new("/sys/fs/cgroup/memory");
            let joined = root.join(parent.trim_start_matches('/'));
            let resolved = resolve(&joined);
            prop_assert!(resolved.starts_with(root) && resolved != root, "{:?} -> {:?}", parent, resolved);
            prop_assert!(!parent.contains(char::is_whitespace) && !parent.contains(char::is_control));
        }
    }

    #[test]
    fn seccomp_profiles_are_never_read_relative_to_the_working_directory(path in hostile_path()) {
        let profile = SecurityProfile { profile_type: ProfileType::Localhost as i32, localhost_ref: path.clone() };
        let clean = Path::new(&path).is_absolute() && !Path::new(&path).components().any(|c| c == Component::ParentDir);
        for result in [seccomp_option(Some(&profile), ""), seccomp_option(None, &format!("localhost/{path}"))] {
            match result {
                Ok(_) => prop_assert!(clean, "read {:?}", path),
                // Refused before any read unless the path is clean.
                Err(why) => prop_assert!(clean || !why.contains("cannot read"), "{:?}: {}", path, why),
            }
        }
    }
}
