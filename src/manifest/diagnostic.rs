//! Manifest diagnostics: every problem found in a manifest, each pointing into its text.
//!
//! knuffel reports syntax and single-value errors; `resolve` reports cross-node errors. Both
//! end up as [`Diag`]s collected in one [`ManifestError`], so a user sees all of them at once.

use std::fmt;

use miette::{Diagnostic, LabeledSpan, NamedSource, Severity, SourceSpan};

/// One problem in a manifest.
#[derive(Debug, Clone)]
pub struct Diag {
    pub message: String,
    pub labels: Vec<(SourceSpan, String)>,
    pub help: Option<String>,
    pub severity: Severity,
}

impl Diag {
    pub fn error(message: impl Into<String>) -> Self {
        Diag {
            message: message.into(),
            labels: Vec::new(),
            help: None,
            severity: Severity::Error,
        }
    }

    pub fn warning(message: impl Into<String>) -> Self {
        Diag {
            severity: Severity::Warning,
            ..Diag::error(message)
        }
    }

    pub fn label(mut self, span: impl Into<SourceSpan>, text: impl Into<String>) -> Self {
        self.labels.push((span.into(), text.into()));
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn help_opt(mut self, help: Option<String>) -> Self {
        if help.is_some() {
            self.help = help;
        }
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Offset of the first label, for sorting diagnostics in reading order.
    fn offset(&self) -> usize {
        self.labels.first().map(|(s, _)| s.offset()).unwrap_or(0)
    }
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diag {}

impl Diagnostic for Diag {
    fn severity(&self) -> Option<Severity> {
        Some(self.severity)
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        Some(Box::new(self.labels.iter().map(|(span, text)| {
            LabeledSpan::new_with_span(Some(text.clone()), *span)
        })))
    }
}

/// Everything wrong with one manifest: its source plus every diagnostic, in reading order.
#[derive(Debug)]
pub struct ManifestError {
    pub src: NamedSource,
    pub diags: Vec<Diag>,
}

impl ManifestError {
    pub fn new(name: &str, text: &str, mut diags: Vec<Diag>) -> Self {
        diags.sort_by_key(|d| d.offset());
        ManifestError {
            src: NamedSource::new(name, text.to_string()),
            diags,
        }
    }

    pub fn error_count(&self) -> usize {
        self.diags.iter().filter(|d| d.is_error()).count()
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.error_count() {
            1 => write!(f, "the manifest has 1 error"),
            n => write!(f, "the manifest has {n} errors"),
        }
    }
}

impl std::error::Error for ManifestError {}

impl Diagnostic for ManifestError {
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.src)
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        Some(Box::new(self.diags.iter().map(|d| d as &dyn Diagnostic)))
    }
}

/// Warnings about a manifest that is valid (e.g. a backup that is not 3-2-1).
#[derive(Debug)]
pub struct ManifestWarnings(pub ManifestError);

impl fmt::Display for ManifestWarnings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.diags.len() {
            1 => write!(f, "the manifest has 1 warning"),
            n => write!(f, "the manifest has {n} warnings"),
        }
    }
}

impl std::error::Error for ManifestWarnings {}

impl Diagnostic for ManifestWarnings {
    fn severity(&self) -> Option<Severity> {
        Some(Severity::Warning)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.0.src)
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        self.0.related()
    }
}

/// The known name closest to `name`, when one is close enough to be a likely typo.
pub fn suggest<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    known
        .into_iter()
        .map(|k| (strsim::damerau_levenshtein(name, k), k))
        .filter(|(d, k)| *d <= limit || (k.starts_with(name) && name.len() >= 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// `Some("did you mean `x`?")` when a known name is close.
pub fn did_you_mean<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<String> {
    suggest(name, known).map(|k| format!("did you mean `{k}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let known = ["service", "secret", "volume", "network"];
        assert_eq!(suggest("servce", known), Some("service"));
        assert_eq!(suggest("volum", known), Some("volume"));
        assert_eq!(suggest("database", known), None);
    }
}
