//! The `--config` file: TOML whose keys are the long flag names with dashes
//! (`cni-bin-dir = ["/opt/cni/bin"]`). It only fills in flags that neither
//! the command line nor a `PINSHIM_*` variable set.
//!
//! The file is read against clap's own description of the flags, so every
//! flag is a key without listing it twice, and each value goes through the
//! same parser as on the command line.

use std::any::TypeId;
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use clap::builder::ValueParser;
use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command, FromArgMatches};
use toml::de::{DeTable, DeValue};

use super::Config;

/// The flag that names the file; the file cannot set it.
const CONFIG_KEY: &str = "config";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Bad command line, or `--help`/`--version`: `clap::Error::exit` prints
    /// it the way clap always does.
    #[error(transparent)]
    Args(#[from] clap::Error),
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("config file {path}, line {line}: unknown key {key:?}{hint}")]
    UnknownKey { path: PathBuf, line: usize, key: String, hint: String },
    #[error("config file {path}, line {line}: {key}: {message}")]
    Value { path: PathBuf, line: usize, key: String, message: String },
}

/// Settings as loaded, with each flag's raw values so a reload can tell
/// which keys changed.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub(super) values: BTreeMap<String, Vec<OsString>>,
}

/// Parses `args`, and when they name a config file, parses them again with
/// the file's settings appended for the flags they left at their defaults.
pub(super) fn load(mut cmd: Command, args: &[OsString]) -> Result<Loaded, ConfigError> {
    cmd.build();
    let matches = cmd.try_get_matches_from_mut(args)?;
    let Some(path) = matches.get_one::<PathBuf>(CONFIG_KEY).cloned() else {
        return finish(&cmd, &matches);
    };
    let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
    let extra = File { cmd: &cmd, path: &path, text: &text }.args(&matches)?;
    let matches = cmd.try_get_matches_from_mut(args.iter().cloned().chain(extra))?;
    finish(&cmd, &matches)
}

fn finish(cmd: &Command, matches: &ArgMatches) -> Result<Loaded, ConfigError> {
    let values = settable(cmd)
        .filter_map(|arg| {
            let raw = matches.try_get_raw(arg.get_id().as_str()).ok()?;
            Some((arg.get_long()?.to_string(), raw.map(|r| r.map(OsStr::to_os_string).collect()).unwrap_or_default()))
        })
        .collect();
    Ok(Loaded { config: Config::from_arg_matches(matches)?, values })
}

/// The flags a file may set: those that take values, and switches.
fn settable(cmd: &Command) -> impl Iterator<Item = &Arg> {
    cmd.get_arguments().filter(|a| {
        a.get_long().is_some_and(|l| l != CONFIG_KEY)
            && matches!(a.get_action(), ArgAction::Set | ArgAction::Append | ArgAction::SetTrue)
    })
}

struct File<'a> {
    cmd: &'a Command,
    path: &'a Path,
    text: &'a str,
}

