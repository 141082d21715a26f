//! systemd integration without linking libsystemd: state notifications
//! (`Type=notify` / `notify-reload`) and socket activation (`fd://`).
//!
//! Both are inert outside systemd: without `NOTIFY_SOCKET` nothing is sent,
//! and sockets are only adopted when the endpoint says `fd://`.

use std::ffi::OsString;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram, UnixListener};

use sd_notify::NotifyState;

/// Where systemd's passed descriptors start (`SD_LISTEN_FDS_START`).
const FIRST_FD: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    #[error(
        "{endpoint}: no sockets were passed (LISTEN_PID and LISTEN_FDS unset); start pinshim through its .socket unit"
    )]
    NothingPassed { endpoint: String },
    #[error("{endpoint}: LISTEN_PID={listen_pid} is not this process ({pid}); the sockets were meant for another")]
    OtherProcess { endpoint: String, listen_pid: String, pid: u32 },
    #[error("{endpoint}: invalid {name}={value:?}")]
    BadVariable { endpoint: String, name: &'static str, value: String },
    #[error("{endpoint}: no such passed socket (LISTEN_FDS={count}, LISTEN_FDNAMES={names:?})")]
    NoSuchSocket { endpoint: String, count: usize, names: String },
    #[error("{endpoint}: the passed socket is not a Unix stream socket: {source}")]
    NotUnixStream { endpoint: String, source: io::Error },
}

/// Which passed socket an `fd://` endpoint means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// `fd://`: the first one.
    First,
    /// `fd://3`: by descriptor number.
    Number(usize),
    /// `fd://pinshim.socket`: by its name in `LISTEN_FDNAMES`
    /// (`FileDescriptorName=`, by default the socket unit's name).
    Name(String),
}

/// `Some` for `fd://…` endpoints.
pub fn selector(endpoint: &str) -> Option<Selector> {
    let rest = endpoint.strip_prefix("fd://")?;
    Some(match rest.parse::<usize>() {
        _ if rest.is_empty() => Selector::First,
        Ok(fd) => Selector::Number(fd),
        Err(_) => Selector::Name(rest.to_string()),
    })
}

/// The listening socket systemd passed for an `fd://` endpoint, or `None`
/// for any other endpoint.
///
/// Call before any other thread starts: adopting the socket removes
/// LISTEN_PID and LISTEN_FDS from the environment (so children do not
/// inherit them), and changing the environment is only sound while the
/// process has one thread.
pub fn take_listener(endpoint: &str) -> Result<Option<UnixListener>, ActivationError> {
    let Some(selector) = selector(endpoint) else { return Ok(None) };
    let var = |name| std::env::var_os(name).map(|v: OsString| v.to_string_lossy().into_owned());
    let passed =
        Passed::check(endpoint, var("LISTEN_PID"), var("LISTEN_FDS"), var("LISTEN_FDNAMES"), std::process::id())?;
    let index = passed.index(endpoint, &selector)?;
    let not_unix = |source| ActivationError::NotUnixStream { endpoint: endpoint.to_string(), source };
    let listener = listenfd::ListenFd::from_env()
        .take_unix_listener(index)
        .map_err(not_unix)?
        .ok_or_else(|| passed.missing(endpoint))?;
    listener.set_nonblocking(true).map_err(not_unix)?;
    Ok(Some(listener))
}

/// What systemd says it passed, checked to be meant for this process.
#[derive(Debug)]
struct Passed {
    count: usize,
    names: String,
}

impl Passed {
    fn check(
        endpoint: &str,
        listen_pid: Option<String>,
        listen_fds: Option<String>,
        names: Option<String>,
        pid: u32,
    ) -> Result<Passed, ActivationError> {
        let (Some(listen_pid), Some(listen_fds)) = (listen_pid, listen_fds) else {
            return Err(ActivationError::NothingPassed { endpoint: endpoint.to_string() });
        };
        // Variables inherited from a parent that was itself activated name
        // the parent's PID; its descriptors are not ours to take.
        if listen_pid.trim().parse::<u32>().ok() != Some(pid) {
            return Err(ActivationError::OtherProcess { endpoint: endpoint.to_string(), listen_pid, pid });
        }
        let count = listen_fds.trim().parse().map_err(|_| ActivationError::BadVariable {
            endpoint: endpoint.to_string(),
            name: "LISTEN_FDS",
            value: listen_fds.clone(),
        })?;
        Ok(Passed { count, names: names.unwrap_or_default() })
    }

