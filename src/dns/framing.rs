//! DNS over TCP framing (RFC 1035 4.2.2, RFC 7766 8): each message is preceded by its
//! length in two bytes. Pure: bytes go in as they arrive, however split; whole messages
//! come out.

/// Reassembles length-prefixed messages from a byte stream.
#[derive(Debug, Default)]
pub struct Framer {
    buffer: Vec<u8>,
    /// Bytes of `buffer` already handed out as messages.
    consumed: usize,
}

impl Framer {
    /// Adds bytes as they were read.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.consumed > 0 {
            self.buffer.drain(..self.consumed);
            self.consumed = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete message, if one has arrived.
    pub fn next_message(&mut self) -> Option<Vec<u8>> {
        let pending = &self.buffer[self.consumed..];
        let length = usize::from(u16::from_be_bytes([*pending.first()?, *pending.get(1)?]));
        let message = pending.get(2..2 + length)?.to_vec();
        self.consumed += 2 + length;
        Some(message)
    }

    /// Part of a message has arrived, not all of it.
    pub fn in_message(&self) -> bool {
        self.buffer.len() > self.consumed
    }
}

/// `message` with its two-byte length in front.
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(message.len() + 2);
    framed.extend_from_slice(&(message.len() as u16).to_be_bytes());
    framed.extend_from_slice(message);
    framed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_come_out_whole_however_the_stream_is_split() {
        let stream: Vec<u8> = [frame(b"first"), frame(b""), frame(&[7u8; 300])].concat();
        for split in 1..stream.len() {
            let mut framer = Framer::default();
            let mut out = Vec::new();
            for chunk in stream.chunks(split) {
                framer.push(chunk);
                while let Some(message) = framer.next_message() {
                    out.push(message);
                }
            }
            assert_eq!(
                out,
                [b"first".to_vec(), Vec::new(), vec![7u8; 300]],
                "{split}"
            );
            assert!(!framer.in_message());
        }
        let mut framer = Framer::default();
        framer.push(&[0]);
        assert!(framer.in_message() && framer.next_message().is_none());
    }
}
