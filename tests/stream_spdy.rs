//! Exec, Attach and PortForward over SPDY/3.1 against real containers, the
//! transport kubelet proxies and crictl uses by default.

mod common;

use common::Shim;
use common::pods;
use common::spdy::SpdyClient;
use pinshim::api;
use pinshim::stream::spdy::Frame;

const V4: &str = "v4.channel.k8s.io";

fn exit_code(status: &[u8]) -> i64 {
    let status: serde_json::Value = serde_json::from_slice(status).expect("status JSON");
    if status["status"] == "Success" {
        return 0;
    }
    status["details"]["causes"][0]["message"].as_str().and_then(|m| m.parse().ok()).expect("exit code")
}

#[tokio::test]
async fn exec_over_spdy_output_stdin_and_exit_code() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let (pod, image, id) = pods::running_container(&shim, "spdy-exec").await;

    let url = pods::exec_url(rt, &id, &["sh", "-c", "echo hello; echo oops >&2; exit 3"], false, false).await;
    let mut client = SpdyClient::connect(&url, &[V4, "v3.channel.k8s.io"]).await.expect("upgrade");
    assert_eq!(client.protocol, V4);
    let error = client.open(&[("streamType", "error")]).await;
    let stdout = client.open(&[("streamType", "stdout")]).await;
    let stderr = client.open(&[("streamType", "stderr")]).await;
    let data = tokio::time::timeout(pods::WAIT, client.collect(error)).await.expect("ends");
    assert_eq!(data.get(&stdout).map(Vec::as_slice), Some(&b"hello\n"[..]));
    assert_eq!(data.get(&stderr).map(Vec::as_slice), Some(&b"oops\n"[..]));
    assert_eq!(exit_code(&data[&error]), 3);

    let url = pods::exec_url(rt, &id, &["cat"], true, false).await;
    let mut client = SpdyClient::connect(&url, &[V4]).await.expect("upgrade");
    let error = client.open(&[("streamType", "error")]).await;
    let stdin = client.open(&[("streamType", "stdin")]).await;
    let stdout = client.open(&[("streamType", "stdout")]).await;
    client.open(&[("streamType", "stderr")]).await;
    client.send(stdin, b"through cat", true).await;
    let data = tokio::time::timeout(pods::WAIT, client.collect(error)).await.expect("ends");
    assert_eq!(data.get(&stdout).map(Vec::as_slice), Some(&b"through cat"[..]));
    assert_eq!(data.get(&error).map(|s| exit_code(s)), Some(0));

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

#[tokio::test]
async fn tty_exec_over_spdy_sees_resize() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let (pod, image, id) = pods::running_container(&shim, "spdy-tty").await;

    let url = pods::exec_url(rt, &id, &["sh", "-c", "sleep 1; stty size"], true, true).await;
    let mut client = SpdyClient::connect(&url, &[V4]).await.expect("upgrade");
    let error = client.open(&[("streamType", "error")]).await;
    client.open(&[("streamType", "stdin")]).await;
    let stdout = client.open(&[("streamType", "stdout")]).await;
    let resize = client.open(&[("streamType", "resize")]).await;
    client.send(resize, br#"{"Width":120,"Height":33}"#, false).await;
    let data = tokio::time::timeout(pods::WAIT, client.collect(error)).await.expect("ends");
    assert_eq!(String::from_utf8_lossy(&data[&stdout]).trim(), "33 120");

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

/// client-go closes its stdin as soon as the server half-closes the stdin
/// stream, and Docker ends a TTY session when its stdin closes: the server
/// must keep that stream open until the command is done.
#[tokio::test]
async fn tty_exec_over_spdy_keeps_stdin_open() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let (pod, image, id) = pods::running_container(&shim, "spdy-tty-in").await;

    let url = pods::exec_url(rt, &id, &["sh", "-c", "read line; echo got:$line; exit 5"], true, true).await;
    let mut client = SpdyClient::connect(&url, &[V4]).await.expect("upgrade");
    let error = client.open(&[("streamType", "error")]).await;
    let stdin = client.open(&[("streamType", "stdin")]).await;
    let stdout = client.open(&[("streamType", "stdout")]).await;
    client.open(&[("streamType", "resize")]).await;
    let quiet = tokio::time::timeout(std::time::Duration::from_millis(500), async {
        loop {
            match client.next().await {
                Some(Frame::Data { stream_id, fin: true, .. }) => return stream_id,
                Some(_) => {}
                None => return 0,
            }
        }
    })
    .await;
    assert!(quiet.is_err(), "a stream ended before any input was sent: {quiet:?}");
    client.send(stdin, b"typed\r", false).await;
    let data = tokio::time::timeout(pods::WAIT, client.collect(error)).await.expect("ends");
    assert!(String::from_utf8_lossy(&data[&stdout]).contains("got:typed"), "{data:?}");
    assert_eq!(exit_code(&data[&error]), 5);

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

#[tokio::test]
async fn attach_over_spdy() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "spdy-attach").await;
    let pod = pods::run_pod(rt, "spdy-attach").await;
    let mut config = pods::container_config(&pod, "echo", &image, &["cat"]);
    config.stdin = true;
    let id = pods::create_and_start(rt, &pod, config).await;

    let request = api::AttachRequest { container_id: id, stdin: true, tty: false, stdout: true, stderr: true };
    let url = rt.clone().attach(request).await.expect("attach").into_inner().url;
    let mut client = SpdyClient::connect(&url, &[V4]).await.expect("upgrade");
    client.open(&[("streamType", "error")]).await;
    let stdin = client.open(&[("streamType", "stdin")]).await;
    let stdout = client.open(&[("streamType", "stdout")]).await;
    client.open(&[("streamType", "stderr")]).await;
    client.send(stdin, b"ping\n", false).await;
    let mut seen = Vec::new();
    while !seen.ends_with(b"ping\n") {
        let frame = tokio::time::timeout(pods::WAIT, client.next()).await.expect("echo in time");
        if let Some(Frame::Data { stream_id, data, .. }) = frame
            && stream_id == stdout
        {
            seen.extend_from_slice(&data);
        }
    }

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

