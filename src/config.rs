//! Settings: command-line flags, `PINSHIM_*` variables and an optional TOML
//! file, in that order of precedence. Flag names follow cri-dockerd's where
//! the meaning is the same, so a node can switch shims by changing one binary.

mod file;
mod reload;

pub use file::{ConfigError, Loaded};
pub use reload::{LIVE_KEYS, Reloaded, Reloader};

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, Parser, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NetworkPlugin {
    /// Docker's own bridge network.
    Docker,
    /// CNI plugins from `--cni-bin-dir`, configured in `--cni-conf-dir`.
    Cni,
}

/// pinshim: a CRI v1 runtime for Docker Engine that pins every image by digest.
#[derive(Debug, Clone, Parser)]
#[command(name = "pinshim", version = crate::build_info::LONG_VERSION, about)]
pub struct Config {
    /// A TOML file setting any of these flags, keyed by flag name
    /// (`cni-bin-dir = ["/opt/cni/bin"]`). Flags and PINSHIM_* variables
    /// override it; SIGHUP re-reads it. No file is read unless named.
    #[arg(long, env = "PINSHIM_CONFIG")]
    pub config: Option<PathBuf>,

    /// Where pinshim serves CRI: unix:///path/to/socket, or fd:// (also
    /// fd://<name> or fd://<number>) for a socket systemd passes in.
    #[arg(long, env = "PINSHIM_CONTAINER_RUNTIME_ENDPOINT", default_value = "unix:///run/pinshim/pinshim.sock")]
    pub container_runtime_endpoint: String,

    /// Docker Engine API endpoint (unix:// or tcp://).
    #[arg(long, env = "PINSHIM_DOCKER_ENDPOINT", default_value = "unix:///var/run/docker.sock")]
    pub docker_endpoint: String,

    /// Directory for pinshim's own state.
    #[arg(long, env = "PINSHIM_ROOT_DIR", default_value = "/var/lib/pinshim")]
    pub root_dir: PathBuf,

    /// Registry reached over plain HTTP for tag resolution (repeatable).
    /// Loopback registries always are. Docker's own list applies to its pulls.
    #[arg(long = "insecure-registry", env = "PINSHIM_INSECURE_REGISTRIES", value_delimiter = ',')]
    pub insecure_registries: Vec<String>,

    /// Per-registry hosts configuration in containerd's layout:
    /// `<dir>/<host[:port]>/hosts.toml` (mirrors, CAs, client certificates).
    #[arg(long, env = "PINSHIM_REGISTRY_CONFIG_DIR", default_value = "/etc/pinshim/certs.d")]
    pub registry_config_dir: PathBuf,

    /// Image provenance policy (TOML): allowed registries, denied digests.
    /// Re-read when it changes. Unset: every image is allowed.
    #[arg(long, env = "PINSHIM_IMAGE_POLICY_FILE")]
    pub image_policy_file: Option<PathBuf>,

    /// Cancel a pull that makes no progress for this long (e.g. 1m, 30s).
    #[arg(long, env = "PINSHIM_IMAGE_PULL_PROGRESS_DEADLINE", default_value = "1m", value_parser = parse_duration)]
    pub image_pull_progress_deadline: Duration,

    /// The image of each pod's infra (pause) container.
    #[arg(long, env = "PINSHIM_POD_INFRA_CONTAINER_IMAGE", default_value = "registry.k8s.io/pause:3.10")]
    pub pod_infra_container_image: String,

    /// How pods are networked.
    #[arg(long, env = "PINSHIM_NETWORK_PLUGIN", value_enum, default_value = "cni")]
    pub network_plugin: NetworkPlugin,

    /// Where CNI network configurations are read from.
    #[arg(long, env = "PINSHIM_CNI_CONF_DIR", default_value = "/etc/cni/net.d")]
    pub cni_conf_dir: PathBuf,

    /// Where CNI plugin binaries are found (comma-separated, searched in
    /// order); Debian's containernetworking-plugins install to /usr/lib/cni.
    #[arg(long, env = "PINSHIM_CNI_BIN_DIR", default_value = "/opt/cni/bin,/usr/lib/cni", value_delimiter = ',')]
    pub cni_bin_dir: Vec<PathBuf>,

    /// Where CNI results are cached so that DEL undoes exactly what ADD did.
    #[arg(long, env = "PINSHIM_CNI_CACHE_DIR", default_value = "/var/lib/cni/cache")]
    pub cni_cache_dir: PathBuf,

    /// containerd's root directory, where Docker's containerd image store
    /// keeps image content and snapshots (for ImageFsInfo). A dockerd that
    /// runs its own containerd keeps them under its data root instead,
    /// which is found without this.
    #[arg(long, env = "PINSHIM_CONTAINERD_ROOT", default_value = "/var/lib/containerd")]
    pub containerd_root: PathBuf,

    /// MTU for CNI plugins that take one, when their config sets none.
    #[arg(long, env = "PINSHIM_NETWORK_PLUGIN_MTU")]
    pub network_plugin_mtu: Option<u32>,

    /// Address of the streaming server for exec, attach and port-forward
    /// (port 0: any free port). Loopback unless you mean otherwise.
    #[arg(long, env = "PINSHIM_STREAMING_BIND_ADDR", default_value = "127.0.0.1:0")]
    pub streaming_bind_addr: String,

    /// Log format.
    #[arg(long, env = "PINSHIM_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Log filter: a level (info, debug) or tracing directives.
    #[arg(long, env = "PINSHIM_LOG_LEVEL", default_value = "info", value_parser = parse_log_filter)]
    pub log_level: String,

    /// Address (IP:port) to serve Prometheus metrics on, at /metrics; off
    /// when unset. Anyone who reaches it reads them: loopback is the safe choice.
    #[arg(long, env = "PINSHIM_METRICS_BIND_ADDR")]
    pub metrics_bind_addr: Option<SocketAddr>,
}

impl Config {
    /// The effective settings for this command line (program name first):
    /// flags, then `PINSHIM_*` variables, then the `--config` file, then defaults.
    pub fn load<I, T>(args: I) -> Result<Loaded, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        file::load(Config::command(), &args)
    }
}

/// Accepts what `EnvFilter` accepts, so a bad filter is refused where it is
/// written (flag, variable or file line) instead of at logging setup.
fn parse_log_filter(s: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(s).map(|_| s.to_string()).map_err(|e| e.to_string())
}

/// Parses `90s`, `1m`, `1m30s`, `2h`, `500ms`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?}: expected e.g. 30s, 1m, 1m30s");
    let mut total = Duration::ZERO;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let value: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(value),
            "s" => Duration::from_secs(value),
            "m" => Duration::from_secs(value * 60),
            "h" => Duration::from_secs(value * 3600),
            _ => return Err(bad()),
        };
        total += unit;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("5x").is_err());
    }

    #[test]
    fn defaults_match_cri_dockerd_style_names() {
        let c = Config::parse_from(["pinshim"]);
        assert_eq!(c.container_runtime_endpoint, "unix:///run/pinshim/pinshim.sock");
        assert_eq!(c.image_pull_progress_deadline, Duration::from_secs(60));
        let c = Config::parse_from(["pinshim", "--insecure-registry", "a:5000", "--insecure-registry", "b"]);
        assert_eq!(c.insecure_registries, vec!["a:5000", "b"]);
    }
}
