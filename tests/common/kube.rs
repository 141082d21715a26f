//! A stand-in for the API server and kubelet in front of pinshim, so that
//! real kubectl reaches containers the way it does in a cluster. It serves
//! the discovery documents and pod objects kubectl reads and, on the pod's
//! exec/attach/portforward subresources, calls the CRI as kubelet does and
//! proxies the client's upgrade to the streaming URL pinshim returns.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use pinshim::api;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::env;
use super::pods::Rt;

type Body = Full<Bytes>;

/// The headers of an upgrade request that kubelet's proxy passes on.
const UPGRADE_HEADERS: &[&str] = &[
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "x-stream-protocol-version",
];

/// How kubectl carries exec, attach and cp (which is exec).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    WebSocket,
    Spdy,
}

impl Transport {
    /// The Upgrade header the harness sees for this transport.
    pub fn upgrade(self) -> &'static str {
        match self {
            Transport::WebSocket => "websocket",
            Transport::Spdy => "SPDY/3.1",
        }
    }
}

/// A container as the pod object lists it.
#[derive(Clone, Debug)]
pub struct KubeContainer {
    pub name: String,
    /// The CRI container id.
    pub id: String,
    pub image: String,
    pub stdin: bool,
    pub tty: bool,
}

/// A pod the harness answers for, backed by a CRI sandbox.
#[derive(Clone, Debug)]
pub struct KubePod {
    pub namespace: String,
    pub name: String,
    pub sandbox_id: String,
    pub containers: Vec<KubeContainer>,
}

/// One streaming request the harness proxied.
#[derive(Clone, Debug)]
pub struct Upgrade {
    /// `exec`, `attach` or `portforward`.
    pub subresource: String,
    /// The client's Upgrade header.
    pub protocol: String,
    /// What pinshim's streaming server answered.
    pub status: u16,
}

struct State {
    runtime: Rt,
    pods: Mutex<HashMap<(String, String), KubePod>>,
    requests: Mutex<Vec<String>>,
    upgrades: Mutex<Vec<Upgrade>>,
}

/// The running harness, with a kubeconfig that points kubectl at it.
pub struct Kube {
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    state: Arc<State>,
    server: tokio::task::JoinHandle<()>,
}

impl Kube {
    pub async fn start(runtime: Rt) -> Kube {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind harness");
        let addr = listener.local_addr().expect("harness address");
        let state =
            Arc::new(State { runtime, pods: Mutex::default(), requests: Mutex::default(), upgrades: Mutex::default() });
        let server = tokio::spawn(serve(listener, state.clone()));
        let dir = tempfile::tempdir().expect("harness dir");
        std::fs::write(dir.path().join("kubeconfig"), kubeconfig(addr)).expect("write kubeconfig");
        Kube { addr, dir, state, server }
    }

    pub fn add_pod(&self, pod: KubePod) {
        let key = (pod.namespace.clone(), pod.name.clone());
        self.state.pods.lock().expect("pods").insert(key, pod);
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// Every request kubectl made, as `METHOD path?query [upgrade]`.
    pub fn requests(&self) -> Vec<String> {
        self.state.requests.lock().expect("requests").clone()
    }

    pub fn upgrades(&self) -> Vec<Upgrade> {
        self.state.upgrades.lock().expect("upgrades").clone()
    }

    /// The environment kubectl runs with: this kubeconfig, a home (and so a
    /// discovery cache) of its own, and `transport` for remote commands and
    /// port forwarding (over WebSocket, port forwarding tunnels SPDY).
    pub fn kubectl_env(&self, transport: Transport) -> Vec<(String, String)> {
        let websockets = (transport == Transport::WebSocket).to_string();
        [
            ("KUBECONFIG", self.kubeconfig().display().to_string()),
            ("HOME", self.dir.path().display().to_string()),
            ("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", websockets.clone()),
            ("KUBECTL_PORT_FORWARD_WEBSOCKETS", websockets),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// A kubectl command set up by [`Kube::kubectl_env`], killed when dropped.
    pub fn kubectl(&self, transport: Transport) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(kubectl_path());
        for var in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"] {
            command.env_remove(var);
        }
        command.envs(self.kubectl_env(transport)).kill_on_drop(true);
        command
    }
}

impl Drop for Kube {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The kubectl binary `hack/lib.sh` installs; its absence fails the test.
pub fn kubectl_path() -> PathBuf {
    let path = PathBuf::from(env("PINSHIM_TEST_KUBECTL"));
    assert!(path.is_file(), "kubectl is not installed at {}: run hack/env-up.sh", path.display());
    path
}

fn kubeconfig(addr: SocketAddr) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: pinshim\n  cluster:\n    server: http://{addr}\n\
         contexts:\n- name: pinshim\n  context:\n    cluster: pinshim\n    user: pinshim\n\
         current-context: pinshim\nusers:\n- name: pinshim\n  user: {{}}\n"
    )
}

