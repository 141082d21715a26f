//! Tests of hosts.rs.

use super::*;
use std::fs;

struct Dirs {
    _tmp: tempfile::TempDir,
    config: PathBuf,
    docker: PathBuf,
}

fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("hosts");
    let docker = tmp.path().join("docker-certs");
    fs::create_dir_all(&config).unwrap();
    fs::create_dir_all(&docker).unwrap();
    Dirs { _tmp: tmp, config, docker }
}

impl Dirs {
    fn config(&self) -> HostsConfig {
        HostsConfig::new(self.config.clone(), self.docker.clone())
    }

    fn write_hosts(&self, dir: &str, text: &str) -> PathBuf {
        let dir = self.config.join(dir);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(HOSTS_FILE), text).unwrap();
        dir
    }
}

fn upstream(url: &str) -> RegistryHost {
    RegistryHost { url: url.into(), capabilities: Capabilities::PULL_AND_RESOLVE, ..Default::default() }
}

fn urls(hosts: &[RegistryHost]) -> Vec<&str> {
    hosts.iter().map(|h| h.url.as_str()).collect()
}

#[test]
fn no_configuration_gives_the_default_upstream() {
    let d = dirs();
    let c = d.config();
    assert_eq!(c.hosts_for("quay.io", false).unwrap(), vec![upstream("https://quay.io")]);
    assert_eq!(c.hosts_for("docker.io", false).unwrap(), vec![upstream("https://registry-1.docker.io")]);
    assert_eq!(c.hosts_for("127.0.0.1:5000", true).unwrap(), vec![upstream("http://127.0.0.1:5000")]);
}

#[test]
fn missing_directories_are_not_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let c = HostsConfig::new(tmp.path().join("nope"), tmp.path().join("nope-either"));
    assert_eq!(c.hosts_for("quay.io", false).unwrap(), vec![upstream("https://quay.io")]);
}

#[test]
fn mirrors_come_first_in_file_order_then_the_server() {
    let d = dirs();
    // Names chosen so that neither alphabetical nor hash order matches file order.
    d.write_hosts(
        "docker.io",
        r#"
server = "https://registry-1.docker.io"
[host."https://zeta.mirror"]
capabilities = ["pull"]
[host."https://alpha.mirror"]
[host."http://mid.mirror:8080"]
capabilities = ["pull", "resolve", "push"]
[host."https://beta.mirror"]
"#,
    );
    let hosts = d.config().hosts_for("docker.io", false).unwrap();
    assert_eq!(
        urls(&hosts),
        [
            "https://zeta.mirror",
            "https://alpha.mirror",
            "http://mid.mirror:8080",
            "https://beta.mirror",
            "https://registry-1.docker.io"
        ]
    );
    assert_eq!(hosts[0].capabilities, Capabilities { pull: true, resolve: false });
    assert_eq!(hosts[1].capabilities, Capabilities::PULL_AND_RESOLVE);
    assert_eq!(hosts[2].capabilities, Capabilities::PULL_AND_RESOLVE);
    assert_eq!(hosts[4].capabilities, Capabilities::PULL_AND_RESOLVE);
}

#[test]
fn server_defaults_to_the_registry_and_honours_insecure() {
    let d = dirs();
    d.write_hosts("localhost:5000", "[host.\"https://mirror\"]\n");
    let hosts = d.config().hosts_for("localhost:5000", true).unwrap();
    assert_eq!(urls(&hosts), ["https://mirror", "http://localhost:5000"]);
    let hosts = d.config().hosts_for("localhost:5000", false).unwrap();
    assert_eq!(urls(&hosts), ["https://mirror", "https://localhost:5000"]);
}

#[test]
fn server_replaces_the_upstream_and_keeps_its_scheme() {
    let d = dirs();
    d.write_hosts("quay.io", "server = \"http://cache.internal:8080\"\n");
    let hosts = d.config().hosts_for("quay.io", false).unwrap();
    assert_eq!(hosts, vec![upstream("http://cache.internal:8080")]);
}

#[test]
fn urls_without_scheme_are_https_and_v2_suffix_is_dropped() {
    let d = dirs();
    d.write_hosts(
        "quay.io",
        r#"
server = "upstream.example.com/v2/"
[host."mirror.example.com:5000"]
[host."https://m2.example.com/prefix/v2"]
[host."https://m3.example.com/prefix/"]
"#,
    );
    let hosts = d.config().hosts_for("quay.io", false).unwrap();
    assert_eq!(
        urls(&hosts),
        [
            "https://mirror.example.com:5000",
            "https://m2.example.com/prefix",
            "https://m3.example.com/prefix",
            "https://upstream.example.com"
        ]
    );
    assert!(hosts.iter().all(|h| !h.override_path));
}

