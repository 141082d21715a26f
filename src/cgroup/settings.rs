//! Settings written straight into a process's cgroup, for what Docker's API
//! cannot carry: the CRI's `unified` map of cgroup v2 files.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::CgroupLocation;

/// A `unified` key names one file in the cgroup's own directory.
pub fn check_key(key: &str) -> Result<(), String> {
    let plain = !key.is_empty() && !key.starts_with('.') && !key.contains(['/', '\0']) && key.contains('.');
    match plain {
        true => Ok(()),
        false => Err(format!("resources.unified key {key:?} is not a cgroup file name like memory.high")),
    }
}

impl CgroupLocation {
    /// Writes each `unified` entry into the process's directory of the
    /// unified hierarchy. A key whose file is not there (no v2 mount, or a
    /// controller this host keeps in v1) is refused before anything is
    /// written, naming the key.
    pub fn write_unified(&self, unified: &BTreeMap<String, String>) -> Result<(), String> {
        for (file, key, value) in self.unified_files(unified)? {
            std::fs::write(&file, value).map_err(|e| format!("resources.unified.{key} = {value:?}: {e}"))?;
        }
        Ok(())
    }

    fn unified_files<'a>(
        &self,
        unified: &'a BTreeMap<String, String>,
    ) -> Result<Vec<(PathBuf, &'a String, &'a String)>, String> {
        if unified.is_empty() {
            return Ok(Vec::new());
        }
        let Some(dir) = &self.unified else {
            return Err("resources.unified needs the cgroup v2 hierarchy, which this host does not mount".to_string());
        };
        unified
            .iter()
            .map(|(key, value)| {
                check_key(key)?;
                let file = dir.join(key);
                match file.is_file() {
                    true => Ok((file, key, value)),
                    false => Err(format!(
                        "resources.unified.{key}: the container's cgroup v2 directory {} has no such file \
                         (on a host with cgroup v1 controllers only their own files exist there)",
                        dir.display()
                    )),
                }
            })
            .collect()
    }

    /// Current contents of the `unified` files named by `keys`; a key whose
    /// file cannot be read is left out.
    pub fn read_unified<'a>(&self, keys: impl Iterator<Item = &'a String>) -> BTreeMap<String, String> {
        let Some(dir) = &self.unified else { return BTreeMap::new() };
        keys.filter(|k| check_key(k).is_ok())
            .filter_map(|k| Some((k.clone(), std::fs::read_to_string(dir.join(k)).ok()?.trim_end().to_string())))
            .collect()
    }

    /// The processes in the cgroup (its `cgroup.procs`), read from the first
    /// hierarchy that has the process.
    pub fn processes(&self) -> std::io::Result<Vec<i64>> {
        let dir = ["pids", "memory", "cpuacct"]
            .iter()
            .find_map(|c| self.controllers.get(*c))
            .or(self.unified.as_ref())
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no cgroup directory for the process"))?;
        let text = std::fs::read_to_string(dir.join("cgroup.procs"))?;
        Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(unified: Option<PathBuf>) -> CgroupLocation {
        CgroupLocation { version: super::super::CgroupVersion::V2, controllers: BTreeMap::new(), unified }
    }

    #[test]
    fn keys_are_plain_file_names() {
        for good in ["memory.high", "memory.oom.group", "cpu.max"] {
            assert!(check_key(good).is_ok(), "{good}");
        }
        for bad in ["", "../memory.max", "a/b.c", ".hidden", "nodot"] {
            assert!(check_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn existing_files_are_written_and_missing_ones_refuse_the_whole_map() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("memory.high"), "max\n").unwrap();
        std::fs::write(dir.path().join("cpu.weight"), "100\n").unwrap();
        let location = at(Some(dir.path().to_path_buf()));
        let settings = BTreeMap::from([("memory.high".to_string(), "1048576".to_string())]);
        location.write_unified(&settings).unwrap();
        assert_eq!(location.read_unified(settings.keys())["memory.high"], "1048576");

        let mut with_missing = BTreeMap::from([("cpu.weight".to_string(), "50".to_string())]);
        with_missing.insert("memory.oom.group".to_string(), "1".to_string());
        let err = location.write_unified(&with_missing).unwrap_err();
        assert!(err.contains("resources.unified.memory.oom.group"), "{err}");
        assert_eq!(std::fs::read_to_string(dir.path().join("cpu.weight")).unwrap(), "100\n", "nothing written");

        let err = at(None).write_unified(&settings).unwrap_err();
        assert!(err.contains("cgroup v2"), "{err}");
        assert!(at(None).write_unified(&BTreeMap::new()).is_ok());
    }

    #[test]
    fn processes_come_from_cgroup_procs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cgroup.procs"), "12\n34\n").unwrap();
        assert_eq!(at(Some(dir.path().to_path_buf())).processes().unwrap(), vec![12, 34]);
    }
}
