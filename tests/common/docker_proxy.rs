//! A stand-in for dockerd's socket that forwards to the real one and can
//! play dockerd going down: connections are cut and new ones refused,
//! except the event streams already open, which carry the last events as a
//! shutting-down dockerd's do.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::AbortHandle;

/// One forwarded connection and whether its latest request was `/events`.
struct Forwarded {
    events: Arc<AtomicBool>,
    task: AbortHandle,
}

pub struct DockerProxy {
    _dir: tempfile::TempDir,
    path: PathBuf,
    going_down: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<Forwarded>>>,
    acceptor: AbortHandle,
}

impl DockerProxy {
    pub fn start() -> DockerProxy {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&path).expect("bind proxy socket");
        let upstream = real_socket();
        let going_down = Arc::new(AtomicBool::new(false));
        let connections: Arc<Mutex<Vec<Forwarded>>> = Arc::default();
        let (down, conns) = (going_down.clone(), connections.clone());
        let acceptor = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if down.load(Ordering::SeqCst) {
                    continue;
                }
                let events = Arc::new(AtomicBool::new(false));
                let task = tokio::spawn(forward(client, upstream.clone(), events.clone()));
                conns.lock().expect("connections").push(Forwarded { events, task: task.abort_handle() });
            }
        })
        .abort_handle();
        DockerProxy { _dir: dir, path, going_down, connections, acceptor }
    }

    /// The endpoint to give pinshim's `--docker-endpoint`.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    /// From now on only the open event streams get through.
    pub fn go_down(&self) {
        self.going_down.store(true, Ordering::SeqCst);
        for conn in self.connections.lock().expect("connections").iter() {
            if !conn.events.load(Ordering::SeqCst) {
                conn.task.abort();
            }
        }
    }
}

impl Drop for DockerProxy {
    fn drop(&mut self) {
        self.acceptor.abort();
        for conn in self.connections.lock().expect("connections").iter() {
            conn.task.abort();
        }
    }
}

fn real_socket() -> PathBuf {
    let host = std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    Path::new(host.strip_prefix("unix://").expect("dockerd on a unix socket")).to_path_buf()
}

/// Copies both ways, noting on the way up whether the newest request
/// line asks for `/events`.
async fn forward(client: UnixStream, upstream: PathBuf, events: Arc<AtomicBool>) {
    let Ok(server) = UnixStream::connect(&upstream).await else { return };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up = async {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = client_read.read(&mut buf).await {
            if n == 0 {
                break;
            }
            let chunk = &buf[..n];
            if let Some(line) = request_line(chunk) {
                events.store(line.contains("/events"), Ordering::SeqCst);
            }
            if server_write.write_all(chunk).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    };
    let down = async {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    };
    tokio::join!(up, down);
}

/// `GET /v1.41/events?… HTTP/1.1` when `chunk` starts a request.
fn request_line(chunk: &[u8]) -> Option<String> {
    let head = String::from_utf8_lossy(&chunk[..chunk.len().min(2048)]);
    let line = head.lines().next()?;
    let method = line.split(' ').next()?;
    ["GET", "POST", "DELETE", "HEAD", "PUT"].contains(&method).then(|| line.to_string())
}