#[test]
fn override_path_keeps_the_path_as_written() {
    let d = dirs();
    d.write_hosts(
        "quay.io",
        r#"
[host."https://odd.example.com/api/v2/upstream"]
override_path = true
[host."https://odd2.example.com/v2"]
override_path = true
"#,
    );
    let hosts = d.config().hosts_for("quay.io", false).unwrap();
    assert_eq!(hosts[0].url, "https://odd.example.com/api/v2/upstream");
    assert!(hosts[0].override_path);
    assert_eq!(hosts[1].url, "https://odd2.example.com/v2");
    assert!(hosts[1].override_path);
    assert!(!hosts[2].override_path);
}

#[test]
fn top_level_override_path_does_not_apply_to_the_default_upstream() {
    let d = dirs();
    d.write_hosts("quay.io", "override_path = true\n");
    let hosts = d.config().hosts_for("quay.io", false).unwrap();
    assert_eq!(hosts, vec![upstream("https://quay.io")]);
}

#[test]
fn ca_forms_and_relative_paths() {
    let d = dirs();
    let dir = d.write_hosts(
        "quay.io",
        r#"
ca = "server-ca.pem"
[host."https://a"]
ca = "/etc/pki/a.pem"
[host."https://b"]
ca = ["sub/b1.pem", "/abs/b2.pem"]
"#,
    );
    let hosts = d.config().hosts_for("quay.io", false).unwrap();
    assert_eq!(hosts[0].ca_files, [PathBuf::from("/etc/pki/a.pem")]);
    assert_eq!(hosts[1].ca_files, [dir.join("sub/b1.pem"), PathBuf::from("/abs/b2.pem")]);
    assert_eq!(hosts[2].url, "https://quay.io");
    assert_eq!(hosts[2].ca_files, [dir.join("server-ca.pem")]);
    assert!(hosts.iter().all(|h| h.ca_files.iter().all(|p| p.is_absolute())));
}

#[test]
fn client_forms() {
    let d = dirs();
    let dir = d.write_hosts(
        "quay.io",
        r#"
client = [["top.cert", "top.key"]]
[host."https://single"]
client = "both.pem"
[host."https://list"]
client = ["one.pem", "/abs/two.pem"]
[host."https://pairs"]
client = [["c1.cert", "c1.key"], ["/abs/c2.pem", ""]]
[host."https://mixed"]
client = ["one.pem", ["c.cert", "c.key"]]
"#,
    );
    let hosts = d.config().hosts_for("quay.io", false).unwrap();
    assert_eq!(hosts[0].client_pairs, [(dir.join("both.pem"), None)]);
    assert_eq!(hosts[1].client_pairs, [(dir.join("one.pem"), None), (PathBuf::from("/abs/two.pem"), None)]);
    assert_eq!(
        hosts[2].client_pairs,
        [(dir.join("c1.cert"), Some(dir.join("c1.key"))), (PathBuf::from("/abs/c2.pem"), None)]
    );
    assert_eq!(hosts[3].client_pairs, [(dir.join("one.pem"), None), (dir.join("c.cert"), Some(dir.join("c.key")))]);
    assert_eq!(hosts[4].client_pairs, [(dir.join("top.cert"), Some(dir.join("top.key")))]);
}

#[test]
fn bad_client_forms_are_errors() {
    for bad in ["client = 3", "client = [[\"a\", \"b\", \"c\"]]", "client = [[\"a\"]]", "client = [1]"] {
        let d = dirs();
        d.write_hosts("quay.io", &format!("[host.\"https://m\"]\n{bad}\n"));
        let err = d.config().hosts_for("quay.io", false).unwrap_err();
        assert!(matches!(&err, HostsError::Invalid { reason, .. } if reason.contains("`host.\"https://m\".client`")));
    }
}