impl File<'_> {
    /// The file's settings as `--flag=value` arguments, skipping flags the
    /// command line or the environment already set.
    fn args(&self, matches: &ArgMatches) -> Result<Vec<OsString>, ConfigError> {
        let table = DeTable::parse(self.text)
            .map_err(|e| ConfigError::Syntax { path: self.path.to_path_buf(), message: e.to_string() })?;
        let mut args = Vec::new();
        for (key, value) in table.get_ref().iter() {
            let name: &str = key.get_ref();
            let Some(arg) = settable(self.cmd).find(|a| a.get_long() == Some(name)) else {
                return Err(self.unknown(name, key.span().start));
            };
            let given = matches.value_source(arg.get_id().as_str());
            if matches!(given, Some(ValueSource::CommandLine | ValueSource::EnvVariable)) {
                continue;
            }
            let line = self.line(value.span().start);
            let invalid = |message: String| ConfigError::Value {
                path: self.path.to_path_buf(),
                line,
                key: name.to_string(),
                message,
            };
            if matches!(arg.get_action(), ArgAction::SetTrue) {
                match value.get_ref() {
                    DeValue::Boolean(true) => args.push(OsString::from(format!("--{name}"))),
                    DeValue::Boolean(false) => {}
                    other => return Err(invalid(format!("expected true or false, found {}", other.type_str()))),
                }
                continue;
            }
            for text in self.texts(arg, value.get_ref()).map_err(invalid)? {
                let arg_text = OsString::from(format!("--{name}={text}"));
                check(arg, &arg_text).map_err(invalid)?;
                args.push(arg_text);
            }
        }
        Ok(args)
    }

    /// A value as the text(s) the flag would take: a list only for a
    /// repeatable flag, an integer only for a numeric one, else a string.
    fn texts(&self, arg: &Arg, value: &DeValue) -> Result<Vec<String>, String> {
        let numeric = is_numeric(arg.get_value_parser());
        match value {
            DeValue::Array(items) if matches!(arg.get_action(), ArgAction::Append) => {
                if items.is_empty() {
                    return Err("expected at least one value; leave the key out for the default".to_string());
                }
                items.iter().map(|item| scalar(item.get_ref(), numeric)).collect()
            }
            DeValue::Array(_) => Err("expected a single value, found an array".to_string()),
            other => Ok(vec![scalar(other, numeric)?]),
        }
    }

    fn unknown(&self, key: &str, at: usize) -> ConfigError {
        let dashed = key.replace('_', "-");
        let hint = if key == CONFIG_KEY {
            ": a config file cannot name another".to_string()
        } else if dashed != key && settable(self.cmd).any(|a| a.get_long() == Some(dashed.as_str())) {
            format!(" (keys are flag names: {dashed})")
        } else {
            String::new()
        };
        ConfigError::UnknownKey { path: self.path.to_path_buf(), line: self.line(at), key: key.to_string(), hint }
    }

    /// The 1-based line of a byte offset.
    fn line(&self, at: usize) -> usize {
        self.text.get(..at).unwrap_or(self.text).matches('\n').count() + 1
    }
}

fn scalar(value: &DeValue, numeric: bool) -> Result<String, String> {
    match (value, numeric) {
        (DeValue::Integer(i), true) => {
            i128::from_str_radix(i.as_str(), i.radix()).map(|n| n.to_string()).map_err(|e| format!("bad integer: {e}"))
        }
        (DeValue::String(s), false) => Ok(s.to_string()),
        (other, true) => Err(format!("expected an integer, found {}", other.type_str())),
        (other, false) => Err(format!("expected a string, found {}", other.type_str())),
    }
}

/// Whether the flag's parser yields an integer, so the file must hold one.
fn is_numeric(parser: &ValueParser) -> bool {
    let id = parser.type_id();
    [
        TypeId::of::<u8>(),
        TypeId::of::<u16>(),
        TypeId::of::<u32>(),
        TypeId::of::<u64>(),
        TypeId::of::<usize>(),
        TypeId::of::<i8>(),
        TypeId::of::<i16>(),
        TypeId::of::<i32>(),
        TypeId::of::<i64>(),
        TypeId::of::<isize>(),
    ]
    .into_iter()
    .any(|t| id == t)
}

/// Runs the flag's own parser on one `--flag=value`, alone, so a bad value
/// is reported against its line rather than the whole command.
fn check(arg: &Arg, arg_text: &OsStr) -> Result<(), String> {
    Command::new("pinshim")
        .no_binary_name(true)
        .disable_help_flag(true)
        .disable_version_flag(true)
        .arg(arg.clone())
        .try_get_matches_from([arg_text])
        .map(drop)
        .map_err(|e| brief(&e))
}

