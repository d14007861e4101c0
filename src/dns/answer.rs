//! Answering, pure: the bytes of one query, the client and the transport in, the bytes of the
//! reply out. No sockets, no clock, no upstream: forwarding is only decided here
//! ([`Reply::Forward`]); the upstream's result comes back through [`relayed`].

use super::zone::{Lookup, Zone};
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::{Edns, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::rdata::opt::{EdnsCode, EdnsOption, NSIDPayload};
use hickory_server::proto::rr::{DNSClass, Record, RecordType};
use hickory_server::proto::serialize::binary::BinEncoder;
use hickory_server::server::Request;
use hickory_server::zone_handler::MessageResponseBuilder;
use std::net::SocketAddr;
use tracing::{debug, warn};

/// Largest UDP answer we send, whatever the client offers (the DNS flag day 2020 value).
pub const MAX_UDP_PAYLOAD: u16 = 1232;

/// What to do with a query.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    Send(Vec<u8>),
    /// Outside the zone, forwarders configured, recursion desired and allowed for this
    /// client: ask the upstream, then encode with [`relayed`].
    Forward,
    Drop,
}

/// What an answer was, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Answer,
    NoData,
    NxDomain,
    Refused,
    /// A recursive question from a client outside the recursion ACL: REFUSED.
    RecursionRefused,
    FormErr,
    Other,
}

impl Kind {
    /// Answers that depend only on the question, the zone and whether the client may recurse.
    pub fn cacheable(self) -> bool {
        matches!(
            self,
            Kind::Answer | Kind::NoData | Kind::NxDomain | Kind::Refused | Kind::RecursionRefused
        )
    }
}

/// What the answer depends on besides the query.
pub struct Context<'a> {
    pub zone: &'a Zone,
    /// Forwarders are configured: names outside the zone can be answered.
    pub forwarding: bool,
    /// This client is in the recursion ACL.
    pub recursion_allowed: bool,
    /// This node's name, sent as NSID (RFC 5001) to clients that ask for it.
    pub nsid: Option<&'a str>,
}

/// The answer to one query received over `protocol` from `client`, and what kind it is.
/// `query` must hold at least a header, and be a query (QR clear).
pub fn respond(
    context: &Context,
    query: &[u8],
    client: SocketAddr,
    protocol: Protocol,
) -> (Reply, Kind) {
    if query.len() < 12 {
        return (Reply::Drop, Kind::Other);
    }
    // The question is echoed byte for byte: a compression pointer into the header would point
    // at different bytes in the reply and make it unreadable (found by fuzzing).
    if question_points_into_header(query) {
        debug!(%client, "malformed query: compression pointer into the header");
        return (Reply::Send(formerr(query)), Kind::FormErr);
    }
    let request = match Request::from_bytes(query.to_vec(), client, protocol) {
        Ok(request) => request,
        Err(e) => {
            debug!(%client, "malformed query: {e}");
            return (Reply::Send(formerr(query)), Kind::FormErr);
        }
    };
    let Some(decision) = decide(context, &request) else {
        return (Reply::Forward, Kind::Other);
    };
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.recursion_available = context.forwarding && context.recursion_allowed;
    metadata.authoritative = decision.authoritative;
    metadata.response_code = decision.rcode;
    if request.metadata.op_code != OpCode::Query {
        // The other flags mean nothing for an opcode we do not implement: not echoed.
        metadata.checking_disabled = false;
    }
    let edns = reply_edns(&request, context.nsid);
    match encode(
        &request,
        metadata,
        edns.as_ref(),
        &decision.answers,
        decision.authority,
        protocol,
    ) {
        Some(bytes) => (Reply::Send(bytes), decision.kind),
        None => (Reply::Drop, Kind::Other),
    }
}

/// A reply decided from the zone alone.
struct Decision<'z> {
    rcode: ResponseCode,
    kind: Kind,
    authoritative: bool,
    answers: Vec<&'z Record>,
    authority: &'z [Record],
}

fn refusal<'z>(rcode: ResponseCode, kind: Kind) -> Decision<'z> {
    Decision {
        rcode,
        kind,
        authoritative: false,
        answers: Vec::new(),
        authority: &[],
    }
}

