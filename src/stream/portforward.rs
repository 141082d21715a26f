//! Connections to a port inside a pod's network namespace, made from a
//! short-lived thread that joins the namespace: no socat or nsenter needed.

use std::io;
use std::net::TcpStream;

use nix::sched::{CloneFlags, setns};

/// Connects to `localhost:port` as seen from the network namespace of
/// process `pid` (the pod's infra container), over IPv4 or else IPv6.
pub async fn dial(pid: i64, port: u16) -> io::Result<tokio::net::TcpStream> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    // A dedicated thread: the namespace switch dies with it and never
    // leaks into the runtime's worker or blocking threads.
    std::thread::Builder::new().name("pinshim-portforward".to_string()).spawn(move || {
        let _ = tx.send(connect_in_namespace(pid, port));
    })?;
    let stream = rx.await.map_err(|_| io::Error::other("port-forward dialer thread died"))??;
    tokio::net::TcpStream::from_std(stream)
}

fn connect_in_namespace(pid: i64, port: u16) -> io::Result<TcpStream> {
    let namespace = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
    setns(namespace, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
    let stream = TcpStream::connect(("127.0.0.1", port)).or_else(|v4| {
        TcpStream::connect(("::1", port))
            .map_err(|v6| io::Error::new(v4.kind(), format!("localhost:{port}: ipv4: {v4}; ipv6: {v6}")))
    })?;
    stream.set_nonblocking(true)?;
    Ok(stream)
}

/// PortForwardRequest's ports as TCP ports; each must be one.
pub fn requested_ports(ports: &[i32]) -> Result<Vec<u16>, String> {
    ports
        .iter()
        .map(|p| u16::try_from(*p).ok().filter(|p| *p > 0).ok_or_else(|| format!("port {p} is not a TCP port")))
        .collect()
}

/// The ports a WebSocket session forwards: those of its URL's query, which
/// must be among the `granted` ones when the CRI request named any; with no
/// query, the granted ones.
pub fn websocket_ports(query: Option<&str>, granted: &[u16]) -> Result<Vec<u16>, String> {
    if !granted.is_empty() && !query.unwrap_or_default().split('&').any(|p| p.starts_with("port=")) {
        return Ok(granted.to_vec());
    }
    let ports = ports_from_query(query)?;
    ports.iter().try_for_each(|p| check_granted(*p, granted))?;
    Ok(ports)
}

/// A stream may reach `port` when the CRI request named it, or named none.
pub fn check_granted(port: u16, granted: &[u16]) -> Result<(), String> {
    match granted.is_empty() || granted.contains(&port) {
        true => Ok(()),
        false => Err(format!("port {port} was not among the ports the PortForward request named ({granted:?})")),
    }
}

/// Ports asked for in a port-forward URL's query (`?port=80&port=443`).
fn ports_from_query(query: Option<&str>) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == "port" {
            let port = value.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| format!("invalid port {value:?}"))?;
            ports.push(port);
        }
    }
    if ports.is_empty() {
        return Err("no port given".to_string());
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ports() {
        assert_eq!(ports_from_query(Some("port=80&port=443")), Ok(vec![80, 443]));
        assert!(ports_from_query(Some("port=0")).is_err());
        assert!(ports_from_query(Some("port=x")).is_err());
        assert!(ports_from_query(None).is_err());
    }

    #[test]
    fn granted_ports_bound_what_a_session_reaches() {
        assert_eq!(websocket_ports(Some("port=80"), &[]), Ok(vec![80]));
        assert_eq!(websocket_ports(None, &[80, 443]), Ok(vec![80, 443]));
        assert_eq!(websocket_ports(Some("port=443"), &[80, 443]), Ok(vec![443]));
        let err = websocket_ports(Some("port=22"), &[80]).unwrap_err();
        assert!(err.contains("port 22"), "{err}");
        assert!(websocket_ports(None, &[]).is_err(), "no port at all");
        assert!(check_granted(8080, &[]).is_ok());
        assert!(check_granted(8080, &[80]).is_err());
        assert_eq!(requested_ports(&[80, 65535]), Ok(vec![80, 65535]));
        for bad in [0, -1, 65536] {
            assert!(requested_ports(&[80, bad]).unwrap_err().contains(&bad.to_string()));
        }
    }

    #[tokio::test]
    async fn dials_inside_own_namespace() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stream = dial(std::process::id() as i64, port).await.unwrap();
        assert_eq!(stream.peer_addr().unwrap().port(), port);
    }
}
