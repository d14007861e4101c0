//! DNS: every node serves the cluster zone, and the owner of a group can register its
//! virtual names in the site's DNS.
//!
//! The server in layers: `answer` (query bytes to reply bytes, pure), `ratelimit`,
//! `framing` (TCP length prefixes, pure), `forward` (recursion: ACL, hickory's resolver and cache), `serve` (threads, sockets, TCP
//! limits), and `server` (the shared state that ties them together).

pub mod answer;
pub mod forward;
pub mod framing;
pub mod ratelimit;
pub mod serve;
pub mod server;
pub mod socket_set;
pub mod udp_batch;
pub mod update;
pub mod zone;
