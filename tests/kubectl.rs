//! Real kubectl against pinshim: exec, attach, port-forward and cp through a
//! harness that plays the API server and kubelet (common::kube), over both
//! remote-command transports kubectl has (WebSocket and SPDY/3.1).
//! Throughput figures are printed next to Docker's own for the same
//! transfer; they are never asserted.

mod common;

use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Shim;
use common::kube::{Kube, KubeContainer, KubePod, Transport};
use common::pods::{self, IDLE, Pod, TestImage};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};

/// How long one kubectl (or docker) command that moves bulk data may take.
const BULK: Duration = Duration::from_secs(240);
const MIB: usize = 1024 * 1024;

// ------------------------------------------------------------------ set-up --

/// A container of the test pod: name, command, whether it keeps stdin open.
struct Spec<'a> {
    name: &'a str,
    command: &'a [&'a str],
    stdin: bool,
}

/// pinshim, one pod, and the harness that serves it to kubectl.
struct Cluster {
    shim: Shim,
    kube: Kube,
    image: TestImage,
    pod: Pod,
    kpod: KubePod,
}

async fn cluster(prefix: &str, specs: &[Spec<'_>]) -> Cluster {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, prefix).await;
    let pod = pods::run_pod(rt, prefix).await;
    let mut containers = Vec::new();
    for spec in specs {
        let mut config = pods::container_config(&pod, spec.name, &image, spec.command);
        // As a pod spec's `stdin: true` without `stdinOnce`: stdin stays
        // open across attaches.
        config.stdin = spec.stdin;
        config.stdin_once = false;
        let id = pods::create_and_start(rt, &pod, config).await;
        let image = image.reference.clone();
        containers.push(KubeContainer { name: spec.name.to_string(), id, image, stdin: spec.stdin, tty: false });
    }
    let meta = pod.config.metadata.clone().expect("pod metadata");
    let kpod = KubePod { namespace: meta.namespace, name: meta.name, sandbox_id: pod.id.clone(), containers };
    let kube = Kube::start(rt.clone()).await;
    kube.add_pod(kpod.clone());
    Cluster { shim, kube, image, pod, kpod }
}

impl Cluster {
    /// kubectl with `args` after `-n <namespace>`.
    fn kubectl(&self, transport: Transport, args: &[&str]) -> Command {
        let mut command = self.kube.kubectl(transport);
        command.args(["-n", &self.kpod.namespace]).args(args);
        command
    }

    fn container_id(&self, name: &str) -> &str {
        &self.kpod.containers.iter().find(|c| c.name == name).expect("container").id
    }

    /// What kubectl asked the harness for, to append to failure messages.
    fn trace(&self) -> String {
        let requests = self.kube.requests().join("\n  ");
        format!("harness saw:\n  {requests}\nupgrades: {:?}", self.kube.upgrades())
    }

    /// Every `subresource` session went over `transport` and was upgraded:
    /// kubectl falls back from WebSocket to SPDY silently otherwise.
    fn assert_transport(&self, subresource: &str, transport: Transport) {
        let sessions: Vec<_> = self.kube.upgrades().into_iter().filter(|u| u.subresource == subresource).collect();
        assert!(!sessions.is_empty(), "no {subresource} session reached the harness; {}", self.trace());
        for session in &sessions {
            let right = session.protocol.eq_ignore_ascii_case(transport.upgrade()) && session.status == 101;
            assert!(right, "{subresource} should have been a {transport:?} upgrade; {}", self.trace());
        }
    }

    async fn cleanup(self) {
        let rt = &self.shim.runtime;
        pods::cleanup(rt, &self.shim.images, &[&self.pod], &[&self.image.id]).await;
    }
}

// --------------------------------------------------------------- processes --

/// A child process whose output is collected as it comes.
struct Proc {
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

/// A finished process.
struct Done {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Done {
    fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

impl Proc {
    fn spawn(what: &str, mut command: Command) -> Proc {
        use std::process::Stdio;
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
        let mut child = command.spawn().unwrap_or_else(|e| panic!("start {what}: {e}"));
        let (stdout, stderr) = (Arc::default(), Arc::default());
        let readers = vec![
            collect(child.stdout.take().expect("stdout"), Arc::clone(&stdout)),
            collect(child.stderr.take().expect("stderr"), Arc::clone(&stderr)),
        ];
        let stdin = child.stdin.take();
        Proc { what: what.to_string(), child, stdin, stdout, stderr, readers }
    }

    fn output(&self) -> (String, String) {
        let text = |b: &Mutex<Vec<u8>>| String::from_utf8_lossy(&b.lock().expect("output")).into_owned();
        (text(&self.stdout), text(&self.stderr))
    }

    fn transcript(&self) -> String {
        let (stdout, stderr) = self.output();
        format!("{}: stdout {stdout:?}, stderr {stderr:?}", self.what)
    }

    async fn write(&mut self, data: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(data).await.unwrap_or_else(|e| panic!("write to {}: {e}", self.what));
        stdin.flush().await.expect("flush stdin");
    }

    /// Waits until stdout holds `needle`.
    async fn expect_stdout(&mut self, needle: &str, context: &dyn Fn() -> String) {
        let deadline = Instant::now() + pods::WAIT;
        while !self.output().0.contains(needle) {
            if Instant::now() > deadline || self.child.try_wait().ok().flatten().is_some() {
                tokio::time::sleep(Duration::from_millis(200)).await;
                panic!("{needle:?} never came; {}\n{}", self.transcript(), context());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Closes stdin and waits for the exit; kills and panics after `limit`.
    async fn finish(mut self, limit: Duration, context: &dyn Fn() -> String) -> Done {
        drop(self.stdin.take());
        let status = match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(status) => status.expect("wait"),
            Err(_) => {
                let _ = self.child.kill().await;
                panic!("{} did not end within {limit:?}; {}\n{}", self.what, self.transcript(), context());
            }
        };
        for reader in self.readers.drain(..) {
            let _ = reader.await;
        }
        let (stdout, stderr) = self.output();
        Done { status, stdout, stderr }
    }

    async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}

fn collect(
    mut from: impl AsyncRead + Unpin + Send + 'static,
    into: Arc<Mutex<Vec<u8>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = from.read(&mut buf).await {
            if n == 0 {
                break;
            }
            into.lock().expect("output").extend_from_slice(&buf[..n]);
        }
    })
}

/// Runs `command` to the end with nothing on stdin.
async fn run(what: &str, command: Command, limit: Duration, context: &dyn Fn() -> String) -> Done {
    Proc::spawn(what, command).finish(limit, context).await
}

fn docker_cli(args: &[&str]) -> Command {
    let mut command = Command::new("docker");
    command.args(args);
    command
}

// -------------------------------------------------------------------- data --

/// Incompressible bytes (xorshift), different on every run.
fn random_bytes(len: usize) -> Vec<u8> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos());
    let mut x = (nanos.unwrap_or(1) as u64) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn mib_per_s(bytes: usize, took: Duration) -> f64 {
    bytes as f64 / MIB as f64 / took.as_secs_f64()
}

/// Sends `payload` into `tx` while reading as many bytes back from `rx`;
/// returns the time it took and the SHA-256 of what came back.
async fn echo<W, R>(mut tx: W, mut rx: R, payload: Arc<Vec<u8>>) -> (Duration, String, usize)
where
    W: AsyncWrite + Unpin + Send + 'static,
    R: AsyncRead + Unpin,
{
    let start = Instant::now();
    let len = payload.len();
    let sender = tokio::spawn(async move {
        for chunk in payload.chunks(256 * 1024) {
            tx.write_all(chunk).await?;
        }
        tx.shutdown().await?;
        Ok::<_, std::io::Error>(tx)
    });
    let (mut hash, mut received) = (Sha256::new(), 0usize);
    let mut buf = vec![0u8; 256 * 1024];
    while received < len {
        let n = match tokio::time::timeout(pods::WAIT, rx.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => break,
        };
        hash.update(&buf[..n]);
        received += n;
    }
    let took = start.elapsed();
    // A short echo means the far end stopped reading: the sender may be stuck.
    if received < len {
        sender.abort();
    }
    let _ = sender.await;
    (took, hex::encode(hash.finalize()), received)
}

// ------------------------------------------------------------------- tests --

async fn exec_streams_and_exit_codes(transport: Transport) {
    let c = cluster("kc-exec", &[Spec { name: "app", command: IDLE, stdin: false }]).await;
    let pod = c.kpod.name.clone();

    let script = "echo to-stdout; echo to-stderr >&2";
    let command = c.kubectl(transport, &["exec", &pod, "-c", "app", "--", "sh", "-c", script]);
    let done = run("kubectl exec", command, pods::WAIT, &|| c.trace()).await;
    let shown = format!("stdout {:?}, stderr {:?}; {}", done.stdout, done.stderr, c.trace());
    assert_eq!(done.code(), Some(0), "{shown}");
    assert_eq!(done.stdout, "to-stdout\n", "{shown}");
    assert_eq!(done.stderr, "to-stderr\n", "{shown}");

    let command = c.kubectl(transport, &["exec", &pod, "-c", "app", "--", "sh", "-c", "echo before; exit 3"]);
    let done = run("kubectl exec", command, pods::WAIT, &|| c.trace()).await;
    let shown = format!("stdout {:?}, stderr {:?}; {}", done.stdout, done.stderr, c.trace());
    assert_eq!(done.code(), Some(3), "{shown}");
    assert_eq!(done.stdout, "before\n", "{shown}");
    assert!(done.stderr.contains("exit code 3"), "{shown}");

    c.assert_transport("exec", transport);
    c.cleanup().await;
}

#[tokio::test]
async fn exec_streams_and_exit_codes_over_websocket() {
    exec_streams_and_exit_codes(Transport::WebSocket).await;
}

#[tokio::test]
async fn exec_streams_and_exit_codes_over_spdy() {
    exec_streams_and_exit_codes(Transport::Spdy).await;
}

/// `kubectl exec -it` with a terminal of its own: script(1) gives it a pty
/// and copies our pipe to it, as a person typing.
async fn exec_interactive_tty(transport: Transport) {
    let c = cluster("kc-tty", &[Spec { name: "app", command: IDLE, stdin: false }]).await;
    let kubectl = common::kube::kubectl_path().display().to_string();
    let line = format!("{kubectl} -n {} exec -it {} -c app -- sh", c.kpod.namespace, c.kpod.name);
    let mut command = Command::new("script");
    command.args(["-qfec", &line, "/dev/null"]).envs(c.kube.kubectl_env(transport)).env("TERM", "xterm");
    let mut shell = Proc::spawn("kubectl exec -it", command);

    shell.expect_stdout("# ", &|| c.trace()).await;
    shell.write(b"echo typed-$((6*7))\r").await;
    shell.expect_stdout("typed-42", &|| c.trace()).await;
    shell.write(b"exit 5\r").await;
    let done = shell.finish(pods::WAIT, &|| c.trace()).await;
    let shown = format!("output {:?} {:?}; {}", done.stdout, done.stderr, c.trace());
    assert_eq!(done.code(), Some(5), "{shown}");

    c.assert_transport("exec", transport);
    c.cleanup().await;
}

#[tokio::test]
async fn exec_interactive_tty_over_websocket() {
    exec_interactive_tty(Transport::WebSocket).await;
}

#[tokio::test]
async fn exec_interactive_tty_over_spdy() {
    exec_interactive_tty(Transport::Spdy).await;
}

async fn attach_delivers_stdin(transport: Transport) {
    let reader = &["sh", "-c", "while read l; do echo got:$l; done"];
    let c = cluster("kc-attach", &[Spec { name: "reader", command: reader, stdin: true }]).await;
    let command = c.kubectl(transport, &["attach", "-i", &c.kpod.name, "-c", "reader"]);
    let mut attached = Proc::spawn("kubectl attach -i", command);

    attached.write(b"first line\n").await;
    attached.expect_stdout("got:first line", &|| c.trace()).await;
    attached.write(b"second\n").await;
    attached.expect_stdout("got:second", &|| c.trace()).await;
    attached.kill().await;

    c.assert_transport("attach", transport);
    c.cleanup().await;
}

#[tokio::test]
async fn attach_delivers_stdin_over_websocket() {
    attach_delivers_stdin(Transport::WebSocket).await;
}

#[tokio::test]
async fn attach_delivers_stdin_over_spdy() {
    attach_delivers_stdin(Transport::Spdy).await;
}

async fn port_forward_echoes_a_hundred_mebibytes_each_way(transport: Transport) {
    let c = cluster(
        "kc-pf",
        &[
            Spec { name: "echo", command: &["nc", "-l", "-p", "8080", "-e", "cat"], stdin: false },
            Spec { name: "idle", command: IDLE, stdin: false },
        ],
    )
    .await;
    pods::wait_listening(&c.shim.runtime, c.container_id("echo"), 8080).await;
    let payload = Arc::new(random_bytes(100 * MIB));
    let sent = sha256_hex(&payload);

    let command = c.kubectl(transport, &["port-forward", &format!("pod/{}", c.kpod.name), ":8080"]);
    let mut forward = Proc::spawn("kubectl port-forward", command);
    forward.expect_stdout(" -> 8080", &|| c.trace()).await;
    let (stdout, _) = forward.output();
    let port = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Forwarding from 127.0.0.1:"))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no local port in {stdout:?}"))
        .to_string();
    let conn = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}")).await.expect("connect to forwarded port");
    let (rx, tx) = conn.into_split();
    let (took, got, received) = echo(tx, rx, payload.clone()).await;
    let transcript = forward.transcript();
    forward.kill().await;
    assert_eq!(received, payload.len(), "bytes echoed through port-forward; {transcript}\n{}", c.trace());
    assert_eq!(got, sent, "data echoed through port-forward");

    let mut command = docker_cli(&["exec", "-i", c.container_id("idle"), "cat"]);
    command.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).kill_on_drop(true);
    let mut cat = command.spawn().expect("docker exec");
    let (tx, rx) = (cat.stdin.take().expect("stdin"), cat.stdout.take().expect("stdout"));
    let (docker_took, docker_got, _) = echo(tx, rx, payload.clone()).await;
    let _ = tokio::time::timeout(BULK, cat.wait()).await;
    assert_eq!(docker_got, sent, "data echoed through docker exec");

    let (ours, theirs) = (mib_per_s(payload.len(), took), mib_per_s(payload.len(), docker_took));
    println!(
        "port-forward, 100 MiB each way: kubectl over {transport:?} {ours:.1} MiB/s, docker exec -i cat {theirs:.1} \
         MiB/s, ratio {:.2}",
        ours / theirs
    );
    c.assert_transport("portforward", transport);
    c.cleanup().await;
}

