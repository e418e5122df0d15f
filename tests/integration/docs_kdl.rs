//! Every ```kdl block in `docs/*.md` and the root README.md is a manifest that loads, or, when
//! its info string says `should-fail`, one that is rejected. The docs cannot drift from the
//! language without this test failing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sanctuary::manifest::interpolate::Vars;
use sanctuary::manifest::load_str;

/// A fenced ```kdl block found in a Markdown file.
#[derive(Debug, PartialEq)]
pub(crate) struct Block {
    /// 1-based line of the opening fence.
    pub(crate) line: usize,
    pub(crate) should_fail: bool,
    pub(crate) text: String,
}

/// Finds the ```kdl blocks of a Markdown text. Fences of other languages are skipped whole, so
/// KDL shown inside them is not taken for a block. An info string that starts with `kdl` but
/// says anything other than `should-fail` is an error: blocks are never skipped.
pub(crate) fn kdl_blocks(markdown: &str) -> Result<Vec<Block>, String> {
    let mut blocks = Vec::new();
    let mut lines = markdown.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        let trimmed = line.trim_start();
        let fence_len = trimmed.chars().take_while(|&c| c == '`').count();
        if fence_len < 3 {
            continue;
        }
        let info = trimmed[fence_len..].trim();
        let mut words = info.split_whitespace();
        let is_kdl = words.next() == Some("kdl");
        let rest: Vec<&str> = words.collect();
        let mut body = Vec::new();
        let mut closed = false;
        for (_, l) in lines.by_ref() {
            let t = l.trim();
            if t.len() >= fence_len && t.chars().all(|c| c == '`') {
                closed = true;
                break;
            }
            body.push(l);
        }
        if !closed {
            return Err(format!("line {}: code fence is never closed", i + 1));
        }
        if !is_kdl {
            continue;
        }
        let should_fail = match rest.as_slice() {
            [] => false,
            ["should-fail"] => true,
            other => {
                return Err(format!(
                    "line {}: unknown kdl block marker `{}`; only `should-fail` is allowed",
                    i + 1,
                    other.join(" ")
                ))
            }
        };
        let mut text = body.join("\n");
        text.push('\n');
        blocks.push(Block {
            line: i + 1,
            should_fail,
            text,
        });
    }
    Ok(blocks)
}

pub(crate) fn doc_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    let readme = root.join("README.md");
    if readme.is_file() {
        files.push(readme);
    }
    files
}

/// Variables every block may use, so no block depends on the environment of the test run.
fn vars() -> Vars {
    let env = HashMap::from([
        ("USER".to_string(), "alice".to_string()),
        ("HOME".to_string(), "/home/alice".to_string()),
        ("ANTHROPIC_API_KEY".to_string(), "sk-test".to_string()),
    ]);
    Vars::new(env, HashMap::new())
}

/// Loads one block; `None` when it behaved as marked, otherwise why not.
fn check(file: &Path, block: &Block, dir: &Path) -> Option<String> {
    let name = format!("{} (block at line {})", file.display(), block.line);
    let result = load_str(&name, &block.text, &dir.join("Sanctuary.kdl"), dir, &vars());
    let place = format!("{}:{}", file.display(), block.line);
    match (result, block.should_fail) {
        (Ok(_), false) | (Err(_), true) => None,
        (Ok(_), true) => Some(format!(
            "{place}: block is marked should-fail but loads without error"
        )),
        (Err(e), false) => Some(format!(
            "{place}: block does not load:\n{}",
            sanctuary::cli::output::render(&e, false)
        )),
    }
}

#[test]
fn every_kdl_block_in_the_docs_behaves_as_marked() {
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut counts = HashMap::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for path in doc_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let file = path.strip_prefix(root).unwrap_or(&path);
        let blocks = kdl_blocks(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for block in &blocks {
            *counts.entry(block.should_fail).or_insert(0usize) += 1;
            failures.extend(check(file, block, dir.path()));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
    // The reference has both kinds of block; finding none means the extractor is broken.
    assert!(counts.get(&false).copied().unwrap_or(0) >= 10, "{counts:?}");
    assert!(counts.get(&true).copied().unwrap_or(0) >= 3, "{counts:?}");
}

#[test]
fn extractor_finds_kdl_blocks_with_their_lines_and_markers() {
    let md = "# T\n\n```kdl\nvolume \"a\"\n```\n\n```sh\n```kdl\n```\n\n````kdl should-fail\nvolume \"\n```\n````\n";
    let blocks = kdl_blocks(md).unwrap();
    assert_eq!(
        blocks,
        vec![
            Block {
                line: 3,
                should_fail: false,
                text: "volume \"a\"\n".into()
            },
            Block {
                line: 11,
                should_fail: true,
                text: "volume \"\n```\n".into()
            },
        ]
    );
}

#[test]
fn extractor_rejects_unknown_markers_and_open_fences() {
    assert!(kdl_blocks("```kdl skip\nx\n```\n")
        .unwrap_err()
        .contains("skip"));
    assert!(kdl_blocks("```kdl\nvolume \"a\"\n")
        .unwrap_err()
        .contains("never closed"));
}

#[test]
fn a_broken_block_is_reported_with_its_place_and_diagnostic() {
    let dir = tempfile::tempdir().unwrap();
    let block = Block {
        line: 7,
        should_fail: false,
        text: "service \"web\" {\n    image \"missing\"\n}\n".into(),
    };
    let report = check(Path::new("docs/x.md"), &block, dir.path()).unwrap();
    assert!(report.starts_with("docs/x.md:7:"), "{report}");
    assert!(report.contains("undeclared image `missing`"), "{report}");
    let fails = Block {
        should_fail: true,
        ..block
    };
    assert_eq!(check(Path::new("docs/x.md"), &fails, dir.path()), None);
}
