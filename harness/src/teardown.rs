//! Process-wide registry of cleanup actions, run on drop and on Ctrl-C / SIGTERM.
//!
//! Invariant: anything the harness creates outside its temp dir (daemons, shims, mounts,
//! bridges, cgroups) registers an undo action here before it is created. Normal code runs the
//! action when its owner is dropped; an interrupt runs every outstanding action, newest first,
//! and then exits with 130, so Ctrl-C leaves nothing behind.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, Once};

type Action = Box<dyn FnOnce() + Send>;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static ACTIONS: Mutex<Vec<(u64, String, Action)>> = Mutex::new(Vec::new());
static HANDLER: Once = Once::new();
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// The cleanup action running now (what a second Ctrl-C is told about).
static CURRENT: Mutex<String> = Mutex::new(String::new());
/// Actions their owners are running (a registration dropped in normal teardown): no longer in
/// [`ACTIONS`], so the interrupt handler waits for them before it exits, or a signal during
/// teardown would end the process halfway through one.
static OWNED_RUNNING: Mutex<Vec<(u64, String)>> = Mutex::new(Vec::new());

/// How long the main thread waits for the interrupt handler's cleanup before exiting anyway.
const INTERRUPT_CLEANUP_DEADLINE: std::time::Duration = std::time::Duration::from_secs(120);

/// Whether a SIGINT/SIGTERM arrived (the handler is cleaning up, then exits 130).
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Called by `main` before it returns: after an interrupt, the run's rows fail as their
/// daemons are killed, and returning would end the process in the middle of the handler's
/// cleanup with the wrong exit code. Waits (bounded) for the handler to exit 130 itself.
pub fn finish_interrupted() -> Option<std::process::ExitCode> {
    if !interrupted() {
        return None;
    }
    let started = std::time::Instant::now();
    while started.elapsed() < INTERRUPT_CLEANUP_DEADLINE {
        // The handler ends the process; this only waits for it.
        std::thread::park_timeout(std::time::Duration::from_millis(100));
    }
    eprintln!("cleanup after the interrupt did not finish within {INTERRUPT_CLEANUP_DEADLINE:?}");
    Some(std::process::ExitCode::from(130))
}

/// An outstanding cleanup action; dropping it runs the action.
#[must_use = "dropping the registration runs the cleanup at once"]
pub struct Registration {
    id: u64,
}

/// Registers `action` under a label (shown if cleanup is interrupted twice).
pub fn register(label: impl Into<String>, action: impl FnOnce() + Send + 'static) -> Registration {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    lock().push((id, label.into(), Box::new(action)));
    Registration { id }
}

impl Registration {
    /// Forgets the action without running it (its owner cleaned up by other means).
    pub fn disarm(self) {
        take(self.id);
        std::mem::forget(self);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut actions = lock();
        let Some(index) = actions.iter().position(|(i, _, _)| *i == self.id) else {
            return;
        };
        let (id, label, action) = actions.remove(index);
        // Marked running before the list is released: the handler sees it in one or the other.
        running().push((id, label));
        drop(actions);
        action();
        running().retain(|(i, _)| *i != id);
    }
}

fn running() -> std::sync::MutexGuard<'static, Vec<(u64, String)>> {
    OWNED_RUNNING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Waits (bounded) until no owner is running a cleanup action.
fn wait_for_owners() {
    let mut said = false;
    let waited = crate::wait::wait_blocking(
        "the cleanup under way",
        INTERRUPT_CLEANUP_DEADLINE,
        std::time::Duration::from_millis(50),
        || {
            let labels: Vec<String> = running().iter().map(|(_, l)| l.clone()).collect();
            if labels.is_empty() {
                return crate::wait::Attempt::Ready(());
            }
            if !said {
                eprintln!(
                    "waiting for the cleanup under way to finish ({})",
                    labels.join(", ")
                );
                said = true;
            }
            crate::wait::Attempt::NotYet(labels.join(", "))
        },
    );
    if let Err(e) = waited {
        eprintln!("{e}");
    }
}

