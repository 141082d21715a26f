//! Tests of policy.rs.

use super::*;

const D1: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const D2: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const D3: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

fn policy(text: &str) -> Policy {
    Policy::from_toml(text).unwrap()
}

fn glob(pattern: &str) -> Glob {
    Glob::new(pattern).unwrap()
}

#[test]
fn empty_policy_allows_everything() {
    let p = policy("");
    assert_eq!(p, Policy::default());
    assert_eq!(p.check("evil.io", Some(D1)), Verdict::Allowed);
    assert_eq!(p.check("docker.io", None), Verdict::Allowed);
    assert!(p.require_digest_resolution());
    assert_eq!(p.is_denied_digest(D1), None);
}

#[test]
fn documented_example_parses() {
    let text = format!(
        r#"
allowed_registries = ["127.0.0.1:5000", "*.example.com", "registry.k8s.io"]
require_digest_resolution = false
denied_digests = ["{D2}"]

[[deny]]
digest = "{D1}"
reason = "CVE-2024-0001"
"#
    );
    let p = policy(&text);
    assert!(!p.require_digest_resolution());
    assert_eq!(p.is_denied_digest(D1), Some("CVE-2024-0001"));
    assert_eq!(p.is_denied_digest(D2), Some(""));
    assert_eq!(p.is_denied_digest(D3), None);
    assert_eq!(p.check("127.0.0.1:5000", Some(D3)), Verdict::Allowed);
    assert_eq!(p.check("cache.example.com", None), Verdict::Allowed);
    assert_eq!(p.check("registry.k8s.io", Some(D3)), Verdict::Allowed);
    assert_eq!(
        p.check("evil.io", Some(D3)),
        Verdict::Denied { rule: "registry evil.io is not in allowed_registries".into() }
    );
}

#[test]
fn deny_rules_name_the_digest_and_reason() {
    let p = policy(&format!("denied_digests = [\"{D2}\"]\n[[deny]]\ndigest = \"{D1}\"\nreason = \"CVE-2024-0001\"\n"));
    assert_eq!(
        p.check("docker.io", Some(D1)),
        Verdict::Denied { rule: format!("digest {D1} is denied (CVE-2024-0001)") }
    );
    assert_eq!(p.check("docker.io", Some(D2)), Verdict::Denied { rule: format!("digest {D2} is denied") });
    assert_eq!(p.check("docker.io", Some(D3)), Verdict::Allowed);
    assert_eq!(p.check("docker.io", None), Verdict::Allowed);
    // Case does not hide a denied digest.
    assert_eq!(p.is_denied_digest(&D1.to_uppercase().replace("SHA256", "sha256")), Some("CVE-2024-0001"));
}

#[test]
fn denied_digest_wins_over_registry_rule() {
    let p = policy(&format!("allowed_registries = [\"good.io\"]\ndenied_digests = [\"{D1}\"]\n"));
    assert!(matches!(p.check("evil.io", Some(D1)), Verdict::Denied { rule } if rule.starts_with("digest")));
    assert!(matches!(p.check("evil.io", Some(D2)), Verdict::Denied { rule } if rule.starts_with("registry")));
    assert_eq!(p.check("good.io", Some(D2)), Verdict::Allowed);
}

#[test]
fn duplicate_digests_keep_a_reason() {
    let p = policy(&format!(
        "denied_digests = [\"{D1}\"]\n[[deny]]\ndigest = \"{D1}\"\n[[deny]]\ndigest = \"{D1}\"\nreason = \"bad\"\n"
    ));
    assert_eq!(p.is_denied_digest(D1), Some("bad"));
}

#[test]
fn single_star_does_not_cross_slashes() {
    let g = glob("*.example.com");
    assert!(g.matches("a.example.com"));
    assert!(g.matches("a.b.example.com"));
    assert!(g.matches(".example.com"));
    assert!(!g.matches("example.com"));
    assert!(!g.matches("a/b.example.com"));
    assert!(!g.matches("a.example.com.evil.io"));

    let g = glob("registry.io/*");
    assert!(g.matches("registry.io/team"));
    assert!(!g.matches("registry.io/team/sub"));
    assert!(glob("*").matches("anything:5000"));
    assert!(!glob("*").matches("a/b"));
}

#[test]
fn double_star_crosses_slashes() {
    let g = glob("registry.io/**");
    assert!(g.matches("registry.io/team"));
    assert!(g.matches("registry.io/team/sub"));
    assert!(!g.matches("registry.io"));
    assert!(glob("**").matches("a/b/c"));
    assert!(glob("**").matches(""));
    assert!(glob("a***b").matches("a/x/b"));
    assert!(glob("**.corp").matches("x/y.corp"));
}

#[test]
fn literal_and_mixed_globs() {
    assert!(glob("127.0.0.1:5000").matches("127.0.0.1:5000"));
    assert!(!glob("127.0.0.1:5000").matches("127.0.0.1:50000"));
    assert!(glob("127.0.0.1:*").matches("127.0.0.1:5000"));
    assert!(glob("*.*.io").matches("a.b.io"));
    assert!(!glob("*.*.io").matches("ab.io"));
    assert!(glob("a*b*c").matches("abxbc"));
    assert!(!glob("a*b*c").matches("acb"));
}

#[test]
fn registries_match_without_regard_to_case() {
    let p = policy("allowed_registries = [\"Registry.K8s.io\"]");
    assert!(p.is_registry_allowed("registry.k8s.io"));
    assert!(p.is_registry_allowed("REGISTRY.k8s.io"));
    assert!(!p.is_registry_allowed("registry.k8s.io.evil"));
}

