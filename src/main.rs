//! Flags → config → serve until SIGTERM or SIGINT.

use std::process::ExitCode;

use clap::Parser;
use pinshim::config::Config;
use tokio::signal::unix::{SignalKind, signal};

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("audit") {
        return audit(pinshim::audit::AuditArgs::parse_from(std::env::args().skip(1)));
    }
    let config = Config::parse();
    if let Err(e) = pinshim::observability::init(config.log_format, &config.log_level) {
        eprintln!("pinshim: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(pinshim::server::serve(config, shutdown_signal())) {
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

/// Completes on the first SIGTERM or SIGINT.
async fn shutdown_signal() {
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot install signal handlers; only a kill will stop pinshim");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}
