//! Absolute-form and `http` listener smuggling: CL+TE variants, obs-fold, bare LF, duplicate
//! Host, Host against the absolute URI, keep-alive to a second host, userinfo, `Connection`
//! naming end-to-end headers, oversized heads. The origin (`origin`) records every request it
//! parses; an attack passes when the tenant gets the exact refusal and the smuggled request
//! never reaches the origin as a request of its own.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::attack::{deny_header, raw_exchange, status_of, Outcome, Probe};
use crate::baseline::Baseline;
use crate::common::{connect_from, read_head, Gateway, APP1, WAIT};
use crate::origin::{web_gateway, Origin};
const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: web.test\r\n\r\n";

/// One refused request on its own connection: exact status, deny header when the gateway (not
/// the parser) refused, log line, counter, no leak, and the origin saw nothing.
async fn refused(
    gw: &Gateway,
    origin: &Origin,
    listener: &str,
    what: &str,
    request: &str,
    status: u16,
    reason: &str,
) {
    let seen = origin.requests().len();
    let probe = Probe::before(gw, Outcome::deny(listener, "app1", reason));
    let answer = raw_exchange(APP1, gw.addr(listener), request.as_bytes()).await;
    let text = String::from_utf8_lossy(&answer);
    assert_eq!(status_of(&answer), status, "{what}: {text}");
    if reason != "malformed_request" || deny_header(&answer).is_some() {
        assert_eq!(
            deny_header(&answer).as_deref(),
            Some(reason),
            "{what}: {text}"
        );
    }
    assert!(
        !text.contains("\r\n\r\nok"),
        "{what}: an origin answer followed: {text}"
    );
    probe.confirm(gw, what);
    assert_eq!(
        origin.requests().len(),
        seen,
        "{what}: the origin saw {:?}",
        &origin.requests()[seen..]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn framing_tricks_on_the_http_listener_are_refused_before_the_origin() {
    let origin = Origin::start().await;
    let (gw, _config) = web_gateway(&origin).await;
    let cl_te = |te: &str| {
        format!("POST / HTTP/1.1\r\nHost: web.test\r\nContent-Length: 5\r\n{te}\r\n\r\n0\r\n\r\n{SMUGGLED}")
    };
    let cases = [
        ("TE chunked, identity beside CL", cl_te("Transfer-Encoding: chunked, identity")),
        ("TE chunked then a vertical tab", cl_te("Transfer-Encoding: chunked\x0b")),
        ("TE with a NUL", cl_te("Transfer-Encoding: chunked\0")),
        (
            "duplicate TE, the last not chunked",
            cl_te("Transfer-Encoding: chunked\r\nTransfer-Encoding: identity"),
        ),
        ("TE xchunked beside CL", cl_te("Transfer-Encoding: xchunked")),
        ("space before the TE colon", cl_te("Transfer-Encoding : chunked")),
        ("TE folded onto a second line", cl_te("Transfer-Encoding:\r\n chunked")),
        (
            "obs-fold of an ordinary header",
            format!("GET / HTTP/1.1\r\nHost: web.test\r\nX-A: a\r\n b\r\n\r\n{SMUGGLED}"),
        ),
        (
            "a header line starting with a space",
            "GET / HTTP/1.1\r\n Host: evil.test\r\nHost: web.test\r\n\r\n".to_owned(),
        ),
        (
            "two Content-Length values",
            format!("POST / HTTP/1.1\r\nHost: web.test\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\n{SMUGGLED}"),
        ),
        (
            "signed Content-Length",
            format!("POST / HTTP/1.1\r\nHost: web.test\r\nContent-Length: +44\r\n\r\n{SMUGGLED}"),
        ),
        (
            "TE on HTTP/1.0",
            format!("POST / HTTP/1.0\r\nHost: web.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}"),
        ),
        ("a NUL in Host", "GET / HTTP/1.1\r\nHost: web.test\0evil\r\n\r\n".to_owned()),
    ];
    for (what, request) in &cases {
        refused(
            &gw,
            &origin,
            "http",
            what,
            request,
            400,
            "malformed_request",
        )
        .await;
    }
    assert!(
        origin.requests().iter().all(|r| !r.contains("/smuggled")),
        "{:?}",
        origin.requests()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn host_tricks_get_exact_refusals() {
    let origin = Origin::start().await;
    let (gw, _config) = web_gateway(&origin).await;
    let cases: [(&str, &str, &str, u16, &str); 12] = [
        (
            "duplicate Host, same value",
            "http",
            "GET / HTTP/1.1\r\nHost: web.test\r\nHost: web.test\r\n\r\n",
            400,
            "malformed_request",
        ),
        (
            "duplicate Host, second one elsewhere",
            "http",
            "GET / HTTP/1.1\r\nHost: web.test\r\nHost: evil.test\r\n\r\n",
            400,
            "malformed_request",
        ),
        (
            "empty Host",
            "http",
            "GET / HTTP/1.1\r\nHost: \r\n\r\n",
            400,
            "malformed_request",
        ),
        (
            "Host with userinfo",
            "http",
            "GET / HTTP/1.1\r\nHost: web.test@evil.test\r\n\r\n",
            400,
            "malformed_request",
        ),
        (
            "absolute URI naming another host than Host on the http listener",
            "http",
            "GET http://evil.test/ HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n",
            403,
            "not_allowlisted",
        ),
        (
            "absolute-form with userinfo",
            "connect",
            "GET http://user@web.test/ HTTP/1.1\r\nHost: web.test\r\n\r\n",
            400,
            "malformed_request",
        ),
        (
            "absolute-form authority hiding a second host after @",
            "connect",
            "GET http://web.test:80@evil.test/ HTTP/1.1\r\nHost: web.test\r\n\r\n",
            400,
            "malformed_request",
        ),
        (
            "absolute-form with another port",
            "connect",
            "GET http://web.test:8080/ HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n",
            403,
            "port_not_allowed",
        ),
        (
            "absolute-form with two ports",
            "connect",
            "GET http://web.test:80:80/ HTTP/1.1\r\nHost: web.test\r\n\r\n",
            400,
            "malformed_request",
        ),
        (
            "absolute-form with an empty authority",
            "connect",
            "GET http:///web.test/ HTTP/1.1\r\nHost: web.test\r\n\r\n",
            400,
            "malformed_request",
        ),
        (
            "absolute-form to the IPv6 loopback",
            "connect",
            "GET http://[::1]/ HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n",
            403,
            "not_allowlisted",
        ),
        (
            "absolute-form to a numeric host",
            "connect",
            "GET http://2130706433/ HTTP/1.1\r\nHost: web.test\r\n\r\n",
            400,
            "malformed_request",
        ),
    ];
    for (what, listener, request, status, reason) in cases {
        refused(&gw, &origin, listener, what, request, status, reason).await;
    }
}

/// The requests an origin saw, polled until `n` arrived (bounded).
async fn origin_saw(origin: &Origin, n: usize, what: &str) -> Vec<String> {
    crate::attack::eventually(what, WAIT, || origin.requests().len() >= n).await;
    origin.requests()
}

#[tokio::test(flavor = "multi_thread")]
async fn keep_alive_and_forwarding_tricks_are_planned_per_request() {
    let origin = Origin::start().await;
    let (gw, _config) = web_gateway(&origin).await;
    let baseline = Baseline::take(&gw);

    // Host against the absolute URI: the URI decides and the origin gets it as Host.
    let mut stream = connect_from(APP1, gw.addr("connect")).await;
    stream
        .write_all(
            b"GET http://web.test/front HTTP/1.1\r\nHost: evil.test\r\nConnection: close\r\n\r\n",
        )
        .await
        .expect("write");
    let answer = crate::attack::read_to_close(&mut stream).await;
    assert_eq!(
        status_of(&answer),
        200,
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let seen = origin_saw(&origin, 1, "the fronted request").await;
    assert!(seen[0].starts_with("GET /front "), "{}", seen[0]);
    assert!(
        seen[0].to_ascii_lowercase().contains("host: web.test\r\n"),
        "Host rewritten: {}",
        seen[0]
    );
    assert!(!seen[0].contains("evil"), "{}", seen[0]);

    // Keep-alive: the second request to another host is refused on its own and never reaches
    // the origin; both are logged.
    let mut stream = connect_from(APP1, gw.addr("http")).await;
    stream
        .write_all(b"GET /first HTTP/1.1\r\nHost: web.test\r\n\r\n")
        .await
        .expect("write");
    let first = read_head(&mut stream).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    let mut body = [0u8; 2];
    stream.read_exact(&mut body).await.expect("body");
    stream
        .write_all(b"GET /second HTTP/1.1\r\nHost: evil.test\r\n\r\n")
        .await
        .expect("write");
    let second = read_head(&mut stream).await;
    assert!(second.starts_with("HTTP/1.1 403"), "{second}");
    assert!(
        second
            .to_ascii_lowercase()
            .contains("x-egress-deny-reason: not_allowlisted"),
        "{second}"
    );
    drop(stream);
    let line = gw.wait_access_log(|v| v["host"] == "evil.test" && v["listener"] == "http");
    assert_eq!(line["reason"], "not_allowlisted", "{line}");
    assert_eq!(
        gw.connections_on("http", "app1", "deny", "not_allowlisted"),
        Some(1.0)
    );

    // `Connection: Host` must not strip the Host the gateway decided on.
    let mut stream = connect_from(APP1, gw.addr("http")).await;
    stream
        .write_all(b"GET /hop HTTP/1.1\r\nHost: web.test\r\nConnection: Host, close\r\n\r\n")
        .await
        .expect("write");
    let answer = crate::attack::read_to_close(&mut stream).await;
    assert_eq!(
        status_of(&answer),
        200,
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let hop = origin_saw(&origin, 3, "the Connection: Host request").await;
    let hop = hop
        .iter()
        .find(|r| r.starts_with("GET /hop "))
        .expect("hop");
    assert!(
        hop.to_ascii_lowercase().contains("host: web.test\r\n"),
        "{hop}"
    );

    // Bare LF then CL+TE on the same connection (#12): the one parser frames both; the second
    // goes upstream chunked without Content-Length and the connection ends, so the smuggled
    // request never reaches the origin.
    let mut stream = connect_from(APP1, gw.addr("http")).await;
    let request = format!("GET /lf HTTP/1.1\nHost: web.test\n\nPOST /clte HTTP/1.1\r\nHost: web.test\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{SMUGGLED}");
    stream.write_all(request.as_bytes()).await.expect("write");
    let answers = crate::attack::read_to_close(&mut stream).await;
    let text = String::from_utf8_lossy(&answers);
    assert!(text.matches("HTTP/1.1 ").count() <= 2, "{text}");
    let all = origin.requests();
    assert!(all.iter().all(|r| !r.contains("/smuggled")), "{all:?}");
    if let Some(post) = all.iter().find(|r| r.starts_with("POST /clte")) {
        let post = post.to_ascii_lowercase();
        assert!(!post.contains("content-length"), "{post}");
        assert!(post.contains("transfer-encoding: chunked"), "{post}");
    }

    // CL in the trailer position: the trailer never becomes framing. What follows the chunked
    // body is a second request to the gateway too, decided on its own: the gateway and the
    // origin agree on where every request starts (two decisions, two requests).
    let lines_before = gw.access_log().len();
    let seen_before = origin.requests().len();
    let mut stream = connect_from(APP1, gw.addr("http")).await;
    let request = format!("POST /trailer HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nContent-Length: 44\r\n\r\n{SMUGGLED}");
    stream.write_all(request.as_bytes()).await.expect("write");
    for answer in ["the chunked POST", "the request after it"] {
        let head = read_head(&mut stream).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{answer}: {head}");
        let mut body = [0u8; 2];
        stream.read_exact(&mut body).await.expect("body");
    }
    drop(stream);
    gw.wait_access_logs(lines_before + 2, |_| true);
    let seen = origin_saw(&origin, seen_before + 2, "both requests").await;
    let trailer = &seen[seen_before];
    assert!(trailer.starts_with("POST /trailer "), "{trailer}");
    assert!(
        !trailer.to_ascii_lowercase().contains("content-length"),
        "{trailer}"
    );
    assert!(
        seen[seen_before + 1].starts_with("GET /smuggled "),
        "{seen:?}"
    );
    assert_eq!(
        origin.requests().len(),
        seen_before + 2,
        "{:?}",
        origin.requests()
    );

    // An oversized head: 431, nothing forwarded.
    let big = format!(
        "GET / HTTP/1.1\r\nHost: web.test\r\nX-Big: {}\r\n\r\n",
        "a".repeat(40_000)
    );
    let before = origin.requests().len();
    let answer = raw_exchange(APP1, gw.addr("http"), big.as_bytes()).await;
    assert_eq!(
        status_of(&answer),
        431,
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(origin.requests().len(), before);
    baseline.settle(&gw, "keep-alive and forwarding tricks");
}

/// Transfer-Encoding spellings beside Content-Length: each is either refused (400) or framed as
/// chunked, forwarded without Content-Length and the connection ended; either way the bytes
/// after the chunked body never reach the origin as a request.
#[tokio::test(flavor = "multi_thread")]
async fn te_spellings_beside_content_length_smuggle_nothing() {
    let origin = Origin::start().await;
    let (gw, _config) = web_gateway(&origin).await;
    let baseline = Baseline::take(&gw);
    for te in [
        "Transfer-Encoding:  chunked",
        "Transfer-Encoding: Chunked",
        "transfer-encoding: chunked",
        "Transfer-Encoding: chunked \t",
        "Transfer-Encoding: identity, chunked",
        "Transfer-Encoding: gzip, chunked",
    ] {
        let before = origin.requests().len();
        let request = format!("POST /te HTTP/1.1\r\nHost: web.test\r\nContent-Length: 44\r\n{te}\r\n\r\n0\r\n\r\n{SMUGGLED}");
        let answer = raw_exchange(APP1, gw.addr("http"), request.as_bytes()).await;
        let text = String::from_utf8_lossy(&answer);
        let status = status_of(&answer);
        assert!(status == 400 || status == 200, "{te:?}: {text}");
        assert!(
            text.matches("HTTP/1.1").count() == 1,
            "{te:?}: one answer only: {text}"
        );
        let seen = origin.requests();
        assert!(
            seen[before..].iter().all(|r| !r.contains("/smuggled")),
            "{te:?}: {seen:?}"
        );
        for post in &seen[before..] {
            let post = post.to_ascii_lowercase();
            assert!(!post.contains("content-length"), "{te:?}: {post}");
        }
        assert_eq!(
            seen.len() - before,
            usize::from(status == 200),
            "{te:?}: {seen:?}"
        );
    }
    baseline.settle(&gw, "TE spellings");
}
