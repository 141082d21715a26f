//! Exec, Attach and PortForward over WebSocket against real containers,
//! speaking the Kubernetes channel protocols as kubectl and crictl do.

mod common;

use std::time::Duration;

use common::Shim;
use common::pods::{self, IDLE};
use futures::{SinkExt, StreamExt};
use pinshim::api;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const V5: &str = "v5.channel.k8s.io";
const V4: &str = "v4.channel.k8s.io";

async fn connect(url: &str, protocol: &str) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let mut request = url.replacen("http://", "ws://", 1).into_client_request().expect("request");
    request.headers_mut().insert("Sec-WebSocket-Protocol", protocol.parse().expect("header"));
    tokio_tungstenite::connect_async(request).await.map(|(ws, _)| ws)
}

/// What a remote command printed, and its final status, once it ends.
#[derive(Default, Debug)]
struct Transcript {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    status: Option<serde_json::Value>,
    /// The code of the server's Close frame; client-go fails a session
    /// closed without one.
    close_code: Option<u16>,
}

async fn drain(ws: &mut Ws) -> Transcript {
    let mut t = Transcript::default();
    let deadline = tokio::time::sleep(pods::WAIT);
    tokio::pin!(deadline);
    loop {
        let message = tokio::select! {
            m = ws.next() => m,
            () = &mut deadline => panic!("remote command did not end: {t:?}"),
        };
        let Some(Ok(message)) = message else { break };
        if let Message::Close(frame) = &message {
            t.close_code = frame.as_ref().map(|f| u16::from(f.code));
        }
        let Message::Binary(data) = message else { continue };
        let Some((channel, data)) = data.split_first() else { continue };
        match channel {
            1 => t.stdout.extend_from_slice(data),
            2 => t.stderr.extend_from_slice(data),
            3 if !data.is_empty() => t.status = Some(serde_json::from_slice(data).expect("status JSON")),
            _ => {}
        }
    }
    t
}

fn exit_code(status: &serde_json::Value) -> i64 {
    if status["status"] == "Success" {
        return 0;
    }
    status["details"]["causes"][0]["message"].as_str().and_then(|m| m.parse().ok()).expect("exit code cause")
}

#[tokio::test]
async fn exec_output_stdin_and_exit_codes() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let (pod, image, id) = pods::running_container(&shim, "ws-exec").await;

    let url = pods::exec_url(rt, &id, &["sh", "-c", "echo hello; echo oops >&2"], false, false).await;
    let t = drain(&mut connect(&url, V5).await.expect("connect")).await;
    assert_eq!(t.close_code, Some(1000), "normal closure");
    assert_eq!((t.stdout.as_slice(), t.stderr.as_slice()), (&b"hello\n"[..], &b"oops\n"[..]));
    assert_eq!(exit_code(&t.status.expect("status")), 0);

    let url = pods::exec_url(rt, &id, &["sh", "-c", "exit 3"], false, false).await;
    let t = drain(&mut connect(&url, V4).await.expect("connect")).await;
    assert_eq!(exit_code(&t.status.expect("status")), 3);

    // stdin: what we send comes back through cat; closing stdin (v5) ends it.
    let url = pods::exec_url(rt, &id, &["cat"], true, false).await;
    let mut ws = connect(&url, V5).await.expect("connect");
    ws.send(Message::binary(b"\0abc\ndef".to_vec())).await.expect("stdin");
    ws.send(Message::binary(vec![255, 0])).await.expect("close stdin");
    let t = drain(&mut ws).await;
    assert_eq!(t.stdout, b"abc\ndef");
    assert_eq!(exit_code(&t.status.expect("status")), 0);

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

#[tokio::test]
async fn tty_exec_sees_resize() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let (pod, image, id) = pods::running_container(&shim, "ws-tty").await;

    let url = pods::exec_url(rt, &id, &["sh", "-c", "sleep 1; stty size"], true, true).await;
    let mut ws = connect(&url, V5).await.expect("connect");
    ws.send(Message::binary(b"\x04{\"Width\":100,\"Height\":40}".to_vec())).await.expect("resize");
    let t = drain(&mut ws).await;
    assert_eq!(String::from_utf8_lossy(&t.stdout).trim(), "40 100");
    assert!(t.stderr.is_empty(), "a tty merges stderr into stdout");

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

#[tokio::test]
async fn attach_to_a_container_with_stdin() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "ws-attach").await;
    let pod = pods::run_pod(rt, "ws-attach").await;
    let mut config = pods::container_config(&pod, "echo", &image, &["cat"]);
    config.stdin = true;
    let id = pods::create_and_start(rt, &pod, config).await;

    let request = api::AttachRequest { container_id: id.clone(), stdin: true, tty: false, stdout: true, stderr: true };
    let url = rt.clone().attach(request).await.expect("attach").into_inner().url;
    let mut ws = connect(&url, V5).await.expect("connect");
    ws.send(Message::binary(b"\0ping\n".to_vec())).await.expect("stdin");
    let mut seen = Vec::new();
    while !seen.ends_with(b"ping\n") {
        let message = tokio::time::timeout(pods::WAIT, ws.next()).await.expect("echo in time");
        if let Some(Ok(Message::Binary(data))) = message
            && data.first() == Some(&1)
        {
            seen.extend_from_slice(&data[1..]);
        }
    }
    ws.close(None).await.ok();

    // A container without stdin cannot take an attached stdin.
    let idle = pods::create_and_start(rt, &pod, pods::container_config(&pod, "idle", &image, IDLE)).await;
    let request = api::AttachRequest { container_id: idle, stdin: true, tty: false, stdout: true, stderr: true };
    let err = rt.clone().attach(request).await.expect_err("no stdin to attach");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

