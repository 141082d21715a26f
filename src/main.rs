//! Settings → logging → serve until SIGTERM or SIGINT; SIGHUP reloads.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

use pinshim::config::{Config, ConfigError, Reloader};
use pinshim::observability::LogFilter;
use pinshim::server::ServeOptions;
use pinshim::systemd;
use tokio::signal::unix::{Signal, SignalKind, signal};

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("audit") {
        return audit(pinshim::audit::AuditArgs::parse_from(std::env::args().skip(1)));
    }
    let args: Vec<OsString> = std::env::args_os().collect();
    let loaded = match Config::load(args.clone()) {
        Ok(loaded) => loaded,
        Err(ConfigError::Args(e)) => e.exit(),
        Err(e) => {
            eprintln!("pinshim: {e}");
            return ExitCode::from(2);
        }
    };
    let config = &loaded.config;
    let log_filter = match pinshim::observability::init(config.log_format, &config.log_level) {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("pinshim: {e}");
            return ExitCode::from(2);
        }
    };
    // Before the runtime starts threads: adopting a socket edits the environment.
    let inherited = match systemd::take_listener(&config.container_runtime_endpoint) {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(error = %e, "cannot take the socket from systemd");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let reloader = Reloader::new(args, loaded);
    let result = runtime.block_on(async {
        let signals = Signals::install();
        let options = ServeOptions { settings: reloader.subscribe(), inherited };
        pinshim::server::serve_with(options, until_shutdown(signals, reloader, log_filter)).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "pinshim failed");
            ExitCode::FAILURE
        }
    }
}

/// `pinshim audit`: prints the report; exit code 1 flags a denied image.
fn audit(args: pinshim::audit::AuditArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("pinshim audit: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(pinshim::audit::run(&args)) {
        Ok((report, flagged)) => {
            print!("{report}");
            if flagged { ExitCode::FAILURE } else { ExitCode::SUCCESS }
        }
        Err(e) => {
            eprintln!("pinshim audit: {e}");
            ExitCode::from(2)
        }
    }
}

struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    /// Installed at once, before the slow parts of startup, so an early
    /// SIGHUP does not kill the process (its default action).
    fn install() -> Option<Signals> {
        let (term, int, hup) =
            (signal(SignalKind::terminate()), signal(SignalKind::interrupt()), signal(SignalKind::hangup()));
        match (term, int, hup) {
            (Ok(term), Ok(int), Ok(hup)) => Some(Signals { term, int, hup }),
            _ => {
                tracing::error!("cannot install signal handlers; only a kill will stop pinshim");
                None
            }
        }
    }
}

/// Completes on the first SIGTERM or SIGINT, reloading on each SIGHUP.
async fn until_shutdown(signals: Option<Signals>, mut reloader: Reloader, log_filter: LogFilter) {
    let Some(mut signals) = signals else { return std::future::pending().await };
    loop {
        tokio::select! {
            _ = signals.term.recv() => {
                tracing::info!("SIGTERM received");
                break;
            }
            _ = signals.int.recv() => {
                tracing::info!("SIGINT received");
                break;
            }
            _ = signals.hup.recv() => reload(&mut reloader, &log_filter),
        }
    }
}

fn reload(reloader: &mut Reloader, log_filter: &LogFilter) {
    tracing::info!(file = ?reloader.config().config, "SIGHUP received: reloading settings");
    systemd::notify_reloading();
    match reloader.reload() {
        Ok(outcome) => {
            if outcome.applied.iter().any(|k| k == "log-level")
                && let Err(e) = log_filter.set(&reloader.config().log_level)
            {
                tracing::error!(error = %e, "cannot apply the new log level");
            }
            for key in &outcome.needs_restart {
                tracing::warn!(key = %key, "setting changed; it needs a restart to take effect");
            }
            tracing::info!(applied = ?outcome.applied, needs_restart = ?outcome.needs_restart, "settings reloaded");
        }
        Err(e) => tracing::error!(error = %e, "cannot reload settings; keeping the running ones"),
    }
    systemd::notify_ready();
}
