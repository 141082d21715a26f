//! Stop signals between the CRI's enum and Docker's spelling. Docker takes
//! names with or without `SIG` and numbers, and spells real-time signals
//! `RTMIN+n` / `RTMAX-n`; the CRI spells them `SIGRTMINPLUSn` /
//! `SIGRTMAXMINUSn`.

use crate::api::Signal;

/// Linux's first and last real-time signal numbers as Docker counts them
/// (glibc keeps 32 and 33 for itself).
const RTMIN: i32 = 34;
const RTMAX: i32 = 64;

/// What Docker is told to stop the container with; `None` leaves the
/// choice to Docker (the image's STOPSIGNAL, else SIGTERM).
pub fn to_docker(signal: Signal) -> Option<String> {
    if signal == Signal::RuntimeDefault {
        return None;
    }
    let name = signal.as_str_name().trim_start_matches("SIGNAL_");
    let name = if let Some(n) = name.strip_prefix("SIGRTMINPLUS") {
        format!("SIGRTMIN+{n}")
    } else if let Some(n) = name.strip_prefix("SIGRTMAXMINUS") {
        format!("SIGRTMAX-{n}")
    } else {
        name.to_string()
    };
    Some(name)
}

/// The signal a container stops with, from Docker's record of it. Empty
/// is Docker's default, SIGTERM; so is a spelling Docker itself would not
/// have accepted at create.
pub fn from_docker(stop_signal: &str) -> Signal {
    let word = stop_signal.trim().to_ascii_uppercase();
    let name = match word.parse::<i32>() {
        Ok(number) => name_of_number(number),
        Err(_) => Some(word.trim_start_matches("SIG").to_string()),
    };
    name.map(|n| cri_spelling(&n))
        .and_then(|n| Signal::from_str_name(&format!("SIGNAL_SIG{n}")))
        .filter(|s| *s != Signal::RuntimeDefault)
        .unwrap_or(Signal::Sigterm)
}

/// `RTMIN+3` → `RTMINPLUS3`, `RTMAX-2` → `RTMAXMINUS2`; others unchanged.
fn cri_spelling(name: &str) -> String {
    if let Some(n) = name.strip_prefix("RTMIN+") {
        format!("RTMINPLUS{n}")
    } else if let Some(n) = name.strip_prefix("RTMAX-") {
        format!("RTMAXMINUS{n}")
    } else {
        name.to_string()
    }
}

/// A signal number as a name without `SIG`.
fn name_of_number(number: i32) -> Option<String> {
    match number {
        n if n == RTMIN => Some("RTMIN".to_string()),
        n if n == RTMAX => Some("RTMAX".to_string()),
        n if n > RTMIN && n < RTMAX && n - RTMIN <= RTMAX - n => Some(format!("RTMIN+{}", n - RTMIN)),
        n if n > RTMIN && n < RTMAX => Some(format!("RTMAX-{}", RTMAX - n)),
        n => nix::sys::signal::Signal::try_from(n).ok().map(|s| s.as_str().trim_start_matches("SIG").to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_signals_in_dockers_spelling() {
        assert_eq!(to_docker(Signal::RuntimeDefault), None);
        assert_eq!(to_docker(Signal::Sigusr1).as_deref(), Some("SIGUSR1"));
        assert_eq!(to_docker(Signal::Sigrtminplus3).as_deref(), Some("SIGRTMIN+3"));
        assert_eq!(to_docker(Signal::Sigrtmaxminus2).as_deref(), Some("SIGRTMAX-2"));
    }

    #[test]
    fn dockers_record_as_a_cri_signal() {
        assert_eq!(from_docker(""), Signal::Sigterm);
        assert_eq!(from_docker("SIGUSR1"), Signal::Sigusr1);
        assert_eq!(from_docker("usr2"), Signal::Sigusr2);
        assert_eq!(from_docker("3"), Signal::Sigquit);
        assert_eq!(from_docker("9"), Signal::Sigkill);
        assert_eq!(from_docker("SIGRTMIN+1"), Signal::Sigrtminplus1);
        assert_eq!(from_docker("RTMAX-3"), Signal::Sigrtmaxminus3);
        assert_eq!(from_docker("35"), Signal::Sigrtminplus1);
        assert_eq!(from_docker("63"), Signal::Sigrtmaxminus1);
        assert_eq!(from_docker("64"), Signal::Sigrtmax);
        assert_eq!(from_docker("SIGNOPE"), Signal::Sigterm);
    }

    #[test]
    fn every_cri_signal_survives_the_round_trip() {
        for n in 1..=64 {
            let Ok(signal) = Signal::try_from(n) else { continue };
            assert_eq!(from_docker(&to_docker(signal).unwrap()), signal, "{signal:?}");
        }
    }
}
