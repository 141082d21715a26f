//! The streaming HTTP server: one-time URLs, upgraded to WebSocket or SPDY.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderMap, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_util::sync::CancellationToken;

use super::tokens::{StreamRequest, TokenStore};
use super::{portforward, spdy_transport, tunnel, websocket};
use crate::docker::Docker;

type Body = Full<Bytes>;

/// The header in which clients offer, and we confirm, a stream protocol.
const PROTOCOL_VERSION: &str = "x-stream-protocol-version";

pub struct Server {
    pub(super) tokens: TokenStore,
    docker: Docker,
}

impl Server {
    pub fn new(docker: Docker) -> Arc<Self> {
        Arc::new(Server { tokens: TokenStore::default(), docker })
    }

    /// Accepts connections until `stop` is cancelled.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, stop: CancellationToken) {
        loop {
            let (conn, peer) = tokio::select! {
                () = stop.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "streaming server cannot accept");
                        continue;
                    }
                },
            };
            let this = self.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let this = this.clone();
                    async move { Ok::<_, Infallible>(this.handle(req, peer)) }
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(conn), service)
                    .with_upgrades();
                tokio::select! {
                    result = connection => if let Err(e) = result {
                        tracing::debug!(error = %e, "streaming connection ended");
                    },
                    () = stop.cancelled() => {}
                }
            });
        }
    }

    fn handle(self: &Arc<Self>, mut req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let mut parts = req.uri().path().trim_matches('/').splitn(2, '/');
        let (kind, token) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
        let Some(request) = self.tokens.take(token) else {
            return plain(StatusCode::NOT_FOUND, "unknown or expired streaming token");
        };
        let kind_matches = matches!(
            (kind, &request),
            ("exec", StreamRequest::Exec { .. })
                | ("attach", StreamRequest::Attach { .. })
                | ("portforward", StreamRequest::PortForward { .. })
        );
        if !kind_matches {
            return plain(StatusCode::NOT_FOUND, "unknown or expired streaming token");
        }
        tracing::debug!(%peer, kind, "streaming session");
        let upgrade = header_str(req.headers(), header::UPGRADE).to_ascii_lowercase();
        if upgrade.contains("websocket") {
            let query = req.uri().query().map(str::to_string);
            let upgraded = hyper::upgrade::on(&mut req);
            return self.websocket(req.headers(), upgraded, request, query);
        }
        if upgrade.contains("spdy/3.1") {
            let upgraded = hyper::upgrade::on(&mut req);
            return self.spdy(req.headers(), upgraded, request);
        }
        plain(StatusCode::BAD_REQUEST, "streaming requires an upgrade to WebSocket or SPDY/3.1")
    }

    fn websocket(
        self: &Arc<Self>,
        headers: &HeaderMap,
        upgraded: hyper::upgrade::OnUpgrade,
        request: StreamRequest,
        query: Option<String>,
    ) -> Response<Body> {
        let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
            return plain(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key");
        };
        let offered = header_str(headers, header::SEC_WEBSOCKET_PROTOCOL);
        let port_forward = matches!(request, StreamRequest::PortForward { .. });
        if let StreamRequest::PortForward { pid, ports, .. } = &request
            && tunnel::offered(&offered)
        {
            return spdy_tunnel(key.as_bytes(), upgraded, *pid, ports.clone());
        }
        let Some(protocol) = websocket::negotiate(&offered, port_forward) else {
            return plain(StatusCode::BAD_REQUEST, "no supported channel protocol offered");
        };
        let ports = match &request {
            StreamRequest::PortForward { ports: granted, .. } => {
                match portforward::websocket_ports(query.as_deref(), granted) {
                    Ok(ports) => ports,
                    Err(e) => return plain(StatusCode::BAD_REQUEST, &e),
                }
            }
            _ => Vec::new(),
        };
        let docker = self.docker.clone();
        tokio::spawn(async move {
            let Some(ws) = websocket_of(upgraded).await else { return };
            match request {
                StreamRequest::PortForward { pid, .. } => websocket::serve_port_forward(ws, protocol, pid, ports).await,
                other => websocket::serve_remote_command(ws, protocol, other, docker).await,
            }
        });
        websocket_accepted(key.as_bytes(), (!offered.is_empty()).then_some(protocol.name))
    }
}

impl Server {
    fn spdy(
        self: &Arc<Self>,
        headers: &HeaderMap,
        upgraded: hyper::upgrade::OnUpgrade,
        request: StreamRequest,
    ) -> Response<Body> {
        let offered: Vec<String> = header_str(headers, PROTOCOL_VERSION)
            .split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect();
        let port_forward = matches!(request, StreamRequest::PortForward { .. });
        let Some(protocol) = spdy_transport::negotiate(&offered, port_forward) else {
            return plain(StatusCode::FORBIDDEN, &format!("no supported stream protocol among {offered:?}"));
        };
        let docker = self.docker.clone();
        tokio::spawn(async move {
            let io = match upgraded.await {
                Ok(upgraded) => TokioIo::new(upgraded),
                Err(e) => return tracing::debug!(error = %e, "spdy upgrade failed"),
            };
            match request {
                StreamRequest::PortForward { pid, ports, .. } => {
                    spdy_transport::serve_port_forward(io, pid, ports).await
                }
                other => spdy_transport::serve_remote_command(io, protocol, other, docker).await,
            }
        });
        Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "Upgrade")
            .header(header::UPGRADE, "SPDY/3.1")
            .header(PROTOCOL_VERSION, protocol)
            .body(Body::default())
            .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "bad response"))
    }
}

/// A port forward whose SPDY session travels inside the WebSocket. As on
/// plain SPDY, each stream names its port, checked against the grant.
fn spdy_tunnel(key: &[u8], upgraded: hyper::upgrade::OnUpgrade, pid: i64, granted: Vec<u16>) -> Response<Body> {
    tokio::spawn(async move {
        let Some(ws) = websocket_of(upgraded).await else { return };
        spdy_transport::serve_port_forward(tunnel::bytes_over(ws), pid, granted).await;
    });
    websocket_accepted(key, Some(tunnel::PORT_FORWARD_TUNNEL))
}

/// The server side of the WebSocket once the 101 has gone out; `None` if
/// the client left during the upgrade.
async fn websocket_of(upgraded: hyper::upgrade::OnUpgrade) -> Option<websocket::Socket> {
    match upgraded.await {
        Ok(upgraded) => Some(WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await),
        Err(e) => {
            tracing::debug!(error = %e, "websocket upgrade failed");
            None
        }
    }
}

/// The 101 answer to a WebSocket handshake, naming the chosen subprotocol
/// when the client offered any.
fn websocket_accepted(key: &[u8], protocol: Option<&str>) -> Response<Body> {
    let mut response = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, derive_accept_key(key));
    if let Some(protocol) = protocol {
        response = response.header(header::SEC_WEBSOCKET_PROTOCOL, protocol);
    }
    response.body(Body::default()).unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "bad response"))
}

fn header_str(headers: &HeaderMap, name: impl header::AsHeaderName) -> String {
    headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>().join(",")
}

fn plain(status: StatusCode, message: &str) -> Response<Body> {
    let mut response = Response::new(Body::from(format!("{message}\n")));
    *response.status_mut() = status;
    response
}
