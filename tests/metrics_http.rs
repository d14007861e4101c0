//! The HTTP listener as a scraper and a load balancer see it: a real HTTP/1.1 client
//! (hyper) against `vipd::metrics_http::serve` on 127.0.0.1, with a fake daemon that answers
//! with a hand-made status. No root needed.

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use vipd::metrics_http::{self, StatusSource};
use vipd::node::status::{GroupStatus, InstanceStatus, Status};

fn instance(family: &str, state: &str) -> InstanceStatus {
    InstanceStatus {
        family: family.into(),
        state: state.into(),
        priority: 150,
        master: None,
        master_adver_interval_ms: 100.0,
        configured_adver_interval_ms: 100.0,
        conflict: None,
        master_down_interval_ms: 341.0,
        holds_addresses: state == "master",
        adverts_received: 7,
        dropped_not_member: 1,
        dropped_own: 0,
        dropped_lower_priority: 0,
        interval_mismatch: 0,
        second_master_seen: 0,
        became_master: 2,
    }
}

/// A node of cluster "backup" with group "master-server": IPv4 in `v4`, IPv6 in `v6`.
fn status(v4: &str, v6: &str, link_up: bool) -> Status {
    Status {
        cluster: "backup".into(),
        node: "alpha".into(),
        version: "0.1.0".into(),
        interface: "eth0".into(),
        link_up,
        drained: false,
        uptime_ms: 5000,
        groups: vec![GroupStatus {
            name: "master-server".into(),
            vrid: 51,
            addresses: vec!["192.0.2.100/24".into(), "2001:db8::100/64".into()],
            instances: vec![instance("IPv4", v4), instance("IPv6", v6)],
            transitions: vec![],
            resources: String::new(),
            handing_over: false,
            base_priority: 150,
            tracking: Vec::new(),
            quorum: String::new(),
        }],
        dropped: BTreeMap::from([("bad_ttl".to_string(), 4), ("not_member".to_string(), 1)]),
        anomalies: BTreeMap::new(),
        adverts_sent: 42,
        adverts_received: 7,
        address_conflicts: 0,
        config_digest: None,
        dns: None,
        peers: vec![],
        quorum: None,
    }
}

/// A daemon loop that answers every question with `status`.
fn fake_daemon(status: Status) -> StatusSource {
    let (source, mut requests) = metrics_http::channel();
    tokio::spawn(async move {
        while let Some(reply) = requests.recv().await {
            let _ = reply.send(status.clone());
        }
    });
    source
}

async fn start(source: StatusSource) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(metrics_http::serve(listener, source));
    address
}

struct Reply {
    code: StatusCode,
    content_type: String,
    body: String,
}

/// One HTTP/1.1 request over a new connection, with hyper's client.
async fn request(address: SocketAddr, method: Method, path: &str) -> Reply {
    let stream = TcpStream::connect(address).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", address.to_string())
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), sender.send_request(request))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    let code = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        code,
        content_type,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

async fn get(address: SocketAddr, path: &str) -> Reply {
    request(address, Method::GET, path).await
}

#[tokio::test]
async fn metrics_are_scraped_in_the_prometheus_text_format() {
    let address = start(fake_daemon(status("master", "backup", true))).await;
    let reply = get(address, "/metrics").await;
    assert_eq!(reply.code, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.content_type,
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert_eq!(reply.body, status("master", "backup", true).prometheus());

    let scrape = prometheus_parse::Scrape::parse(reply.body.lines().map(|l| Ok(l.to_string())))
        .expect("a valid exposition");
    let sample = |name: &str, labels: &[(&str, &str)]| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .unwrap_or_else(|| panic!("no {name} {labels:?} in:\n{}", reply.body))
            .value
            .clone()
    };
    use prometheus_parse::Value::{Counter, Gauge};
    let v4 = [
        ("node", "alpha"),
        ("group", "master-server"),
        ("family", "IPv4"),
    ];
    let v6 = [
        ("node", "alpha"),
        ("group", "master-server"),
        ("family", "IPv6"),
    ];
    assert_eq!(
        sample(
            "vipd_state",
            &[v4.as_slice(), &[("state", "master")]].concat()
        ),
        Gauge(1.0)
    );
    assert_eq!(
        sample(
            "vipd_state",
            &[v4.as_slice(), &[("state", "backup")]].concat()
        ),
        Gauge(0.0)
    );
    assert_eq!(
        sample(
            "vipd_state",
            &[v6.as_slice(), &[("state", "backup")]].concat()
        ),
        Gauge(1.0)
    );
    assert_eq!(sample("vipd_holds_addresses", &v4), Gauge(1.0));
    assert_eq!(sample("vipd_priority", &v6), Gauge(150.0));
    assert_eq!(
        sample("vipd_master_down_interval_seconds", &v4),
        Gauge(0.341)
    );
    assert_eq!(sample("vipd_became_master_total", &v4), Counter(2.0));
    assert_eq!(
        sample("vipd_adverts_sent_total", &[("node", "alpha")]),
        Counter(42.0)
    );
    assert_eq!(
        sample(
            "vipd_packets_dropped_total",
            &[("node", "alpha"), ("reason", "bad_ttl")]
        ),
        Counter(4.0)
    );
    assert_eq!(sample("vipd_link_up", &[("node", "alpha")]), Gauge(1.0));
    // Prometheus naming: every counter ends in _total, every sample is vipd's.
    for sample in &scrape.samples {
        assert!(sample.metric.starts_with("vipd_"), "{}", sample.metric);
        if matches!(sample.value, Counter(_)) {
            assert!(sample.metric.ends_with("_total"), "{}", sample.metric);
        }
    }
    assert!(scrape.docs.contains_key("vipd_state"));
}

