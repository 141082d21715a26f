//! Network configurations: parsing `.conflist` lists and single-plugin
//! `.conf`/`.json` files (wrapped into a one-plugin list, as libcni does), and
//! picking the first valid file of the config directory in lexical order.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::error::{CniError, ConfigError, SkippedConfig};
use super::version::SpecVersion;

/// File name extensions that hold network configurations.
const EXTENSIONS: [&str; 3] = ["conf", "conflist", "json"];

/// One network: a named chain of plugins run in order on ADD.
#[derive(Debug, Clone)]
pub(crate) struct NetworkConfig {
    pub(crate) name: String,
    /// The version every plugin of the chain is spoken to in.
    pub(crate) version: SpecVersion,
    /// That version exactly as written in the config, passed on to plugins.
    pub(crate) version_text: String,
    pub(crate) disable_check: bool,
    pub(crate) plugins: Vec<PluginConfig>,
    /// The list form as JSON, kept in the result cache for DEL and CHECK.
    pub(crate) bytes: Vec<u8>,
}

/// One plugin of a chain: its binary, the capabilities it asks for, and its
/// configuration object, passed through to it unchanged.
#[derive(Debug, Clone)]
pub(crate) struct PluginConfig {
    pub(crate) plugin_type: String,
    pub(crate) capabilities: BTreeSet<String>,
    pub(crate) raw: Map<String, Value>,
}

/// Whether `text` is a valid network name or container ID per the spec:
/// a letter or digit, then letters, digits, `_`, `.` or `-`.
pub(crate) fn is_valid_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Finds the first valid configuration in `dir` (lexical file name order).
pub(crate) async fn discover(dir: &Path) -> Result<NetworkConfig, CniError> {
    let mut skipped = Vec::new();
    for path in config_files(dir).await? {
        match load_file(&path).await {
            Ok(config) => {
                for skip in &skipped {
                    log_skipped(skip);
                }
                return Ok(config);
            }
            Err(problem) => skipped.push(SkippedConfig { path, problem }),
        }
    }
    Err(CniError::NoNetworkConfig { dir: dir.to_path_buf(), skipped })
}

fn log_skipped(skip: &SkippedConfig) {
    tracing::debug!(path = %skip.path.display(), problem = %skip.problem, "skipped cni config file");
}