#[tokio::test]
async fn port_forward_moves_ten_mebibytes_both_ways() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "ws-pf").await;
    let pod = pods::run_pod(rt, "ws-pf").await;
    let server = pods::create_and_start(
        rt,
        &pod,
        pods::container_config(&pod, "echo", &image, &["nc", "-l", "-p", "8080", "-e", "cat"]),
    )
    .await;
    pods::wait_listening(rt, &server, 8080).await;

    let request = api::PortForwardRequest { pod_sandbox_id: pod.id.clone(), port: vec![8080] };
    let refused_request = api::PortForwardRequest { pod_sandbox_id: pod.id.clone(), port: vec![8080] };
    let refused_url = rt.clone().port_forward(refused_request).await.expect("port forward").into_inner().url;
    let refused = connect(&format!("{refused_url}?port=22"), V4).await.expect_err("22 was not requested");
    assert!(refused.to_string().contains("400"), "{refused}");
    let bad = api::PortForwardRequest { pod_sandbox_id: pod.id.clone(), port: vec![70000] };
    let err = rt.clone().port_forward(bad).await.expect_err("not a port");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
    let url = rt.clone().port_forward(request).await.expect("port forward").into_inner().url;
    let ws = connect(&format!("{url}?port=8080"), V4).await.expect("connect");
    let (mut tx, mut rx) = ws.split();

    let payload: Vec<u8> = (0..10 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let expected = payload.clone();
    let sender = tokio::spawn(async move {
        for chunk in payload.chunks(64 * 1024) {
            let mut frame = vec![0u8];
            frame.extend_from_slice(chunk);
            tx.send(Message::binary(frame)).await.expect("send");
        }
        tx
    });
    let mut received = Vec::with_capacity(expected.len());
    let mut prefixes = 0;
    while received.len() < expected.len() {
        let message = tokio::time::timeout(pods::WAIT, rx.next()).await.expect("data in time");
        let Some(Ok(Message::Binary(data))) = message else { panic!("stream ended early: {message:?}") };
        match data.split_first() {
            // Each channel opens with the port number, little-endian.
            Some((0 | 1, rest)) if rest == 8080u16.to_le_bytes() && prefixes < 2 => prefixes += 1,
            Some((0, rest)) => received.extend_from_slice(rest),
            Some((1, rest)) => panic!("port-forward error: {}", String::from_utf8_lossy(rest)),
            other => panic!("unexpected frame {other:?}"),
        }
    }
    assert_eq!(prefixes, 2);
    assert!(received == expected, "10 MiB came back intact");
    drop(sender.await.expect("sender"));

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

#[tokio::test]
async fn tokens_are_single_use_and_unknown_ones_refused() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let (pod, image, id) = pods::running_container(&shim, "ws-token").await;

    let url = pods::exec_url(rt, &id, &["true"], false, false).await;
    drain(&mut connect(&url, V5).await.expect("first use")).await;
    let reused = connect(&url, V5).await.expect_err("second use");
    assert!(reused.to_string().contains("404"), "{reused}");
    let forged = format!("{}/exec/{}", url.rsplit_once("/exec/").expect("url").0, "0".repeat(32));
    assert!(connect(&forged, V5).await.expect_err("unknown token").to_string().contains("404"));

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

#[tokio::test]
async fn two_hundred_concurrent_execs_complete_without_leaks() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let (pod, image, id) = pods::running_container(&shim, "ws-many").await;

    let sessions = (0..200).map(|i| {
        let (rt, id) = (rt.clone(), id.clone());
        async move {
            let url = pods::exec_url(&rt, &id, &["echo", &i.to_string()], false, false).await;
            let t = drain(&mut connect(&url, V5).await.expect("connect")).await;
            assert_eq!(String::from_utf8_lossy(&t.stdout).trim(), i.to_string());
            assert_eq!(exit_code(&t.status.expect("status")), 0);
        }
    });
    futures::stream::iter(sessions).buffer_unordered(50).collect::<Vec<()>>().await;

    // Only the container's own processes remain: no exec lingers.
    let ps = pods::wait_for("execs to end", Duration::from_secs(10), || async {
        let ps = pods::exec_ok(rt, &id, &["ps", "-o", "args"]).await;
        (!ps.contains("echo")).then_some(ps)
    })
    .await;
    assert!(!ps.contains("echo"), "{ps}");

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}
