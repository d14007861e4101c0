//! The optional HTTP listener (`[metrics] listen`): Prometheus metrics at `/metrics` and a
//! health answer at `/healthz`, served with hyper from the daemon's own [`Status`].
//!
//! The daemon keeps its state in its loop; this module never touches it. Each request sends
//! a one-shot reply channel over a [`StatusSource`] and the loop answers with its current
//! status:
//!
//! ```no_run
//! # async fn daemon(listen: std::net::SocketAddr, status: impl Fn() -> vipd::node::status::Status) -> std::io::Result<()> {
//! let (source, mut requests) = vipd::metrics_http::channel();
//! vipd::metrics_http::spawn(listen, source).await?;
//! loop {
//!     tokio::select! {
//!         Some(reply) = requests.recv() => { let _ = reply.send(status()); }
//!         // ... the daemon's other events
//!     }
//! }
//! # }
//! ```
//!
//! Health: `/healthz` answers 200 `ok` when the daemon answered within [`ANSWER_TIMEOUT`],
//! its interface is up and every group instance is `master` or `backup` (a backup is
//! healthy: it is ready to take over). Otherwise 503 with a one-line reason: no answer,
//! interface down, an instance in `fault` (link down, a resource failed) or still in
//! `initialize` (not yet taking part in the election).
//!
//! Bounded: at most [`MAX_CONNECTIONS`] connections at once (more wait in the kernel's
//! backlog), [`HEADER_READ_TIMEOUT`] to send a request's headers, [`CONNECTION_LIFETIME`] per
//! connection, and an 8 KiB request buffer.

use crate::node::status::{PROMETHEUS_CONTENT_TYPE, Status};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tracing::{debug, info, warn};

/// A question to the daemon: it answers by sending its current status on the channel.
pub type StatusRequest = oneshot::Sender<Status>;
/// Where the HTTP side asks for the daemon's status.
pub type StatusSource = mpsc::Sender<StatusRequest>;

/// How long a request waits for the daemon's status before it gives up (503).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(1);
/// A client must send the request's headers within this time.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(2);
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 16;
/// A connection (keep-alive included) is closed after this time.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(10);
/// Questions queued for the daemon's loop.
const QUEUE: usize = MAX_CONNECTIONS;
/// hyper's minimum; a scrape's request is a few hundred bytes.
const MAX_BUFFER: usize = 8192;

/// The channel between the HTTP side ([`StatusSource`], given to [`serve`]) and the daemon's
/// loop (the receiver: answer each [`StatusRequest`] with the current status).
pub fn channel() -> (StatusSource, mpsc::Receiver<StatusRequest>) {
    mpsc::channel(QUEUE)
}

/// Binds `listen` and spawns [`serve`] on the current tokio runtime. The error names the
/// address (in use, not on this host, a port below 1024 without CAP_NET_BIND_SERVICE).
pub async fn spawn(
    listen: SocketAddr,
    source: StatusSource,
) -> io::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(listen).await.map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("metrics listener on {listen} ([metrics] listen): {e}"),
        )
    })?;
    Ok(tokio::spawn(serve(listener, source)))
}

/// Serves `/metrics` and `/healthz` on `listener` until the task is dropped; each request
/// asks `source` for the daemon's status.
pub async fn serve(listener: TcpListener, source: StatusSource) {
    if let Ok(address) = listener.local_addr() {
        info!(%address, "serving /metrics and /healthz over HTTP");
    }
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, say: wait instead of spinning.
                warn!("metrics listener: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let source = source.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let source = source.clone();
                async move { Ok::<_, Infallible>(respond(&request, &source).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_buf_size(MAX_BUFFER)
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(CONNECTION_LIFETIME, connection).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => debug!(%peer, "metrics connection: {e}"),
                Err(_) => debug!(%peer, "metrics connection closed after {CONNECTION_LIFETIME:?}"),
            }
            drop(slot);
        });
    }
}

/// Asks the daemon for its status, within [`ANSWER_TIMEOUT`].
pub async fn ask(source: &StatusSource) -> Result<Status, String> {
    let (reply, answer) = oneshot::channel();
    let asked = async {
        source
            .send(reply)
            .await
            .map_err(|_| "the daemon's loop is not running".to_string())?;
        answer
            .await
            .map_err(|_| "the daemon dropped the question".to_string())
    };
    tokio::time::timeout(ANSWER_TIMEOUT, asked)
        .await
        .map_err(|_| {
            format!(
                "the daemon did not answer within {} s",
                ANSWER_TIMEOUT.as_secs_f64()
            )
        })?
}

/// Whether a status is healthy: `Err` carries the first reason it is not (one line).
///
/// Healthy: the interface is up and every group instance is `master` or `backup`.
pub fn health(status: &Status) -> Result<(), String> {
    if !status.link_up {
        return Err(format!("interface {} is down", status.interface));
    }
    for group in &status.groups {
        for instance in &group.instances {
            match instance.state.as_str() {
                "master" | "backup" => {}
                "initialize" => {
                    return Err(format!(
                        "group {} {} is still initializing",
                        group.name, instance.family
                    ));
                }
                state => {
                    return Err(format!(
                        "group {} {} is in {state}",
                        group.name, instance.family
                    ));
                }
            }
        }
    }
    Ok(())
}

fn response(code: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = code;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

const TEXT: &str = "text/plain; charset=utf-8";

async fn respond(request: &Request<Incoming>, source: &StatusSource) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    if path != "/metrics" && path != "/healthz" {
        return response(
            StatusCode::NOT_FOUND,
            TEXT,
            "not found: vipd serves /metrics and /healthz\n".into(),
        );
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut answer = response(
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            format!("{} {path}: only GET and HEAD\n", request.method()),
        );
        answer
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return answer;
    }
    let status = match ask(source).await {
        Ok(status) => status,
        Err(why) => return response(StatusCode::SERVICE_UNAVAILABLE, TEXT, format!("{why}\n")),
    };
    if path == "/metrics" {
        return response(StatusCode::OK, PROMETHEUS_CONTENT_TYPE, status.prometheus());
    }
    match health(&status) {
        Ok(()) => response(StatusCode::OK, TEXT, "ok\n".into()),
        Err(why) => response(StatusCode::SERVICE_UNAVAILABLE, TEXT, format!("{why}\n")),
    }
}