async fn serve(listener: TcpListener, state: Arc<State>) {
    loop {
        let Ok((conn, _)) = listener.accept().await else { continue };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(conn), service)
                .with_upgrades()
                .await;
        });
    }
}

async fn handle(state: &State, req: Request<Incoming>) -> Response<Body> {
    let upgrade = header_values(req.headers(), "upgrade").join(",");
    let line = format!("{} {} {upgrade}", req.method(), req.uri());
    state.requests.lock().expect("requests").push(line.trim_end().to_string());

    let path = req.uri().path().trim_end_matches('/').to_string();
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (req.method(), parts.as_slice()) {
        (&Method::GET, ["api"]) => ok(api_versions()),
        (&Method::GET, ["apis"]) => ok(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})),
        (&Method::GET, ["api", "v1"]) => ok(core_resources()),
        (&Method::GET, ["api", "v1", "namespaces", ns, "pods", name]) => match find_pod(state, ns, name) {
            Some(pod) => ok(pod_object(&pod)),
            None => not_found(&format!("pods \"{name}\" not found")),
        },
        (_, ["api", "v1", "namespaces", ns, "pods", name, sub @ ("exec" | "attach" | "portforward")]) => {
            let Some(pod) = find_pod(state, ns, name) else {
                return not_found(&format!("pods \"{name}\" not found"));
            };
            stream(state, req, &pod, sub).await
        }
        _ => not_found(&format!("the harness does not serve {path}")),
    }
}

fn find_pod(state: &State, ns: &str, name: &str) -> Option<KubePod> {
    state.pods.lock().expect("pods").get(&(ns.to_string(), name.to_string())).cloned()
}

/// Kubelet's part: the CRI call for the subresource, then the proxy.
async fn stream(state: &State, req: Request<Incoming>, pod: &KubePod, sub: &str) -> Response<Body> {
    let query = parse_query(req.uri().query().unwrap_or_default());
    let url = match cri_url(state, pod, sub, &query).await {
        Ok(url) => url,
        Err(status) => return status_response(status),
    };
    let protocol = header_values(req.headers(), "upgrade").join(",");
    let response = proxy(req, &url).await;
    let upgrade = Upgrade { subresource: sub.to_string(), protocol, status: response.status().as_u16() };
    state.upgrades.lock().expect("upgrades").push(upgrade);
    response
}

async fn cri_url(state: &State, pod: &KubePod, sub: &str, query: &[(String, String)]) -> Result<String, Value> {
    let rt = state.runtime.clone();
    let values = |key: &str| query.iter().filter(|(k, _)| k == key).map(|(_, v)| v.clone()).collect::<Vec<_>>();
    let flag = |key: &str| values(key).first().is_some_and(|v| matches!(v.as_str(), "1" | "true" | "True"));
    if sub == "portforward" {
        let port = port_numbers(&values("ports"))?;
        let request = api::PortForwardRequest { pod_sandbox_id: pod.sandbox_id.clone(), port };
        return Ok(rt.clone().port_forward(request).await.map_err(grpc_status)?.into_inner().url);
    }
    let wanted = values("container").into_iter().next();
    let container = match wanted {
        Some(name) => pod.containers.iter().find(|c| c.name == name),
        None => pod.containers.first(),
    }
    .ok_or_else(|| status(404, "NotFound", &format!("container not found in pod {}", pod.name)))?;
    let (stdin, stdout, stderr, tty) = (flag("stdin"), flag("stdout"), flag("stderr"), flag("tty"));
    let container_id = container.id.clone();
    let url = if sub == "exec" {
        let request = api::ExecRequest { container_id, cmd: values("command"), tty, stdin, stdout, stderr };
        rt.clone().exec(request).await.map_err(grpc_status)?.into_inner().url
    } else {
        let request = api::AttachRequest { container_id, stdin, tty, stdout, stderr };
        rt.clone().attach(request).await.map_err(grpc_status)?.into_inner().url
    };
    Ok(url)
}

/// `ports` values, each one port or a comma-separated list.
fn port_numbers(values: &[String]) -> Result<Vec<i32>, Value> {
    let bad = |p: &str| status(400, "BadRequest", &format!("bad port {p:?}"));
    values.iter().flat_map(|v| v.split(',')).map(|p| p.trim().parse().map_err(|_| bad(p))).collect()
}

