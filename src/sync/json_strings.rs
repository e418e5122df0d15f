//! Rewriting the string VALUES of a JSON text in place, leaving keys, numbers, literals and all
//! formatting byte-for-byte as they were.
//!
//! Re-serialising a parsed document would reformat it, and a reformatted file hashes
//! differently from its source, which would look like an edit on the other side. So this scans
//! the text for string tokens instead: a string followed (after whitespace) by `:` is a key and
//! is left alone; every other string is a value and is passed to the mapping function. The
//! scan does not need the text to be valid JSON; it never fails.

use std::borrow::Cow;

/// Applies `f` to the decoded content of every string value in `text`. Tokens whose value `f`
/// leaves unchanged are copied verbatim. A changed token without escapes is rewritten in place;
/// one with escapes is decoded, mapped and re-encoded (its escapes become canonical).
pub fn map_string_values<'t>(text: &'t str, f: &dyn Fn(&str) -> Cow<'_, str>) -> Cow<'t, str> {
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    // `copied` is how much of `text` has been moved into `out` so far.
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'"' {
            i += 1;
            continue;
        }
        let start = i;
        let mut j = i + 1;
        let mut escaped = false;
        while j < bytes.len() && bytes[j] != b'"' {
            if bytes[j] == b'\\' {
                escaped = true;
                j += 1;
            }
            j += 1;
        }
        if j >= bytes.len() {
            // Unterminated string: nothing more to rewrite.
            break;
        }
        let end = j; // index of the closing quote
        i = end + 1;
        if is_key(bytes, i) {
            continue;
        }
        let inner = &text[start + 1..end];
        let replacement = if escaped {
            match serde_json::from_str::<String>(&text[start..=end]) {
                Ok(decoded) => match f(&decoded) {
                    Cow::Owned(changed) if changed != decoded => serde_json::to_string(&changed)
                        .ok()
                        .map(|s| s[1..s.len() - 1].to_string()),
                    _ => None,
                },
                Err(_) => None,
            }
        } else {
            match f(inner) {
                Cow::Owned(changed) if changed != inner => Some(changed),
                _ => None,
            }
        };
        if let Some(new_inner) = replacement {
            let o = out.get_or_insert_with(|| String::with_capacity(text.len() + 32));
            o.push_str(&text[copied..start + 1]);
            o.push_str(&new_inner);
            copied = end;
        }
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut o) => {
            o.push_str(&text[copied..]);
            Cow::Owned(o)
        }
    }
}

/// True when the next non-whitespace byte at or after `from` is a colon.
fn is_key(bytes: &[u8], from: usize) -> bool {
    bytes[from..]
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upper(s: &str) -> Cow<'_, str> {
        if s.chars().any(|c| c.is_ascii_lowercase()) {
            Cow::Owned(s.to_ascii_uppercase())
        } else {
            Cow::Borrowed(s)
        }
    }

    #[test]
    fn values_change_keys_and_layout_do_not() {
        let text = "{\n  \"key\" : \"value\",\n  \"n\": 1, \"list\": [\"a\", true]\n}\n";
        let out = map_string_values(text, &upper);
        assert_eq!(
            out,
            "{\n  \"key\" : \"VALUE\",\n  \"n\": 1, \"list\": [\"A\", true]\n}\n"
        );
    }

    #[test]
    fn escaped_strings_are_decoded_before_mapping() {
        let text = r#"{"k":"a\"b","q\"k":"x"}"#;
        let out = map_string_values(text, &upper);
        assert_eq!(out, r#"{"k":"A\"B","q\"k":"X"}"#);
    }

    #[test]
    fn unchanged_text_is_borrowed_and_broken_text_does_not_panic() {
        assert!(matches!(
            map_string_values(r#"{"K":"V"}"#, &upper),
            Cow::Borrowed(_)
        ));
        assert_eq!(map_string_values(r#"{"k":"v"#, &upper), r#"{"k":"v"#);
        assert_eq!(map_string_values(r#"["a\"#, &upper), r#"["a\"#);
    }
}