/// What to answer; None: forward.
fn decide<'z>(context: &Context<'z>, request: &Request) -> Option<Decision<'z>> {
    if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
        return Some(refusal(ResponseCode::BADVERS, Kind::Other));
    }
    if request.metadata.op_code != OpCode::Query {
        return Some(refusal(ResponseCode::NotImp, Kind::Other));
    }
    let Ok(info) = request.request_info() else {
        return Some(refusal(ResponseCode::FormErr, Kind::FormErr));
    };
    let (name, record_type) = (info.query.name(), info.query.query_type());
    let transfer = matches!(record_type, RecordType::AXFR | RecordType::IXFR);
    if info.query.query_class() != DNSClass::IN || transfer {
        return Some(refusal(ResponseCode::Refused, Kind::Refused));
    }
    let zone = context.zone;
    let soa = std::slice::from_ref(zone.negative_soa());
    let found = |rcode, kind, answers, authority| Decision {
        rcode,
        kind,
        authoritative: true,
        answers,
        authority,
    };
    let recursive = context.forwarding && request.metadata.recursion_desired;
    Some(match zone.lookup(name, record_type) {
        Lookup::NotInZone if recursive && context.recursion_allowed => return None,
        Lookup::NotInZone if recursive => refusal(ResponseCode::Refused, Kind::RecursionRefused),
        Lookup::NotInZone => refusal(ResponseCode::Refused, Kind::Refused),
        Lookup::Answer(records) => found(ResponseCode::NoError, Kind::Answer, records, &[]),
        Lookup::NoData => found(ResponseCode::NoError, Kind::NoData, Vec::new(), soa),
        Lookup::NxDomain => found(ResponseCode::NXDomain, Kind::NxDomain, Vec::new(), soa),
    })
}

/// The OPT of the reply to a query that had one (RFC 6891): version 0, our payload size, the
/// DO bit copied (RFC 3225 3), and NSID when asked (RFC 5001).
fn reply_edns(request: &Request, nsid: Option<&str>) -> Option<Edns> {
    let offered = request.edns.as_ref()?;
    let mut edns = Edns::new();
    edns.set_max_payload(offered.max_payload().clamp(512, MAX_UDP_PAYLOAD))
        .set_version(0)
        .set_dnssec_ok(offered.flags().dnssec_ok);
    if offered.option(EdnsCode::NSID).is_some()
        && let Some(payload) = nsid.and_then(|n| NSIDPayload::new(n.as_bytes()).ok())
    {
        edns.options_mut().insert(EdnsOption::NSID(payload));
    }
    Some(edns)
}

