//! Property tests: whatever text reaches the manifest loader — random strings, KDL punctuation
//! soup, random KDL built from sanctuary's own node and property names, or the example
//! manifests with bytes mutated — it returns `Ok` or `Err`, and never panics.
//!
//! The loader runs in-process (`manifest::load_str`), so hundreds of cases take seconds. Each
//! property also stops doing work past a wall-clock budget, so a slow machine cannot make the
//! suite crawl.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

use sanctuary::manifest::{interpolate::Vars, load_str, LoadError};

const CASES: u32 = 256;
/// Past this much time since the first case of any property, remaining cases return at once.
const BUDGET: Duration = Duration::from_secs(30);

const VOIDCAT: &str = include_str!("../../examples/voidcat/Sanctuary.kdl");
const CLAUDE_CODE: &str = include_str!("../../examples/claude-code/Sanctuary.kdl");

/// Node names the manifest language knows, at the top level and inside nodes.
const TOP: &[&str] = &[
    "project", "secret", "image", "volume", "network", "service", "task", "test", "backup", "sync",
    "servce",
];
const CHILDREN: &[&str] = &[
    "description",
    "image",
    "command",
    "env",
    "secret-env",
    "port",
    "mount",
    "bind",
    "network",
    "restart",
    "resources",
    "health",
    "cmd",
    "shell",
    "interval",
    "timeout",
    "retries",
    "start-period",
    "depends-on",
    "run",
    "inputs",
    "outputs",
    "needs",
    "exec",
    "http",
    "tcp",
    "volume",
    "path",
    "quiesce",
    "copy",
    "keep",
    "host",
    "mode",
    "ignore",
    "rewrite",
    "conflict",
    "file-mode",
    "context",
    "dockerfile",
    "reference",
    "arg",
    "env",
    "file",
    "keychain",
    "state-dir",
    "level",
];
const PROPERTIES: &[&str] = &[
    "host",
    "protocol",
    "ip",
    "read-only",
    "alias",
    "cpus",
    "memory",
    "pids",
    "condition",
    "from",
    "status",
    "contains",
    "json-path",
    "equals",
    "retries",
    "delay",
    "path",
    "rclone",
    "media",
    "offsite",
    "last",
    "daily",
    "pre",
    "post",
    "service",
    "CLONE_PORT",
];
/// Values chosen to hit parsers' edges: units, ports, keywords, references, paths.
const VALUES: &[&str] = &[
    r#""omega""#,
    r#""a""#,
    r#""""#,
    r#""1s""#,
    r#""30""#,
    r#""2x""#,
    r#""512m""#,
    r#""512q""#,
    r#""8080:80/tcp""#,
    r#""8080:80/sctp""#,
    r#""70000""#,
    r#""127.0.0.1:3000""#,
    r#""http://127.0.0.1:3000/""#,
    r#""healthy""#,
    r#""completed""#,
    r#""unless-stopped""#,
    r#""on-failure:3""#,
    r#""task.a""#,
    r#""${UNSET_VAR}""#,
    r#""${X:-d}""#,
    r#""${""#,
    r#""$$""#,
    r#""../outside""#,
    r#""~/x""#,
    r#""0644""#,
    r#""stop""#,
    "0",
    "-1",
    "3000",
    "70000",
    "1.5",
    "1e400",
    "18446744073709551616",
    "true",
    "null",
];

fn vars() -> Vars {
    Vars::new(
        HashMap::from([("USER".to_string(), "alice".to_string())]),
        HashMap::new(),
    )
}

/// Loads `text` and drops the result: the property is only that this returns. Rendering the
/// error too makes sure every span it carries lies inside the text.
fn load(text: &str) {
    let dir = Path::new("/nonexistent-sanctuary-fuzz");
    let result = load_str(
        "Sanctuary.kdl",
        text,
        &dir.join("Sanctuary.kdl"),
        dir,
        &vars(),
    );
    if let Err(e) = result {
        render(&e);
    }
}

fn render(e: &LoadError) {
    let handler =
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor());
    let mut out = String::new();
    // A span outside the text makes miette return an error rather than panic; that is a bug
    // in the loader's spans worth failing on.
    handler
        .render_report(&mut out, e)
        .unwrap_or_else(|err| panic!("cannot render diagnostic {e}: {err}"));
}

fn within_budget() -> bool {
    static START: OnceLock<Instant> = OnceLock::new();
    static SAID: AtomicBool = AtomicBool::new(false);
    let ok = START.get_or_init(Instant::now).elapsed() < BUDGET;
    if !ok && !SAID.swap(true, Ordering::Relaxed) {
        eprintln!("manifest_fuzz: wall-clock budget of {BUDGET:?} spent; remaining cases skipped");
    }
    ok
}

fn pick(list: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
    prop::sample::select(list)
}

