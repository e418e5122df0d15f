//! Path rewriting between the host form and the container form of synced content.
//!
//! A rule `rewrite "/Users/alice/" "/home/node/"` maps host paths to container paths; the same
//! rules read backwards map container paths to host paths. Matches respect path boundaries:
//! `/Users/alice/x` matches, `/Users/alicex/` and `/opt/Users/alice` do not. [`RuleSet::new`]
//! accepts only rule sets whose inverse is unambiguous (no rule string occurs inside another),
//! which makes `to_host(to_container(x)) == x` for any text that does not already mention a
//! container path. Content that does mention one cannot round-trip; the checked conversions
//! report it instead of silently changing it.
//!
//! Content rules: `.json` files have only their string values rewritten (keys, numbers and
//! layout are untouched); other UTF-8 text is rewritten throughout; binary content (not UTF-8,
//! or containing NUL) is never touched.

use std::borrow::Cow;
use std::fmt;

use super::json_strings::map_string_values;
use super::model::RelPath;

/// One user rule: a host path prefix and the container path prefix it corresponds to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rule {
    /// The host form, e.g. `/Users/alice/`.
    pub host: String,
    /// The container form, e.g. `/home/node/`.
    pub container: String,
}

impl Rule {
    /// A rule from its two sides.
    pub fn new(host: impl Into<String>, container: impl Into<String>) -> Self {
        Rule {
            host: host.into(),
            container: container.into(),
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rewrite {:?} {:?}", self.host, self.container)
    }
}

/// Which way content is being converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Host form → container form.
    ToContainer,
    /// Container form → host form.
    ToHost,
}

/// Why a rule set or a conversion was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    /// A rule's path is not usable as a prefix.
    #[error("invalid path `{text}` in {rule}: {why}")]
    InvalidRulePath {
        /// The rule.
        rule: Rule,
        /// The offending side of it.
        text: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Two rule strings overlap, so reading the rules backwards would be ambiguous.
    #[error("rewrite rules cannot be inverted unambiguously: `{inner}` ({inner_rule}) occurs within `{outer}` ({outer_rule})")]
    Ambiguous {
        /// The string found inside the other.
        inner: String,
        /// The rule it belongs to.
        inner_rule: Box<Rule>,
        /// The string containing it.
        outer: String,
        /// The rule that one belongs to.
        outer_rule: Box<Rule>,
    },
    /// The content already mentions a path of the destination form, so converting it would not
    /// round-trip.
    #[error("`{path}` mentions `{mention}`, a {form} path, so rewriting it would not round-trip")]
    NotRoundTrip {
        /// The file.
        path: RelPath,
        /// The destination-form prefix it already contains.
        mention: String,
        /// "container" or "host".
        form: &'static str,
    },
}

/// Characters that continue a path component; a rule matches only where the text around it is
/// not one of these.
fn is_path_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '~' | '+' | '@' | '%')
}

/// A validated, normalised set of rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleSet {
    /// `(host, container)` with trailing slashes removed.
    pairs: Vec<(String, String)>,
    rules: Vec<Rule>,
}

/// Checks that `rules` can be applied and inverted unambiguously.
pub fn validate(rules: &[Rule]) -> Result<(), RewriteError> {
    RuleSet::new(rules.to_vec()).map(|_| ())
}

impl RuleSet {
    /// Validates and normalises `rules`: each side must be an absolute path made of path
    /// characters and single slashes, and no rule string may occur (at a path boundary) inside
    /// any other, including its own partner: that is what makes the inverse unambiguous.
    pub fn new(rules: Vec<Rule>) -> Result<Self, RewriteError> {
        let mut pairs = Vec::with_capacity(rules.len());
        for rule in &rules {
            let h = normalise(rule, &rule.host)?;
            let c = normalise(rule, &rule.container)?;
            pairs.push((h, c));
        }
        let all: Vec<(&String, &Rule)> = pairs
            .iter()
            .zip(&rules)
            .flat_map(|((h, c), r)| [(h, r), (c, r)])
            .collect();
        for (i, (a, ra)) in all.iter().enumerate() {
            for (j, (b, rb)) in all.iter().enumerate() {
                if i != j && find_at_boundary(b, a, 0).is_some() {
                    return Err(RewriteError::Ambiguous {
                        inner: (*a).clone(),
                        inner_rule: Box::new((*ra).clone()),
                        outer: (*b).clone(),
                        outer_rule: Box::new((*rb).clone()),
                    });
                }
            }
        }
        Ok(RuleSet { pairs, rules })
    }

