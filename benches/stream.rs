//! Streaming throughput: 100 MiB through `cat` over Exec, and 100 MiB
//! through a port-forward to an echo server in the pod, both over
//! pinshim's WebSocket streaming, against the same bytes pushed through
//! `docker exec` directly in the same run. Prints MiB/s and ratios.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use common::Shim;
use common::pods::{self, IDLE};
use futures::{SinkExt, StreamExt};
use pinshim::api;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const SIZE: usize = 100 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;

#[tokio::main]
async fn main() {
    let shim = Shim::start().await;
    let rt = &shim.runtime;
    let image = pods::fresh_image(&shim.images, "bench-stream").await;
    let pod = pods::run_pod(rt, "bench-stream").await;
    let idle = pods::create_and_start(rt, &pod, pods::container_config(&pod, "idle", &image, IDLE)).await;
    let echo_cmd = ["sh", "-c", "while true; do nc -l -p 8080 -e cat; done"];
    pods::create_and_start(rt, &pod, pods::container_config(&pod, "echo", &image, &echo_cmd)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let request = api::ExecRequest {
        container_id: idle.clone(),
        cmd: vec!["cat".into()],
        stdin: true,
        stdout: true,
        ..Default::default()
    };
    let url = rt.clone().exec(request).await.expect("exec").into_inner().url;
    let shim_cat = through_websocket(&url, "v5.channel.k8s.io", 0, 1, true).await;
    let docker_cat = through_docker_exec(&idle, vec!["cat".into()]).await;

    let request = api::PortForwardRequest { pod_sandbox_id: pod.id.clone(), port: vec![8080] };
    let url = rt.clone().port_forward(request).await.expect("port forward").into_inner().url;
    let shim_pf = through_websocket(&format!("{url}?port=8080"), "v4.channel.k8s.io", 0, 0, false).await;
    let docker_pf = through_docker_exec(&idle, vec!["nc".into(), "127.0.0.1".into(), "8080".into()]).await;

    let request = api::ExecRequest {
        container_id: idle.clone(),
        cmd: vec!["cat".into()],
        stdin: true,
        stdout: true,
        stderr: true,
        ..Default::default()
    };
    let url = rt.clone().exec(request).await.expect("exec").into_inner().url;
    let spdy_cat = through_spdy(
        &url,
        "v4.channel.k8s.io",
        &[
            &[("streamType", "error")],
            &[("streamType", "stdin")],
            &[("streamType", "stdout")],
            &[("streamType", "stderr")],
        ],
        1,
        2,
    )
    .await;
    let request = api::PortForwardRequest { pod_sandbox_id: pod.id.clone(), port: vec![8080] };
    let url = rt.clone().port_forward(request).await.expect("port forward").into_inner().url;
    let pf_headers = |kind| [("streamType", kind), ("port", "8080"), ("requestID", "0")];
    let spdy_pf = through_spdy(&url, "portforward.k8s.io", &[&pf_headers("error"), &pf_headers("data")], 1, 1).await;

    pods::cleanup(rt, &shim.images, &[&pod], &[&image.id]).await;
    println!("Streaming throughput, {} MiB each way:", SIZE >> 20);
    report("cat through Exec (WebSocket v5)", shim_cat, "docker exec cat", docker_cat);
    report("port-forward to an echo server (WebSocket v4)", shim_pf, "docker exec nc to the same server", docker_pf);
    report("cat through Exec (SPDY/3.1 v4)", spdy_cat, "docker exec cat", docker_cat);
    report("port-forward to an echo server (SPDY/3.1)", spdy_pf, "docker exec nc to the same server", docker_pf);
}

/// Opens `streams` in order, then sends SIZE bytes on the stream at index
/// `tx` and waits for them back on the stream at index `rx`.
async fn through_spdy(url: &str, protocol: &str, streams: &[&[(&str, &str)]], tx: usize, rx: usize) -> Duration {
    let mut client = common::spdy::SpdyClient::connect(url, &[protocol]).await.expect("upgrade");
    let mut ids = Vec::new();
    for headers in streams {
        ids.push(client.open(headers).await);
    }
    let (tx, rx) = (ids[tx], ids[rx]);
    let chunk = vec![b'x'; CHUNK];
    let start = Instant::now();
    let (mut sent, mut received) = (0usize, 0usize);
    while received < SIZE {
        if sent < SIZE {
            client.send(tx, &chunk, sent + CHUNK >= SIZE && protocol != "portforward.k8s.io").await;
            sent += CHUNK;
        }
        while received + 4 * CHUNK < sent || (sent >= SIZE && received < SIZE) {
            match client.next().await {
                Some(pinshim::stream::spdy::Frame::Data { stream_id, data, .. }) if stream_id == rx => {
                    received += data.len()
                }
                Some(_) => {}
                None => panic!("session ended after {received} bytes"),
            }
        }
    }
    start.elapsed()
}

fn report(ours: &str, ours_time: Duration, theirs: &str, theirs_time: Duration) {
    let rate = |t: Duration| (SIZE >> 20) as f64 / t.as_secs_f64();
    println!("  pinshim {ours}: {:.1} MiB/s", rate(ours_time));
    println!("  {theirs}: {:.1} MiB/s", rate(theirs_time));
    println!("  ratio pinshim/docker: {:.2}", rate(ours_time) / rate(theirs_time));
}

/// Sends SIZE bytes on channel `tx_channel` and waits for them all back on
/// `rx_channel`; `close_stdin` ends input with the v5 close message.
async fn through_websocket(url: &str, protocol: &str, tx_channel: u8, rx_channel: u8, close_stdin: bool) -> Duration {
    let mut request = url.replacen("http://", "ws://", 1).into_client_request().expect("request");
    request.headers_mut().insert("Sec-WebSocket-Protocol", protocol.parse().expect("header"));
    let (ws, _) = tokio_tungstenite::connect_async(request).await.expect("connect");
    let (mut tx, mut rx) = ws.split();
    let start = Instant::now();
    let sender = tokio::spawn(async move {
        let chunk = vec![b'x'; CHUNK];
        for _ in 0..SIZE / CHUNK {
            let mut frame = vec![tx_channel];
            frame.extend_from_slice(&chunk);
            tx.send(Message::binary(frame)).await.expect("send");
        }
        if close_stdin {
            tx.send(Message::binary(vec![255, tx_channel])).await.expect("close");
        }
        tx
    });
    let mut received = 0usize;
    let mut skipped_prefix = false;
    while received < SIZE {
        let Some(Ok(Message::Binary(data))) = rx.next().await else { panic!("stream ended after {received} bytes") };
        if data.first() == Some(&rx_channel) {
            if !skipped_prefix && !close_stdin && data.len() == 3 {
                skipped_prefix = true; // the port number that opens the channel
                continue;
            }
            received += data.len() - 1;
        }
    }
    let elapsed = start.elapsed();
    drop(sender.await);
    elapsed
}

/// The same transfer through Docker's exec API, without pinshim.
async fn through_docker_exec(container: &str, cmd: Vec<String>) -> Duration {
    let docker = common::docker();
    let options = CreateExecOptions::<String> {
        cmd: Some(cmd),
        attach_stdin: Some(true),
        attach_stdout: Some(true),
        ..Default::default()
    };
    let exec = docker.create_exec(container, options).await.expect("create exec");
    let started = docker.start_exec(&exec.id, Some(StartExecOptions::default())).await.expect("start exec");
    let StartExecResults::Attached { mut output, mut input } = started else { panic!("detached") };
    let start = Instant::now();
    let sender = tokio::spawn(async move {
        let chunk = vec![b'x'; CHUNK];
        for _ in 0..SIZE / CHUNK {
            input.write_all(&chunk).await.expect("write");
        }
        input
    });
    let mut received = 0usize;
    while received < SIZE {
        let item = output.next().await.expect("output").expect("output chunk");
        received += item.into_bytes().len();
    }
    let elapsed = start.elapsed();
    let mut input = sender.await.expect("sender");
    let _ = input.shutdown().await;
    elapsed
}
