//! Parsing a large manifest on every core.
//!
//! KDL parsing dominates `validate` on a large manifest, and it is sequential. The text is
//! cut at top-level node boundaries into one piece per core; each piece is parsed on its own
//! thread and its spans are shifted back to offsets in the whole text, so the result is the
//! document the sequential parser gives. The cutter is a small lexer (strings, raw strings,
//! comments, braces, line continuations). Whenever it is unsure, or a piece fails to parse,
//! the whole text goes through the sequential parser. Errors are therefore always reported
//! by that parser, against the whole file.

use std::collections::BTreeMap;

use knuffel::ast::{Document, Node, SpannedNode, Value};
use knuffel::span::Span;

/// Below this size one thread parses faster than several start.
const PARALLEL_FROM: usize = 32 * 1024;

/// Parses `text` as [`knuffel::parse_ast`] does, on several threads when it is large.
pub fn parse_ast(name: &str, text: &str) -> Result<Document<Span>, knuffel::Error> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    parse_in_pieces(name, text, pieces_for(text.len(), threads))
}

fn pieces_for(len: usize, threads: usize) -> usize {
    if len < PARALLEL_FROM {
        1
    } else {
        threads.clamp(1, 8)
    }
}

/// Parses `text` cut into at most `pieces` pieces.
fn parse_in_pieces(
    name: &str,
    text: &str,
    pieces: usize,
) -> Result<Document<Span>, knuffel::Error> {
    let cuts = match cut_points(text, pieces) {
        Some(cuts) if !cuts.is_empty() => cuts,
        _ => return knuffel::parse_ast(name, text),
    };
    let mut bounds = Vec::with_capacity(cuts.len() + 1);
    let mut start = 0;
    for cut in cuts.into_iter().chain(std::iter::once(text.len())) {
        bounds.push((start, cut));
        start = cut;
    }
    let parsed: Vec<Option<Vec<SpannedNode<Span>>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = bounds
            .iter()
            .map(|&(a, b)| {
                scope.spawn(move || {
                    knuffel::parse_ast::<Span>(name, &text[a..b])
                        .ok()
                        .map(|doc| doc.nodes.into_iter().map(|n| shift_node(n, a)).collect())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().ok().flatten())
            .collect()
    });
    let mut nodes = Vec::new();
    for piece in parsed {
        match piece {
            Some(piece) => nodes.extend(piece),
            // The sequential parser reports the error against the whole file.
            None => return knuffel::parse_ast(name, text),
        }
    }
    Ok(Document { nodes })
}

fn shift(span: Span, by: usize) -> Span {
    Span(span.0 + by, span.1 + by)
}

fn shift_node(node: SpannedNode<Span>, by: usize) -> SpannedNode<Span> {
    node.map_span(|s| shift(s, by)).map(|n| Node {
        type_name: n.type_name.map(|t| t.map_span(|s| shift(s, by))),
        node_name: n.node_name.map_span(|s| shift(s, by)),
        arguments: n
            .arguments
            .into_iter()
            .map(|v| shift_value(v, by))
            .collect(),
        properties: n
            .properties
            .into_iter()
            .map(|(k, v)| (k.map_span(|s| shift(s, by)), shift_value(v, by)))
            .collect::<BTreeMap<_, _>>(),
        children: n.children.map(|c| {
            c.map_span(|s| shift(s, by))
                .map(|kids| kids.into_iter().map(|k| shift_node(k, by)).collect())
        }),
    })
}

fn shift_value(v: Value<Span>, by: usize) -> Value<Span> {
    Value {
        type_name: v.type_name.map(|t| t.map_span(|s| shift(s, by))),
        literal: v.literal.map_span(|s| shift(s, by)),
    }
}

/// Where the lexer is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Normal,
    String,
    RawString { hashes: usize },
    LineComment,
    BlockComment { depth: usize },
}

