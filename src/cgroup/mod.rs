//! Where a process's cgroups are and what they account: usage read straight from the kernel's cgroup files, as cAdvisor and kubelet define it.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

pub mod pressure;
mod settings;

pub use settings::check_key as check_unified_key;

use pressure::CgroupPressure;

/// Above this a memory limit counts as unlimited: kubelet's `isMemoryUnlimited` threshold. It sits below
/// `i64::MAX` because the kernel reports the v1 "no limit" value rounded down to a page (9223372036854771712).
const UNLIMITED_MEMORY: u64 = 1 << 62;

/// Which cgroup hierarchy accounts a process's cpu and memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// Per-controller hierarchies; also hybrid hosts, where the v1 controllers win over the unified mount.
    V1,
    /// The unified hierarchy only.
    V2,
}

/// Where a process's cgroups live, read from /proc/<pid>/cgroup (works for the cgroupfs and the systemd driver
/// alike, since the kernel reports the real path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupLocation {
    /// `V1` when a v1 `memory`, `cpuacct` or `pids` controller is mounted, else `V2`.
    pub version: CgroupVersion,
    /// v1 controller name (`memory`, `cpuacct`, `name=systemd`, …) to the process's absolute directory in it.
    pub controllers: BTreeMap<String, PathBuf>,
    /// The process's directory in the unified (v2) hierarchy, when one is mounted.
    pub unified: Option<PathBuf>,
}

/// One container's or pod's usage at a moment, with the meaning cAdvisor gives each field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CgroupStats {
    /// Cumulative cpu time in nanoseconds: v1 `cpuacct.usage`, v2 `cpu.stat` `usage_usec` × 1000.
    pub cpu_usage_ns: Option<u64>,
    /// v1 `memory.usage_in_bytes`, v2 `memory.current`.
    pub memory_usage: Option<u64>,
    /// Usage minus inactive file pages, floored at 0 (cAdvisor's working set; kubelet evicts on it).
    pub working_set: Option<u64>,
    /// v1 `total_rss`, v2 `anon`.
    pub rss: Option<u64>,
    /// v1 `total_pgfault`, v2 `pgfault`.
    pub page_faults: Option<u64>,
    /// v1 `total_pgmajfault`, v2 `pgmajfault`.
    pub major_page_faults: Option<u64>,
    /// The memory limit; `None` when unlimited (v2 `max`, or a v1 value above 2^62).
    pub memory_limit: Option<u64>,
    /// Limit minus working set when limited, as kubelet computes `AvailableBytes` (floored at 0 here).
    pub available_bytes: Option<u64>,
    /// Number of tasks: `pids.current` in either hierarchy.
    pub pids: Option<u64>,
    /// Swap in use: v1 `memory.memsw.usage_in_bytes` minus memory usage (where
    /// swap accounting is on), v2 `memory.swap.current`.
    pub swap_usage: Option<u64>,
    /// The swap limit, `None` when unlimited: v1 the memsw limit minus the
    /// memory limit, v2 `memory.swap.max`.
    pub swap_limit: Option<u64>,
    /// Stall figures, where the process has a unified-hierarchy directory.
    pub pressure: CgroupPressure,
}

/// The `memory.stat` counters cAdvisor reports, under the key names of the hierarchy they came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStat {
    /// v1 `total_inactive_file`, v2 `inactive_file`.
    pub inactive_file: Option<u64>,
    /// v1 `total_rss`, v2 `anon`.
    pub rss: Option<u64>,
    /// v1 `total_pgfault`, v2 `pgfault`.
    pub page_faults: Option<u64>,
    /// v1 `total_pgmajfault`, v2 `pgmajfault`.
    pub major_page_faults: Option<u64>,
}

/// A cgroup or cgroup2 line of mountinfo.
#[derive(Debug)]
struct CgroupMount {
    root: String,
    mount_point: String,
    v2: bool,
    super_options: String,
}

