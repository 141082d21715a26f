//! Logging: one subscriber, text or JSON, filtered by `--log-level`; the
//! filter can be swapped while running (SIGHUP with a new log level).

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

use crate::config::LogFormat;

/// Changes the installed log filter.
#[derive(Clone)]
pub struct LogFilter(reload::Handle<EnvFilter, Registry>);

impl LogFilter {
    pub fn set(&self, filter: &str) -> Result<(), String> {
        let filter = EnvFilter::try_new(filter).map_err(|e| format!("invalid log filter {filter:?}: {e}"))?;
        self.0.reload(filter).map_err(|e| format!("cannot change the log filter: {e}"))
    }
}

/// Installs the global subscriber. Logs go to stderr so stdout stays free.
pub fn init(format: LogFormat, filter: &str) -> Result<LogFilter, String> {
    let filter = EnvFilter::try_new(filter).map_err(|e| format!("invalid --log-level {filter:?}: {e}"))?;
    let (filter, handle) = reload::Layer::new(filter);
    let output = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let output = match format {
        LogFormat::Text => output.with_ansi(std::io::stderr().is_terminal()).boxed(),
        LogFormat::Json => output.json().boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .try_init()
        .map_err(|e| format!("cannot install the log subscriber: {e}"))?;
    Ok(LogFilter(handle))
}
