//! Removing members from a body the strict reader already accepted: which byte spans go, so
//! that every other byte reaches the service exactly as the client sent it. Used when
//! mass-assignment violations are stripped and by the response side's `strip_fields`.

use super::{JsonError, Reader, MAX_DEPTH_CEILING};
use serde_json::Value;

/// A member to remove, as the path of object keys and array indices leading to it.
pub type MemberPath = Vec<String>;

/// Returns `body` (already accepted by [`super::parse`]) without the object members at `paths`,
/// together with the comma that separated each from a neighbour. Every other byte is kept as
/// sent, so the service parses exactly what meshguard validated. Paths whose parent is not an
/// object are ignored (the caller refuses those instead of stripping them).
pub fn remove_members(body: &[u8], paths: &[MemberPath]) -> Result<Vec<u8>, JsonError> {
    remove_matching(body, paths).map(|r| r.body)
}

/// One step of the path to a member: an object key (unescaped) or an array index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    /// A member of an object.
    Key(&'a str),
    /// An element of an array.
    Index(usize),
}

/// A pattern naming object members to remove, matched one step at a time.
pub trait PathPattern {
    /// Number of steps from the document root to the member.
    fn depth(&self) -> usize;
    /// Whether step `i` of the pattern accepts `step`.
    fn accepts(&self, i: usize, step: Step<'_>) -> bool;
}

impl PathPattern for MemberPath {
    fn depth(&self) -> usize {
        self.len()
    }
    fn accepts(&self, i: usize, step: Step<'_>) -> bool {
        match (self.get(i), step) {
            (Some(seg), Step::Key(k)) => seg == k,
            (Some(seg), Step::Index(n)) => seg.parse::<usize>().ok() == Some(n),
            (None, _) => false,
        }
    }
}

/// A body with members removed, and how many were.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    /// The document without the removed members; every other byte as it was.
    pub body: Vec<u8>,
    /// Members removed (a member inside a removed member is not counted).
    pub removed: usize,
}

/// Like [`remove_members`], for any [`PathPattern`] (wildcards, for instance). The walk checks
/// the syntax as it goes, so a document that is not well-formed JSON is an error here too.
pub fn remove_matching<P: PathPattern>(body: &[u8], patterns: &[P]) -> Result<Removal, JsonError> {
    let text = std::str::from_utf8(body).map_err(|e| JsonError::Malformed {
        what: "invalid UTF-8",
        at: e.valid_up_to(),
    })?;
    let mut spans = Scanner::new(text, patterns).spans()?;
    // Stable sort: its code is shared with the module's other sorts (unstable sort adds ~6 KB of
    // sorting networks for this one call).
    spans.sort();
    let mut out = Vec::with_capacity(body.len());
    let mut cursor = 0usize;
    let mut removed = 0usize;
    for (start, end) in spans {
        if start >= cursor {
            removed = removed.saturating_add(1);
        }
        if start > cursor {
            out.extend_from_slice(body.get(cursor..start).unwrap_or_default());
        }
        cursor = cursor.max(end);
    }
    out.extend_from_slice(body.get(cursor..).unwrap_or_default());
    Ok(Removal { body: out, removed })
}

/// Where the scanner is inside one container.
enum Scope<'a> {
    Array {
        index: usize,
    },
    Object {
        key: std::borrow::Cow<'a, str>,
        /// Byte offset where the current member's key starts.
        member_start: usize,
        /// Offset of the comma before the current member, if it is not the first.
        comma_before: Option<usize>,
        /// Whether the current member is one to remove.
        remove: bool,
        /// Whether an earlier member of this object is kept (then a removed member takes the
        /// comma before it, else the comma after it, so that removals never overlap).
        kept_before: bool,
    },
}

/// Walks an accepted document and records the byte spans of members to remove.
struct Scanner<'a, 'p, P> {
    reader: Reader<'a>,
    paths: &'p [P],
    /// The deepest pattern: members below it are never compared.
    deepest: usize,
    stack: Vec<Scope<'a>>,
    spans: Vec<(usize, usize)>,
}

impl<'a, 'p, P: PathPattern> Scanner<'a, 'p, P> {
    fn new(text: &'a str, paths: &'p [P]) -> Self {
        Self {
            reader: Reader::new(text),
            paths,
            deepest: paths.iter().map(PathPattern::depth).max().unwrap_or(0),
            stack: Vec::new(),
            spans: Vec::new(),
        }
    }

    /// The current path (keys and indices of the open scopes) equals `path`.
    fn at_path(&self, path: &P) -> bool {
        if path.depth() != self.stack.len() {
            return false;
        }
        self.stack.iter().enumerate().all(|(i, scope)| match scope {
            Scope::Array { index } => path.accepts(i, Step::Index(*index)),
            Scope::Object { key, .. } => path.accepts(i, Step::Key(key)),
        })
    }

