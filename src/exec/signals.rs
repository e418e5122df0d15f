//! Ctrl-C handling: SIGINT or SIGTERM cancels the run's token, so the scheduler stops
//! starting work, running commands are interrupted, and the CLI can exit with
//! [`interrupted_code`]: 130 after SIGINT, 143 after SIGTERM, as shells report them. A second
//! signal means the user is done waiting: the process exits at once with the same code. That
//! skips destructors, so a held run lock stays on disk; its pid is then dead and the next run
//! takes it over.

use std::sync::atomic::{AtomicI32, Ordering};

use tokio::signal::unix::{signal, SignalKind};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The exit code of a run stopped by Ctrl-C (128 + SIGINT), as shells report it.
pub const EXIT_INTERRUPTED: i32 = 130;

/// The exit code of a run stopped by SIGTERM (128 + 15).
pub const EXIT_TERMINATED: i32 = 143;

/// The exit code the first signal received calls for (0: none yet).
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// The exit code of an interrupted run: [`EXIT_TERMINATED`] when SIGTERM stopped it, else
/// [`EXIT_INTERRUPTED`].
pub fn interrupted_code() -> i32 {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => EXIT_INTERRUPTED,
        code => code,
    }
}

fn note(code: i32) {
    let _ = RECEIVED.compare_exchange(0, code, Ordering::SeqCst, Ordering::SeqCst);
}

/// Starts listening for SIGINT and SIGTERM; the first one cancels `token`, a second one
/// exits the process with [`interrupted_code`]. The handlers are registered before this
/// returns, so a signal arriving right after is not lost. Must be called inside a tokio
/// runtime.
pub fn install(token: CancellationToken) -> std::io::Result<JoinHandle<()>> {
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    Ok(tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => note(EXIT_INTERRUPTED),
            _ = term.recv() => note(EXIT_TERMINATED),
        }
        token.cancel();
        tokio::select! {
            _ = int.recv() => {},
            _ = term.recv() => {},
        }
        std::process::exit(interrupted_code());
    }))
}

/// The process's one listener, on a thread of its own: every command's token is a child of
/// its token, so a long `follow` that walks a thousand times still has one listener, and the
/// listener outlives any runtime a command starts and drops.
static PROCESS: std::sync::OnceLock<CancellationToken> = std::sync::OnceLock::new();

/// A token the first SIGINT or SIGTERM cancels (a second one exits the process, as
/// [`install`] does). The listener is started on first use, and its handlers are registered
/// before this returns. Works inside or outside a runtime.
pub fn process_token() -> CancellationToken {
    PROCESS
        .get_or_init(|| {
            let token = CancellationToken::new();
            let (ready, registered) = std::sync::mpsc::channel();
            let cancel = token.clone();
            let started = std::thread::Builder::new()
                .name("sanctuary-signals".into())
                .spawn(move || {
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(_) => return,
                    };
                    rt.block_on(async move {
                        match install(cancel) {
                            Ok(listener) => {
                                let _ = ready.send(());
                                let _ = listener.await;
                            }
                            Err(_) => drop(ready),
                        }
                    });
                });
            if started.is_ok() {
                // Either registered, or the thread gave up (the channel closes): go on.
                let _ = registered.recv();
            }
            token
        })
        .child_token()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn sigint_cancels_the_token() {
        let token = CancellationToken::new();
        let _listener = install(token.clone()).unwrap();
        nix::sys::signal::raise(nix::sys::signal::Signal::SIGINT).unwrap();
        tokio::time::timeout(Duration::from_secs(5), token.cancelled())
            .await
            .expect("token cancelled by SIGINT");
    }
}
