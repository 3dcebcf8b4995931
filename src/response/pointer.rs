//! Field pointers for `strip_fields`: JSON pointers (RFC 6901) where a `*` token stands for any
//! array index or any object member (`/items/*/card`).
//!
//! It decides, at configure time, whether a pointer is well formed, and at response time whether
//! a member's path matches. It never reads a body itself (see [`super::strip`]).

use crate::text::eq_fold;
use crate::validate::json::{PathPattern, Step};

/// Most tokens in one pointer.
pub const MAX_TOKENS: usize = 32;

/// One token of a pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// `*`: any index or member.
    Any,
    /// A member name; also an array index when it is one (`0`, `12`, never `01`).
    Name(String, Option<usize>),
}

/// A parsed field pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPointer {
    text: String,
    tokens: Vec<Token>,
}

/// Why a pointer is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointerError {
    /// Not starting with `/` (the empty pointer would be the whole document).
    NoLeadingSlash,
    /// A `~` not followed by `0` or `1`.
    BadEscape,
    /// More than [`MAX_TOKENS`] tokens.
    TooDeep,
}

impl PointerError {
    /// The config error text.
    pub fn describe(self) -> &'static str {
        match self {
            PointerError::NoLeadingSlash => {
                "a field pointer starts with '/' (\"/password\", \"/items/*/card\"); the whole document cannot be stripped"
            }
            PointerError::BadEscape => "'~' must be followed by 0 ('~') or 1 ('/') in a JSON pointer",
            PointerError::TooDeep => "a field pointer has at most 32 tokens",
        }
    }
}

fn array_index(token: &str) -> Option<usize> {
    let ok = token == "0"
        || (!token.is_empty()
            && !token.starts_with('0')
            && token.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        token.parse().ok()
    } else {
        None
    }
}

impl FieldPointer {
    /// Parses a pointer; `*` tokens are wildcards.
    pub fn parse(text: &str) -> Result<Self, PointerError> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err(PointerError::NoLeadingSlash);
        };
        let mut tokens = Vec::new();
        for raw in rest.split('/') {
            if tokens.len() >= MAX_TOKENS {
                return Err(PointerError::TooDeep);
            }
            if raw == "*" {
                tokens.push(Token::Any);
                continue;
            }
            let mut name = String::with_capacity(raw.len());
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                if c == '~' {
                    match chars.next() {
                        Some('0') => name.push('~'),
                        Some('1') => name.push('/'),
                        _ => return Err(PointerError::BadEscape),
                    }
                } else {
                    name.push(c);
                }
            }
            let index = array_index(&name);
            tokens.push(Token::Name(name, index));
        }
        Ok(Self {
            text: text.to_string(),
            tokens,
        })
    }

    /// The pointer as configured.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl PathPattern for &FieldPointer {
    fn depth(&self) -> usize {
        self.tokens.len()
    }

    fn accepts(&self, i: usize, step: Step<'_>) -> bool {
        match (self.tokens.get(i), step) {
            (Some(Token::Any), _) => true,
            // In any letter case (Unicode simple folding): `Password` leaks what `password` does,
            // and Go and ASP.NET clients bind either.
            (Some(Token::Name(name, _)), Step::Key(k)) => name == k || eq_fold(name, k),
            (Some(Token::Name(_, index)), Step::Index(n)) => *index == Some(n),
            (None, _) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_indices_wildcards_and_escapes() {
        let p = FieldPointer::parse("/items/*/card").unwrap();
        let p = &p;
        assert_eq!(p.depth(), 3);
        assert!(p.accepts(0, Step::Key("items")));
        assert!(p.accepts(1, Step::Index(7)));
        assert!(p.accepts(1, Step::Key("anything")));
        assert!(!p.accepts(2, Step::Key("cvv")));
        let p = FieldPointer::parse("/a~1b/m~0n/0").unwrap();
        let p = &p;
        assert!(p.accepts(0, Step::Key("a/b")));
        assert!(p.accepts(1, Step::Key("m~n")));
        assert!(p.accepts(2, Step::Index(0)));
        assert!(p.accepts(2, Step::Key("0")));
        let leading_zero = FieldPointer::parse("/01").unwrap();
        assert!(!(&leading_zero).accepts(0, Step::Index(1)));
    }

    #[test]
    fn refuses_malformed_pointers() {
        assert_eq!(
            FieldPointer::parse("password"),
            Err(PointerError::NoLeadingSlash)
        );
        assert_eq!(FieldPointer::parse(""), Err(PointerError::NoLeadingSlash));
        assert_eq!(FieldPointer::parse("/a~2"), Err(PointerError::BadEscape));
        assert_eq!(FieldPointer::parse("/a~"), Err(PointerError::BadEscape));
        let deep = "/a".repeat(MAX_TOKENS + 1);
        assert_eq!(FieldPointer::parse(&deep), Err(PointerError::TooDeep));
    }
}
