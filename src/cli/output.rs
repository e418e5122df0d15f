//! How the CLI writes to the terminal: colour only on a terminal and without `NO_COLOR`,
//! diagnostics rendered by miette with the same rules.

use std::io::IsTerminal;

use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme};

/// Whether stderr should carry ANSI colour.
pub fn color_stderr() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

/// Whether stdout should carry ANSI colour.
pub fn color_stdout() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

/// Renders a diagnostic as text, in colour or not.
pub fn render(diag: &dyn Diagnostic, color: bool) -> String {
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(100);
    let mut out = String::new();
    if handler.render_report(&mut out, diag).is_err() {
        out = format!("{diag}");
    }
    out
}

/// Prints a diagnostic to stderr.
pub fn eprint_diag(diag: &dyn Diagnostic) {
    eprint!("{}", crate::secrets::mask(&render(diag, color_stderr())));
}
