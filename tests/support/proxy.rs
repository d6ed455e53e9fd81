//! A TCP proxy that breaks connections on purpose: the network failure a resumable download
//! must survive, between real processes, without touching the server on either side.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Forwards 127.0.0.1:<port> to `upstream`. The first `cuts` connections whose responses
/// pass `cut_after` bytes are closed there, mid-response.
pub struct CuttingProxy {
    pub port: u16,
    /// Bytes sent back to clients, over every connection.
    pub downstream_bytes: Arc<AtomicU64>,
    /// The first bytes each connection sent upstream (its request line and headers).
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl CuttingProxy {
    pub fn start(upstream: u16, cut_after: u64, cuts: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let downstream_bytes = Arc::new(AtomicU64::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let cuts_left = Arc::new(AtomicUsize::new(cuts));
        let (down, reqs) = (downstream_bytes.clone(), requests.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let (down, reqs, cuts_left) = (down.clone(), reqs.clone(), cuts_left.clone());
                std::thread::spawn(move || {
                    relay(client, server, cut_after, &cuts_left, &down, &reqs)
                });
            }
        });
        Self {
            port,
            downstream_bytes,
            requests,
        }
    }
}

fn relay(
    client: TcpStream,
    server: TcpStream,
    cut_after: u64,
    cuts_left: &AtomicUsize,
    down: &AtomicU64,
    reqs: &Mutex<Vec<String>>,
) {
    let (Ok(mut c_in), Ok(mut s_out)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    // Client → server, returning what the requests said (their first 64 KiB).
    let up = std::thread::spawn(move || {
        let mut log = String::new();
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n) = c_in.read(&mut buf) {
            if n == 0 {
                break;
            }
            if log.len() < 64 * 1024 {
                log.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            if s_out.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = s_out.shutdown(Shutdown::Write);
        log
    });
    let (mut s_in, mut c_out) = (server, client);
    let mut sent = 0u64;
    let mut buf = [0u8; 16 * 1024];
    while let Ok(n) = s_in.read(&mut buf) {
        if n == 0 {
            break;
        }
        if sent + n as u64 > cut_after
            && cuts_left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| c.checked_sub(1))
                .is_ok()
        {
            // Pass what fits under the limit, then drop the connection mid-body.
            let keep = (cut_after - sent.min(cut_after)) as usize;
            let _ = c_out.write_all(&buf[..keep]);
            down.fetch_add(keep as u64, Ordering::SeqCst);
            let _ = c_out.shutdown(Shutdown::Both);
            let _ = s_in.shutdown(Shutdown::Both);
            break;
        }
        if c_out.write_all(&buf[..n]).is_err() {
            break;
        }
        sent += n as u64;
        down.fetch_add(n as u64, Ordering::SeqCst);
    }
    let _ = c_out.shutdown(Shutdown::Both);
    if let (Ok(log), Ok(mut all)) = (up.join(), reqs.lock()) {
        all.push(log);
    }
}