#[tokio::test]
async fn healthz_is_ok_while_every_group_is_master_or_backup() {
    let address = start(fake_daemon(status("master", "backup", true))).await;
    let reply = get(address, "/healthz").await;
    assert_eq!((reply.code, reply.body.as_str()), (StatusCode::OK, "ok\n"));
    // HEAD: the same answer without a body.
    let head = request(address, Method::HEAD, "/healthz").await;
    assert_eq!((head.code, head.body.as_str()), (StatusCode::OK, ""));
}

#[tokio::test]
async fn healthz_is_503_with_the_reason_in_fault_initialize_or_link_down() {
    for (v4, v6, link_up, reason) in [
        (
            "master",
            "fault",
            true,
            "group master-server IPv6 is in fault\n",
        ),
        (
            "initialize",
            "backup",
            true,
            "group master-server IPv4 is still initializing\n",
        ),
        ("fault", "fault", false, "interface eth0 is down\n"),
    ] {
        let address = start(fake_daemon(status(v4, v6, link_up))).await;
        let reply = get(address, "/healthz").await;
        assert_eq!(
            (reply.code, reply.body.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, reason)
        );
        // The metrics are still served: they tell why.
        assert_eq!(get(address, "/metrics").await.code, StatusCode::OK);
    }
}

#[tokio::test]
async fn healthz_is_503_when_the_daemon_does_not_answer_within_a_second() {
    // A loop that takes the questions and never answers.
    let (source, mut requests) = metrics_http::channel();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some(reply) = requests.recv().await {
            held.push(reply);
        }
    });
    let address = start(source).await;
    let started = Instant::now();
    let reply = get(address, "/healthz").await;
    assert_eq!(
        (reply.code, reply.body.as_str()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon did not answer within 1 s\n"
        )
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(
        get(address, "/metrics").await.code,
        StatusCode::SERVICE_UNAVAILABLE
    );

    // A loop that has ended.
    let (source, requests) = metrics_http::channel();
    drop(requests);
    let address = start(source).await;
    let reply = get(address, "/healthz").await;
    assert_eq!(
        (reply.code, reply.body.as_str()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon's loop is not running\n"
        )
    );
}

#[tokio::test]
async fn other_paths_are_404_and_other_methods_405() {
    let address = start(fake_daemon(status("master", "master", true))).await;
    for path in ["/", "/metrics/", "/favicon.ico", "/healthz/x"] {
        assert_eq!(
            get(address, path).await.code,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    let reply = request(address, Method::POST, "/metrics").await;
    assert_eq!(reply.code, StatusCode::METHOD_NOT_ALLOWED);
    // A query string does not change the path.
    assert_eq!(get(address, "/metrics?x=1").await.code, StatusCode::OK);
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_dropped() {
    let address = start(fake_daemon(status("master", "master", true))).await;
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buffer = Vec::new();
    // The server closes the connection after its header read timeout (2 s), with or
    // without a 408 answer.
    let read = tokio::time::timeout(Duration::from_secs(8), stream.read_to_end(&mut buffer))
        .await
        .expect("closed by the server within 8 s");
    let _ = read;
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1500),
        "closed after {waited:?}"
    );
    assert!(
        !String::from_utf8_lossy(&buffer).contains("200 OK"),
        "{buffer:?}"
    );
}

#[tokio::test]
async fn idle_connections_beyond_the_limit_wait_and_do_not_starve_the_server() {
    let address = start(fake_daemon(status("master", "master", true))).await;
    // Fill every slot with a connection that sends nothing.
    let mut idle = Vec::new();
    for _ in 0..metrics_http::MAX_CONNECTIONS {
        idle.push(TcpStream::connect(address).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The next client waits in the backlog until the idle ones time out, then is served.
    let started = Instant::now();
    let reply = get(address, "/healthz").await;
    assert_eq!(reply.code, StatusCode::OK);
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "served after {:?}: the limit did not hold",
        started.elapsed()
    );
}

#[tokio::test]
async fn spawn_serves_on_the_configured_address_and_names_it_when_it_cannot() {
    let address = start(fake_daemon(status("master", "backup", true))).await;
    // The address is taken by the listener above: the error names it and the setting.
    let error = metrics_http::spawn(address, fake_daemon(status("master", "backup", true)))
        .await
        .expect_err("the address is in use");
    let shown = error.to_string();
    assert!(
        shown.contains(&address.to_string()) && shown.contains("[metrics] listen"),
        "{shown}"
    );
    // On a free port it serves.
    let free = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let task = metrics_http::spawn(free, fake_daemon(status("master", "backup", true)))
        .await
        .unwrap();
    assert_eq!(get(free, "/healthz").await.code, StatusCode::OK);
    task.abort();
}