impl CgroupLocation {
    /// Locates the cgroups of process `pid` as seen from this process's mount and cgroup namespaces.
    pub fn of_pid(pid: i64) -> io::Result<Self> {
        let proc_cgroup = read_named(Path::new(&format!("/proc/{pid}/cgroup")))?;
        Self::from_mounts(&proc_cgroup, &own_cgroup_mounts()?, Path::new("/"))
    }

    /// Resolves /proc/<pid>/cgroup text against mountinfo text; mount points are taken below `root_prefix`.
    pub fn from_parts(proc_cgroup: &str, mountinfo: &str, root_prefix: &Path) -> io::Result<Self> {
        Self::from_mounts(proc_cgroup, &parse_cgroup_mounts(mountinfo), root_prefix)
    }

    fn from_mounts(proc_cgroup: &str, mounts: &[CgroupMount], root_prefix: &Path) -> io::Result<Self> {
        let mut controllers = BTreeMap::new();
        let mut unified = None;
        for (names, path) in proc_cgroup.lines().filter_map(parse_cgroup_line) {
            if names.is_empty() {
                unified = find_mount(mounts, path, |m| m.v2).map(|m| m.dir_for(path, root_prefix));
                continue;
            }
            for name in names.split(',') {
                if let Some(mount) = find_mount(mounts, path, |m| !m.v2 && m.has_option(name)) {
                    controllers.insert(name.to_string(), mount.dir_for(path, root_prefix));
                }
            }
        }
        let version = if ["memory", "cpuacct", "pids"].iter().any(|c| controllers.contains_key(*c)) {
            CgroupVersion::V1
        } else if unified.is_some() {
            CgroupVersion::V2
        } else {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no mounted cgroup hierarchy found for the process"));
        };
        Ok(Self { version, controllers, unified })
    }

    /// Reads the current usage with its stall figures; a file missing for one
    /// controller leaves its fields `None`. Fails with `NotFound` when the
    /// cgroup itself is gone (the process has exited).
    pub fn read(&self) -> io::Result<CgroupStats> {
        let mut stats = self.read_usage()?;
        if let Some(dir) = &self.unified {
            stats.pressure = pressure::read(dir);
        }
        Ok(stats)
    }

    /// [`Self::read`] without the stall figures, for a cgroup whose stalls
    /// are not wanted.
    pub fn read_usage(&self) -> io::Result<CgroupStats> {
        let dirs = self.own_dirs();
        if !dirs.iter().any(|d| d.is_dir()) {
            let shown = dirs.first().map(|p| p.display().to_string()).unwrap_or_default();
            return Err(io::Error::new(io::ErrorKind::NotFound, format!("cgroup directory {shown} not found")));
        }
        let mut stats = CgroupStats { cpu_usage_ns: self.read_cpu()?, ..CgroupStats::default() };
        if let Some((version, dir)) = self.pick("memory") {
            read_memory(dir, version, &mut stats)?;
        }
        if let Some((_, dir)) = self.pick("pids") {
            stats.pids = read_u64(&dir.join("pids.current"))?;
        }
        Ok(stats)
    }

    /// The directories `read` looks in; none of them existing means the cgroup is gone.
    fn own_dirs(&self) -> Vec<&Path> {
        let v1 = ["memory", "cpuacct", "pids"].into_iter().filter_map(|c| self.controllers.get(c));
        v1.chain(&self.unified).map(PathBuf::as_path).collect()
    }

    /// The directory to read `controller` from: its v1 hierarchy when mounted, else the unified one.
    fn pick(&self, controller: &str) -> Option<(CgroupVersion, &Path)> {
        match self.controllers.get(controller) {
            Some(dir) => Some((CgroupVersion::V1, dir)),
            None => self.unified.as_deref().map(|dir| (CgroupVersion::V2, dir)),
        }
    }

