//! The client's view of a failover: a responder in every node answers UDP probes with its
//! name; a prober in the client namespace sends one probe per interval to the virtual address
//! and records who answered when. The outage is the gap between the last answer of the old
//! owner and the first of the new one.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime};

pub const PORT: u16 = 7007;

/// Answers every datagram with `name` and the datagram's first 8 bytes (its sequence), on
/// IPv4 and IPv6, until killed.
pub fn respond(name: &str, port: u16) -> io::Result<()> {
    let v4 = UdpSocket::bind(("0.0.0.0", port))?;
    let v6 = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::DGRAM, None)?;
    v6.set_only_v6(true)?;
    v6.bind(&SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)).into())?;
    let v6: UdpSocket = v6.into();
    let serve = |socket: UdpSocket, name: String| {
        std::thread::spawn(move || {
            let mut buffer = [0u8; 64];
            loop {
                if let Ok((len, from)) = socket.recv_from(&mut buffer) {
                    let mut reply = buffer[..len.min(8)].to_vec();
                    reply.extend_from_slice(name.as_bytes());
                    let _ = socket.send_to(&reply, from);
                }
            }
        })
    };
    let a = serve(v4, name.to_string());
    let b = serve(v6, name.to_string());
    let _ = a.join();
    let _ = b.join();
    Ok(())
}

#[derive(Debug, Clone, clap::Args)]
pub struct ProbeOptions {
    /// The virtual address to probe.
    #[arg(long)]
    pub target: IpAddr,
    #[arg(long, default_value_t = PORT)]
    pub port: u16,
    /// Microseconds between probes.
    #[arg(long, default_value_t = 1000)]
    pub interval_us: u64,
    /// How long to probe, in milliseconds (the probe always stops by itself).
    #[arg(long, default_value_t = 3000)]
    pub duration_ms: u64,
}

/// One answer: when it came (wall clock, µs since the epoch), its sequence, who sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub unix_us: u64,
    pub seq: u64,
    pub node: String,
}

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Probes and prints one line per answer: `unix_us seq node`, then `sent N`.
pub fn probe(options: &ProbeOptions) -> io::Result<()> {
    let bind: SocketAddr = match options.target {
        IpAddr::V4(_) => "0.0.0.0:0".parse().expect("literal"),
        IpAddr::V6(_) => "[::]:0".parse().expect("literal"),
    };
    let socket = UdpSocket::bind(bind)?;
    socket.set_nonblocking(true)?;
    let target = SocketAddr::new(options.target, options.port);
    let interval = Duration::from_micros(options.interval_us.max(100));
    let start = Instant::now();
    let end = start + Duration::from_millis(options.duration_ms);
    let mut out = String::new();
    let mut buffer = [0u8; 128];
    let mut seq: u64 = 0;
    let mut next = start;
    while Instant::now() < end {
        let now = Instant::now();
        if now >= next {
            seq += 1;
            // Unreachable errors while no one holds the address are part of the outage.
            let _ = socket.send_to(&seq.to_be_bytes(), target);
            next += interval;
        }
        loop {
            match socket.recv_from(&mut buffer) {
                Ok((len, _)) if len > 8 => {
                    let answered = u64::from_be_bytes(buffer[..8].try_into().expect("8 bytes"));
                    let node = String::from_utf8_lossy(&buffer[8..len]).to_string();
                    out.push_str(&format!("{} {answered} {node}\n", unix_us()));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => break,
            }
        }
        let wait = next
            .saturating_duration_since(Instant::now())
            .min(Duration::from_micros(200));
        std::thread::sleep(wait);
    }
    out.push_str(&format!("sent {seq}\n"));
    print!("{out}");
    Ok(())
}

/// Reads a probe's output.
pub fn parse_answers(text: &str) -> Vec<Answer> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let unix_us = parts.next()?.parse().ok()?;
            let seq = parts.next()?.parse().ok()?;
            let node = parts.next()?.to_string();
            Some(Answer { unix_us, seq, node })
        })
        .collect()
}

/// A change of owner as the client saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Handover {
    pub from: String,
    pub to: String,
    /// Wall clock of the last answer from `from` and of the first from `to`.
    pub last_old_us: u64,
    pub first_new_us: u64,
}

impl Handover {
    /// The gap the client saw without an answer.
    pub fn outage(&self) -> Duration {
        Duration::from_micros(self.first_new_us.saturating_sub(self.last_old_us))
    }
}

/// The first change of answering node after `after_us`.
pub fn handover(answers: &[Answer], after_us: u64) -> Option<Handover> {
    let mut previous: Option<&Answer> = None;
    for answer in answers {
        if let Some(p) = previous
            && p.node != answer.node
            && answer.unix_us >= after_us
        {
            return Some(Handover {
                from: p.node.clone(),
                to: answer.node.clone(),
                last_old_us: p.unix_us,
                first_new_us: answer.unix_us,
            });
        }
        previous = Some(answer);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_handover_and_its_gap() {
        let text = "100 1 alpha\n1100 2 alpha\n5100 6 beta\n6100 7 beta\nsent 7\n";
        let answers = parse_answers(text);
        assert_eq!(answers.len(), 4);
        let h = handover(&answers, 0).unwrap();
        assert_eq!((h.from.as_str(), h.to.as_str()), ("alpha", "beta"));
        assert_eq!(h.outage(), Duration::from_micros(4000));
        assert_eq!(handover(&answers, 6000), None);
    }
}