/// Byte offsets, each the start of a line that begins a new top-level node, near the even
/// split of `text` into `pieces` parts; `None` when the lexer cannot vouch for the text.
fn cut_points(text: &str, pieces: usize) -> Option<Vec<usize>> {
    if pieces < 2 {
        return Some(Vec::new());
    }
    let boundaries = line_boundaries(text)?;
    let mut cuts = Vec::new();
    for i in 1..pieces {
        let want = text.len() * i / pieces;
        // The first boundary at or after the even split keeps pieces in order.
        if let Some(&at) = boundaries.iter().find(|&&b| b >= want) {
            if cuts.last().is_none_or(|&last| at > last) && at < text.len() {
                cuts.push(at);
            }
        }
    }
    Some(cuts)
}

/// Offsets just after each newline that ends a top-level node: outside strings, comments
/// and braces, and not escaped by a line continuation. `None` when the text does not end in
/// a clean state (an unclosed string, comment or brace): then it is not ours to cut.
fn line_boundaries(text: &str) -> Option<Vec<usize>> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut state = State::Normal;
    let mut depth = 0usize;
    let mut continued = false;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let next = bytes.get(i + 1).copied();
        match state {
            State::Normal => match c {
                b'"' => state = State::String,
                b'r' if starts_raw_string(bytes, i) => {
                    let hashes = bytes[i + 1..].iter().take_while(|&&b| b == b'#').count();
                    state = State::RawString { hashes };
                    i += hashes + 1;
                }
                b'/' if next == Some(b'/') => {
                    state = State::LineComment;
                    i += 1;
                }
                b'/' if next == Some(b'*') => {
                    state = State::BlockComment { depth: 1 };
                    i += 1;
                }
                b'{' => depth += 1,
                b'}' => depth = depth.checked_sub(1)?,
                b'\\' => continued = true,
                b'\n' => {
                    if depth == 0 && !continued {
                        out.push(i + 1);
                    }
                    continued = false;
                }
                _ => {}
            },
            State::String => match c {
                b'\\' => i += 1,
                b'"' => state = State::Normal,
                _ => {}
            },
            State::RawString { hashes } => {
                if c == b'"'
                    && bytes.len() >= i + 1 + hashes
                    && bytes[i + 1..i + 1 + hashes].iter().all(|&b| b == b'#')
                {
                    state = State::Normal;
                    i += hashes;
                }
            }
            State::LineComment => {
                if c == b'\n' {
                    state = State::Normal;
                    if depth == 0 && !continued {
                        out.push(i + 1);
                    }
                    continued = false;
                }
            }
            State::BlockComment { depth: d } => {
                if c == b'*' && next == Some(b'/') {
                    state = if d == 1 {
                        State::Normal
                    } else {
                        State::BlockComment { depth: d - 1 }
                    };
                    i += 1;
                } else if c == b'/' && next == Some(b'*') {
                    state = State::BlockComment { depth: d + 1 };
                    i += 1;
                }
            }
        }
        i += 1;
    }
    let clean = matches!(state, State::Normal | State::LineComment) && depth == 0;
    clean.then_some(out)
}

/// Whether a raw string (`r"…"`, `r#"…"#`) starts at `i`: an `r` that does not continue an
/// identifier, then any number of `#`, then `"`.
fn starts_raw_string(bytes: &[u8], i: usize) -> bool {
    let continues_identifier = i > 0
        && !matches!(
            bytes[i - 1],
            b' ' | b'\t' | b'\n' | b'\r' | b'(' | b')' | b'{' | b'}' | b';' | b'=' | b'\\'
        );
    if continues_identifier {
        return false;
    }
    let hashes = bytes[i + 1..].iter().take_while(|&&b| b == b'#').count();
    bytes.get(i + 1 + hashes) == Some(&b'"')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sequential and the cut parse give the same document, spans included.
    fn same_as_sequential(text: &str, pieces: usize) {
        let whole = knuffel::parse_ast::<Span>("t.kdl", text).map(|d| format!("{:?}", d.nodes));
        let cut = parse_in_pieces("t.kdl", text, pieces).map(|d| format!("{:?}", d.nodes));
        match (whole, cut) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(_), Err(_)) => {}
            (a, b) => panic!("sequential {:?} but cut {:?}", a.is_ok(), b.is_ok()),
        }
    }

    const TRICKY: &str = r##"project "p" // a comment { with a brace
/* a block comment
   service "fake" {
   /* nested */ still comment