    /// The position of the selected socket among those passed.
    fn index(&self, endpoint: &str, selector: &Selector) -> Result<usize, ActivationError> {
        let index = match selector {
            Selector::First => Some(0),
            Selector::Number(fd) => fd.checked_sub(FIRST_FD),
            Selector::Name(name) => self.names.split(':').position(|n| n == name),
        };
        index.filter(|i| *i < self.count).ok_or_else(|| self.missing(endpoint))
    }

    fn missing(&self, endpoint: &str) -> ActivationError {
        ActivationError::NoSuchSocket { endpoint: endpoint.to_string(), count: self.count, names: self.names.clone() }
    }
}

/// `READY=1`: serving.
pub fn notify_ready() {
    notify(&[NotifyState::Ready, NotifyState::Status("serving CRI")]);
}

/// `STOPPING=1`: draining before exit.
pub fn notify_stopping() {
    notify(&[NotifyState::Stopping, NotifyState::Status("shutting down")]);
}

/// `RELOADING=1`, stamped with the monotonic clock as `Type=notify-reload`
/// requires; `notify_ready` ends the reload.
pub fn notify_reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => notify(&[NotifyState::Reloading, now]),
        Err(_) => notify(&[NotifyState::Reloading]),
    }
}

/// Sends when `NOTIFY_SOCKET` is set; failures are logged, never fatal.
fn notify(states: &[NotifyState]) {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let message: String = states.iter().map(|s| format!("{s}\n")).collect();
    // sd_notify covers socket paths; abstract ones ("@name") it does not.
    let sent = match target.as_bytes().strip_prefix(b"@") {
        Some(name) => send_abstract(name, &message),
        None => sd_notify::notify(states),
    };
    match sent {
        Ok(()) => tracing::debug!(message = message.trim_end(), "notified systemd"),
        Err(e) => tracing::warn!(socket = ?target, error = %e, "cannot notify systemd"),
    }
}

fn send_abstract(name: &[u8], message: &str) -> io::Result<()> {
    let addr = SocketAddr::from_abstract_name(name)?;
    UnixDatagram::unbound()?.send_to_addr(message.as_bytes(), &addr).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pid: Option<&str>, fds: Option<&str>, names: Option<&str>) -> Result<Passed, ActivationError> {
        Passed::check("fd://", pid.map(Into::into), fds.map(Into::into), names.map(Into::into), 42)
    }

    #[test]
    fn fd_endpoints_select_first_number_or_name() {
        assert_eq!(selector("fd://"), Some(Selector::First));
        assert_eq!(selector("fd://4"), Some(Selector::Number(4)));
        assert_eq!(selector("fd://pinshim.socket"), Some(Selector::Name("pinshim.socket".into())));
        assert_eq!(selector("unix:///run/pinshim.sock"), None);
    }

    #[test]
    fn only_sockets_passed_to_this_process_are_taken() {
        assert!(matches!(check(None, None, None), Err(ActivationError::NothingPassed { .. })));
        assert!(matches!(check(Some("41"), Some("1"), None), Err(ActivationError::OtherProcess { .. })));
        assert!(matches!(check(Some("x"), Some("1"), None), Err(ActivationError::OtherProcess { .. })));
        assert!(matches!(check(Some("42"), Some("one"), None), Err(ActivationError::BadVariable { .. })));
        assert_eq!(check(Some("42"), Some("2"), None).unwrap().count, 2);
    }

    #[test]
    fn selectors_map_to_positions() {
        let passed = check(Some("42"), Some("2"), Some("metrics:pinshim.socket")).unwrap();
        assert_eq!(passed.index("fd://", &Selector::First).unwrap(), 0);
        assert_eq!(passed.index("fd://4", &Selector::Number(4)).unwrap(), 1);
        assert_eq!(passed.index("fd://pinshim.socket", &Selector::Name("pinshim.socket".into())).unwrap(), 1);
        assert!(passed.index("fd://5", &Selector::Number(5)).is_err());
        assert!(passed.index("fd://2", &Selector::Number(2)).is_err());
        assert!(passed.index("fd://other", &Selector::Name("other".into())).is_err());
        let none = check(Some("42"), Some("0"), None).unwrap();
        assert!(none.index("fd://", &Selector::First).is_err());
    }

    #[test]
    fn notifications_reach_abstract_sockets() {
        let message = "READY=1\n";
        let mut buf = [0u8; 64];
        let name = format!("pinshim-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        send_abstract(name.as_bytes(), message).unwrap();
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], message.as_bytes());
    }
}
