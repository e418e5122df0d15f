//! Line-per-event output for logs and CI: `→ name` when a node starts, `[name] line` for its
//! output, `✓ name (1.2s)` when it ends, and the summary table at the end.

use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use super::format::{finish_line, paint, Paint};
use super::table::write_summary_table;
use super::Reporter;
use crate::exec::outcome::Status;
use crate::exec::summary::Summary;

/// Writes plain lines to any writer; with `color` off there are no ANSI codes at all.
pub struct Plain {
    out: Mutex<Box<dyn Write + Send>>,
    color: bool,
}

impl Plain {
    /// A plain reporter writing to `out`.
    pub fn new(out: Box<dyn Write + Send>, color: bool) -> Self {
        Plain {
            out: Mutex::new(out),
            color,
        }
    }

    fn write(&self, f: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) {
        // A poisoned lock only means another writer panicked mid-line; keep reporting.
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        // Reporting must never fail the run: a closed pipe loses output, not work.
        let _ = f(&mut **out).and_then(|()| out.flush());
    }
}

impl Reporter for Plain {
    fn run_started(&self, _total: usize) {}

    fn node_started(&self, node: &str) {
        let arrow = paint("→", Paint::Dim, self.color);
        self.write(|w| writeln!(w, "{arrow} {node}"));
    }

    fn output(&self, node: &str, line: &str) {
        let prefix = paint(&format!("[{node}]"), Paint::Dim, self.color);
        self.write(|w| writeln!(w, "{prefix} {line}"));
    }

    fn node_finished(&self, node: &str, status: &Status, duration: Duration) {
        let line = finish_line(node, status, duration, self.color);
        self.write(|w| writeln!(w, "{line}"));
    }

    fn run_finished(&self, summary: &Summary) {
        self.write(|w| {
            writeln!(w)?;
            write_summary_table(w, summary, self.color)
        });
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::exec::summary::NodeResult;

    /// A writer whose bytes the test can read back after handing it to a reporter.
    #[derive(Clone, Default)]
    pub(crate) struct Shared(pub Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        pub(crate) fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn feed(r: &dyn Reporter) {
        r.run_started(2);
        r.node_started("build");
        r.output("build", "compiling");
        r.node_finished(
            "build",
            &Status::Ran { detail: None },
            Duration::from_millis(1200),
        );
        r.node_finished(
            "deploy",
            &Status::Skipped {
                because: "test".into(),
            },
            Duration::ZERO,
        );
        r.run_finished(&Summary {
            nodes: vec![NodeResult {
                index: 0,
                label: "build".into(),
                status: Status::Ran { detail: None },
                duration: Duration::from_millis(1200),
            }],
            elapsed: Duration::from_millis(1300),
            interrupted: false,
        });
    }

    #[test]
    fn plain_lines_prefix_output_and_mark_finishes() {
        let buf = Shared::default();
        feed(&Plain::new(Box::new(buf.clone()), false));
        assert_eq!(
            buf.text(),
            "\
→ build
[build] compiling
✓ build (1.2s)
- deploy skipped because test failed

NODE   STATUS         TIME
build  ran            1.2s
1 ran in 1.3s
"
        );
    }

    #[test]
    fn colour_off_means_no_escape_codes_and_on_means_some() {
        let off = Shared::default();
        feed(&Plain::new(Box::new(off.clone()), false));
        assert!(!off.text().contains('\x1b'));
        let on = Shared::default();
        feed(&Plain::new(Box::new(on.clone()), true));
        assert!(on.text().contains("\x1b[32m✓\x1b[0m build"));
    }
}
