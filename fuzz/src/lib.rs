//! What both fuzz targets share: a server with a zone that has a large answer (truncation),
//! forwarders and a recursion ACL (both outcomes), and the properties every reply must have.

use hickory_proto::op::Message;
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{Name, RData, Record};
use hickory_server::net::xfer::Protocol;
use std::net::SocketAddr;
use std::sync::LazyLock;
use vipd::config::Config;
use vipd::dns::answer::{self, Upstream};
use vipd::dns::server::{Reply, Server};

pub use hickory_server::net::xfer::Protocol as Transport;

pub static SERVER: LazyLock<Server> = LazyLock::new(|| {
    let big: Vec<String> = (150..190).map(|i| format!("\"192.0.2.{i}/24\"")).collect();
    let text = format!(
        "[cluster]\nname = \"f\"\nzone = \"cluster.example.\"\n\
         [[node]]\nname = \"alpha\"\ninterface = \"eth0\"\naddress = \"192.0.2.11\"\n\
         [[group]]\nname = \"g\"\nvrid = 1\naddresses = [\"192.0.2.100/24\", \"2001:db8::100/64\"]\nnames = [\"svc\"]\npriority = {{ alpha = 100 }}\n\
         [[group]]\nname = \"big\"\nvrid = 2\naddresses = [{}]\nnames = [\"big\"]\npriority = {{ alpha = 100 }}\n\
         [dns]\nforwarders = [\"198.51.100.53\"]\nallow_recursion = [\"192.0.2.0/24\"]\n",
        big.join(", ")
    );
    let config = Config::parse("fuzz.toml", &text).expect("fuzz config");
    let zone = vipd::dns::zone::build(&config, Some(0), &[Some("alpha".into()), None], 1);
    Server::new(&config.dns, zone)
});

/// A client allowed to recurse, and one that is not.
pub fn clients() -> [SocketAddr; 2] {
    [
        "192.0.2.200:5353".parse().unwrap(),
        "198.51.100.7:5353".parse().unwrap(),
    ]
}

/// What an upstream might say, for the forwarding path.
pub fn upstreams() -> Vec<Upstream> {
    let name = Name::from_ascii("www.example.org.").unwrap();
    let answers = (0..60u8)
        .map(|i| Record::from_rdata(name.clone(), 60, RData::A(A::new(198, 51, 100, i))))
        .collect();
    let soa = Record::from_rdata(
        Name::from_ascii("example.org.").unwrap(),
        5,
        RData::SOA(SOA::new(
            Name::from_ascii("ns.example.org.").unwrap(),
            Name::from_ascii("hostmaster.example.org.").unwrap(),
            1,
            3600,
            600,
            86400,
            5,
        )),
    );
    vec![
        Upstream::Failed,
        Upstream::Negative {
            rcode: hickory_proto::op::ResponseCode::NXDomain,
            soa: Some(Box::new(soa)),
        },
        Upstream::Answer {
            answers,
            authorities: Vec::new(),
        },
    ]
}

/// Every reply: a response to this query (same ID, QR set), parseable, and over UDP no
/// larger than 1232 bytes (512 without EDNS).
pub fn check_reply(query: &[u8], reply: &[u8], protocol: Protocol) {
    assert!(reply.len() >= 12, "short reply {reply:?}");
    assert_eq!(reply[..2], query[..2], "ID");
    assert!(reply[2] & 0x80 != 0, "QR");
    if protocol == Protocol::Udp {
        assert!(reply.len() <= 1232, "UDP reply of {} bytes", reply.len());
        let arcount = u16::from_be_bytes([reply[10], reply[11]]);
        if arcount == 0 {
            assert!(reply.len() <= 512, "no EDNS, {} bytes", reply.len());
        }
    }
    if let Err(e) = Message::from_vec(reply) {
        panic!("unparseable reply ({e}): {reply:?} to {query:?}");
    }
}

/// Answers `query` as the server would over `protocol`, forwarding included, and checks
/// every reply; returns them.
pub fn answer_all(query: &[u8], protocol: Protocol) -> Vec<Vec<u8>> {
    let mut replies = Vec::new();
    for client in clients() {
        match SERVER.answer(query, client, protocol) {
            Reply::Send(reply) => {
                check_reply(query, &reply, protocol);
                replies.push(reply);
            }
            Reply::Forward => {
                for upstream in upstreams() {
                    if let Some(reply) =
                        answer::relayed(query, client, protocol, Some("alpha"), &upstream)
                    {
                        check_reply(query, &reply, protocol);
                        replies.push(reply);
                    }
                }
            }
            Reply::Drop => {}
        }
    }
    replies
}