*/
service "web" {
    command "sh" "-c" "echo \"}\" ; echo {"
    env X=r#"raw " with } and
a newline"#
}
task "long" \
    description="continued line"
/-task "gone" {
    run "x"
}
task "b" { run r"C:\path{"; }
volume "v"; volume "w"
image "i" (t)"typed"
"##;

    #[test]
    fn cut_documents_equal_the_sequential_parse() {
        let doc = knuffel::parse_ast::<Span>("t.kdl", TRICKY).expect("valid KDL");
        assert_eq!(doc.nodes.len(), 7, "the slashdashed task is gone");
        for pieces in 1..=6 {
            same_as_sequential(TRICKY, pieces);
        }
        let big: String = (0..400)
            .map(|i| format!("task \"t{i}\" {{\n    run \"echo {i}\"\n    inputs \"src/**\"\n}}\n"))
            .collect();
        for pieces in [2, 3, 8] {
            same_as_sequential(&big, pieces);
        }
    }

    #[test]
    fn cuts_fall_only_between_top_level_nodes() {
        let b = line_boundaries(TRICKY).unwrap();
        let starts: Vec<&str> = b
            .iter()
            .filter(|&&at| at < TRICKY.len())
            .map(|&at| TRICKY[at..].lines().next().unwrap_or(""))
            .collect();
        assert_eq!(
            starts,
            vec![
                "/* a block comment",
                "service \"web\" {",
                "task \"long\" \\",
                "/-task \"gone\" {",
                "task \"b\" { run r\"C:\\path{\"; }",
                "volume \"v\"; volume \"w\"",
                "image \"i\" (t)\"typed\"",
            ]
        );
    }

    #[test]
    fn unclosed_text_is_left_to_the_sequential_parser() {
        assert!(line_boundaries("task \"a\" {\n run \"x\"\n").is_none());
        assert!(line_boundaries("task \"a\" \"open string\n").is_none());
        assert!(line_boundaries("}\n").is_none());
        same_as_sequential("task \"a\" {\n run \"x\"\n", 2);
        same_as_sequential("task \"a\"\ntask \"b\" {\n", 2);
    }

    #[test]
    fn errors_are_the_sequential_parser_s() {
        let text = "task \"a\" { run \"x\" }\n".repeat(50) + "task \"b\" { run = }\n";
        let cut = parse_in_pieces("t.kdl", &text, 4).unwrap_err();
        let whole = knuffel::parse_ast::<Span>("t.kdl", &text).unwrap_err();
        assert_eq!(format!("{cut:?}"), format!("{whole:?}"));
    }

    /// Pieces of KDL that stress the cutter; any sequence of them is a document.
    const FRAGMENTS: [&str; 10] = [
        "task \"a\" {\n    run \"echo {\"\n}\n",
        "// comment with \" and {\n",
        "/* block\n { \" */\n",
        "volume \"v\"; volume \"w\"\n",
        "service \"s\" {\n    env X=r#\"two\nlines } \"#\n}\n",
        "task \"c\" \\\n    description=\"continued\"\n",
        "/-task \"gone\" {\n    run \"x\"\n}\n",
        "network \"n\" /* inline */ { driver \"bridge\"; }\n",
        "\n\n",
        "image \"i\" { context r\"C:\\dir{\"; }\n",
    ];

    proptest::proptest! {
        #[test]
        fn any_sequence_of_fragments_cuts_to_the_same_document(
            picks in proptest::collection::vec(0usize..FRAGMENTS.len(), 1..40),
            pieces in 2usize..6,
        ) {
            let text: String = picks.iter().map(|&i| FRAGMENTS[i]).collect();
            proptest::prop_assert!(knuffel::parse_ast::<Span>("t.kdl", &text).is_ok(), "{}", text);
            same_as_sequential(&text, pieces);
        }
    }

    #[test]
    fn small_texts_are_not_cut() {
        assert_eq!(pieces_for(1000, 8), 1);
        assert_eq!(pieces_for(PARALLEL_FROM, 2), 2);
        assert_eq!(pieces_for(PARALLEL_FROM, 64), 8);
    }
}
