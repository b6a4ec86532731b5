//! Long-lived flows for revocation tests: a TCP or UDP stream sent from inside a
//! container's network namespace (a thread of this test enters it), counting the bytes
//! echoed back, and a UDP echo server on a test host.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::harness::enter_net_of;

/// A thread that runs until its owner is dropped.
struct Worker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One stream: a line every 100 ms to its destination, and the bytes that came back.
pub(crate) struct Stream {
    echoed: Arc<AtomicU64>,
    _worker: Worker,
}

fn socket_addr(dest: &str, port: u16) -> SocketAddr {
    let ip: std::net::IpAddr = dest.parse().unwrap_or_else(|e| panic!("{dest}: {e}"));
    SocketAddr::new(ip, port)
}

impl Stream {
    /// A TCP connection from the namespace of `pid` to `dest:port` (an echo server).
    pub(crate) fn tcp(pid: u32, dest: &str, port: u16) -> Stream {
        let to = socket_addr(dest, port);
        Stream::spawn(pid, move |echoed, stop| {
            let mut conn = TcpStream::connect_timeout(&to, Duration::from_secs(3))
                .unwrap_or_else(|e| panic!("connect {to} from the container's namespace: {e}"));
            conn.set_read_timeout(Some(Duration::from_millis(100))).unwrap_or_else(|e| panic!("{e}"));
            let mut buf = [0u8; 256];
            while !stop.load(Ordering::Relaxed) {
                let _ = conn.write_all(b"ping\n");
                if let Ok(n) = conn.read(&mut buf) {
                    echoed.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
        })
    }

    /// A UDP flow (one connected socket, so one conntrack entry) from the namespace of `pid`.
    pub(crate) fn udp(pid: u32, dest: &str, port: u16) -> Stream {
        let to = socket_addr(dest, port);
        Stream::spawn(pid, move |echoed, stop| {
            let sock =
                UdpSocket::bind(if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }).unwrap_or_else(|e| panic!("{e}"));
            sock.connect(to).unwrap_or_else(|e| panic!("{e}"));
            sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap_or_else(|e| panic!("{e}"));
            let mut buf = [0u8; 256];
            while !stop.load(Ordering::Relaxed) {
                let _ = sock.send(b"ping\n");
                if let Ok(n) = sock.recv(&mut buf) {
                    echoed.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
        })
    }

    fn spawn(pid: u32, body: impl FnOnce(Arc<AtomicU64>, Arc<AtomicBool>) + Send + 'static) -> Stream {
        let echoed = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (e, s) = (echoed.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            enter_net_of(pid);
            body(e, s);
        });
        Stream { echoed, _worker: Worker { stop, thread: Some(thread) } }
    }

    pub(crate) fn echoed(&self) -> u64 {
        self.echoed.load(Ordering::Relaxed)
    }

    /// True when bytes come back within `limit`, measured from now.
    pub(crate) fn flows_within(&self, limit: Duration) -> bool {
        let before = self.echoed();
        crate::harness::within(limit, || self.echoed() > before)
    }
}

/// A UDP echo server on a test host (`addr:port` inside the test-host namespace).
pub(crate) struct UdpEcho {
    _worker: Worker,
}

impl UdpEcho {
    pub(crate) fn on_test_host(addr: &str, port: u16) -> UdpEcho {
        let ns = std::env::var("TEROK_SHIELD_TEST_HOSTS_NS").unwrap_or_else(|_| "tshield-hosts".into());
        let at = socket_addr(addr, port);
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let file = std::fs::File::open(format!("/run/netns/{ns}")).unwrap_or_else(|e| panic!("netns {ns}: {e}"));
            nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap_or_else(|e| panic!("setns: {e}"));
            let sock = UdpSocket::bind(at).unwrap_or_else(|e| panic!("bind {at} on the test host: {e}"));
            sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap_or_else(|e| panic!("{e}"));
            let _ = ready_tx.send(());
            let mut buf = [0u8; 2048];
            while !s.load(Ordering::Relaxed) {
                if let Ok((n, from)) = sock.recv_from(&mut buf) {
                    let _ = sock.send_to(&buf[..n], from);
                }
            }
        });
        ready_rx.recv_timeout(Duration::from_secs(5)).unwrap_or_else(|_| panic!("the UDP echo on {at} did not start"));
        UdpEcho { _worker: Worker { stop, thread: Some(thread) } }
    }
}