    fn read_cpu(&self) -> io::Result<Option<u64>> {
        match self.pick("cpuacct") {
            Some((CgroupVersion::V1, dir)) => read_u64(&dir.join("cpuacct.usage")),
            Some((CgroupVersion::V2, dir)) => Ok(read_file(&dir.join("cpu.stat"))?.and_then(|t| cpu_stat_usage_ns(&t))),
            None => Ok(None),
        }
    }
}

impl CgroupMount {
    fn has_option(&self, name: &str) -> bool {
        self.super_options.split(',').any(|o| o == name)
    }

    /// The mount's directory for cgroup `path`, which the kernel gives relative to the hierarchy root.
    fn dir_for(&self, path: &str, root_prefix: &Path) -> PathBuf {
        let rel = strip_dir_prefix(path, &self.root).unwrap_or(path);
        let mut dir = root_prefix.join(self.mount_point.trim_start_matches('/'));
        dir.extend(Path::new(rel).components().filter(|c| matches!(c, Component::Normal(_) | Component::ParentDir)));
        dir
    }
}

fn read_memory(dir: &Path, version: CgroupVersion, stats: &mut CgroupStats) -> io::Result<()> {
    let (usage_file, limit_file) = match version {
        CgroupVersion::V1 => ("memory.usage_in_bytes", "memory.limit_in_bytes"),
        CgroupVersion::V2 => ("memory.current", "memory.max"),
    };
    let usage = read_u64(&dir.join(usage_file))?;
    let limit = read_file(&dir.join(limit_file))?.and_then(|t| parse_limit(&t));
    let stat = read_file(&dir.join("memory.stat"))?.map(|t| parse_memory_stat(&t, version)).unwrap_or_default();
    stats.memory_usage = usage;
    stats.working_set = usage.map(|u| working_set(u, stat.inactive_file));
    stats.rss = stat.rss;
    stats.page_faults = stat.page_faults;
    stats.major_page_faults = stat.major_page_faults;
    stats.memory_limit = limit;
    stats.available_bytes = limit.zip(stats.working_set).map(|(l, ws)| l.saturating_sub(ws));
    match version {
        CgroupVersion::V1 => {
            let with_swap = read_u64(&dir.join("memory.memsw.usage_in_bytes"))?;
            stats.swap_usage = with_swap.zip(usage).map(|(both, memory)| both.saturating_sub(memory));
            let both_limit = read_file(&dir.join("memory.memsw.limit_in_bytes"))?.and_then(|t| parse_limit(&t));
            stats.swap_limit = both_limit.zip(limit).map(|(both, memory)| both.saturating_sub(memory));
        }
        CgroupVersion::V2 => {
            stats.swap_usage = read_u64(&dir.join("memory.swap.current"))?;
            stats.swap_limit = read_file(&dir.join("memory.swap.max"))?.and_then(|t| parse_limit(&t));
        }
    }
    Ok(())
}

/// cAdvisor's working set: usage minus inactive file pages, 0 when those exceed usage, usage when unknown.
pub fn working_set(usage: u64, inactive_file: Option<u64>) -> u64 {
    usage.saturating_sub(inactive_file.unwrap_or(0))
}

/// Parses a memory limit file (v1 `memory.limit_in_bytes`, v2 `memory.max`); `None` for `max`, huge or odd values.
pub fn parse_limit(text: &str) -> Option<u64> {
    text.trim().parse::<u64>().ok().filter(|v| *v <= UNLIMITED_MEMORY)
}

/// Picks cAdvisor's counters out of `memory.stat` text, using v1's hierarchical `total_*` keys or v2's names.
pub fn parse_memory_stat(text: &str, version: CgroupVersion) -> MemoryStat {
    let map = parse_flat_keyed(text);
    let keys = match version {
        CgroupVersion::V1 => ["total_inactive_file", "total_rss", "total_pgfault", "total_pgmajfault"],
        CgroupVersion::V2 => ["inactive_file", "anon", "pgfault", "pgmajfault"],
    };
    let [inactive_file, rss, page_faults, major_page_faults] = keys.map(|k| map.get(k).copied());
    MemoryStat { inactive_file, rss, page_faults, major_page_faults }
}