/// Config files of `dir`, sorted by name; none when `dir` does not exist.
async fn config_files(dir: &Path) -> Result<Vec<PathBuf>, CniError> {
    let read_err = |source| CniError::ReadConfigDir { dir: dir.to_path_buf(), source };
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(read_err(e)),
    };
    let mut files = Vec::new();
    while let Some(entry) = entries.next_entry().await.map_err(read_err)? {
        let path = entry.path();
        let wanted = path.extension().and_then(|e| e.to_str()).is_some_and(|e| EXTENSIONS.contains(&e));
        if wanted && tokio::fs::metadata(&path).await.is_ok_and(|m| m.is_file()) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

async fn load_file(path: &Path) -> Result<NetworkConfig, ConfigError> {
    let bytes = tokio::fs::read(path).await.map_err(ConfigError::Read)?;
    let is_list = path.extension().is_some_and(|e| e == "conflist");
    if is_list { parse_list(&bytes) } else { parse_single(&bytes) }
}

/// Parses a single-plugin config and wraps it into a one-plugin list. A file
/// that holds a list (a `plugins` key and no `type`) is read as a list.
pub(crate) fn parse_single(bytes: &[u8]) -> Result<NetworkConfig, ConfigError> {
    let object = parse_object(bytes)?;
    if object.contains_key("plugins") && !object.contains_key("type") {
        return parse_list(bytes);
    }
    let mut list = Map::new();
    for key in ["name", "cniVersion"] {
        if let Some(value) = object.get(key) {
            list.insert(key.to_string(), value.clone());
        }
    }
    list.insert("plugins".to_string(), Value::Array(vec![Value::Object(object)]));
    let wrapped = serde_json::to_vec(&list).map_err(ConfigError::Json)?;
    parse_list(&wrapped)
}

/// Parses a network configuration list.
pub(crate) fn parse_list(bytes: &[u8]) -> Result<NetworkConfig, ConfigError> {
    let object = parse_object(bytes)?;
    let name = string_key(&object, "name")?.ok_or(ConfigError::MissingKey("name"))?;
    if !is_valid_identifier(name) {
        return Err(ConfigError::InvalidName(name.to_string()));
    }
    let (version, version_text) = select_version(&object)?;
    let plugins = match object.get("plugins") {
        None => return Err(ConfigError::MissingKey("plugins")),
        Some(Value::Array(items)) if items.is_empty() => return Err(ConfigError::NoPlugins),
        Some(Value::Array(items)) => items.iter().enumerate().map(parse_plugin).collect::<Result<_, _>>()?,
        Some(_) => return Err(wrong_type("plugins", "a list")),
    };
    Ok(NetworkConfig {
        name: name.to_string(),
        version,
        version_text,
        disable_check: bool_key(&object, "disableCheck")?,
        plugins,
        bytes: bytes.to_vec(),
    })
}

fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, ConfigError> {
    match serde_json::from_slice(bytes).map_err(ConfigError::Json)? {
        Value::Object(object) => Ok(object),
        _ => Err(ConfigError::NotAnObject("the configuration")),
    }
}

/// Picks the highest version this runtime implements out of `cniVersion`
/// and `cniVersions`, as the spec asks.
fn select_version(object: &Map<String, Value>) -> Result<(SpecVersion, String), ConfigError> {
    let mut offered: Vec<&str> = string_key(object, "cniVersion")?.into_iter().collect();
    match object.get("cniVersions") {
        None => {}
        Some(Value::Array(items)) => {
            for item in items {
                offered.push(item.as_str().ok_or_else(|| wrong_type("cniVersions", "a list of strings"))?);
            }
        }
        Some(_) => return Err(wrong_type("cniVersions", "a list of strings")),
    }
    let first = *offered.first().ok_or(ConfigError::MissingKey("cniVersion"))?;
    let mut best: Option<(SpecVersion, &str)> = None;
    for text in offered {
        let version = SpecVersion::parse(text).ok_or_else(|| ConfigError::UnsupportedVersion(text.to_string()))?;
        if version <= SpecVersion::NEWEST && best.is_none_or(|(b, _)| version > b) {
            best = Some((version, text));
        }
    }
    best.map(|(v, t)| (v, t.to_string())).ok_or_else(|| ConfigError::UnsupportedVersion(first.to_string()))
}

fn parse_plugin((index, value): (usize, &Value)) -> Result<PluginConfig, ConfigError> {
    let raw = value.as_object().ok_or(ConfigError::NotAnObject("a plugin entry"))?.clone();
    let plugin_type = string_key(&raw, "type")?.ok_or(ConfigError::MissingKey("type"))?.to_string();
    if plugin_type.is_empty() || plugin_type.contains('/') || plugin_type == "." || plugin_type == ".." {
        return Err(ConfigError::InvalidPluginType { index, plugin_type });
    }
    let capabilities = enabled_capabilities(&raw)?;
    Ok(PluginConfig { plugin_type, capabilities, raw })
}

fn enabled_capabilities(raw: &Map<String, Value>) -> Result<BTreeSet<String>, ConfigError> {
    let Some(value) = raw.get("capabilities") else { return Ok(BTreeSet::new()) };
    let map = value.as_object().ok_or_else(|| wrong_type("capabilities", "an object of booleans"))?;
    let mut enabled = BTreeSet::new();
    for (name, on) in map {
        if on.as_bool().ok_or_else(|| wrong_type("capabilities", "an object of booleans"))? {
            enabled.insert(name.clone());
        }
    }
    Ok(enabled)
}

fn string_key<'a>(object: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, ConfigError> {
    match object.get(key) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(wrong_type(key, "a string")),
    }
}

/// A boolean that libcni also accepts as the strings "true" and "false".
fn bool_key(object: &Map<String, Value>, key: &str) -> Result<bool, ConfigError> {
    match object.get(key) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
        Some(_) => Err(wrong_type(key, "a boolean")),
    }
}

