//! The CRI's `Mount.mount_options` as mount flags. Only per-mount flags a
//! bind remount can change are accepted; propagation and read-only have
//! fields of their own in the CRI mount.

use nix::mount::MsFlags;
use nix::sys::statvfs::FsFlags;

/// The flags a bind remount sets; everything else it clears.
const REMOUNTABLE: MsFlags = MsFlags::MS_RDONLY
    .union(MsFlags::MS_NOSUID)
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC)
    .union(MsFlags::MS_NOATIME)
    .union(MsFlags::MS_NODIRATIME)
    .union(MsFlags::MS_RELATIME)
    .union(MsFlags::MS_STRICTATIME);

const ATIME: MsFlags = MsFlags::MS_NOATIME.union(MsFlags::MS_RELATIME).union(MsFlags::MS_STRICTATIME);

/// Every word accepted, for the error that names them.
pub const ACCEPTED: &str = "ro, rw, nosuid, suid, nodev, dev, noexec, exec, noatime, atime, relatime, norelatime, \
     strictatime, nostrictatime, nodiratime, diratime, bind, rbind";

/// What the options turn on and off, in the order given (a later word
/// overrides an earlier one, as in mount(8)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlagChange {
    set: MsFlags,
    clear: MsFlags,
}

impl Default for FlagChange {
    fn default() -> Self {
        FlagChange { set: MsFlags::empty(), clear: MsFlags::empty() }
    }
}

impl FlagChange {
    /// Read-only, and nothing else changed.
    pub fn read_only() -> FlagChange {
        FlagChange { set: MsFlags::MS_RDONLY, clear: MsFlags::empty() }
    }

    pub fn parse(options: &[String]) -> Result<FlagChange, String> {
        let mut change = FlagChange::default();
        for word in options {
            let (set, clear) = match word.as_str() {
                "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
                "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
                "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
                "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
                "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
                "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
                "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
                "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
                "noatime" => (MsFlags::MS_NOATIME, ATIME),
                "relatime" => (MsFlags::MS_RELATIME, ATIME),
                "strictatime" => (MsFlags::MS_STRICTATIME, ATIME),
                "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
                "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
                "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
                "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
                "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
                // What the mount already is.
                "bind" | "rbind" => (MsFlags::empty(), MsFlags::empty()),
                "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" => {
                    return Err(format!("mount option {word:?}: propagation is set by the mount's propagation field"));
                }
                other => return Err(format!("unsupported mount option {other:?}; accepted: {ACCEPTED}")),
            };
            change.set = (change.set - clear) | set;
            change.clear = (change.clear - set) | clear;
        }
        Ok(change)
    }

    /// The flags for a bind remount of a mount that now has `current`:
    /// what it has, changed as asked. Keeping the rest matters where the
    /// kernel locks a flag the source mount carries.
    pub fn apply(&self, current: FsFlags) -> MsFlags {
        let mut flags = from_statvfs(current);
        if self.set.intersects(ATIME) {
            flags -= ATIME;
        }
        ((flags - self.clear) | self.set) & REMOUNTABLE
    }
}

fn from_statvfs(current: FsFlags) -> MsFlags {
    [
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ]
    .into_iter()
    .filter(|(st, _)| current.contains(*st))
    .fold(MsFlags::empty(), |acc, (_, ms)| acc | ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_add_to_what_the_mount_has() {
        let change = FlagChange::parse(&words(&["noexec", "nosuid"])).unwrap();
        let flags = change.apply(FsFlags::ST_NODEV | FsFlags::ST_RELATIME);
        let want = MsFlags::MS_NOEXEC | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_RELATIME;
        assert_eq!(flags, want);
    }

    #[test]
    fn a_later_word_overrides_an_earlier_one() {
        let change = FlagChange::parse(&words(&["noexec", "exec", "nodev"])).unwrap();
        assert_eq!(change.apply(FsFlags::ST_NOEXEC), MsFlags::MS_NODEV);
        let change = FlagChange::parse(&words(&["rw", "ro"])).unwrap();
        assert_eq!(change.apply(FsFlags::empty()), MsFlags::MS_RDONLY);
    }

    #[test]
    fn atime_words_replace_each_other() {
        let change = FlagChange::parse(&words(&["noatime"])).unwrap();
        assert_eq!(change.apply(FsFlags::ST_RELATIME), MsFlags::MS_NOATIME);
        let change = FlagChange::parse(&words(&["strictatime"])).unwrap();
        assert_eq!(change.apply(FsFlags::ST_NOATIME), MsFlags::MS_STRICTATIME);
    }

    #[test]
    fn unknown_and_propagation_words_are_refused() {
        let err = FlagChange::parse(&words(&["noexec", "sync"])).unwrap_err();
        assert!(err.contains("\"sync\"") && err.contains("accepted"), "{err}");
        let err = FlagChange::parse(&words(&["rshared"])).unwrap_err();
        assert!(err.contains("propagation"), "{err}");
        assert_eq!(FlagChange::parse(&words(&["rbind"])).unwrap(), FlagChange::default());
    }
}