#[test]
fn skip_verify_headers_and_top_level_settings() {
    let d = dirs();
    d.write_hosts(
        "quay.io",
        r#"
server = "https://upstream"
skip_verify = true
capabilities = ["resolve"]

[header]
x-top = "t"

[host."https://m"]
skip_verify = true
[host."https://m".header]
x-single = "one"
x-multi = ["v1", "v2"]
authorization = "Bearer abc"
"#,
    );
    let hosts = d.config().hosts_for("quay.io", false).unwrap();
    assert!(hosts[0].skip_verify);
    assert_eq!(
        hosts[0].headers,
        [
            ("x-single".to_string(), "one".to_string()),
            ("x-multi".to_string(), "v1".to_string()),
            ("x-multi".to_string(), "v2".to_string()),
            ("authorization".to_string(), "Bearer abc".to_string()),
        ]
    );
    assert_eq!(
        hosts[1],
        RegistryHost {
            url: "https://upstream".into(),
            capabilities: Capabilities { pull: false, resolve: true },
            skip_verify: true,
            headers: vec![("x-top".into(), "t".into())],
            ..Default::default()
        }
    );
}

#[test]
fn capabilities_edge_cases() {
    let d = dirs();
    d.write_hosts(
        "quay.io",
        r#"
[host."https://push-only"]
capabilities = ["push"]
[host."https://empty"]
capabilities = []
[host."https://upper"]
capabilities = ["PULL"]
"#,
    );
    let hosts = d.config().hosts_for("quay.io", false).unwrap();
    assert_eq!(hosts[0].capabilities, Capabilities::default());
    assert_eq!(hosts[1].capabilities, Capabilities::PULL_AND_RESOLVE);
    assert_eq!(hosts[2].capabilities, Capabilities { pull: true, resolve: false });

    d.write_hosts("ghcr.io", "[host.\"https://m\"]\ncapabilities = [\"pull\", \"fly\"]\n");
    let err = d.config().hosts_for("ghcr.io", false).unwrap_err();
    assert!(err.to_string().contains("unknown capability \"fly\""), "{err}");
}

#[test]
fn unknown_and_unsupported_keys_are_ignored() {
    let d = dirs();
    d.write_hosts(
        "quay.io",
        r#"
proxy = "http://proxy:3128"
colour = "blue"
[host."https://m"]
dial_timeout = "1s"
shiny = true
[host."https://m".host."https://nested"]
"#,
    );
    let hosts = d.config().hosts_for("quay.io", false).unwrap();
    assert_eq!(urls(&hosts), ["https://m", "https://quay.io"]);
    assert_eq!(hosts[0].capabilities, Capabilities::PULL_AND_RESOLVE);
}

#[test]
fn wrong_value_types_are_errors() {
    let cases = [
        ("skip_verify = \"yes\"", "`skip_verify` must be a boolean"),
        ("server = 5", "`server` must be a string"),
        ("host = 1", "`host` must be a table"),
        ("ca = 1", "`ca` must be a string or an array of strings"),
        ("capabilities = \"pull\"", "`capabilities` must be an array of strings"),
        ("[header]\nx = 1", "`header.x` must be a string or an array of strings"),
        ("server = \"ftp://x\"", "unsupported scheme"),
        ("server = \"https:///v2\"", "no valid host"),
        ("[host.\"https://m?x=1\"]", "query or fragment"),
    ];
    for (text, expected) in cases {
        let d = dirs();
        let dir = d.write_hosts("quay.io", text);
        let err = d.config().hosts_for("quay.io", false).unwrap_err();
        let message = err.to_string();
        assert!(message.contains(expected), "{text}: {message}");
        assert!(message.contains(&dir.join(HOSTS_FILE).display().to_string()), "{message}");
    }
}

#[test]
fn syntax_error_names_file_and_line() {
    let d = dirs();
    let dir = d.write_hosts("quay.io", "server = \"https://x\"\n\n[host.\"https://m\"\ncapabilities = []\n");
    let err = d.config().hosts_for("quay.io", false).unwrap_err();
    let HostsError::Syntax { path, reason } = &err else { panic!("{err:?}") };
    assert_eq!(path, &dir.join(HOSTS_FILE));
    assert!(reason.starts_with("line 3,"), "{reason}");
    let message = err.to_string();
    assert!(message.contains("hosts.toml is not valid TOML: line 3"), "{message}");
    assert!(!message.contains('\n'), "{message}");
}

