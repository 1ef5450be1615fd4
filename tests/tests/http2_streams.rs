//! HTTP/2 streams that wait for the backend, seen from a client that controls its streams
//! (the `h2` crate over h2c): a stream the client resets is never run while its neighbours
//! on the same connection are served, and a client that closes the connection ends all its
//! waiting streams. mod_http2 marks a stream's secondary connection aborted in both cases.

use bytes::Bytes;
use harness::status;
use harness::transport::{Outage, Ports};
use harness::uploads::Uploads;
use std::time::Duration;

fn runtime() -> tokio::runtime::Runtime {
    // The connection is driven on a worker thread while the test blocks on the status page.
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}

type Stream = (h2::client::ResponseFuture, h2::SendStream<Bytes>);

/// An h2c connection (prior knowledge) and the task that drives it.
async fn connect(ports: &Ports) -> (h2::client::SendRequest<Bytes>, tokio::task::JoinHandle<()>) {
    let tcp = tokio::net::TcpStream::connect(ports.plain).await.expect("connect");
    let (client, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    (client, driver)
}

/// A POST of `body` to upload.php?id=`id` on its own stream.
async fn post(client: &mut h2::client::SendRequest<Bytes>, ports: &Ports, id: &str, body: &'static [u8]) -> Stream {
    let request = http::Request::post(format!("http://{}/upload.php?id={id}", ports.plain))
        .header("content-type", "application/octet-stream")
        .header("content-length", body.len().to_string())
        .body(())
        .expect("request");
    let mut ready = client.clone().ready().await.expect("stream slot");
    let (response, mut send) = ready.send_request(request, false).expect("send request");
    send.send_data(Bytes::from_static(body), true).expect("send body");
    (response, send)
}

async fn answer(response: h2::client::ResponseFuture) -> (u16, Vec<u8>) {
    let response = response.await.expect("response");
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("body chunk");
        let _ = body.flow_control().release_capacity(chunk.len());
        bytes.extend_from_slice(&chunk);
    }
    (status, bytes)
}

/// Blocking status-page reads off the runtime's threads.
async fn wait_for_total(ports: &Ports, key: &'static str, value: u64) {
    let target = ports.plain;
    tokio::task::spawn_blocking(move || status::wait_for_total(target, key, value)).await.expect("status page");
}

#[test]
fn a_reset_stream_is_never_run_and_its_neighbour_on_the_connection_is_served() {
    let mut outage = Outage::begin("h2-reset", "FcgiResilientTimeout 30s");
    let uploads = Uploads::install(&outage.work);
    let ports = outage.ports;
    let (kept_status, kept_body) = runtime().block_on(async {
        let (mut client, _driver) = connect(&ports).await;
        let (reset_response, mut reset_stream) = post(&mut client, &ports, "reset", b"reset me").await;
        let (kept_response, _kept_stream) = post(&mut client, &ports, "kept", b"keep me").await;
        wait_for_total(&ports, "TotalWaiting", 2).await;
        reset_stream.send_reset(h2::Reason::CANCEL);
        drop(reset_response);
        wait_for_total(&ports, "TotalWaiting", 1).await;
        outage.fpm.start();
        answer(kept_response).await
    });
    assert_eq!((kept_status, kept_body.as_slice()), (200, &b"keep me"[..]), "{}", outage.apache.error_log());
    assert_eq!(uploads.runs("kept"), vec![7]);
    assert_eq!(uploads.runs("reset"), Vec::<usize>::new(), "PHP ran the stream the client reset");
    assert_eq!(status::total(ports.plain, "TotalClientGone"), 1);
}

#[test]
fn closing_the_connection_ends_every_stream_waiting_on_it() {
    let mut outage = Outage::begin("h2-close", "FcgiResilientTimeout 30s");
    let uploads = Uploads::install(&outage.work);
    let ports = outage.ports;
    runtime().block_on(async {
        let (mut client, driver) = connect(&ports).await;
        let streams =
            [post(&mut client, &ports, "first", b"first").await, post(&mut client, &ports, "second", b"second").await];
        wait_for_total(&ports, "TotalWaiting", 2).await;
        // Dropping the task that drives the connection closes its socket.
        driver.abort();
        drop((client, streams));
        wait_for_total(&ports, "TotalWaiting", 0).await;
    });
    assert_eq!(status::total(ports.plain, "TotalClientGone"), 2, "{}", outage.apache.error_log());
    outage.fpm.start();
    // What an error would run, runs at once once PHP-FPM accepts: give it that moment.
    std::thread::sleep(Duration::from_secs(1));
    for id in ["first", "second"] {
        assert_eq!(uploads.runs(id), Vec::<usize>::new(), "PHP ran stream {id} of the closed connection");
    }
}