#[tokio::test]
async fn port_forward_over_spdy_moves_ten_mebibytes_both_ways() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "spdy-pf").await;
    let pod = pods::run_pod(rt, "spdy-pf").await;
    let cmd = ["nc", "-l", "-p", "9090", "-e", "cat"];
    let server = pods::create_and_start(rt, &pod, pods::container_config(&pod, "echo", &image, &cmd)).await;
    pods::wait_listening(rt, &server, 9090).await;

    let request = api::PortForwardRequest { pod_sandbox_id: pod.id.clone(), port: vec![9090] };
    let url = rt.clone().port_forward(request).await.expect("port forward").into_inner().url;
    let mut client = SpdyClient::connect(&url, &["portforward.k8s.io"]).await.expect("upgrade");
    let headers = |kind| [("streamType", kind), ("port", "9090"), ("requestID", "0")];
    let error = client.open(&headers("error")).await;
    let data = client.open(&headers("data")).await;

    let payload: Vec<u8> = (0..10 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    let mut received = Vec::with_capacity(payload.len());
    let mut sent = 0;
    // Interleave sending and receiving on one task: the echo returns what we send.
    while received.len() < payload.len() {
        if sent < payload.len() {
            let end = (sent + 64 * 1024).min(payload.len());
            client.send(data, &payload[sent..end], false).await;
            sent = end;
        }
        while received.len() + 64 * 1024 < sent || (sent == payload.len() && received.len() < payload.len()) {
            match tokio::time::timeout(pods::WAIT, client.next()).await.expect("data in time") {
                Some(Frame::Data { stream_id, data: bytes, .. }) if stream_id == data => {
                    received.extend_from_slice(&bytes)
                }
                Some(Frame::Data { stream_id, data: bytes, .. }) if stream_id == error && !bytes.is_empty() => {
                    panic!("port-forward error: {}", String::from_utf8_lossy(&bytes))
                }
                Some(_) => {}
                None => panic!("session ended after {} bytes", received.len()),
            }
        }
    }
    assert!(received == payload, "10 MiB came back intact");

    // The request named 9090 only: another port is refused on its error stream.
    let other = |kind| [("streamType", kind), ("port", "22"), ("requestID", "1")];
    let refused = client.open(&other("error")).await;
    client.open(&other("data")).await;
    let streams = tokio::time::timeout(pods::WAIT, client.collect(refused)).await.expect("refusal in time");
    let message = String::from_utf8_lossy(streams.get(&refused).map(Vec::as_slice).unwrap_or_default()).to_string();
    assert!(message.contains("port 22 was not among"), "{message:?}");

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}

#[tokio::test]
async fn spdy_tokens_are_single_use() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let (pod, image, id) = pods::running_container(&shim, "spdy-token").await;
    let url = pods::exec_url(rt, &id, &["true"], false, false).await;
    let mut client = SpdyClient::connect(&url, &[V4]).await.expect("first use");
    let error = client.open(&[("streamType", "error")]).await;
    client.open(&[("streamType", "stdout")]).await;
    client.open(&[("streamType", "stderr")]).await;
    tokio::time::timeout(pods::WAIT, client.collect(error)).await.expect("ends");
    let refused = SpdyClient::connect(&url, &[V4]).await.err().expect("second use refused");
    assert!(refused.contains("404"), "{refused}");
    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
}