#[tokio::test]
async fn port_forward_echoes_a_hundred_mebibytes_each_way_over_spdy() {
    port_forward_echoes_a_hundred_mebibytes_each_way(Transport::Spdy).await;
}

/// kubectl tunnels SPDY in WebSocket messages here, as crictl does; an API
/// server may translate it to SPDY before kubelet, this harness passes it on.
#[tokio::test]
async fn port_forward_echoes_a_hundred_mebibytes_each_way_over_websocket() {
    port_forward_echoes_a_hundred_mebibytes_each_way(Transport::WebSocket).await;
}

async fn cp_fifty_mebibytes_both_ways(transport: Transport) {
    let c = cluster("kc-cp", &[Spec { name: "app", command: IDLE, stdin: false }]).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let data = random_bytes(50 * MIB);
    let local = dir.path().join("in.bin");
    std::fs::write(&local, &data).expect("write local file");
    let local = local.display().to_string();
    let remote = format!("{}:/tmp/in.bin", c.kpod.name);

    let start = Instant::now();
    let command = c.kubectl(transport, &["cp", &local, &remote, "-c", "app"]);
    let done = run("kubectl cp (into)", command, BULK, &|| c.trace()).await;
    let up = start.elapsed();
    assert_eq!(done.code(), Some(0), "stdout {:?}, stderr {:?}; {}", done.stdout, done.stderr, c.trace());
    let sum = pods::exec_ok(&c.shim.runtime, c.container_id("app"), &["sha256sum", "/tmp/in.bin"]).await;
    assert_eq!(sum.split_whitespace().next(), Some(sha256_hex(&data).as_str()), "file copied into the container");

    let out = dir.path().join("out.bin").display().to_string();
    let start = Instant::now();
    let command = c.kubectl(transport, &["cp", &remote, &out, "-c", "app"]);
    let done = run("kubectl cp (out of)", command, BULK, &|| c.trace()).await;
    let down = start.elapsed();
    assert_eq!(done.code(), Some(0), "stdout {:?}, stderr {:?}; {}", done.stdout, done.stderr, c.trace());
    let back = std::fs::read(&out).expect("copied-out file");
    assert!(back == data, "file copied out of the container: {} of {} bytes, byte for byte", back.len(), data.len());

    let id = c.container_id("app").to_string();
    let start = Instant::now();
    let done =
        run("docker cp (into)", docker_cli(&["cp", &local, &format!("{id}:/tmp/docker.bin")]), BULK, &String::new)
            .await;
    let docker_up = start.elapsed();
    assert_eq!(done.code(), Some(0), "docker cp: {}", done.stderr);
    let docker_out = dir.path().join("docker.bin").display().to_string();
    let start = Instant::now();
    let done =
        run("docker cp (out)", docker_cli(&["cp", &format!("{id}:/tmp/docker.bin"), &docker_out]), BULK, &String::new)
            .await;
    let docker_down = start.elapsed();
    assert_eq!(done.code(), Some(0), "docker cp: {}", done.stderr);
    assert!(std::fs::read(&docker_out).expect("docker cp file") == data, "docker cp round trip");

    let rate = |took| mib_per_s(data.len(), took);
    println!(
        "cp 50 MiB over {transport:?}: into {:.1} MiB/s (docker cp {:.1}, ratio {:.2}), \
         out of {:.1} MiB/s (docker cp {:.1}, ratio {:.2})",
        rate(up),
        rate(docker_up),
        rate(up) / rate(docker_up),
        rate(down),
        rate(docker_down),
        rate(down) / rate(docker_down),
    );
    c.assert_transport("exec", transport);
    c.cleanup().await;
}

#[tokio::test]
async fn cp_fifty_mebibytes_both_ways_over_websocket() {
    cp_fifty_mebibytes_both_ways(Transport::WebSocket).await;
}

#[tokio::test]
async fn cp_fifty_mebibytes_both_ways_over_spdy() {
    cp_fifty_mebibytes_both_ways(Transport::Spdy).await;
}