/// Cumulative cpu time in nanoseconds from v2 `cpu.stat` text (`usage_usec` × 1000).
pub fn cpu_stat_usage_ns(text: &str) -> Option<u64> {
    parse_flat_keyed(text).get("usage_usec")?.checked_mul(1000)
}

/// Parses "key value" lines (`memory.stat`, `cpu.stat`); lines that are not a key and a u64 are skipped.
pub fn parse_flat_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (key, value, None) = (fields.next()?, fields.next()?, fields.next()) else { return None };
            Some((key.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// Splits a /proc/<pid>/cgroup line "id:controllers:path" into controllers and path.
fn parse_cgroup_line(line: &str) -> Option<(&str, &str)> {
    let mut parts = line.splitn(3, ':');
    let (_id, names, path) = (parts.next()?, parts.next()?, parts.next()?);
    path.starts_with('/').then_some((names, path))
}

/// Parses one mountinfo line, keeping only cgroup and cgroup2 mounts (see proc(5)).
fn parse_mount_line(line: &str) -> Option<CgroupMount> {
    let (left, right) = line.split_once(" - ")?;
    let mut left = left.split(' ').skip(3);
    let (root, mount_point) = (left.next()?, left.next()?);
    let mut right = right.split(' ');
    let fs_type = right.next()?;
    let super_options = right.nth(1).unwrap_or_default().to_string();
    let v2 = match fs_type {
        "cgroup" => false,
        "cgroup2" => true,
        _ => return None,
    };
    Some(CgroupMount { root: unescape(root), mount_point: unescape(mount_point), v2, super_options })
}

/// Undoes mountinfo's octal escapes (`\040` for a space, `\134` for a backslash).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if byte == b'\\'
            && let Some(code) = bytes.get(i + 1..i + 4).and_then(octal_byte)
        {
            out.push(code);
            i += 4;
        } else {
            out.push(byte);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn octal_byte(digits: &[u8]) -> Option<u8> {
    digits
        .iter()
        .try_fold(0u8, |acc, d| (b'0'..=b'7').contains(d).then(|| acc.checked_mul(8)?.checked_add(d - b'0'))?)
}

/// `path` below `prefix`, compared by whole components; `None` when it is not below it.
fn strip_dir_prefix<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let prefix = prefix.trim_end_matches('/');
    let rest = path.strip_prefix(prefix)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// How long the cgroup mounts read from our mountinfo are reused. They are
/// set up at boot and hardly ever change, while mountinfo itself grows with
/// every container (overlay, shm and namespace mounts): reading it once per
/// container made a stats listing quadratic in the number of containers.
const MOUNTS_MAX_AGE: Duration = Duration::from_secs(30);

fn parse_cgroup_mounts(mountinfo: &str) -> Vec<CgroupMount> {
    mountinfo.lines().filter_map(parse_mount_line).collect()
}

/// The cgroup mounts of our own mount namespace (its paths are the ones we
/// can open, not the container's), cached for `MOUNTS_MAX_AGE`.
fn own_cgroup_mounts() -> io::Result<Arc<Vec<CgroupMount>>> {
    static CACHE: Mutex<Option<(Instant, Arc<Vec<CgroupMount>>)>> = Mutex::new(None);
    let mut cache = CACHE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((at, mounts)) = cache.as_ref()
        && at.elapsed() < MOUNTS_MAX_AGE
    {
        return Ok(mounts.clone());
    }
    let mounts = Arc::new(parse_cgroup_mounts(&read_named(Path::new("/proc/self/mountinfo"))?));
    *cache = Some((Instant::now(), mounts.clone()));
    Ok(mounts)
}

/// Among mounts matching `pred`, the one whose root holds `path` (bind mounts of a subtree), else the first.
fn find_mount<'a>(
    mounts: &'a [CgroupMount],
    path: &str,
    pred: impl Fn(&CgroupMount) -> bool,
) -> Option<&'a CgroupMount> {
    let mut matching = mounts.iter().filter(|m| pred(m));
    let first = matching.clone().next();
    matching.find(|m| strip_dir_prefix(path, &m.root).is_some()).or(first)
}

/// Reads a file, naming it in the error.
fn read_named(path: &Path) -> io::Result<String> {
    fs::read_to_string(path).map_err(|e| io::Error::new(e.kind(), format!("failed to read {}: {e}", path.display())))
}

/// Reads a cgroup file; `None` when it does not exist (controller not enabled or not mounted).
fn read_file(path: &Path) -> io::Result<Option<String>> {
    match read_named(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads a single-number cgroup file; `None` when missing or not a number.
fn read_u64(path: &Path) -> io::Result<Option<u64>> {
    let value = read_file(path)?.map(|t| t.trim().parse::<u64>());
    if let Some(Err(error)) = &value {
        tracing::debug!(path = %path.display(), %error, "ignoring unparsable cgroup value");
    }
    Ok(value.and_then(Result::ok))
}

#[cfg(test)]
mod tests {
    use super::*;
    use CgroupVersion::{V1, V2};

    const PATHS: [&str; 4] = [
        "/docker/3f2a9c",
        "/kubepods/burstable/pod0d3e-41/3f2a9c",
        "/system.slice/docker-3f2a9c.scope",
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0d3e_41.slice/docker-3f2a9c.scope",
    ];
    const V1_HOST: (&str, &str) = (include_str!("testdata/v1-proc-cgroup"), include_str!("testdata/v1-mountinfo"));
    const V2_HOST: (&str, &str) = (include_str!("testdata/v2-proc-cgroup"), include_str!("testdata/v2-mountinfo"));
    const HYBRID_HOST: (&str, &str) =
        (include_str!("testdata/hybrid-proc-cgroup"), include_str!("testdata/hybrid-mountinfo"));
    const V1_STATS: CgroupStats = CgroupStats {
        cpu_usage_ns: Some(123_456_789),
        memory_usage: Some(10_485_760),
        working_set: Some(10_485_760 - 1_048_576),
        rss: Some(2_757_184),
        page_faults: Some(37_144),
        major_page_faults: Some(26),
        memory_limit: None,
        available_bytes: None,
        pids: Some(7),
        swap_usage: Some(12_582_912 - 10_485_760),
        swap_limit: None,
        pressure: CgroupPressure { cpu: None, memory: None, io: None },
    };

    /// Writes `(absolute path, contents)` pairs below a new temp dir standing for `/`.
    fn tree(files: &[(String, &str)]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = root.path().join(path.trim_start_matches('/'));
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
        root
    }

    /// Locates `path` on a host described by a (/proc/<pid>/cgroup template, mountinfo) fixture pair.
    fn locate((proc_cgroup, mountinfo): (&str, &str), path: &str, root: &Path) -> CgroupLocation {
        CgroupLocation::from_parts(&proc_cgroup.replace("{path}", path), mountinfo, root).unwrap()
    }

    fn v1_files(path: &str) -> Vec<(String, &'static str)> {
        let mem = format!("/sys/fs/cgroup/memory{path}");
        vec![
            (format!("{mem}/memory.usage_in_bytes"), "10485760\n"),
            (format!("{mem}/memory.limit_in_bytes"), "9223372036854771712\n"),
            (format!("{mem}/memory.stat"), include_str!("testdata/v1-memory.stat")),
            (format!("{mem}/memory.memsw.usage_in_bytes"), "12582912\n"),
            (format!("{mem}/memory.memsw.limit_in_bytes"), "9223372036854771712\n"),
            (format!("/sys/fs/cgroup/cpu,cpuacct{path}/cpuacct.usage"), "123456789\n"),
            (format!("/sys/fs/cgroup/pids{path}/pids.current"), "7\n"),
        ]
    }

    fn v2_files(dir: &str, current: &'static str, max: &'static str) -> Vec<(String, &'static str)> {
        vec![
            (format!("{dir}/memory.current"), current),
            (format!("{dir}/memory.max"), max),
            (format!("{dir}/memory.stat"), include_str!("testdata/v2-memory.stat")),
            (format!("{dir}/cpu.stat"), include_str!("testdata/v2-cpu.stat")),
            (format!("{dir}/pids.current"), "3\n"),
            (format!("{dir}/memory.swap.current"), "4096\n"),
            (format!("{dir}/memory.swap.max"), "1048576\n"),
            (format!("{dir}/io.pressure"), "some avg10=0.10 avg60=0.20 avg300=0.30 total=40\n"),
        ]
    }

    #[test]
    fn v1_cgroupfs_and_systemd_paths() {
        for path in PATHS {
            let root = tree(&v1_files(path));
            let loc = locate(V1_HOST, path, root.path());
            let under = |mount: &str| root.path().join(format!("sys/fs/cgroup/{mount}{path}"));
            assert_eq!((loc.version, &loc.unified), (V1, &None));
            assert_eq!(loc.controllers["memory"], under("memory"));
            assert_eq!(loc.controllers["cpu"], under("cpu,cpuacct"));
            assert_eq!(loc.controllers["cpuacct"], under("cpu,cpuacct"));
            assert_eq!(loc.controllers["net_prio"], under("net_cls,net_prio"));
            assert_eq!(loc.controllers["name=systemd"], under("systemd"));
            assert_eq!(loc.read().unwrap(), V1_STATS, "{path}");
        }
    }

    #[test]
    fn v2_cgroupfs_and_systemd_paths() {
        for path in PATHS {
            let root = tree(&v2_files(&format!("/sys/fs/cgroup{path}"), "10485760\n", "max\n"));
            let loc = locate(V2_HOST, path, root.path());
            assert_eq!((loc.version, loc.controllers.len()), (V2, 0));
            assert_eq!(loc.unified, Some(root.path().join(format!("sys/fs/cgroup{path}"))));
            let stats = loc.read().unwrap();
            let expected = CgroupStats {
                cpu_usage_ns: Some(6_635_214_000),
                working_set: Some(10_485_760 - 2_097_152),
                rss: Some(3_145_728),
                page_faults: Some(41_234),
                major_page_faults: Some(12),
                pids: Some(3),
                swap_usage: Some(4096),
                swap_limit: Some(1_048_576),
                pressure: CgroupPressure {
                    io: pressure::parse("some avg10=0.10 avg60=0.20 avg300=0.30 total=40"),
                    ..V1_STATS.pressure
                },
                ..V1_STATS
            };
            assert_eq!(stats, expected, "{path}");
        }
    }

    #[test]
    fn working_set_floors_at_zero_and_limit_gives_available_bytes() {
        let root = tree(&v2_files("/sys/fs/cgroup/pod", "1048576\n", "536870912\n"));
        let loc = locate(V2_HOST, "/pod", root.path());
        let stats = loc.read().unwrap();
        assert_eq!((stats.memory_usage, stats.working_set), (Some(1_048_576), Some(0)));
        assert_eq!((stats.memory_limit, stats.available_bytes), (Some(536_870_912), Some(536_870_912)));
        assert_eq!(working_set(100, Some(30)), 70);
        assert_eq!(working_set(100, None), 100);
    }

    #[test]
    fn hybrid_prefers_v1_controllers() {
        for path in PATHS {
            let mut files = v1_files(path);
            files.push((format!("/sys/fs/cgroup/unified{path}/cpu.stat"), "usage_usec 1\n"));
            let cpu_pressure =
                "some avg10=1.00 avg60=0.50 avg300=0.25 total=99\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=3\n";
            files.push((format!("/sys/fs/cgroup/unified{path}/cpu.pressure"), cpu_pressure));
            let root = tree(&files);
            let loc = locate(HYBRID_HOST, path, root.path());
            assert_eq!(loc.version, V1);
            assert_eq!(loc.unified, Some(root.path().join(format!("sys/fs/cgroup/unified{path}"))));
            let stalls = CgroupPressure { cpu: pressure::parse(cpu_pressure), ..V1_STATS.pressure };
            assert_eq!(loc.read().unwrap(), CgroupStats { pressure: stalls, ..V1_STATS }, "{path}");
        }
    }

    #[test]
    fn missing_files_are_none_and_missing_cgroup_is_not_found() {
        let path = PATHS[0];
        let root = tree(&[(format!("/sys/fs/cgroup/cpu,cpuacct{path}/cpuacct.usage"), "5\n")]);
        let loc = locate(V1_HOST, path, root.path());
        assert_eq!(loc.read().unwrap(), CgroupStats { cpu_usage_ns: Some(5), ..CgroupStats::default() });
        let gone = locate(V1_HOST, "/x", root.path());
        assert_eq!(gone.read().unwrap_err().kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn mount_root_is_stripped_and_escapes_undone() {
        let mountinfo = "40 30 0:30 /docker/abc /mnt/my\\040cg rw - cgroup cgroup rw,memory\n";
        let loc = CgroupLocation::from_parts("6:memory:/docker/abc/sub\n", mountinfo, Path::new("/r")).unwrap();
        assert_eq!(loc.controllers["memory"], Path::new("/r/mnt/my cg/sub"));
    }

    #[test]
    fn odd_input_never_panics() {
        for (cg, mi) in [("", ""), ("garbage\n::\n1:memory:rel\n0::", "1 2\n - cgroup\n - \n\\0")] {
            assert!(CgroupLocation::from_parts(cg, mi, Path::new("/")).is_err());
        }
        assert_eq!(parse_flat_keyed("a 1\nb x\nc\n d 2 3\n\n-1 -1"), BTreeMap::from([("a".to_string(), 1)]));
        assert_eq!(unescape("a\\04b\\"), "a\\04b\\");
    }

    #[test]
    fn parsers() {
        for (text, want) in [("max\n", None), ("9223372036854771712\n", None), ("536870912\n", Some(536_870_912))] {
            assert_eq!(parse_limit(text), want);
        }
        assert_eq!(parse_limit("-1"), None);
        assert_eq!(cpu_stat_usage_ns(include_str!("testdata/v2-cpu.stat")), Some(6_635_214_000));
        assert_eq!(cpu_stat_usage_ns("usage_usec 18446744073709551615"), None);
        let v1 = parse_memory_stat(include_str!("testdata/v1-memory.stat"), V1);
        assert_eq!((v1.inactive_file, v1.rss), (Some(1_048_576), Some(2_757_184)));
        let v2 = parse_memory_stat(include_str!("testdata/v2-memory.stat"), V2);
        assert_eq!((v2.inactive_file, v2.rss, v2.major_page_faults), (Some(2_097_152), Some(3_145_728), Some(12)));
    }

    #[test]
    fn live_own_process() {
        let loc = CgroupLocation::of_pid(std::process::id().into()).unwrap();
        let stats = loc.read().unwrap();
        assert!(stats.cpu_usage_ns.unwrap() > 0, "{loc:?} {stats:?}");
        assert!(stats.memory_usage.unwrap() > 0, "{loc:?} {stats:?}");
        assert!(CgroupLocation::of_pid(-1).unwrap_err().to_string().contains("/proc/-1/cgroup"));
    }
}