#[test]
fn port_directory_forms() {
    let d = dirs();
    d.write_hosts("reg.local_5000_", "[host.\"https://underscore\"]\n");
    let hosts = d.config().hosts_for("reg.local:5000", false).unwrap();
    assert_eq!(urls(&hosts), ["https://underscore", "https://reg.local:5000"]);

    let d = dirs();
    d.write_hosts("reg.local:5000", "[host.\"https://colon\"]\n");
    let hosts = d.config().hosts_for("reg.local:5000", false).unwrap();
    assert_eq!(urls(&hosts), ["https://colon", "https://reg.local:5000"]);

    // Both present: the colon-free form wins, as in containerd.
    d.write_hosts("reg.local_5000_", "[host.\"https://underscore\"]\n");
    let hosts = d.config().hosts_for("reg.local:5000", false).unwrap();
    assert_eq!(urls(&hosts), ["https://underscore", "https://reg.local:5000"]);

    // A port-less registry does not see the port forms.
    let hosts = d.config().hosts_for("reg.local", false).unwrap();
    assert_eq!(urls(&hosts), ["https://reg.local"]);
}

#[test]
fn ipv6_registries() {
    let d = dirs();
    d.write_hosts("[::1]_5000_", "[host.\"https://v6mirror\"]\n");
    let hosts = d.config().hosts_for("[::1]:5000", true).unwrap();
    assert_eq!(urls(&hosts), ["https://v6mirror", "http://[::1]:5000"]);
    assert_eq!(split_port("[::1]"), None);
    assert_eq!(split_port("[::1]:80"), Some(("[::1]", "80")));
    assert_eq!(split_port("host:"), None);
}

#[test]
fn default_directory_applies_to_registries_without_their_own() {
    let d = dirs();
    d.write_hosts("_default", "[host.\"https://catch-all\"]\ncapabilities = [\"pull\"]\n");
    d.write_hosts("quay.io", "[host.\"https://quay-mirror\"]\n");
    let c = d.config();
    assert_eq!(urls(&c.hosts_for("ghcr.io", false).unwrap()), ["https://catch-all", "https://ghcr.io"]);
    assert_eq!(urls(&c.hosts_for("docker.io", false).unwrap()), ["https://catch-all", "https://registry-1.docker.io"]);
    assert_eq!(urls(&c.hosts_for("quay.io", false).unwrap()), ["https://quay-mirror", "https://quay.io"]);

    // A registry directory holding only certificates shadows `_default`.
    let own = d.config.join("ghcr.io");
    fs::create_dir_all(&own).unwrap();
    fs::write(own.join("ca.crt"), "x").unwrap();
    let hosts = c.hosts_for("ghcr.io", false).unwrap();
    assert_eq!(hosts, vec![RegistryHost { ca_files: vec![own.join("ca.crt")], ..upstream("https://ghcr.io") }]);
}

#[test]
fn default_directory_server_replaces_every_upstream() {
    let d = dirs();
    d.write_hosts("_default", "server = \"https://only-mirror\"\n");
    let hosts = d.config().hosts_for("ghcr.io", false).unwrap();
    assert_eq!(hosts, vec![upstream("https://only-mirror")]);
}

#[test]
fn docker_certs_fallback() {
    let d = dirs();
    let certs = d.docker.join("reg.local:5000");
    fs::create_dir_all(certs.join("subdir.crt")).unwrap();
    for name in ["b.crt", "a.crt", "client.cert", "client.key", "stray.key", "README"] {
        fs::write(certs.join(name), "x").unwrap();
    }
    let hosts = d.config().hosts_for("reg.local:5000", false).unwrap();
    assert_eq!(
        hosts,
        vec![RegistryHost {
            ca_files: vec![certs.join("a.crt"), certs.join("b.crt")],
            client_pairs: vec![(certs.join("client.cert"), Some(certs.join("client.key")))],
            ..upstream("https://reg.local:5000")
        }]
    );

    // Docker Hub's directory is "docker.io".
    let hub = d.docker.join("docker.io");
    fs::create_dir_all(&hub).unwrap();
    fs::write(hub.join("hub.crt"), "x").unwrap();
    let hosts = d.config().hosts_for("docker.io", false).unwrap();
    assert_eq!(hosts[0].ca_files, [hub.join("hub.crt")]);
    assert_eq!(hosts[0].url, "https://registry-1.docker.io");
}

#[test]
fn docker_certs_are_not_used_when_hosts_toml_exists() {
    let d = dirs();
    let certs = d.docker.join("quay.io");
    fs::create_dir_all(&certs).unwrap();
    fs::write(certs.join("ca.crt"), "x").unwrap();
    d.write_hosts("quay.io", "[host.\"https://m\"]\n");
    let hosts = d.config().hosts_for("quay.io", false).unwrap();
    assert!(hosts.iter().all(|h| h.ca_files.is_empty()));
}