/// Kubelet's upgrade-aware proxy: the client's request goes to the
/// streaming URL with the same upgrade headers; after a 101 both
/// connections are spliced.
async fn proxy(mut req: Request<Incoming>, url: &str) -> Response<Body> {
    let Some((authority, path)) = url.strip_prefix("http://").and_then(|rest| rest.split_once('/')) else {
        return status_response(status(500, "InternalError", &format!("unexpected streaming URL {url}")));
    };
    let query = req.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
    let mut head = format!("{} /{path}{query} HTTP/1.1\r\nHost: {authority}\r\n", req.method());
    for name in UPGRADE_HEADERS {
        for value in header_values(req.headers(), name) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str("\r\n");
    let backend = async {
        let mut conn = TcpStream::connect(authority).await?;
        conn.write_all(head.as_bytes()).await?;
        let (status, headers, rest) = read_response_head(&mut conn).await?;
        Ok::<_, std::io::Error>((conn, status, headers, rest))
    };
    let (mut conn, code, headers, mut rest) = match backend.await {
        Ok(answer) => answer,
        Err(e) => return status_response(status(502, "InternalError", &format!("streaming server: {e}"))),
    };
    let mut response = Response::builder().status(code);
    for (name, value) in &headers {
        response = response.header(name.as_str(), value.as_str());
    }
    if code != 101 {
        let length = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        while rest.len() < length {
            let mut buf = [0u8; 4096];
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => rest.extend_from_slice(&buf[..n]),
            }
        }
        rest.truncate(length);
        return response.body(Body::from(rest)).expect("proxied response");
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else { return };
        let mut client = TokioIo::new(upgraded);
        if client.write_all(&rest).await.is_ok() {
            let _ = tokio::io::copy_bidirectional(&mut client, &mut conn).await;
        }
    });
    response.body(Body::default()).expect("upgrade response")
}

type Head = (u16, Vec<(String, String)>, Vec<u8>);

/// Reads an HTTP/1.1 response head; returns status, headers and the bytes
/// after the head (the start of the upgraded stream or of the body).
async fn read_response_head(conn: &mut TcpStream) -> std::io::Result<Head> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let mut buf = Vec::new();
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > 64 * 1024 {
            return Err(bad("response head too long"));
        }
        let mut chunk = [0u8; 4096];
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Err(bad("connection closed before the response head"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let text = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let code = status_line.split_whitespace().nth(1).and_then(|c| c.parse().ok()).ok_or_else(|| bad(status_line))?;
    let headers =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_string(), v.trim().to_string())).collect();
    Ok((code, headers, buf[end + 4..].to_vec()))
}

fn header_values(headers: &HeaderMap, name: &str) -> Vec<String> {
    headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).map(str::to_string).collect()
}

/// `a=1&b=x+y` as Go's url.Values encodes it.
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (unescape(k), unescape(v))
        })
        .collect()
}

fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(b)) => {
                out.push(b);
                i += 2;
            }
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ------------------------------------------------------------- API objects --

fn api_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    })
}

fn core_resources() -> Value {
    let resource = |name: &str, kind: &str, namespaced: bool, verbs: &[&str]| json!({"name": name, "singularName": "", "namespaced": namespaced, "kind": kind, "verbs": verbs});
    json!({
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            resource("namespaces", "Namespace", false, &["get", "list"]),
            resource("pods", "Pod", true, &["get", "list"]),
            resource("pods/attach", "PodAttachOptions", true, &["create", "get"]),
            resource("pods/exec", "PodExecOptions", true, &["create", "get"]),
            resource("pods/portforward", "PodPortForwardOptions", true, &["create", "get"]),
        ],
    })
}

fn pod_object(pod: &KubePod) -> Value {
    let started = "2024-01-01T00:00:00Z";
    let containers: Vec<Value> = pod
        .containers
        .iter()
        .map(|c| json!({"name": c.name, "image": c.image, "stdin": c.stdin, "tty": c.tty}))
        .collect();
    let statuses: Vec<Value> = pod
        .containers
        .iter()
        .map(|c| {
            json!({
                "name": c.name, "image": c.image, "imageID": "", "containerID": format!("docker://{}", c.id),
                "ready": true, "started": true, "restartCount": 0, "state": {"running": {"startedAt": started}},
            })
        })
        .collect();
    json!({
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": pod.name, "namespace": pod.namespace, "uid": pod.sandbox_id,
            "resourceVersion": "1", "creationTimestamp": started,
        },
        "spec": {"containers": containers, "nodeName": "pinshim-node"},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "hostIP": "127.0.0.1",
            "startTime": started,
            "containerStatuses": statuses,
        },
    })
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason, "code": code})
}

fn grpc_status(e: tonic::Status) -> Value {
    status(500, "InternalError", &format!("runtime: {}: {}", e.code(), e.message()))
}

fn ok(value: Value) -> Response<Body> {
    json_response(StatusCode::OK, &value)
}

fn not_found(message: &str) -> Response<Body> {
    status_response(status(404, "NotFound", message))
}

fn status_response(value: Value) -> Response<Body> {
    let code = value["code"].as_u64().and_then(|c| StatusCode::from_u16(c as u16).ok());
    json_response(code.unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), &value)
}

fn json_response(code: StatusCode, value: &Value) -> Response<Body> {
    let mut response = Response::new(Body::from(value.to_string()));
    *response.status_mut() = code;
    response.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}