    fn member_removed(&self) -> bool {
        self.stack.len() <= self.deepest && self.paths.iter().any(|p| self.at_path(p))
    }

    fn begin_member(
        &mut self,
        comma_before: Option<usize>,
        kept_before: bool,
    ) -> Result<(), JsonError> {
        let r = &mut self.reader;
        r.skip_ws();
        let member_start = r.pos;
        if r.peek() != Some(b'"') {
            return r.malformed("expected a string key");
        }
        let key = r.string_cow(usize::MAX)?;
        r.skip_ws();
        r.expect(b':', "expected ':'")?;
        self.stack.push(Scope::Object {
            key,
            member_start,
            comma_before,
            remove: false,
            kept_before,
        });
        self.check_depth()?;
        let remove = self.member_removed();
        if let Some(Scope::Object { remove: r, .. }) = self.stack.last_mut() {
            *r = remove;
        }
        Ok(())
    }

    /// The same ceiling as the strict reader's ([`MAX_DEPTH_CEILING`]).
    fn check_depth(&self) -> Result<(), JsonError> {
        if self.stack.len() > MAX_DEPTH_CEILING as usize {
            return self.reader.malformed("nested deeper than 128 levels");
        }
        Ok(())
    }

    fn spans(mut self) -> Result<Vec<(usize, usize)>, JsonError> {
        'value: loop {
            self.reader.skip_ws();
            match self.reader.peek() {
                Some(b'{') => {
                    self.reader.bump();
                    self.reader.skip_ws();
                    if self.reader.peek() == Some(b'}') {
                        self.reader.bump();
                    } else {
                        // The object scope is the member scope: path depth = open members.
                        self.begin_member(None, false)?;
                        continue 'value;
                    }
                }
                Some(b'[') => {
                    self.reader.bump();
                    self.reader.skip_ws();
                    if self.reader.peek() == Some(b']') {
                        self.reader.bump();
                    } else {
                        self.stack.push(Scope::Array { index: 0 });
                        self.check_depth()?;
                        continue 'value;
                    }
                }
                Some(b'"') => {
                    self.reader.string_cow(usize::MAX)?;
                }
                Some(b't') => {
                    self.reader.literal(b"true", Value::Null)?;
                }
                Some(b'f') => {
                    self.reader.literal(b"false", Value::Null)?;
                }
                Some(b'n') => {
                    self.reader.literal(b"null", Value::Null)?;
                }
                Some(b'-' | b'0'..=b'9') => {
                    self.reader.number()?;
                }
                _ => return self.reader.malformed("expected a value"),
            }
            loop {
                let value_end = self.reader.pos;
                self.reader.skip_ws();
                let next = self.reader.peek();
                match self.stack.last_mut() {
                    // One document and nothing after it: a second value (JSON Lines, `1 {..}`)
                    // or trailing bytes would otherwise pass unwalked.
                    None if next.is_some() => {
                        return self.reader.malformed("data after the document")
                    }
                    None => return Ok(self.spans),
                    Some(Scope::Array { index }) => match next {
                        Some(b',') => {
                            *index = index.saturating_add(1);
                            self.reader.bump();
                            continue 'value;
                        }
                        Some(b']') => {
                            self.reader.bump();
                            self.stack.pop();
                        }
                        _ => return self.reader.malformed("expected ',' or ']'"),
                    },
                    Some(Scope::Object {
                        member_start,
                        comma_before,
                        remove,
                        kept_before,
                        ..
                    }) => {
                        let (member_start, comma_before, remove, kept_before) =
                            (*member_start, *comma_before, *remove, *kept_before);
                        self.stack.pop();
                        // After a kept member: drop the comma before this one. Otherwise (first
                        // member, or every earlier one removed too): drop the comma after it.
                        let before = comma_before.filter(|_| kept_before);
                        match next {
                            Some(b',') => {
                                let comma = self.reader.pos;
                                if remove {
                                    self.spans.push(match before {
                                        Some(c) => (c, value_end),
                                        None => (member_start, comma.saturating_add(1)),
                                    });
                                }
                                self.reader.bump();
                                self.begin_member(Some(comma), kept_before || !remove)?;
                                continue 'value;
                            }
                            Some(b'}') => {
                                if remove {
                                    self.spans.push(match before {
                                        Some(c) => (c, value_end),
                                        None => (member_start, value_end),
                                    });
                                }
                                self.reader.bump();
                            }
                            _ => return self.reader.malformed("expected ',' or '}'"),
                        }
                    }
                }
            }
        }
    }
}
