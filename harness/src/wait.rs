//! The one wait helper: poll a condition under a deadline.
//!
//! Invariant: nothing in the harness sleeps to synchronise. Every wait names what it awaits,
//! has a deadline, remembers the last error it saw, and can be cut short by a fatal condition
//! (a daemon that exited, a VM that died) instead of running out the clock.

use std::future::Future;
use std::time::{Duration, Instant};

/// One look at the awaited condition.
pub enum Attempt<T> {
    /// The condition holds; the wait ends with this value.
    Ready(T),
    /// Not yet; the text is the latest reason, reported if the deadline passes.
    NotYet(String),
    /// Waiting longer is pointless (the process we wait for is gone).
    Fatal(String),
}

#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error("timed out after {waited:?} waiting for {what} (last error: {last_error})")]
    Timeout {
        what: String,
        waited: Duration,
        last_error: String,
    },
    #[error("gave up waiting for {what}: {reason}")]
    Fatal { what: String, reason: String },
}

/// Polls `probe` every `interval` until it is ready, fatal, or `deadline` has passed.
pub async fn wait_for<T, F, Fut>(
    what: &str,
    deadline: Duration,
    interval: Duration,
    mut probe: F,
) -> Result<T, WaitError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Attempt<T>>,
{
    let start = Instant::now();
    loop {
        match probe().await {
            Attempt::Ready(value) => return Ok(value),
            Attempt::Fatal(reason) => {
                return Err(WaitError::Fatal {
                    what: what.to_owned(),
                    reason,
                })
            }
            Attempt::NotYet(last_error) if start.elapsed() >= deadline => {
                return Err(WaitError::Timeout {
                    what: what.to_owned(),
                    waited: start.elapsed(),
                    last_error,
                });
            }
            Attempt::NotYet(_) => {}
        }
        // Poll interval, not synchronisation: the condition is re-checked after it.
        tokio::time::sleep(interval).await;
    }
}

/// The blocking twin of [`wait_for`], for teardown paths that run outside any runtime.
pub fn wait_blocking<T>(
    what: &str,
    deadline: Duration,
    interval: Duration,
    mut probe: impl FnMut() -> Attempt<T>,
) -> Result<T, WaitError> {
    let start = Instant::now();
    loop {
        match probe() {
            Attempt::Ready(value) => return Ok(value),
            Attempt::Fatal(reason) => {
                return Err(WaitError::Fatal {
                    what: what.to_owned(),
                    reason,
                })
            }
            Attempt::NotYet(last_error) if start.elapsed() >= deadline => {
                return Err(WaitError::Timeout {
                    what: what.to_owned(),
                    waited: start.elapsed(),
                    last_error,
                });
            }
            Attempt::NotYet(_) => {}
        }
        // Poll interval between checks of the condition.
        std::thread::sleep(interval);
    }
}

/// An exclusive flock on `file` (opened by the caller), waited for up to `deadline` as
/// [`wait_blocking`] waits; `on_busy` runs each time another process holds it.
pub fn flock_exclusive(
    what: &str,
    file: std::fs::File,
    deadline: Duration,
    interval: Duration,
    mut on_busy: impl FnMut(),
) -> Result<nix::fcntl::Flock<std::fs::File>, WaitError> {
    use nix::fcntl::{Flock, FlockArg};
    let mut file = Some(file);
    wait_blocking(what, deadline, interval, || {
        match Flock::lock(
            file.take().expect("the file is back after each try"),
            FlockArg::LockExclusiveNonblock,
        ) {
            Ok(held) => Attempt::Ready(held),
            Err((back, errno)) => {
                file = Some(back);
                if errno != nix::errno::Errno::EWOULDBLOCK {
                    return Attempt::Fatal(format!("flock: {errno}"));
                }
                on_busy();
                Attempt::NotYet("held by another process".into())
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn timeout_names_what_and_last_error() {
        let err = wait_for(
            "the moon",
            Duration::from_millis(30),
            Duration::from_millis(5),
            || async { Attempt::<()>::NotYet("still dark".into()) },
        )
        .await
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("the moon"), "{text}");
        assert!(text.contains("still dark"), "{text}");
    }

    #[tokio::test]
    async fn fatal_stops_early() {
        let start = Instant::now();
        let err = wait_for(
            "a socket",
            Duration::from_secs(30),
            Duration::from_millis(5),
            || async { Attempt::<()>::Fatal("daemon exited with status 1".into()) },
        )
        .await
        .unwrap_err();
        assert!(matches!(err, WaitError::Fatal { .. }));
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn blocking_wait_returns_value() {
        let mut n = 0;
        let v = wait_blocking(
            "a counter",
            Duration::from_secs(5),
            Duration::from_millis(1),
            || {
                n += 1;
                if n == 3 {
                    Attempt::Ready(n)
                } else {
                    Attempt::NotYet(format!("n={n}"))
                }
            },
        )
        .unwrap();
        assert_eq!(v, 3);
    }
}