    /// The rules as given.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// True when there is nothing to rewrite.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    fn pairs_for(&self, dir: Direction) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(move |(h, c)| match dir {
            Direction::ToContainer => (h.as_str(), c.as_str()),
            Direction::ToHost => (c.as_str(), h.as_str()),
        })
    }

    /// Rewrites every boundary match in `text`, leftmost first.
    pub fn apply_str<'t>(&self, text: &'t str, dir: Direction) -> Cow<'t, str> {
        if self.pairs.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut out: Option<String> = None;
        let mut copied = 0;
        let mut at = 0;
        loop {
            // The earliest match of any rule; rule strings never nest, so at most one rule can
            // match at a given position.
            let next = self
                .pairs_for(dir)
                .filter_map(|(from, to)| find_at_boundary(text, from, at).map(|i| (i, from, to)))
                .min_by_key(|(i, _, _)| *i);
            let Some((i, from, to)) = next else { break };
            let o = out.get_or_insert_with(|| String::with_capacity(text.len() + 16));
            o.push_str(&text[copied..i]);
            o.push_str(to);
            copied = i + from.len();
            at = copied;
        }
        match out {
            None => Cow::Borrowed(text),
            Some(mut o) => {
                o.push_str(&text[copied..]);
                Cow::Owned(o)
            }
        }
    }

    /// The first source-form prefix of direction `dir`'s DESTINATION that `text` already
    /// mentions, if any: such text cannot round-trip.
    pub fn mentions_destination(&self, text: &str, dir: Direction) -> Option<String> {
        self.pairs_for(dir)
            .find(|(_, to)| find_at_boundary(text, to, 0).is_some())
            .map(|(_, to)| to.to_string())
    }

    /// Converts file content: string values of `.json` files, whole UTF-8 text otherwise,
    /// binary content never. Unchecked: see [`RuleSet::convert_checked`].
    pub fn convert<'b>(&self, path: &RelPath, bytes: &'b [u8], dir: Direction) -> Cow<'b, [u8]> {
        if self.pairs.is_empty() {
            return Cow::Borrowed(bytes);
        }
        let Some(text) = as_text(bytes) else {
            return Cow::Borrowed(bytes);
        };
        let out = if path.is_json() {
            map_string_values(text, &|s| self.apply_str(s, dir))
        } else {
            self.apply_str(text, dir)
        };
        match out {
            Cow::Borrowed(_) => Cow::Borrowed(bytes),
            Cow::Owned(s) => Cow::Owned(s.into_bytes()),
        }
    }

    /// Like [`RuleSet::convert`], but refuses content that would not come back unchanged when
    /// converted the other way (it already mentions a destination-form path).
    pub fn convert_checked<'b>(
        &self,
        path: &RelPath,
        bytes: &'b [u8],
        dir: Direction,
    ) -> Result<Cow<'b, [u8]>, RewriteError> {
        let out = self.convert(path, bytes, dir);
        let back_dir = match dir {
            Direction::ToContainer => Direction::ToHost,
            Direction::ToHost => Direction::ToContainer,
        };
        if self.convert(path, &out, back_dir).as_ref() == bytes {
            return Ok(out);
        }
        let mention = as_text(bytes)
            .and_then(|t| self.mentions_destination(t, dir))
            .unwrap_or_default();
        Err(RewriteError::NotRoundTrip {
            path: path.clone(),
            mention,
            form: match dir {
                Direction::ToContainer => "container",
                Direction::ToHost => "host",
            },
        })
    }
}

/// Content that rewriting may touch: valid UTF-8 without NUL bytes.
fn as_text(bytes: &[u8]) -> Option<&str> {
    if bytes.contains(&0) {
        return None;
    }
    std::str::from_utf8(bytes).ok()
}

fn normalise(rule: &Rule, text: &str) -> Result<String, RewriteError> {
    let bad = |why| RewriteError::InvalidRulePath {
        rule: rule.clone(),
        text: text.to_string(),
        why,
    };
    let trimmed = text.trim_end_matches('/');
    if !text.starts_with('/') {
        return Err(bad("must be an absolute path"));
    }
    if trimmed.is_empty() {
        return Err(bad("the root `/` would match every path"));
    }
    if trimmed.contains("//") {
        return Err(bad("contains an empty path component"));
    }
    if !trimmed.chars().all(|c| c == '/' || is_path_char(c)) {
        return Err(bad("may contain only letters, digits, `/` and `._-~+@%`"));
    }
    Ok(trimmed.to_string())
}