/// Encodes a reply; over UDP, one that does not fit becomes header, question and OPT with TC
/// (RFC 6891 7), for the client to ask again over TCP.
fn encode<'r>(
    request: &Request,
    metadata: Metadata,
    edns: Option<&Edns>,
    answers: &[&'r Record],
    authority: &'r [Record],
    protocol: Protocol,
) -> Option<Vec<u8>> {
    let max_size = match protocol {
        Protocol::Udp => edns.map_or(512, |e| e.max_payload()),
        _ => u16::MAX,
    };
    let emit = |metadata: Metadata, answers: &[&'r Record], authority: &'r [Record]| {
        let response = MessageResponseBuilder::new(&request.queries, edns).build(
            metadata,
            answers.iter().copied(),
            authority.iter(),
            std::iter::empty(),
            std::iter::empty(),
        );
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(max_size);
        response.destructive_emit(&mut encoder)?;
        let truncated = bytes.len() > 2 && bytes[2] & 0x02 != 0;
        Ok::<_, hickory_server::proto::ProtoError>((bytes, truncated))
    };
    let full = emit(metadata, answers, authority);
    let truncated = match full {
        Ok((bytes, false)) => return Some(bytes),
        Ok((_, true)) => true,
        Err(ref e) => {
            debug!("answer does not fit in {max_size} bytes: {e}");
            true
        }
    };
    let mut metadata = metadata;
    metadata.truncation = truncated;
    match emit(metadata, &[], &[]) {
        Ok((bytes, _)) => Some(bytes),
        Err(e) => {
            warn!(client = %request.src(), "cannot encode an answer: {e}");
            None
        }
    }
}

/// What the upstream said about a forwarded question.
#[derive(Debug, Clone, PartialEq)]
pub enum Upstream {
    /// Records (TTLs as the resolver's cache has them now).
    Answer {
        answers: Vec<Record>,
        authorities: Vec<Record>,
    },
    /// NXDOMAIN or NODATA, with the SOA for the negative TTL (RFC 2308).
    Negative {
        rcode: ResponseCode,
        soa: Option<Box<Record>>,
    },
    /// No usable answer: unreachable, timed out, or an error from the upstream.
    Failed,
}

/// The reply to a forwarded query, from what the upstream said: recursion available, not
/// authoritative; SERVFAIL when it failed.
pub fn relayed(
    query: &[u8],
    client: SocketAddr,
    protocol: Protocol,
    nsid: Option<&str>,
    upstream: &Upstream,
) -> Option<Vec<u8>> {
    let request = Request::from_bytes(query.to_vec(), client, protocol).ok()?;
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.recursion_available = true;
    let empty = Vec::new();
    let (answers, authorities): (Vec<&Record>, &[Record]) = match upstream {
        Upstream::Answer {
            answers,
            authorities,
        } => {
            metadata.response_code = ResponseCode::NoError;
            (answers.iter().collect(), authorities)
        }
        Upstream::Negative { rcode, soa } => {
            metadata.response_code = *rcode;
            (
                Vec::new(),
                soa.as_deref().map_or(&empty[..], std::slice::from_ref),
            )
        }
        Upstream::Failed => {
            metadata.response_code = ResponseCode::ServFail;
            (Vec::new(), &empty[..])
        }
    };
    let edns = reply_edns(&request, nsid);
    encode(
        &request,
        metadata,
        edns.as_ref(),
        &answers,
        authorities,
        protocol,
    )
}

/// FORMERR for a query whose header is readable but not the rest: ID and opcode kept, and an
/// OPT when the query had one (RFC 6891 7), its DO bit copied.
pub fn formerr(query: &[u8]) -> Vec<u8> {
    let mut reply = vec![0u8; 12];
    reply[..2].copy_from_slice(&query[..2]);
    reply[2] = 0x80 | (query[2] & 0x78);
    reply[3] = ResponseCode::FormErr.low();
    if let Some(ttl) = find_opt(query) {
        reply[11] = 1;
        let payload = MAX_UDP_PAYLOAD.to_be_bytes();
        let do_bit = ((ttl >> 8) as u8) & 0x80;
        // Root name, type OPT, class = payload size, TTL = rcode high 0, version 0, flags DO.
        reply.extend_from_slice(&[0, 0, 41, payload[0], payload[1], 0, 0, do_bit, 0, 0, 0]);
    }
    reply
}

/// A name in the question section holds a compression pointer to the 12 header bytes (only
/// the question section is copied into the reply at the same place; the header is not).
fn question_points_into_header(message: &[u8]) -> bool {
    let questions = usize::from(u16::from_be_bytes([message[4], message[5]]));
    let mut at = 12;
    for _ in 0..questions {
        // At most 128 labels per name.
        for _ in 0..128 {
            let Some(&length) = message.get(at) else {
                return false;
            };
            if length & 0xc0 == 0xc0 {
                let Some(&low) = message.get(at + 1) else {
                    return false;
                };
                if (usize::from(length & 0x3f) << 8 | usize::from(low)) < 12 {
                    return true;
                }
                at += 2;
                break;
            }
            at += 1 + usize::from(length);
            if length == 0 {
                break;
            }
        }
        at += 4;
    }
    false
}

/// The TTL field of the first OPT record in a message's additional section, walking the raw
/// bytes as far as they are readable (a message hickory rejects may still have one).
fn find_opt(message: &[u8]) -> Option<u32> {
    let count = |at: usize| usize::from(u16::from_be_bytes([message[at], message[at + 1]]));
    let (questions, records) = (count(4), count(6) + count(8));
    let additionals = count(10);
    let mut at = 12;
    let skip_name = |mut at: usize| -> Option<usize> {
        // At most 128 labels: a name is at most 255 bytes.
        for _ in 0..128 {
            let length = *message.get(at)?;
            match length {
                0 => return Some(at + 1),
                l if l & 0xc0 == 0xc0 => return Some(at + 2),
                l if l & 0xc0 == 0 => at += 1 + usize::from(l),
                _ => return None,
            }
        }
        None
    };
    for _ in 0..questions {
        at = skip_name(at)? + 4;
    }
    for index in 0..records + additionals {
        at = skip_name(at)?;
        let fixed = message.get(at..at + 10)?;
        let record_type = u16::from_be_bytes([fixed[0], fixed[1]]);
        let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
        let length = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        if index >= records && record_type == u16::from(RecordType::OPT) {
            return Some(ttl);
        }
        at += 10 + length;
    }
    None
}
