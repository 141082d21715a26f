//! Re-reading the settings on SIGHUP.
//!
//! The running settings are published on a `tokio::sync::watch` channel.
//! A service that can follow a change live takes a receiver from
//! [`Reloader::subscribe`] (the server hands one out) and awaits
//! `changed()`; the channel always holds the settings in effect, so a key
//! that needs a restart keeps its running value there until one happens.
//!
//! Which keys apply live is decided here, in [`LIVE_KEYS`]: the log filter
//! (applied by the caller of [`Reloader::reload`]) and the paths whose
//! owners re-read their files (`registry-config-dir`, `image-policy-file`).
//! A change to any other key is reported back as needing a restart.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::sync::Arc;

use tokio::sync::watch;

use super::{Config, ConfigError, Loaded};

/// Keys whose new values take effect without a restart.
pub const LIVE_KEYS: &[&str] = &["log-level", "registry-config-dir", "image-policy-file"];

/// What a reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reloaded {
    /// Changed keys now in effect (and published).
    pub applied: Vec<String>,
    /// Changed keys that keep their running value until a restart.
    pub needs_restart: Vec<String>,
}

pub struct Reloader {
    args: Vec<OsString>,
    running: Loaded,
    updates: watch::Sender<Arc<Config>>,
}

impl Reloader {
    /// `args` is the command line the settings were loaded from; a reload
    /// reads it, the environment and the config file again.
    pub fn new(args: Vec<OsString>, loaded: Loaded) -> Self {
        let (updates, _) = watch::channel(Arc::new(loaded.config.clone()));
        Reloader { args, running: loaded, updates }
    }

    /// The settings in effect now and after every reload.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Config>> {
        self.updates.subscribe()
    }

    pub fn config(&self) -> &Config {
        &self.running.config
    }

    /// Loads the settings again and applies the live keys that changed.
    /// On error nothing changes.
    pub fn reload(&mut self) -> Result<Reloaded, ConfigError> {
        let next = Config::load(self.args.clone())?;
        let outcome = self.apply(next);
        if !outcome.applied.is_empty() {
            self.updates.send_replace(Arc::new(self.running.config.clone()));
        }
        Ok(outcome)
    }

    fn apply(&mut self, next: Loaded) -> Reloaded {
        let mut outcome = Reloaded::default();
        for key in changed(&self.running.values, &next.values) {
            if LIVE_KEYS.contains(&key.as_str()) {
                outcome.applied.push(key);
            } else {
                outcome.needs_restart.push(key);
            }
        }
        if outcome.applied.is_empty() {
            return outcome;
        }
        let (running, next_config) = (&mut self.running.config, &next.config);
        running.log_level.clone_from(&next_config.log_level);
        running.registry_config_dir.clone_from(&next_config.registry_config_dir);
        running.image_policy_file.clone_from(&next_config.image_policy_file);
        for key in &outcome.applied {
            if let Some(values) = next.values.get(key) {
                self.running.values.insert(key.clone(), values.clone());
            }
        }
        outcome
    }
}

fn changed(old: &BTreeMap<String, Vec<OsString>>, new: &BTreeMap<String, Vec<OsString>>) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    keys.into_iter().filter(|k| old.get(*k) != new.get(*k)).cloned().collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn load(args: &[&str]) -> Loaded {
        Config::load(args.iter().copied()).unwrap()
    }

    #[test]
    fn live_keys_apply_and_are_published_others_wait_for_restart() {
        let mut reloader = Reloader::new(vec![], load(&["pinshim"]));
        let updates = reloader.subscribe();
        let next = load(&[
            "pinshim",
            "--log-level",
            "debug",
            "--registry-config-dir",
            "/r",
            "--image-policy-file",
            "/p",
            "--root-dir",
            "/elsewhere",
        ]);
        let outcome = reloader.apply(next);
        assert_eq!(outcome.applied, vec!["image-policy-file", "log-level", "registry-config-dir"]);
        assert_eq!(outcome.needs_restart, vec!["root-dir"]);
        let config = reloader.config();
        assert_eq!(config.log_level, "debug");
        assert_eq!(config.registry_config_dir, PathBuf::from("/r"));
        assert_eq!(config.image_policy_file, Some(PathBuf::from("/p")));
        assert_eq!(config.root_dir, PathBuf::from("/var/lib/pinshim"), "running value kept");
        // Still different on the next reload: still reported; live keys
        // dropped from the settings go back to their defaults.
        let again = reloader.apply(load(&["pinshim", "--log-level", "debug", "--root-dir", "/elsewhere"]));
        assert_eq!(again.needs_restart, vec!["root-dir"]);
        assert_eq!(again.applied, vec!["image-policy-file", "registry-config-dir"]);
        assert_eq!(reloader.config().image_policy_file, None);
        assert!(!updates.has_changed().unwrap(), "apply alone publishes nothing");
    }

    #[test]
    fn every_live_key_is_a_flag() {
        let loaded = load(&["pinshim"]);
        for key in LIVE_KEYS {
            assert!(loaded.values.contains_key(*key), "{key}");
        }
    }

    #[test]
    fn reload_publishes_the_running_settings() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pinshim.toml");
        std::fs::write(&file, "log-level = \"info\"\n").unwrap();
        let args: Vec<OsString> = vec!["pinshim".into(), "--config".into(), file.clone().into()];
        let mut reloader = Reloader::new(args.clone(), Config::load(args).unwrap());
        let mut updates = reloader.subscribe();
        assert_eq!(reloader.reload().unwrap(), Reloaded::default());
        assert!(!updates.has_changed().unwrap());

        std::fs::write(&file, "log-level = \"debug\"\nstreaming-bind-addr = \"127.0.0.1:1\"\n").unwrap();
        let outcome = reloader.reload().unwrap();
        assert_eq!(outcome.applied, vec!["log-level"]);
        assert_eq!(outcome.needs_restart, vec!["streaming-bind-addr"]);
        assert!(updates.has_changed().unwrap());
        let published = updates.borrow_and_update().clone();
        assert_eq!(published.log_level, "debug");
        assert_eq!(published.streaming_bind_addr, "127.0.0.1:0");

        std::fs::write(&file, "log-level = 7\n").unwrap();
        assert!(reloader.reload().is_err());
        assert_eq!(reloader.config().log_level, "debug", "a bad file changes nothing");
    }
}
