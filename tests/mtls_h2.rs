//! The mTLS listener's HTTP/2 CONNECT: many streams on one connection with per-stream decisions,
//! flow control that keeps a slow upstream from stalling its siblings, the namespace limit
//! counted in streams, and the drain (GOAWAY: no new tunnel, open ones finish). The shared test
//! world is in tests/common/mtls.rs.

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::mtls::{h2_client, h2_connect, tcp_entry, world, APP1_ID};
use common::{Gateway, WAIT};
use tokio::net::TcpListener;

async fn read_exactly(body: &mut h2::RecvStream, n: usize) -> Vec<u8> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let chunk = tokio::time::timeout(WAIT, body.data())
            .await
            .expect("data in time")
            .expect("stream open")
            .expect("data");
        let _ = body.flow_control().release_capacity(chunk.len());
        got.extend_from_slice(&chunk);
    }
    got
}

#[tokio::test(flavor = "multi_thread")]
async fn h2_connect_multiplexes_100_tunnels_and_denies_per_stream() {
    let echo = common::echo_server().await;
    let world = world("limits: {max_streams_per_connection: 150}\n");
    tcp_entry(&world, "echo", "echo.test", 7000, echo);
    let gateway = Gateway::start(&world.config);
    let mut send = h2_client(&gateway, &world, APP1_ID).await;

    let mut tunnels = Vec::new();
    for i in 0..100u32 {
        let mut send = send.clone();
        tunnels.push(tokio::spawn(async move {
            let (response, mut stream) = h2_connect(&mut send, "echo.test:7000").await;
            assert_eq!(response.status(), 200, "stream {i}");
            let mut body = response.into_body();
            let payload: Vec<u8> = (0..20_000u32)
                .map(|b| (b.wrapping_mul(31) ^ i) as u8)
                .collect();
            stream
                .send_data(Bytes::from(payload.clone()), false)
                .expect("send");
            let echoed = read_exactly(&mut body, payload.len()).await;
            assert_eq!(echoed, payload, "stream {i} bytes");
            stream.send_data(Bytes::new(), true).expect("end");
        }));
    }
    let (denied, _) = h2_connect(&mut send, "evil.test:7000").await;
    assert_eq!(denied.status(), 403);
    assert_eq!(denied.headers()["x-egress-deny-reason"], "not_allowlisted");
    for tunnel in tunnels {
        tunnel.await.expect("tunnel ok");
    }
    let deadline = Instant::now() + WAIT;
    while gateway
        .access_log()
        .iter()
        .filter(|l| l["decision"] == "allow")
        .count()
        < 100
    {
        assert!(Instant::now() < deadline, "100 tunnels logged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let allowed = gateway.metric(
        "egress_connections_total",
        &[
            ("namespace", "app1"),
            ("listener", "connect_tls"),
            ("decision", "allow"),
        ],
    );
    assert_eq!(allowed, Some(100.0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_upstream_does_not_stall_sibling_streams() {
    // An upstream that accepts and never reads: its stream's window fills up.
    let sink = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let sink_addr = sink.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = sink.accept().await {
            held.push(stream);
        }
    });
    let echo = common::echo_server().await;
    let world = world("limits: {max_streams_per_connection: 7}\n");
    tcp_entry(&world, "echo", "echo.test", 7000, echo);
    tcp_entry(&world, "sink", "sink.test", 7001, sink_addr);
    let gateway = Gateway::start(&world.config);
    let mut send = h2_client(&gateway, &world, APP1_ID).await;
    let deadline = Instant::now() + WAIT;
    while send.current_max_send_streams() != 7 {
        assert!(Instant::now() < deadline, "the stream limit is advertised");
        send = send.ready().await.expect("ready");
        tokio::task::yield_now().await;
    }

    let (response, mut slow) = h2_connect(&mut send, "sink.test:7001").await;
    assert_eq!(response.status(), 200);
    // Far more than the stream window and the socket buffers can take.
    slow.reserve_capacity(64 * 1024 * 1024);
    let stuffed = tokio::spawn(async move {
        let mut sent = 0usize;
        while sent < 64 * 1024 * 1024 {
            match std::future::poll_fn(|cx| slow.poll_capacity(cx)).await {
                Some(Ok(n)) => {
                    slow.send_data(Bytes::from(vec![0u8; n]), false)
                        .expect("send");
                    sent += n;
                }
                _ => break,
            }
        }
        sent
    });

    let started = Instant::now();
    for _ in 0..5 {
        let (response, mut stream) = h2_connect(&mut send, "echo.test:7000").await;
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        stream
            .send_data(Bytes::from_static(b"still flowing"), true)
            .expect("send");
        assert_eq!(read_exactly(&mut body, 13).await, b"still flowing");
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "siblings were stalled"
    );
    assert!(
        !stuffed.is_finished(),
        "the slow stream must be held back by flow control"
    );
    stuffed.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_namespace_limit_counts_streams() {
    let echo = common::echo_server().await;
    // The HTTP/2 connection holds one slot of its own (so idle connections cannot pin
    // descriptors without bound) and each tunnel one more: 4 = the connection + 3 tunnels.
    let world = world("limits: {namespaces: {app1: 4}}\n");
    tcp_entry(&world, "echo", "echo.test", 7000, echo);
    let gateway = Gateway::start(&world.config);
    let mut send = h2_client(&gateway, &world, APP1_ID).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        let (response, stream) = h2_connect(&mut send, "echo.test:7000").await;
        assert_eq!(response.status(), 200);
        open.push((response, stream));
    }
    let (fourth, _) = h2_connect(&mut send, "echo.test:7000").await;
    assert_eq!(fourth.status(), 429);
    assert_eq!(
        fourth.headers()["x-egress-deny-reason"],
        "tenant_connection_limit"
    );
}

/// Drain on HTTP/2: after SIGTERM the client gets GOAWAY and cannot open another tunnel on its
/// connection, while the tunnel it already has keeps flowing until it ends; then the process
/// exits 0 without waiting for the drain deadline.
#[tokio::test(flavor = "multi_thread")]
async fn drain_refuses_new_h2_streams_while_open_tunnels_finish() {
    let echo = common::echo_server().await;
    let world = world("timeouts: {drain: 10s}\n");
    tcp_entry(&world, "echo", "echo.test", 7000, echo);
    let mut gateway = Gateway::start(&world.config);
    let mut send = h2_client(&gateway, &world, APP1_ID).await;
    let (response, mut open) = h2_connect(&mut send, "echo.test:7000").await;
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    open.send_data(Bytes::from_static(b"before"), false)
        .expect("send");
    assert_eq!(read_exactly(&mut body, 6).await, b"before");

    let signalled = Instant::now();
    gateway.signal("TERM");
    let deadline = Instant::now() + WAIT;
    while !matches!(gateway.try_admin_get("/readyz"), Some((503, _))) {
        assert!(Instant::now() < deadline, "/readyz never turned 503");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let request = http::Request::builder()
        .method("CONNECT")
        .uri("echo.test:7000")
        .body(())
        .expect("request");
    let refused = match send.clone().ready().await {
        Err(err) => err.is_go_away() || err.is_remote(),
        Ok(mut ready) => match ready.send_request(request, true) {
            Err(err) => err.is_go_away() || err.is_remote(),
            Ok((answer, _)) => match tokio::time::timeout(WAIT, answer).await {
                Ok(Err(err)) => {
                    err.reason() == Some(h2::Reason::REFUSED_STREAM) || err.is_go_away()
                }
                Ok(Ok(response)) => panic!("a new tunnel was answered {}", response.status()),
                Err(_) => panic!("a new stream got no answer while draining"),
            },
        },
    };
    assert!(refused, "the new stream was not refused");

    open.send_data(Bytes::from_static(b"during"), true)
        .expect("the open tunnel still takes data");
    assert_eq!(read_exactly(&mut body, 6).await, b"during");
    let code = tokio::task::block_in_place(|| gateway.wait_exit(WAIT));
    assert_eq!(code, Some(0), "{:#?}", gateway.logs());
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "exit waited for the drain deadline"
    );
}
