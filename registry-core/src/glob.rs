//! Doublestar patterns, as Harbor's immutability, retention and replication selectors use them
//! (its `doublestar` kind): `*` matches any run of characters but `/`, `**` any run including
//! `/`, `?` one character but `/`, `[abc]`, `[a-z]` and `[!abc]` one character of (or not of) a
//! class, `{a,b,c}` any of the alternatives (which may hold patterns themselves), and `\x` the
//! character `x`. Matching is over the whole text.
//!
//! Patterns are parsed once ([`Pattern::parse`], which names what is wrong with a bad one) and
//! matched without backtracking blow-up: a table of (pattern position, text position) states,
//! so the cost is bounded by their product whatever the pattern.

use std::fmt;

/// Longest pattern accepted, in bytes.
pub const MAX_PATTERN: usize = 512;
/// Most alternatives the braces of one pattern may expand to.
pub const MAX_ALTERNATIVES: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Char(char),
    /// `?`
    One,
    /// `*`
    Star,
    /// `**`
    Stars,
    /// `[...]`: ranges, negated.
    Class(Vec<(char, char)>, bool),
}

/// A parsed doublestar pattern.
#[derive(Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    /// The alternatives the braces expand to, each a token sequence.
    alternatives: Vec<Vec<Token>>,
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({:?})", self.text)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Why a pattern cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pattern {pattern:?}: {reason}")]
pub struct PatternError {
    /// The pattern.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Pattern {
    /// Parses `text`.
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        let fail = |reason: String| PatternError { pattern: text.to_owned(), reason };
        if text.is_empty() {
            return Err(fail("is empty (use ** for everything)".into()));
        }
        if text.len() > MAX_PATTERN {
            return Err(fail(format!("is longer than {MAX_PATTERN} bytes")));
        }
        let chars: Vec<char> = text.chars().collect();
        let mut pos = 0;
        let alternatives = parse_sequence(&chars, &mut pos, false).map_err(fail)?;
        if pos != chars.len() {
            return Err(fail(format!("unexpected {:?} at {pos}", chars[pos])));
        }
        Ok(Pattern { text: text.to_owned(), alternatives })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the whole of `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        let chars: Vec<char> = text.chars().collect();
        self.alternatives.iter().any(|tokens| match_tokens(tokens, &chars))
    }
}

/// Parses until the end, or (inside braces) until `,` or `}`; the expanded alternatives.
fn parse_sequence(chars: &[char], pos: &mut usize, in_braces: bool) -> Result<Vec<Vec<Token>>, String> {
    let mut alternatives: Vec<Vec<Token>> = vec![Vec::new()];
    let append = |alternatives: &mut Vec<Vec<Token>>, token: Token| {
        for a in alternatives.iter_mut() {
            a.push(token.clone());
        }
    };
    while *pos < chars.len() {
        let c = chars[*pos];
        match c {
            ',' | '}' if in_braces => return Ok(alternatives),
            '}' => return Err(format!("unmatched }} at {pos}")),
            '*' => {
                if chars.get(*pos + 1) == Some(&'*') {
                    *pos += 2;
                    append(&mut alternatives, Token::Stars);
                } else {
                    *pos += 1;
                    append(&mut alternatives, Token::Star);
                }
            }
            '?' => {
                *pos += 1;
                append(&mut alternatives, Token::One);
            }
            '\\' => {
                let escaped = *chars.get(*pos + 1).ok_or("ends with a lone \\")?;
                *pos += 2;
                append(&mut alternatives, Token::Char(escaped));
            }
            '[' => {
                let class = parse_class(chars, pos)?;
                append(&mut alternatives, class);
            }
            '{' => {
                let start = *pos;
                *pos += 1;
                let mut choices: Vec<Vec<Token>> = Vec::new();
                loop {
                    choices.extend(parse_sequence(chars, pos, true)?);
                    match chars.get(*pos) {
                        Some(',') => *pos += 1,
                        Some('}') => {
                            *pos += 1;
                            break;
                        }
                        _ => return Err(format!("unmatched {{ at {start}")),
                    }
                }
                let mut expanded = Vec::with_capacity(alternatives.len() * choices.len());
                for a in &alternatives {
                    for c in &choices {
                        let mut joined = a.clone();
                        joined.extend(c.iter().cloned());
                        expanded.push(joined);
                    }
                }
                if expanded.len() > MAX_ALTERNATIVES {
                    return Err(format!("braces expand to more than {MAX_ALTERNATIVES} alternatives"));
                }
                alternatives = expanded;
            }
            c => {
                *pos += 1;
                append(&mut alternatives, Token::Char(c));
            }
        }
    }
    if in_braces {
        return Err("unmatched {".into());
    }
    Ok(alternatives)
}

fn parse_class(chars: &[char], pos: &mut usize) -> Result<Token, String> {
    let start = *pos;
    *pos += 1;
    let negated = matches!(chars.get(*pos), Some('!') | Some('^'));
    if negated {
        *pos += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let Some(&c) = chars.get(*pos) else { return Err(format!("unmatched [ at {start}")) };
        if c == ']' && !first {
            *pos += 1;
            break;
        }
        first = false;
        let c = if c == '\\' {
            *pos += 1;
            *chars.get(*pos).ok_or_else(|| format!("unmatched [ at {start}"))?
        } else {
            c
        };
        *pos += 1;
        if chars.get(*pos) == Some(&'-') && chars.get(*pos + 1).is_some_and(|e| *e != ']') {
            let end = chars[*pos + 1];
            if end < c {
                return Err(format!("range {c}-{end} is backwards"));
            }
            ranges.push((c, end));
            *pos += 2;
        } else {
            ranges.push((c, c));
        }
    }
    Ok(Token::Class(ranges, negated))
}

/// Whether `tokens` match all of `text`: a table of reachable states, one text position at a
/// time.
fn match_tokens(tokens: &[Token], text: &[char]) -> bool {
    // states[i]: token position i is reachable having consumed the text so far.
    let n = tokens.len();
    let mut states = vec![false; n + 1];
    states[0] = true;
    close(tokens, &mut states);
    for &c in text {
        let mut next = vec![false; n + 1];
        for i in 0..n {
            if !states[i] {
                continue;
            }
            match &tokens[i] {
                Token::Char(t) if *t == c => next[i + 1] = true,
                Token::One if c != '/' => next[i + 1] = true,
                Token::Star if c != '/' => next[i] = true,
                Token::Stars => next[i] = true,
                Token::Class(ranges, negated) if c != '/' => {
                    let inside = ranges.iter().any(|(a, b)| (*a..=*b).contains(&c));
                    if inside != *negated {
                        next[i + 1] = true;
                    }
                }
                _ => {}
            }
        }
        close(tokens, &mut next);
        if !next.iter().any(|s| *s) {
            return false;
        }
        states = next;
    }
    states[n]
}

/// Stars match nothing too: a reachable star makes the position after it reachable.
fn close(tokens: &[Token], states: &mut [bool]) {
    for i in 0..tokens.len() {
        if states[i] && matches!(tokens[i], Token::Star | Token::Stars) {
            states[i + 1] = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        Pattern::parse(pattern).expect("valid").matches(text)
    }

    #[test]
    fn stars_and_slashes() {
        assert!(m("**", "anything/at/all"));
        assert!(m("**", ""));
        assert!(m("*", "app"));
        assert!(!m("*", "team/app"));
        assert!(m("team/*", "team/app"));
        assert!(!m("team/*", "team/a/b"));
        assert!(m("team/**", "team/a/b"));
        assert!(m("v*", "v1.0"));
        assert!(!m("v*", "release-v1"));
        assert!(m("*-rc?", "1.2-rc3"));
        assert!(!m("*-rc?", "1.2-rc10"));
        assert!(m("**/app", "a/b/app"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
    }

    #[test]
    fn classes_braces_escapes() {
        assert!(m("v[0-9].*", "v1.2"));
        assert!(!m("v[0-9].*", "vx.2"));
        assert!(m("[!a]*", "bcd"));
        assert!(!m("[!a]*", "abc"));
        assert!(m("{latest,stable}", "stable"));
        assert!(!m("{latest,stable}", "nightly"));
        assert!(m("release-{v1,v2}.*", "release-v2.0"));
        assert!(m("{a,b{c,d}}x", "bdx"));
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "x"));
        assert!(m("[]]", "]"));
    }

    #[test]
    fn bad_patterns_say_why() {
        for bad in ["", "{a,b", "a}", "[abc", "\\", "[z-a]", &"x".repeat(MAX_PATTERN + 1), &"{a,b}".repeat(9)] {
            let e = Pattern::parse(bad).expect_err(bad);
            assert!(!e.reason.is_empty(), "{bad}");
        }
    }

    #[test]
    fn no_blow_up() {
        let p = Pattern::parse(&"*a".repeat(40)).expect("valid");
        assert!(!p.matches(&"a".repeat(39)));
        assert!(p.matches(&"a".repeat(40)));
    }
}