/// clap's message on one line, without its "error:" and usage hints.
fn brief(err: &clap::Error) -> String {
    let text = err.to_string();
    let lines: Vec<&str> = text.lines().map(str::trim).take_while(|l| !l.is_empty()).collect();
    lines.join(" ").trim_start_matches("error: ").to_string()
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use clap::CommandFactory;

    use super::*;
    use crate::config::NetworkPlugin;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    fn load_args(cmd: Command, args: &[&str]) -> Result<Config, ConfigError> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        load(cmd, &args).map(|l| l.config)
    }

    fn with_file(text: &str, extra: &[&str]) -> Result<Config, ConfigError> {
        let f = file(text);
        let path = f.path().to_str().unwrap().to_string();
        let mut args = vec!["pinshim", "--config", &path];
        args.extend(extra);
        load_args(Config::command(), &args)
    }

    #[test]
    fn file_sets_every_kind_of_flag() {
        let c = with_file(
            r#"
container-runtime-endpoint = "unix:///tmp/x.sock"
cni-bin-dir = ["/a", "/b"]
insecure-registry = "r:5000"
network-plugin = "docker"
network-plugin-mtu = 1_400
image-pull-progress-deadline = "30s"
metrics-bind-addr = "127.0.0.1:9100"
image-policy-file = "/etc/pinshim/policy.json"
"#,
            &[],
        )
        .unwrap();
        assert_eq!(c.container_runtime_endpoint, "unix:///tmp/x.sock");
        assert_eq!(c.cni_bin_dir, vec![PathBuf::from("/a"), PathBuf::from("/b")]);
        assert_eq!(c.insecure_registries, vec!["r:5000"]);
        assert_eq!(c.network_plugin, NetworkPlugin::Docker);
        assert_eq!(c.network_plugin_mtu, Some(1400));
        assert_eq!(c.image_pull_progress_deadline, std::time::Duration::from_secs(30));
        assert_eq!(c.metrics_bind_addr, Some("127.0.0.1:9100".parse().unwrap()));
        assert_eq!(c.image_policy_file, Some(PathBuf::from("/etc/pinshim/policy.json")));
        assert_eq!(c.registry_config_dir, PathBuf::from("/etc/pinshim/certs.d"), "default kept");
    }

    #[test]
    fn command_line_beats_file() {
        let c = with_file("log-level = \"debug\"\ncni-bin-dir = [\"/file\"]\n", &["--log-level", "warn"]).unwrap();
        assert_eq!(c.log_level, "warn");
        assert_eq!(c.cni_bin_dir, vec![PathBuf::from("/file")]);
    }

    #[test]
    fn environment_beats_file() {
        // Setting a variable is unsafe in a threaded test binary, so point a
        // flag at one that is always set instead.
        let Some(path_var) = std::env::var_os("PATH") else { return };
        let cmd = Config::command().mut_arg("root_dir", |a| a.env("PATH"));
        let f = file("root-dir = \"/from/file\"\n");
        let c = load_args(cmd, &["pinshim", "--config", f.path().to_str().unwrap()]).unwrap();
        assert_eq!(c.root_dir, PathBuf::from(path_var));
    }

    #[test]
    fn unknown_keys_name_key_and_line() {
        let err = with_file("log-level = \"info\"\n\nbogus = 1\n", &[]).unwrap_err();
        assert!(matches!(&err, ConfigError::UnknownKey { line: 3, key, .. } if key == "bogus"), "{err}");
        let err = with_file("cni_bin_dir = [\"/x\"]\n", &[]).unwrap_err();
        assert!(err.to_string().contains("line 1: unknown key \"cni_bin_dir\" (keys are flag names: cni-bin-dir)"));
        let err = with_file("[metrics]\nbind = \"x\"\n", &[]).unwrap_err();
        assert!(matches!(err, ConfigError::UnknownKey { line: 1, .. }));
        let err = with_file("config = \"/other.toml\"\n", &[]).unwrap_err();
        assert!(err.to_string().contains("cannot name another"), "{err}");
    }

    #[test]
    fn wrongly_typed_values_name_key_and_line() {
        let cases = [
            ("\nnetwork-plugin-mtu = \"1500\"\n", 2, "expected an integer, found string"),
            ("log-level = 3\n", 1, "expected a string, found integer"),
            ("\n\nroot-dir = [\"/a\"]\n", 3, "expected a single value"),
            ("network-plugin = \"weave\"\n", 1, "invalid value 'weave'"),
            ("image-pull-progress-deadline = \"soon\"\n", 1, "invalid duration"),
            ("metrics-bind-addr = \"localhost\"\n", 1, "invalid value"),
            ("log-level = \"info,[\"\n", 1, "invalid value"),
            ("cni-bin-dir = []\n", 1, "at least one value"),
        ];
        for (text, line, message) in cases {
            let err = with_file(text, &[]).unwrap_err();
            assert!(matches!(&err, ConfigError::Value { line: l, .. } if *l == line), "{text}: {err}");
            assert!(err.to_string().contains(message), "{text}: {err}");
        }
    }

    #[test]
    fn syntax_errors_and_missing_files_are_reported() {
        let err = with_file("log-level = \n", &[]).unwrap_err();
        assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
        let err = load_args(Config::command(), &["pinshim", "--config", "/nonexistent/pinshim.toml"]).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err}");
    }

    #[test]
    fn no_file_is_read_unless_named() {
        let loaded = load(Config::command(), &[OsString::from("pinshim")]).unwrap();
        assert_eq!(loaded.config.config, None);
        assert_eq!(loaded.values["log-level"], vec![OsString::from("info")]);
    }
}
