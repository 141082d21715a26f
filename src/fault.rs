//! A fault hook for crash tests only: with `PINSHIM_TEST_CRASH_AT=<point>`
//! in its environment, pinshim SIGKILLs itself when it reaches that point of
//! RunPodSandbox, leaving exactly what a crash there leaves. Unset (always,
//! outside tests), every check is a no-op.

/// The variable naming the crash point; read once, by the server's wiring.
pub const CRASH_AT_VAR: &str = "PINSHIM_TEST_CRASH_AT";

/// Where RunPodSandbox can be made to crash.
pub mod point {
    /// The pause container runs; its namespace is not pinned yet.
    pub const AFTER_PAUSE_START: &str = "after-pause-start";
    /// The namespace is pinned; no plugin has run.
    pub const AFTER_NETNS_PIN: &str = "after-netns-pin";
    /// Every plugin's ADD succeeded; the result is not cached yet.
    pub const AFTER_CNI_ADD: &str = "after-cni-add";
}

/// Test-only: the point at which to crash, if any.
#[derive(Debug, Clone, Default)]
pub struct CrashHook(Option<String>);

impl CrashHook {
    /// Reads `PINSHIM_TEST_CRASH_AT`; unset means no crash anywhere.
    pub fn from_env() -> Self {
        let point = std::env::var(CRASH_AT_VAR).ok().filter(|p| !p.is_empty());
        if let Some(point) = &point {
            tracing::warn!(point = %point, "test fault hook armed: pinshim will SIGKILL itself there");
        }
        CrashHook(point)
    }

    /// SIGKILLs this process if `point` is the armed one.
    pub fn at(&self, point: &str) {
        if self.0.as_deref() == Some(point) {
            tracing::warn!(point, "test fault hook: crashing");
            let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGKILL);
        }
    }
}
