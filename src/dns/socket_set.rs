//! Many sockets behind one registration with the runtime: an epoll set of its own, itself
//! watched by tokio. A node serves DNS on every virtual address of its groups; a tokio
//! registration and a waiting future per socket cost about 800 bytes per address and thread
//! (2.4 MiB at 1000 groups), the set only the kernel's entry.

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

struct Set(Epoll);

impl AsRawFd for Set {
    fn as_raw_fd(&self) -> RawFd {
        self.0.0.as_raw_fd()
    }
}

/// An epoll set (level-triggered) of sockets, each known by its index.
pub struct SocketSet {
    set: AsyncFd<Set>,
    events: Vec<EpollEvent>,
}

impl SocketSet {
    /// Watches every socket of `sockets` for input; their indexes name them.
    pub fn new<S: AsFd>(sockets: &[S]) -> io::Result<SocketSet> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        for (index, socket) in sockets.iter().enumerate() {
            epoll.add(socket, EpollEvent::new(EpollFlags::EPOLLIN, index as u64))?;
        }
        // SAFETY: the set owns its descriptor, which stays open as long as the AsyncFd.
        let set = unsafe { AsyncFd::register_with_interest(Set(epoll), Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(SocketSet {
            set,
            events: vec![EpollEvent::empty(); 64],
        })
    }

    /// Waits until at least one socket has input; returns the indexes of those that have
    /// (some of them: at most 64 at a time; the others come next time). An error of the set
    /// itself is logged and waited out, not spun on.
    pub async fn ready(&mut self) -> impl Iterator<Item = usize> + '_ {
        loop {
            match self.poll_ready().await {
                Ok(0) => {}
                Ok(n) => return self.events[..n].iter().map(|e| e.data() as usize),
                Err(e) => {
                    tracing::warn!("DNS sockets: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// How many sockets have input (0: none left, the set waits for its next wake-up).
    async fn poll_ready(&mut self) -> io::Result<usize> {
        let mut guard = self.set.readable().await?;
        let n = guard
            .get_inner()
            .0
            .wait(&mut self.events, EpollTimeout::ZERO)?;
        if n == 0 {
            guard.clear_ready();
        }
        Ok(n)
    }
}