fn lock() -> std::sync::MutexGuard<'static, Vec<(u64, String, Action)>> {
    ACTIONS.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn take(id: u64) -> Option<Action> {
    let mut actions = lock();
    let index = actions.iter().position(|(i, _, _)| *i == id)?;
    Some(actions.remove(index).2)
}

/// Runs every outstanding action, newest first. Used by the interrupt handler and at exit.
pub fn run_all() {
    loop {
        let Some((_, label, action)) = lock().pop() else {
            return;
        };
        tracing::info!(%label, "cleaning up");
        *CURRENT.lock().unwrap_or_else(|p| p.into_inner()) = label;
        action();
    }
}

/// Installs (once) a SIGINT/SIGTERM handler that runs all cleanup actions and exits 130.
///
/// The handler lives on its own thread with its own runtime so it works for the CLI and for
/// the libtest-mimic runner alike, whatever the trial threads are doing. A second signal
/// does not cut the cleanup short (every action has its own deadline, and an abandoned one
/// would leave daemons or mounts behind): it is answered with what is being cleaned up.
pub fn install_interrupt_handler() {
    HANDLER.call_once(|| {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("interrupt".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("failed to build the interrupt runtime");
                runtime.block_on(async {
                    use tokio::signal::unix::{signal, SignalKind};
                    let mut int = signal(SignalKind::interrupt()).expect("failed to watch SIGINT");
                    let mut term = signal(SignalKind::terminate()).expect("failed to watch SIGTERM");
                    let _ = ready_tx.send(());
                    tokio::select! {
                        _ = int.recv() => eprintln!("\ninterrupted: cleaning up (daemons, shims, mounts)..."),
                        _ = term.recv() => eprintln!("\nterminated: cleaning up (daemons, shims, mounts)..."),
                    }
                    INTERRUPTED.store(true, Ordering::SeqCst);
                    // Later signals, while the cleanup below runs on this thread.
                    drop((int, term));
                    std::thread::spawn(|| {
                        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
                        let Ok(runtime) = runtime else { return };
                        runtime.block_on(async {
                            let (Ok(mut int), Ok(mut term)) =
                                (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
                            else {
                                return;
                            };
                            loop {
                                tokio::select! {
                                    _ = int.recv() => {}
                                    _ = term.recv() => {}
                                }
                                let mut current = CURRENT.lock().unwrap_or_else(|p| p.into_inner()).clone();
                                if current.is_empty() {
                                    current = running().iter().map(|(_, l)| l.clone()).collect::<Vec<_>>().join(", ");
                                }
                                let left = lock().len();
                                eprintln!(
                                    "still cleaning up ({current}; {left} more after it): stopping now would leave them behind"
                                );
                            }
                        });
                    });
                });
                run_all();
                wait_for_owners();
                std::process::exit(130);
            })
            .expect("failed to spawn the interrupt thread");
        // The handler must be in place before the first daemon starts.
        let _ = ready_rx.recv();
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    #[test]
    fn drop_runs_and_disarm_does_not() {
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        drop(register("a", move || {
            c.fetch_add(1, Ordering::SeqCst);
        }));
        let c = count.clone();
        register("b", move || {
            c.fetch_add(10, Ordering::SeqCst);
        })
        .disarm();
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn the_handler_waits_for_an_action_its_owner_is_running() {
        let done = Arc::new(AtomicBool::new(false));
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let d = done.clone();
        let registration = register("slow", move || {
            started_tx.send(()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(300));
            d.store(true, Ordering::SeqCst);
        });
        let owner = std::thread::spawn(move || drop(registration));
        started_rx.recv().unwrap();
        // What the handler does after run_all: the owner's action is not in ACTIONS.
        assert!(lock().iter().all(|(_, label, _)| label != "slow"));
        wait_for_owners();
        assert!(
            done.load(Ordering::SeqCst),
            "returned while the owner's action ran"
        );
        owner.join().unwrap();
    }
}
