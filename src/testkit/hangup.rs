//! A port that accepts TCP connections and closes each at once, counting them: to a
//! registry client it is a host whose TLS handshake never completes (a connect error),
//! like a mirror that is down, but one whose connection attempts can be counted.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A running hang-up port. Stops when dropped.
pub struct Hangup {
    addr: String,
    accepted: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Hangup {
    /// Listen on a free loopback port.
    pub fn start() -> std::io::Result<Hangup> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?.to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (count, stopped) = (accepted.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::Acquire) {
                    return;
                }
                if conn.is_ok() {
                    count.fetch_add(1, Ordering::AcqRel);
                }
                // Dropped here: the connection is closed before a byte is read.
            }
        });
        Ok(Hangup {
            addr,
            accepted,
            stop,
        })
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::Acquire)
    }
}

impl Drop for Hangup {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the accept loop so that it sees the flag.
        let _ = std::net::TcpStream::connect(&self.addr);
    }
}