/// The first index at or after `from` where `needle` occurs in `hay` with a path boundary on
/// both sides (the characters around it are not path characters).
fn find_at_boundary(hay: &str, needle: &str, from: usize) -> Option<usize> {
    let mut at = from;
    while let Some(rel) = hay.get(at..)?.find(needle) {
        let i = at + rel;
        let end = i + needle.len();
        let before_ok = hay[..i]
            .chars()
            .next_back()
            .is_none_or(|c| !is_path_char(c));
        let after_ok = hay[end..].chars().next().is_none_or(|c| !is_path_char(c));
        if before_ok && after_ok {
            return Some(i);
        }
        // Advance by one character, staying on a char boundary.
        at = i + hay[i..].chars().next().map_or(1, char::len_utf8);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn alice() -> RuleSet {
        RuleSet::new(vec![Rule::new("/Users/alice/", "/home/node/")]).unwrap()
    }

    fn p(s: &str) -> RelPath {
        RelPath::new(s).unwrap()
    }

    #[test]
    fn matches_only_at_path_boundaries() {
        let r = alice();
        let to_c = |s| r.apply_str(s, Direction::ToContainer).into_owned();
        assert_eq!(to_c("/Users/alice/x"), "/home/node/x");
        assert_eq!(to_c("/Users/alice"), "/home/node");
        assert_eq!(to_c("cd /Users/alice/x; ls"), "cd /home/node/x; ls");
        assert_eq!(to_c("/Users/alicex/"), "/Users/alicex/");
        assert_eq!(to_c("/opt/Users/alice/x"), "/opt/Users/alice/x");
        assert_eq!(to_c("/Users/alice.bak/x"), "/Users/alice.bak/x");
        assert_eq!(to_c("file:///Users/alice/a"), "file:///home/node/a");
        assert_eq!(
            r.apply_str("/home/node/q", Direction::ToHost),
            "/Users/alice/q"
        );
    }

    #[test]
    fn validate_rejects_ambiguous_and_malformed_rules() {
        let same_target = [
            Rule::new("/Users/alice/", "/home/node/"),
            Rule::new("/Users/bob/", "/home/node/"),
        ];
        assert!(matches!(
            validate(&same_target),
            Err(RewriteError::Ambiguous { .. })
        ));
        let target_prefix_of_source = [
            Rule::new("/Users/alice/", "/home/"),
            Rule::new("/home/alice/", "/srv/"),
        ];
        assert!(matches!(
            validate(&target_prefix_of_source),
            Err(RewriteError::Ambiguous { .. })
        ));
        let nested_sources = [
            Rule::new("/Users/alice/", "/home/node/"),
            Rule::new("/Users/alice/work/", "/work/"),
        ];
        assert!(validate(&nested_sources).is_err());
        assert!(validate(&[Rule::new("/a/", "/a/b/")]).is_err());
        for bad in ["relative/", "/", "/a//b", "/a b/", "/a\"/"] {
            assert!(
                matches!(
                    validate(&[Rule::new(bad, "/home/node/")]),
                    Err(RewriteError::InvalidRulePath { .. })
                ),
                "{bad:?} accepted"
            );
        }
        assert!(validate(&[
            Rule::new("/Users/alice/", "/home/node/"),
            Rule::new("/Volumes/data/", "/data/"),
        ])
        .is_ok());
    }

    #[test]
    fn json_rewrites_string_values_only() {
        let r = alice();
        let text = r#"{"/Users/alice/k": "/Users/alice/v", "n": 1, "a": ["/Users/alice"]}"#;
        let out = r.convert(&p("cfg.json"), text.as_bytes(), Direction::ToContainer);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"/Users/alice/k": "/home/node/v", "n": 1, "a": ["/home/node"]}"#
        );
        // The same bytes as plain text are rewritten everywhere.
        let out = r.convert(&p("cfg.txt"), text.as_bytes(), Direction::ToContainer);
        assert!(std::str::from_utf8(&out)
            .unwrap()
            .starts_with(r#"{"/home/node/k""#));
    }

    #[test]
    fn binary_content_is_untouched() {
        let r = alice();
        let mut bin = b"/Users/alice/x".to_vec();
        bin.push(0);
        assert_eq!(
            r.convert(&p("a.bin"), &bin, Direction::ToContainer)
                .as_ref(),
            &bin[..]
        );
        let latin1 = b"/Users/alice/\xe9";
        assert_eq!(
            r.convert(&p("a.txt"), latin1, Direction::ToContainer)
                .as_ref(),
            latin1
        );
    }

    #[test]
    fn checked_conversion_refuses_content_that_cannot_round_trip() {
        let r = alice();
        let text = b"host /Users/alice/a, container /home/node/b";
        let err = r
            .convert_checked(&p("notes.md"), text, Direction::ToContainer)
            .unwrap_err();
        assert!(err.to_string().contains("/home/node"), "{err}");
        assert!(r
            .convert_checked(&p("notes.md"), b"/Users/alice/a", Direction::ToContainer)
            .is_ok());
    }

    /// Fragments that text is built from: rule sources, separators and ordinary characters,
    /// plus near-misses of the sources.
    fn fragment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("/Users/alice".to_string()),
            Just("/Users/alice/".to_string()),
            Just("/Volumes/data".to_string()),
            Just("/Users/alicex".to_string()),
            Just("/Users".to_string()),
            Just("/".to_string()),
            Just("\"".to_string()),
            Just("\\".to_string()),
            Just(":".to_string()),
            Just(" ".to_string()),
            Just("é".to_string()),
            "[a-z0-9._-]{0,4}",
        ]
    }

    fn text() -> impl Strategy<Value = String> {
        prop::collection::vec(fragment(), 0..12).prop_map(|v| v.concat())
    }

    fn rules() -> RuleSet {
        RuleSet::new(vec![
            Rule::new("/Users/alice/", "/home/node/"),
            Rule::new("/Volumes/data/", "/data/"),
        ])
        .unwrap()
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        use serde_json::Value;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i32>().prop_map(Value::from),
            text().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(text(), inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn string_values(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) => out.push(s.clone()),
            serde_json::Value::Array(a) => a.iter().for_each(|x| string_values(x, out)),
            serde_json::Value::Object(o) => o.values().for_each(|x| string_values(x, out)),
            _ => {}
        }
    }

    /// The document with every string value replaced by "", to compare structure and keys.
    fn skeleton(v: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match v {
            Value::String(_) => Value::String(String::new()),
            Value::Array(a) => Value::Array(a.iter().map(skeleton).collect()),
            Value::Object(o) => {
                Value::Object(o.iter().map(|(k, x)| (k.clone(), skeleton(x))).collect())
            }
            other => other.clone(),
        }
    }

    proptest! {
        #[test]
        fn paths_round_trip(x in text()) {
            let r = rules();
            prop_assume!(r.mentions_destination(&x, Direction::ToContainer).is_none());
            let there = r.apply_str(&x, Direction::ToContainer);
            prop_assert_eq!(r.apply_str(&there, Direction::ToHost), x.as_str());
            let checked = r.convert_checked(&p("f.txt"), x.as_bytes(), Direction::ToContainer);
            prop_assert!(checked.is_ok());
        }

        #[test]
        fn container_paths_round_trip(x in text()) {
            let r = rules();
            let c = r.apply_str(&x, Direction::ToContainer).into_owned();
            // Container-form text (anything that came from the host) maps back and forth.
            let h = r.apply_str(&c, Direction::ToHost);
            prop_assert_eq!(r.apply_str(&h, Direction::ToContainer), c.as_str());
        }

        #[test]
        fn checked_conversion_is_exact(x in text()) {
            let r = rules();
            let path = p("f.txt");
            match r.convert_checked(&path, x.as_bytes(), Direction::ToContainer) {
                Ok(c) => {
                    let back = r.convert(&path, &c, Direction::ToHost).into_owned();
                    prop_assert_eq!(back.as_slice(), x.as_bytes());
                }
                Err(_) => prop_assert!(
                    r.mentions_destination(&x, Direction::ToContainer).is_some()
                ),
            }
        }

        #[test]
        fn json_documents_round_trip(doc in json_value(), pretty in any::<bool>()) {
            let r = rules();
            let mut strings = Vec::new();
            string_values(&doc, &mut strings);
            prop_assume!(strings
                .iter()
                .all(|s| r.mentions_destination(s, Direction::ToContainer).is_none()));
            let text = if pretty {
                serde_json::to_string_pretty(&doc).unwrap()
            } else {
                serde_json::to_string(&doc).unwrap()
            };
            let path = p("settings.json");
            let there = r.convert(&path, text.as_bytes(), Direction::ToContainer);
            let parsed: serde_json::Value = serde_json::from_slice(&there).unwrap();
            // Keys, numbers, literals and nesting are untouched; only string values move.
            prop_assert_eq!(skeleton(&parsed), skeleton(&doc));
            let back = r.convert(&path, &there, Direction::ToHost);
            prop_assert_eq!(back.as_ref(), text.as_bytes());
        }
    }
}
