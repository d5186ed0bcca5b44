//! The recording HTTP/1.1 origin the smuggling attacks aim at: it parses requests the way a
//! typical origin does (Content-Length, chunked bodies and trailers) and records each head, so a
//! test sees exactly which requests got through; and the gateway that lets app1 reach it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::common::{static_entry, transparent_gateway_yaml, ConfigDir, Gateway};

/// An HTTP/1.1 keep-alive origin that records each request head it parses (chunked bodies and
/// their trailers are read and dropped) and answers `200 ok`.
pub struct Origin {
    /// Where it listens.
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Origin {
    /// Starts it on 127.0.0.1; it runs until the test's runtime ends.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        let addr = listener.local_addr().expect("addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, recorded.clone()));
            }
        });
        Self { addr, requests }
    }

    /// Every request head it parsed so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("lock").clone()
    }
}

async fn read_line(stream: &mut BufReader<TcpStream>) -> Option<String> {
    let mut line = String::new();
    match stream.read_line(&mut line).await {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line),
    }
}

async fn serve(stream: TcpStream, requests: Arc<Mutex<Vec<String>>>) {
    let mut stream = BufReader::new(stream);
    loop {
        let mut head = String::new();
        loop {
            let Some(line) = read_line(&mut stream).await else {
                return;
            };
            head.push_str(&line);
            if line == "\r\n" || line == "\n" {
                break;
            }
        }
        requests.lock().expect("lock").push(head.clone());
        let lower = head.to_ascii_lowercase();
        if lower.contains("transfer-encoding: chunked") {
            // Chunks until the last one, then trailers until a blank line.
            loop {
                let Some(size) = read_line(&mut stream).await else {
                    return;
                };
                let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                    .unwrap_or(0);
                if size == 0 {
                    break;
                }
                let mut chunk = vec![0u8; size + 2];
                if stream.read_exact(&mut chunk).await.is_err() {
                    return;
                }
            }
            loop {
                match read_line(&mut stream).await.as_deref() {
                    None => return,
                    Some("\r\n") => break,
                    Some(_) => {}
                }
            }
        } else if let Some(length) = lower
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
        {
            let mut body = vec![0u8; length];
            if stream.read_exact(&mut body).await.is_err() {
                return;
            }
        }
        let answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        if stream.get_mut().write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// app1 may reach `web.test:80` (HTTP) on the `http` listener and through absolute-form on the
/// `connect` listener.
pub async fn web_gateway(origin: &Origin) -> (Gateway, ConfigDir) {
    let config = ConfigDir::new(&transparent_gateway_yaml(&[], ""));
    config.entry(
        "app1/web.yaml",
        &static_entry("web", "web.test", 80, "HTTP", origin.addr),
    );
    (Gateway::start(&config), config)
}