fn wrong_type(key: &str, expected: &'static str) -> ConfigError {
    ConfigError::WrongType { key: key.to_string(), expected }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, body: &str) {
        std::fs::write(dir.join(name), body).unwrap();
    }

    const LIST: &str = r#"{"cniVersion":"1.0.0","name":"podnet","plugins":[
        {"type":"bridge","bridge":"cni0","ipam":{"type":"host-local"}},
        {"type":"portmap","capabilities":{"portMappings":true,"bandwidth":false}}]}"#;

    #[test]
    fn parses_a_list_and_keeps_plugin_fields() {
        let net = parse_list(LIST.as_bytes()).unwrap();
        assert_eq!(net.name, "podnet");
        assert_eq!(net.version_text, "1.0.0");
        assert!(!net.disable_check);
        assert_eq!(net.plugins.len(), 2);
        assert_eq!(net.plugins[0].raw["bridge"], "cni0");
        assert_eq!(net.plugins[1].capabilities, BTreeSet::from(["portMappings".to_string()]));
        assert_eq!(net.bytes, LIST.as_bytes());
    }

    #[test]
    fn wraps_a_single_plugin_conf_into_a_list() {
        let conf = r#"{"cniVersion":"0.3.1","name":"single","type":"bridge","ipMasq":true}"#;
        let net = parse_single(conf.as_bytes()).unwrap();
        assert_eq!(net.name, "single");
        assert_eq!(net.version_text, "0.3.1");
        assert_eq!(net.plugins.len(), 1);
        assert_eq!(net.plugins[0].plugin_type, "bridge");
        assert_eq!(net.plugins[0].raw["ipMasq"], true);
        let reparsed = parse_list(&net.bytes).unwrap();
        assert_eq!(reparsed.plugins[0].raw, net.plugins[0].raw);
    }

    #[test]
    fn reads_a_list_found_in_a_conf_file() {
        assert_eq!(parse_single(LIST.as_bytes()).unwrap().plugins.len(), 2);
    }

    #[test]
    fn selects_the_highest_supported_version() {
        let conf =
            r#"{"cniVersion":"0.4.0","cniVersions":["1.0.0","9.0.0","0.3.1"],"name":"n","plugins":[{"type":"x"}]}"#;
        let net = parse_list(conf.as_bytes()).unwrap();
        assert_eq!(net.version_text, "1.0.0");
        assert_eq!(net.version, SpecVersion::parse("1.0.0").unwrap());
    }

    #[test]
    fn accepts_string_booleans_for_disable_check() {
        let conf = r#"{"cniVersion":"1.0.0","name":"n","disableCheck":"True","plugins":[{"type":"x"}]}"#;
        assert!(parse_list(conf.as_bytes()).unwrap().disable_check);
    }

    #[test]
    fn rejects_invalid_lists_with_a_reason() {
        let cases = [
            ("{", "not valid json"),
            ("[]", "is not a json object"),
            (r#"{"cniVersion":"1.0.0","plugins":[{"type":"x"}]}"#, "missing key \"name\""),
            (r#"{"cniVersion":"1.0.0","name":"-bad","plugins":[{"type":"x"}]}"#, "invalid network name"),
            (r#"{"name":"n","plugins":[{"type":"x"}]}"#, "missing key \"cniVersion\""),
            (r#"{"cniVersion":"2.0.0","name":"n","plugins":[{"type":"x"}]}"#, "unsupported cniVersion \"2.0.0\""),
            (r#"{"cniVersion":"1.0.0","name":"n","plugins":[]}"#, "plugins list is empty"),
            (r#"{"cniVersion":"1.0.0","name":"n"}"#, "missing key \"plugins\""),
            (r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"../sh"}]}"#, "invalid type"),
            (r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"bridge":"b"}]}"#, "missing key \"type\""),
            (r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"x","capabilities":{"a":1}}]}"#, "capabilities"),
        ];
        for (conf, reason) in cases {
            let err = parse_list(conf.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(reason), "{conf}: {err}");
        }
    }

    #[test]
    fn identifiers_follow_the_spec() {
        assert!(is_valid_identifier("a1_b.c-d"));
        assert!(is_valid_identifier("0abc"));
        for bad in ["", "_a", "a/b", "a b", "a:b"] {
            assert!(!is_valid_identifier(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn discovery_takes_the_first_valid_file_in_lexical_order() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "05-broken.conflist", "{not json");
        write(dir.path(), "10-b.conf", r#"{"cniVersion":"1.0.0","name":"bnet","type":"bridge"}"#);
        write(dir.path(), "20-a.conflist", LIST);
        write(dir.path(), "00-ignored.txt", LIST);
        std::fs::create_dir(dir.path().join("01-dir.conf")).unwrap();
        let net = discover(dir.path()).await.unwrap();
        assert_eq!(net.name, "bnet");
    }

    #[tokio::test]
    async fn discovery_reports_every_skipped_file() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "10-a.conflist", "{not json");
        write(dir.path(), "20-b.json", r#"{"cniVersion":"1.0.0","name":"n","plugins":[]}"#);
        let err = discover(dir.path()).await.unwrap_err();
        let CniError::NoNetworkConfig { skipped, .. } = &err else { panic!("{err}") };
        assert_eq!(skipped.len(), 2);
        let text = err.to_string();
        assert!(text.contains("10-a.conflist: not valid json"), "{text}");
        assert!(text.contains("20-b.json: the plugins list is empty"), "{text}");
    }

    #[tokio::test]
    async fn discovery_of_a_missing_dir_finds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let err = discover(&dir.path().join("absent")).await.unwrap_err();
        assert!(matches!(err, CniError::NoNetworkConfig { ref skipped, .. } if skipped.is_empty()), "{err}");
    }
}
