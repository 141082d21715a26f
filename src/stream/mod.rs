//! The streaming server behind Exec, Attach and PortForward: the CRI call
//! returns a one-time URL; the client upgrades a connection on it.

mod portforward;
mod remotecommand;
mod server;
pub mod spdy;
mod spdy_transport;
mod status;
mod tokens;
mod tunnel;
mod websocket;

pub use portforward::requested_ports;
pub use tokens::{StreamRequest, TokenError};

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::docker::Docker;

/// The running streaming server and the URLs it hands out.
pub struct Streaming {
    server: Arc<server::Server>,
    addr: SocketAddr,
}

impl Streaming {
    /// Binds `addr` (port 0: any free port) and serves until `stop`.
    pub async fn start(addr: &str, docker: Docker, stop: CancellationToken) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let server = server::Server::new(docker);
        tokio::spawn(server.clone().serve(listener, stop));
        tracing::info!(%addr, "streaming server listening");
        Ok(Streaming { server, addr })
    }

    /// A one-time URL for `request`, valid for a minute.
    pub fn url(&self, request: StreamRequest) -> Result<String, TokenError> {
        let kind = match request {
            StreamRequest::Exec { .. } => "exec",
            StreamRequest::Attach { .. } => "attach",
            StreamRequest::PortForward { .. } => "portforward",
        };
        let token = self.server.tokens.insert(request)?;
        Ok(format!("http://{}/{kind}/{token}", self.addr))
    }
}