#[test]
fn certificates_in_config_dir_and_docker_dir_are_merged_once() {
    let d = dirs();
    let own = d.config.join("quay.io");
    fs::create_dir_all(&own).unwrap();
    fs::write(own.join("own.crt"), "x").unwrap();
    let docker = d.docker.join("quay.io");
    fs::create_dir_all(&docker).unwrap();
    fs::write(docker.join("docker.crt"), "x").unwrap();
    let hosts = d.config().hosts_for("quay.io", false).unwrap();
    assert_eq!(hosts[0].ca_files, [own.join("own.crt"), docker.join("docker.crt")]);

    // The same directory given as both roots is read once.
    let same = HostsConfig::new(d.docker.clone(), d.docker.clone());
    assert_eq!(same.hosts_for("quay.io", false).unwrap()[0].ca_files, [docker.join("docker.crt")]);
}

#[test]
fn client_certificate_without_key_is_an_error() {
    let d = dirs();
    let certs = d.docker.join("quay.io");
    fs::create_dir_all(&certs).unwrap();
    fs::write(certs.join("client.cert"), "x").unwrap();
    let err = d.config().hosts_for("quay.io", false).unwrap_err();
    assert!(err.to_string().contains("no matching key client.key"), "{err}");
}

#[test]
fn rereads_changed_files() {
    let d = dirs();
    let c = d.config();
    d.write_hosts("quay.io", "[host.\"https://first\"]\n");
    assert_eq!(urls(&c.hosts_for("quay.io", false).unwrap()), ["https://first", "https://quay.io"]);

    d.write_hosts("quay.io", "[host.\"https://second-and-longer\"]\ncapabilities = [\"pull\"]\n");
    assert_eq!(urls(&c.hosts_for("quay.io", false).unwrap()), ["https://second-and-longer", "https://quay.io"]);

    // A broken edit is reported, and a fix is picked up again.
    d.write_hosts("quay.io", "[host.\"https://broken\"\n");
    assert!(matches!(c.hosts_for("quay.io", false), Err(HostsError::Syntax { .. })));
    assert!(matches!(c.hosts_for("quay.io", false), Err(HostsError::Syntax { .. })));
    d.write_hosts("quay.io", "[host.\"https://fixed\"]\n");
    assert_eq!(urls(&c.hosts_for("quay.io", false).unwrap()), ["https://fixed", "https://quay.io"]);

    // Removing the file falls back to the default upstream.
    fs::remove_file(d.config.join("quay.io").join(HOSTS_FILE)).unwrap();
    assert_eq!(urls(&c.hosts_for("quay.io", false).unwrap()), ["https://quay.io"]);
}

#[test]
fn unchanged_files_are_served_from_the_cache() {
    let d = dirs();
    let c = d.config();
    let path = d.write_hosts("quay.io", "[host.\"https://m\"]\n").join(HOSTS_FILE);
    let cached = |c: &HostsConfig| Arc::clone(c.files.lock().unwrap()[&path].parsed.as_ref().unwrap());
    c.hosts_for("quay.io", false).unwrap();
    let before = cached(&c);
    c.hosts_for("quay.io", false).unwrap();
    // The same parse comes back while the file is unchanged.
    assert!(Arc::ptr_eq(&before, &cached(&c)));
}

#[test]
fn registry_names_that_escape_are_refused() {
    let d = dirs();
    let c = d.config();
    for bad in ["", "..", "../etc", "a/b", "_default", ".hidden", "a b", "a\\b"] {
        assert_eq!(c.hosts_for(bad, false), Err(HostsError::InvalidRegistry(bad.to_string())), "{bad}");
    }
}

#[test]
fn empty_file_gives_the_default_upstream() {
    let d = dirs();
    d.write_hosts("quay.io", "");
    assert_eq!(d.config().hosts_for("quay.io", false).unwrap(), vec![upstream("https://quay.io")]);
}

#[test]
fn error_messages_are_lowercase_without_period() {
    let errors = [
        HostsError::InvalidRegistry("x".into()),
        HostsError::Read { path: "/a".into(), reason: "denied".into() },
        HostsError::Syntax { path: "/a".into(), reason: "line 1".into() },
    ];
    for e in errors {
        let m = e.to_string();
        assert!(m.starts_with(|c: char| !c.is_uppercase()) && !m.ends_with('.'), "{m}");
    }
}
