//! A real HTTP/1.1 server on 127.0.0.1 for the release tests (Kubernetes and Kata), logging
//! every request, serving set replies or a directory, and able to misbehave the ways a real
//! download does: a body cut short, or headers and then nothing.
//!
//! Included by several test binaries (`#[path]`), each using part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Kata's release downloads below GitHub's base URL, as upstream lays them out.
pub const KATA_RELEASES: &str = "/kata-containers/kata-containers/releases/download";

/// What the server answers for one path.
#[derive(Clone)]
pub enum Reply {
    Body(Vec<u8>),
    /// A `Content-Length` larger than the body, then the connection closed.
    Truncated(Vec<u8>),
    /// The headers of a large body, then nothing (the connection is held open).
    Stall,
}

/// A real HTTP/1.1 server on 127.0.0.1, one connection at a time, logging requests; a path
/// with no set reply is served from the directory given (read at each request), else 404.
/// Stopped (and its port closed) when dropped.
pub struct Server {
    port: u16,
    replies: Arc<Mutex<HashMap<String, Reply>>>,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    pub fn start() -> Server {
        Server::serving(None)
    }

    /// Serves the files under `root` (`GET /a/b` is `<root>/a/b`), besides set replies.
    pub fn serving_dir(root: &Path) -> Server {
        Server::serving(Some(root.to_owned()))
    }

    fn serving(root: Option<PathBuf>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let replies = Arc::new(Mutex::new(HashMap::new()));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (replies, requests, stop) = (replies.clone(), requests.clone(), stop.clone());
            let root = root.clone();
            std::thread::spawn(move || {
                // Stalled connections stay open until the server stops.
                let mut held = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => held.extend(serve(stream, root.as_deref(), &replies, &requests)),
                        // Non-blocking accept so that the stop flag is seen: poll interval.
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5))
                        }
                        Err(e) => panic!("accept: {e}"),
                    }
                }
            })
        };
        Server {
            port,
            replies,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    /// The server as GitHub's base URL (`KATA_HARNESS_GITHUB_URL`): Kata's assets are at
    /// `<base>/kata-containers/kata-containers/releases/download/<version>/<asset>`.
    pub fn github_url(&self) -> String {
        self.url("")
    }

    /// Where Kata's releases are on this server: `<github_url>/kata-containers/...`, followed
    /// by `/<version>/<asset>`.
    pub fn kata_releases(&self) -> String {
        self.url(KATA_RELEASES)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Answers `reply` for Kata's `<version>/<asset>`.
    pub fn set(&self, version: &str, asset: &str, reply: Reply) {
        self.set_path(&format!("{KATA_RELEASES}/{version}/{asset}"), reply);
    }

    /// Answers `reply` for `path` (`/release/v1.20.2/...`), instead of the served directory.
    pub fn set_path(&self, path: &str, reply: Reply) {
        self.replies.lock().unwrap().insert(path.to_owned(), reply);
    }

    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers one request; returns the stream when the reply is to stall on it.
fn serve(
    stream: TcpStream,
    root: Option<&Path>,
    replies: &Mutex<HashMap<String, Reply>>,
    requests: &Mutex<Vec<String>>,
) -> Option<TcpStream> {
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    // The rest of the head, up to the blank line.
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line == "\r\n" || line == "\n" => break,
            Ok(_) => {}
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    requests.lock().unwrap().push(format!("{method} {path}"));
    let from_root = || {
        let root = root?;
        (!path.contains("..")).then(|| std::fs::read(root.join(path.trim_start_matches('/'))).ok())?
    };
    let reply = replies
        .lock()
        .unwrap()
        .get(path)
        .cloned()
        .or_else(|| from_root().map(Reply::Body));
    let head = |length: usize| {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {length}\r\nContent-Type: application/octet-stream\r\n\
             Connection: close\r\n\r\n"
        )
    };
    let mut out = stream;
    let _ = match reply.filter(|_| method == "GET") {
        Some(Reply::Body(body)) => out
            .write_all(head(body.len()).as_bytes())
            .and_then(|_| out.write_all(&body)),
        Some(Reply::Truncated(body)) => out
            .write_all(head(body.len() + 4096).as_bytes())
            .and_then(|_| out.write_all(&body)),
        Some(Reply::Stall) => {
            let _ = out.write_all(head(64 << 20).as_bytes());
            return Some(out);
        }
        None => out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    };
    None
}
