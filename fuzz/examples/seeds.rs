//! Writes the seed corpus: real queries built with hickory (plain, EDNS with DO and NSID,
//! recursive outside the zone, a large answer, an unknown opcode, two OPT records), as
//! datagrams for `answer_udp` and as framed streams for `tcp_stream`.

use hickory_proto::op::{Edns, Message, OpCode, Query};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::{Name, RecordType};
use vipd::dns::framing::frame;

fn query(name: &str, record_type: RecordType, edit: impl FnOnce(&mut Message)) -> Vec<u8> {
    let mut message = Message::query();
    message.metadata.id = 0x1234;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), record_type));
    edit(&mut message);
    message.to_vec().unwrap()
}

fn edns(message: &mut Message, edit: impl FnOnce(&mut Edns)) {
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    edit(&mut edns);
    message.set_edns(edns);
}

fn main() {
    let mut seeds = vec![
        query("svc.cluster.example.", RecordType::A, |_| {}),
        query("svc.cluster.example.", RecordType::TXT, |m| edns(m, |_| {})),
        query("cluster.example.", RecordType::SOA, |m| {
            edns(m, |e| {
                e.set_dnssec_ok(true);
                e.options_mut().insert(EdnsOption::Unknown(3, Vec::new()));
            })
        }),
        query("big.cluster.example.", RecordType::A, |_| {}),
        query("big.cluster.example.", RecordType::A, |m| {
            edns(m, |e| {
                e.set_max_payload(512);
            })
        }),
        query("nothing.cluster.example.", RecordType::AAAA, |_| {}),
        query("www.example.org.", RecordType::A, |m| {
            m.metadata.recursion_desired = true;
            edns(m, |_| {})
        }),
        query("cluster.example.", RecordType::AXFR, |_| {}),
        query("svc.cluster.example.", RecordType::A, |m| {
            m.metadata.op_code = OpCode::Unknown(15);
            m.metadata.checking_disabled = true;
        }),
        query("svc.cluster.example.", RecordType::A, |m| {
            edns(m, |e| {
                e.set_version(1);
            })
        }),
    ];
    let mut two_opts = seeds[1].clone();
    two_opts[11] = 2;
    two_opts.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    seeds.push(two_opts);
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus");
    for (target, framed) in [("answer_udp", false), ("tcp_stream", true)] {
        let out = format!("{dir}/{target}");
        std::fs::create_dir_all(&out).unwrap();
        for (i, seed) in seeds.iter().enumerate() {
            let bytes = if framed {
                // Pattern byte, then two pipelined copies of the query.
                [vec![i as u8], frame(seed), frame(seed)].concat()
            } else {
                seed.clone()
            };
            std::fs::write(format!("{out}/seed-{i:02}"), bytes).unwrap();
        }
    }
    println!("{} seeds per target in {dir}", seeds.len());
}