#[test]
fn unknown_keys_are_errors_naming_the_key() {
    let err = Policy::from_toml("allowed_registry = [\"x\"]\n").unwrap_err().to_string();
    assert!(err.contains("allowed_registry") && err.starts_with("line 1"), "{err}");

    let err = Policy::from_toml(&format!("[[deny]]\ndigest = \"{D1}\"\nwhy = \"x\"\n")).unwrap_err().to_string();
    assert!(err.contains("unknown key `why`"), "{err}");
    assert!(!err.contains("top-level"), "{err}");
}

#[test]
fn top_level_key_after_deny_gets_a_hint() {
    let err = Policy::from_toml(&format!("[[deny]]\ndigest = \"{D1}\"\nrequire_digest_resolution = true\n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown key `require_digest_resolution`"), "{err}");
    assert!(err.contains("before the first [[deny]]"), "{err}");
}

#[test]
fn bad_digests_are_errors() {
    let bad = [
        "sha256:0123",
        "sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
        "sha512:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg",
        "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0",
    ];
    for digest in bad {
        for text in [format!("denied_digests = [\"{digest}\"]"), format!("[[deny]]\ndigest = \"{digest}\"")] {
            let err = Policy::from_toml(&text).unwrap_err().to_string();
            assert!(err.contains(digest) && err.contains("64 lowercase hex"), "{err}");
        }
    }
}

#[test]
fn wrong_types_and_bad_patterns_are_errors() {
    assert!(Policy::from_toml("require_digest_resolution = \"yes\"").is_err());
    assert!(Policy::from_toml("allowed_registries = \"x\"").is_err());
    assert!(Policy::from_toml("[[deny]]\nreason = \"no digest\"").is_err());
    let err = Policy::from_toml("allowed_registries = [\"\"]").unwrap_err().to_string();
    assert!(err.contains("not a registry pattern"), "{err}");
    assert!(Policy::from_toml("allowed_registries = [\"a b\"]").is_err());
}

#[test]
fn syntax_errors_give_the_line() {
    let err = Policy::from_toml("allowed_registries = [\"a\"]\n\nrequire_digest_resolution = \n").unwrap_err();
    assert!(err.to_string().starts_with("line 3"), "{err}");
}

#[test]
fn no_path_means_permissive_default() {
    let f = PolicyFile::new(None);
    let p = f.current().unwrap();
    assert_eq!(*p, Policy::default());
    assert!(p.require_digest_resolution());
}

#[test]
fn missing_file_is_an_error_naming_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("policy.toml");
    let f = PolicyFile::new(Some(path.clone()));
    let err = f.current().unwrap_err();
    assert_eq!(err, PolicyError::NotFound { path: path.clone() });
    assert!(err.to_string().contains(&path.display().to_string()));

    // Created later, it is picked up.
    fs::write(&path, "allowed_registries = [\"a.io\"]\n").unwrap();
    assert!(!f.current().unwrap().is_registry_allowed("b.io"));
}

#[test]
fn rereads_after_change_and_keeps_last_good() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("policy.toml");
    fs::write(&path, "allowed_registries = [\"a.io\"]\n").unwrap();
    let f = PolicyFile::new(Some(path.clone()));
    let first = f.current().unwrap();
    assert!(first.is_registry_allowed("a.io"));
    assert!(Arc::ptr_eq(&first, &f.current().unwrap()), "unchanged file is not parsed again");

    fs::write(&path, "allowed_registries = [\"b.io\", \"c.io\"]\nrequire_digest_resolution = false\n").unwrap();
    let second = f.current().unwrap();
    assert!(!second.is_registry_allowed("a.io"));
    assert!(second.is_registry_allowed("c.io"));
    assert!(!second.require_digest_resolution());

    // A broken edit keeps the previous policy.
    fs::write(&path, "allowed_registries = [\"b.io\"\n").unwrap();
    let kept = f.current().unwrap();
    assert!(Arc::ptr_eq(&kept, &second));
    assert!(Arc::ptr_eq(&f.current().unwrap(), &second));

    // So does an invalid digest, and so does deleting the file.
    fs::write(&path, "denied_digests = [\"sha256:nope\"]\n").unwrap();
    assert!(Arc::ptr_eq(&f.current().unwrap(), &second));
    fs::remove_file(&path).unwrap();
    assert!(Arc::ptr_eq(&f.current().unwrap(), &second));

    // A fixed file is taken up.
    fs::write(&path, format!("denied_digests = [\"{D1}\"]\n")).unwrap();
    let third = f.current().unwrap();
    assert_eq!(third.is_denied_digest(D1), Some(""));
    assert!(third.is_registry_allowed("a.io"));
}

#[test]
fn error_without_any_good_policy_is_returned_until_fixed() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("policy.toml");
    fs::write(&path, "colour = \"red\"\n").unwrap();
    let f = PolicyFile::new(Some(path.clone()));
    for _ in 0..2 {
        let err = f.current().unwrap_err();
        assert!(matches!(&err, PolicyError::Invalid { path: p, .. } if *p == path));
        let message = err.to_string();
        assert!(message.contains("colour") && message.contains("policy.toml"), "{message}");
    }
    fs::write(&path, "allowed_registries = []\n").unwrap();
    assert!(f.current().unwrap().is_registry_allowed("any.io"));
}

#[test]
fn error_messages_are_lowercase_without_period() {
    let errors = [
        PolicyError::NotFound { path: "/p".into() },
        PolicyError::Read { path: "/p".into(), reason: "denied".into() },
        PolicyError::Invalid { path: "/p".into(), source: InvalidPolicy("line 1".into()) },
    ];
    for e in errors {
        let m = e.to_string();
        assert!(m.starts_with(|c: char| c.is_lowercase()) && !m.ends_with('.'), "{m}");
    }
}
