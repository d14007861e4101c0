//! The optional per-client rate limit of UDP queries: a fixed one-second window per client
//! address. Pure: the second is passed in.

use std::collections::HashMap;
use std::net::IpAddr;

/// Clients remembered within one second.
const MAX_TRACKED_CLIENTS: usize = 65_536;

pub struct RateLimiter {
    limit: u32,
    window: u64,
    counts: HashMap<IpAddr, u32>,
}

impl RateLimiter {
    /// `limit` queries per second per client; 0: no limit.
    pub fn new(limit: u32) -> RateLimiter {
        RateLimiter {
            limit,
            window: 0,
            counts: HashMap::new(),
        }
    }

    pub fn allow(&mut self, client: IpAddr, now_s: u64) -> bool {
        if self.limit == 0 {
            return true;
        }
        if now_s != self.window || self.counts.len() >= MAX_TRACKED_CLIENTS {
            self.window = now_s;
            self.counts.clear();
        }
        let count = self.counts.entry(client).or_insert(0);
        *count += 1;
        *count <= self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_allows_the_limit_per_client_per_second() {
        let mut limiter = RateLimiter {
            limit: 3,
            window: 0,
            counts: HashMap::new(),
        };
        let (a, b): (IpAddr, IpAddr) = (
            "192.0.2.200".parse().unwrap(),
            "192.0.2.201".parse().unwrap(),
        );
        let allowed =
            |l: &mut RateLimiter, ip, second| (0..5).filter(|_| l.allow(ip, second)).count();
        assert_eq!(allowed(&mut limiter, a, 100), 3);
        assert_eq!(
            allowed(&mut limiter, b, 100),
            3,
            "another client has its own allowance"
        );
        assert_eq!(
            allowed(&mut limiter, a, 101),
            3,
            "a new second, a new allowance"
        );
        let mut off = RateLimiter {
            limit: 0,
            window: 0,
            counts: HashMap::new(),
        };
        assert_eq!(allowed(&mut off, a, 100), 5);
    }
}
