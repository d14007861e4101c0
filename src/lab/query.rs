//! A DNS client for the lab, built on vipd's own DNS code (hickory-proto): what `dig +short`
//! showed, with nothing installed. Blocking, so that it runs on a thread inside a namespace
//! ([`super::Lab::in_namespace`]).

use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

/// How long one question waits for its answer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(1);

/// Asks `server` over UDP for `name`'s records of `record_type`, once. The answers come
/// back as `dig +short` prints them (addresses; TXT strings quoted); an empty list is a
/// NOERROR answer without records of that type.
pub fn ask(server: SocketAddr, name: &str, record_type: RecordType) -> Result<Vec<String>, String> {
    let owner = Name::from_ascii(name).map_err(|e| format!("`{name}`: {e}"))?;
    let mut query = Message::query();
    query.add_query(Query::query(owner, record_type));
    let bytes = query.to_vec().map_err(|e| e.to_string())?;
    let bind: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let socket = UdpSocket::bind(bind).map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(ANSWER_TIMEOUT))
        .map_err(|e| e.to_string())?;
    socket.connect(server).map_err(|e| e.to_string())?;
    socket.send(&bytes).map_err(|e| e.to_string())?;
    let mut buffer = vec![0u8; 4096];
    let answer = loop {
        let len = socket.recv(&mut buffer).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                format!("no answer within {} s", ANSWER_TIMEOUT.as_secs_f64())
            }
            _ => e.to_string(),
        })?;
        match Message::from_vec(&buffer[..len]) {
            // A stray datagram: keep waiting for ours (the read time-out still bounds it).
            Ok(answer) if answer.metadata.id == query.metadata.id => break answer,
            Ok(_) | Err(_) => continue,
        }
    };
    if answer.metadata.response_code != ResponseCode::NoError {
        return Err(answer.metadata.response_code.to_string());
    }
    Ok(answer
        .answers
        .iter()
        .filter(|record| record.record_type() == record_type)
        .map(|record| match &record.data {
            RData::TXT(txt) => txt
                .txt_data
                .iter()
                .map(|part| format!("\"{}\"", String::from_utf8_lossy(part)))
                .collect::<Vec<_>>()
                .join(" "),
            data => data.to_string(),
        })
        .collect())
}