/// `name value…` or `name key=value…`, optionally with its own children.
fn kdl_node(depth: u32) -> BoxedStrategy<String> {
    let leaf = (
        pick(CHILDREN),
        prop::collection::vec(pick(VALUES), 0..3),
        prop::collection::vec((pick(PROPERTIES), pick(VALUES)), 0..3),
    )
        .prop_map(|(name, args, props)| {
            let mut s = name.to_string();
            for a in args {
                s.push(' ');
                s.push_str(a);
            }
            for (k, v) in props {
                s.push_str(&format!(" {k}={v}"));
            }
            s
        });
    if depth == 0 {
        return leaf.boxed();
    }
    (leaf, prop::collection::vec(kdl_node(depth - 1), 0..4))
        .prop_map(|(head, children)| {
            if children.is_empty() {
                head
            } else {
                format!("{head} {{\n{}\n}}", children.join("\n"))
            }
        })
        .boxed()
}

fn kdl_document() -> impl Strategy<Value = String> {
    let top = (
        pick(TOP),
        pick(VALUES),
        prop::collection::vec(kdl_node(1), 0..6),
    )
        .prop_map(|(kind, name, children)| {
            format!("{kind} {name} {{\n{}\n}}", children.join("\n"))
        });
    prop::collection::vec(top, 1..6).prop_map(|nodes| nodes.join("\n"))
}

/// One edit to a byte string, at a position taken modulo its length.
#[derive(Debug, Clone)]
enum Mutation {
    Delete { at: usize, len: usize },
    Insert { at: usize, byte: u8 },
    Flip { at: usize, bit: u8 },
    Duplicate { at: usize, len: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (
            any::<usize>(),
            prop::sample::select(b"{}\"\\;=/$ \n-0a#".to_vec())
        )
            .prop_map(|(at, byte)| Mutation::Insert { at, byte }),
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        (any::<usize>(), 1usize..80).prop_map(|(at, len)| Mutation::Duplicate { at, len }),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    let n = bytes.len();
    match *m {
        Mutation::Delete { at, len } => {
            let at = at % n;
            let end = (at + len).min(n);
            bytes.drain(at..end);
        }
        Mutation::Insert { at, byte } => bytes.insert(at % (n + 1), byte),
        Mutation::Flip { at, bit } => bytes[at % n] ^= 1 << bit,
        Mutation::Duplicate { at, len } => {
            let at = at % n;
            let end = (at + len).min(n);
            let copy: Vec<u8> = bytes[at..end].to_vec();
            bytes.splice(end..end, copy);
        }
    }
}

/// A run of whole lines of `text`, from a line start chosen by `window.0` to at least
/// `window.1` bytes later; often the whole text. Parsing is the slow part of a case in a debug
/// build, so mutating excerpts rather than always the whole file buys more cases per second.
fn excerpt(text: &str, window: (usize, usize)) -> Vec<u8> {
    let starts: Vec<usize> = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .filter(|&i| i < text.len())
        .collect();
    // Half the cases take the whole file.
    if window.0 % 2 == 0 || starts.is_empty() {
        return text.as_bytes().to_vec();
    }
    let start = starts[window.0 % starts.len()];
    let len = 64 + window.1 % text.len();
    let end = starts
        .iter()
        .copied()
        .find(|&i| i >= start + len)
        .unwrap_or(text.len());
    text.as_bytes()[start..end].to_vec()
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: CASES,
        // A failure is printed, minimised, in the test output; nothing is written to the tree.
        failure_persistence: None,
        max_shrink_time: 10_000,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_text_never_panics(text in any::<String>()) {
        if within_budget() {
            load(&text);
        }
    }

    /// Text made of KDL's own punctuation and a few words, so the parser gets past the first
    /// character far more often than with arbitrary Unicode.
    #[test]
    fn kdl_alphabet_soup_never_panics(
        text in r#"(service|task|test|"a"|"\$\{X\}"|"1s"|[a-z]|[0-9]|[-{}=;/ \n\\#"()*.]){0,120}"#,
    ) {
        if within_budget() {
            load(&text);
        }
    }

    #[test]
    fn random_kdl_from_known_names_never_panics(text in kdl_document()) {
        if within_budget() {
            load(&text);
        }
    }

    #[test]
    fn mutated_examples_never_panic(
        which in 0usize..2,
        window in (any::<usize>(), any::<usize>()),
        edits in prop::collection::vec(mutation(), 1..6),
    ) {
        if within_budget() {
            let mut bytes = excerpt([VOIDCAT, CLAUDE_CODE][which], window);
            for m in &edits {
                apply(&mut bytes, m);
            }
            load(&String::from_utf8_lossy(&bytes));
        }
    }
}

#[test]
fn examples_load_in_process() {
    for text in [VOIDCAT, CLAUDE_CODE] {
        let dir = Path::new("/nonexistent-sanctuary-fuzz");
        let loaded = load_str(
            "Sanctuary.kdl",
            text,
            &dir.join("Sanctuary.kdl"),
            dir,
            &vars(),
        );
        assert!(loaded.is_ok(), "an example failed to load: {loaded:?}");
    }
}
