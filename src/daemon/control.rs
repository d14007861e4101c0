//! The control socket: one JSON request per line from the client, one JSON answer per line
//! back, versioned, for root (or the daemon's own user, or a configured group) only, checked
//! with the peer's credentials (SO_PEERCRED), not just the file's mode.
//!
//! ```text
//! → {"version":1,"command":"status"}
//! → {"version":1,"command":"reload"}
//! → {"version":1,"command":"handover","group":"master-server","to":"beta"}   ("to" optional)
//! → {"version":1,"command":"drain"}
//! → {"version":1,"command":"undrain"}
//! ← {"version":1,"ok":true,"message":"...","status":{...}}
//! ← {"version":1,"ok":false,"error":"..."}
//! ```

use super::status::Status;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;
/// A request line must arrive within this time, and be at most this long.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
const MAX_REQUEST: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "lowercase")]
pub enum Command {
    Status,
    Reload,
    Handover {
        group: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
    },
    Drain,
    Undrain,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub version: u32,
    #[serde(flatten)]
    pub command: Command,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub version: u32,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Box<Status>>,
}

impl Response {
    pub fn ok(message: impl Into<String>) -> Response {
        Response {
            version: VERSION,
            ok: true,
            message: Some(message.into()),
            error: None,
            status: None,
        }
    }

    pub fn error(error: impl Into<String>) -> Response {
        Response {
            version: VERSION,
            ok: false,
            message: None,
            error: Some(error.into()),
            status: None,
        }
    }

    pub fn status(status: Status) -> Response {
        Response {
            version: VERSION,
            ok: true,
            message: None,
            error: None,
            status: Some(Box::new(status)),
        }
    }
}

/// Who may use the socket: root, the daemon's own user, and members of `group` (by the
/// peer's primary group, as SO_PEERCRED tells it).
#[derive(Debug, Clone, Copy)]
pub struct Access {
    pub group: Option<u32>,
}

impl Access {
    pub fn allows(&self, uid: u32, gid: u32) -> bool {
        uid == 0 || uid == nix::unistd::geteuid().as_raw() || self.group == Some(gid)
    }
}

/// Parses one request line; the error says what is wrong in words a script author reads.
pub fn parse(line: &str) -> Result<Request, String> {
    let request: Request = serde_json::from_str(line.trim())
        .map_err(|e| format!("not a vipd control request ({e}); see README, control protocol"))?;
    if request.version != VERSION {
        return Err(format!(
            "control protocol version {} is not spoken here (this vipd speaks {VERSION})",
            request.version
        ));
    }
    Ok(request)
}

/// Reads a connection's request, after checking the peer's credentials.
pub async fn read_request(stream: &mut UnixStream, access: Access) -> Result<Request, String> {
    let credentials = stream
        .peer_cred()
        .map_err(|e| format!("cannot read the caller's credentials: {e}"))?;
    if !access.allows(credentials.uid(), credentials.gid()) {
        return Err(format!(
            "permission denied: uid {} gid {} may not control vipd (root or the control group only)",
            credentials.uid(),
            credentials.gid()
        ));
    }
    let mut line = String::new();
    let mut reader = BufReader::new(stream.take(MAX_REQUEST as u64));
    match tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line)).await {
        Err(_) => Err("no request within 2 s".into()),
        Ok(Err(e)) => Err(format!("reading the request: {e}")),
        Ok(Ok(_)) => parse(&line),
    }
}

/// Writes one answer line.
pub async fn answer(stream: &mut UnixStream, response: &Response) {
    let mut json = serde_json::to_vec(response).unwrap_or_default();
    json.push(b'\n');
    let _ = tokio::time::timeout(REQUEST_TIMEOUT, stream.write_all(&json)).await;
}

/// The client side: sends `command` to the daemon at `control` and waits for its answer
/// (up to `wait`: a handover or a drain takes a few advert intervals).
pub async fn request(control: &Path, command: Command, wait: Duration) -> Result<Response, String> {
    let mut stream = UnixStream::connect(control).await.map_err(|e| {
        format!(
            "cannot reach vipd at {}: {e} (is it running? --control)",
            control.display()
        )
    })?;
    let mut line = serde_json::to_vec(&Request {
        version: VERSION,
        command,
    })
    .map_err(|e| e.to_string())?;
    line.push(b'\n');
    // A daemon that refuses the caller answers before it reads: read its answer even when
    // the request could not be written.
    let sent = stream.write_all(&line).await;
    let mut answer = String::new();
    let mut reader = BufReader::new(stream);
    let read = tokio::time::timeout(wait, reader.read_line(&mut answer))
        .await
        .map_err(|_| format!("no answer from vipd within {wait:?}"))?;
    if answer.is_empty() {
        sent.map_err(|e| format!("sending the request: {e}"))?;
        read.map_err(|e| format!("reading the answer: {e}"))?;
        return Err("vipd closed the connection without an answer".into());
    }
    serde_json::from_str(&answer).map_err(|e| format!("bad answer from vipd: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_bad_ones_say_why() {
        let handover = Request {
            version: 1,
            command: Command::Handover {
                group: "g".into(),
                to: Some("beta".into()),
            },
        };
        let line = serde_json::to_string(&handover).unwrap();
        assert_eq!(
            line,
            r#"{"version":1,"command":"handover","group":"g","to":"beta"}"#
        );
        assert_eq!(parse(&line), Ok(handover));
        assert_eq!(
            parse(r#"{"version":1,"command":"drain"}"#).map(|r| r.command),
            Ok(Command::Drain)
        );
        assert!(
            parse(r#"{"version":2,"command":"drain"}"#)
                .unwrap_err()
                .contains("version 2")
        );
        assert!(
            parse("status")
                .unwrap_err()
                .contains("not a vipd control request")
        );
        assert!(parse(r#"{"version":1,"command":"reboot"}"#).is_err());
    }

    #[test]
    fn only_root_the_daemon_user_or_the_group_may_control() {
        let me = nix::unistd::geteuid().as_raw();
        let access = Access { group: Some(4242) };
        assert!(access.allows(0, 0));
        assert!(access.allows(me, 12345));
        assert!(access.allows(54321, 4242));
        if me != 54321 {
            assert!(!access.allows(54321, 54321));
        }
    }
}
