//! Ctrl-C handling: SIGINT or SIGTERM cancels the run's token, so the scheduler stops
//! starting work, running commands are interrupted, and the CLI can exit with
//! [`EXIT_INTERRUPTED`]. A second signal means the user is done waiting: the process exits
//! at once with the same code. That skips destructors, so a held run lock stays on disk;
//! its pid is then dead and the next run takes it over.

use tokio::signal::unix::{signal, SignalKind};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The exit code of a run stopped by a signal (128 + SIGINT), as shells report it.
pub const EXIT_INTERRUPTED: i32 = 130;

/// Starts listening for SIGINT and SIGTERM; the first one cancels `token`, a second one
/// exits the process with [`EXIT_INTERRUPTED`]. The handlers are registered before this
/// returns, so a signal arriving right after is not lost. Must be called inside a tokio
/// runtime.
pub fn install(token: CancellationToken) -> std::io::Result<JoinHandle<()>> {
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    Ok(tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {},
            _ = term.recv() => {},
        }
        token.cancel();
        tokio::select! {
            _ = int.recv() => {},
            _ = term.recv() => {},
        }
        std::process::exit(EXIT_INTERRUPTED);
    }))
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
