//! Regular expressions for JSON Schema `pattern` / `patternProperties` and header rules: the
//! ECMA-262 subset that needs no backtracking, matched in linear time.
//!
//! It decides, at configure time, whether a pattern is inside the subset (else a config error
//! naming what is unsupported) and compiles it to a small instruction program; at request time
//! it says whether a string contains a match (unanchored, as JSON Schema specifies), running a
//! Pike VM: time is O(pattern x input), so no pattern can make a request slow (no ReDoS).
//!
//! Supported: literals, `.`, `^`, `$`, `\b`, `\B`, groups `(..)`, `(?:..)`, `(?<name>..)`,
//! alternation, `* + ? {n} {n,} {n,m}` (lazy forms too: the same for a yes/no match),
//! classes `[..]` / `[^..]` with ranges, the escapes `\d \D \w \W \s \S \t \n \r \v \f \0
//! \xHH \uHHHH \u{H..} \cX`, identity escapes of syntax characters, and `\p{..}` / `\P{..}` for
//! Letter (`L`), Number (`N`) and Decimal_Number (`Nd`). Refused: backreferences, lookaround,
//! other Unicode properties, flags. Semantics are ECMA-262's with the `u` flag: `\d`, `\w` and
//! `\b` are ASCII, `\s` is Unicode white space, `.` excludes line terminators, `^` and `$` are
//! the ends of the input.
//!
//! `parse.rs` turns the source into a syntax tree, `compile.rs` (with [`Pattern::new`]) the tree
//! into a program; this file holds the program's types and runs it.

mod compile;
mod parse;

/// Largest program (instructions), so counted repetitions cannot build a huge one.
const MAX_PROGRAM: usize = 10_000;
/// Deepest group nesting accepted.
const MAX_NESTING: usize = 64;

/// A compiled pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    prog: Vec<Inst>,
    classes: Vec<Class>,
}

#[derive(Debug, Clone, Copy)]
enum Inst {
    Char(char),
    /// `.`: any character but a line terminator.
    Any,
    Class(usize),
    Split(usize, usize),
    Jmp(usize),
    Look(Look),
    Match,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Look {
    Start,
    End,
    WordBoundary,
    NotWordBoundary,
}

/// A set of characters: any item matches, then `negated` flips it.
#[derive(Debug, Clone, Default)]
struct Class {
    negated: bool,
    items: Vec<Item>,
}

#[derive(Debug, Clone, Copy)]
enum Item {
    Range(char, char),
    /// A shared table (`\d`, `\w`, `\s`, `\p{..}`), possibly negated (`\D`, `\P{..}`).
    Set(Set, bool),
}

#[derive(Debug, Clone, Copy)]
enum Set {
    Digit,
    Word,
    Space,
    Table(&'static [(u32, u32)]),
}

impl Set {
    fn contains(self, c: char) -> bool {
        match self {
            Set::Digit => c.is_ascii_digit(),
            Set::Word => is_word(c),
            Set::Space => is_space(c),
            Set::Table(t) => {
                let c = u32::from(c);
                t.binary_search_by(|&(lo, hi)| {
                    if hi < c {
                        std::cmp::Ordering::Less
                    } else if lo > c {
                        std::cmp::Ordering::Greater
                    } else {
                        std::cmp::Ordering::Equal
                    }
                })
                .is_ok()
            }
        }
    }
}

impl Class {
    fn matches(&self, c: char) -> bool {
        let hit = self.items.iter().any(|i| match *i {
            Item::Range(lo, hi) => lo <= c && c <= hi,
            Item::Set(s, neg) => s.contains(c) != neg,
        });
        hit != self.negated
    }
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// ECMA-262 WhiteSpace and LineTerminator.
fn is_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202f}'
                | '\u{205f}'
                | '\u{3000}'
                | '\u{feff}'
    )
}

fn is_line_terminator(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}')
}

/// Why a pattern is refused (a plain sentence for the config error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError(pub String);

impl std::fmt::Display for PatternError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(msg: &str) -> Result<T, PatternError> {
    Err(PatternError(msg.to_string()))
}

impl Pattern {
    /// True when `text` contains a match (the pattern is not anchored unless it says so).
    pub fn is_match(&self, text: &str) -> bool {
        let n = self.prog.len();
        let mut clist = Threads::new(n);
        let mut nlist = Threads::new(n);
        let mut stack = Vec::new();
        let mut prev: Option<char> = None;
        let mut iter = text.chars();
        let mut cur = iter.next();
        loop {
            // A new thread at every position: an unanchored search.
            if self.add(&mut clist, &mut stack, 0, prev, cur) {
                return true;
            }
            let Some(c) = cur else {
                return false;
            };
            let next = iter.next();
            nlist.clear();
            for &pc in &clist.dense {
                let ok = match self.prog.get(pc) {
                    Some(Inst::Char(x)) => *x == c,
                    Some(Inst::Any) => !is_line_terminator(c),
                    Some(Inst::Class(k)) => self.classes.get(*k).is_some_and(|cl| cl.matches(c)),
                    _ => false,
                };
                if ok && self.add(&mut nlist, &mut stack, pc + 1, Some(c), next) {
                    return true;
                }
            }
            std::mem::swap(&mut clist, &mut nlist);
            prev = Some(c);
            cur = next;
        }
    }

    /// Adds the thread at `pc` and its epsilon closure; true when it reaches `Match`.
    fn add(
        &self,
        list: &mut Threads,
        stack: &mut Vec<usize>,
        pc: usize,
        prev: Option<char>,
        next: Option<char>,
    ) -> bool {
        stack.clear();
        stack.push(pc);
        while let Some(pc) = stack.pop() {
            if !list.insert(pc) {
                continue;
            }
            match self.prog.get(pc) {
                Some(Inst::Match) => return true,
                Some(Inst::Jmp(t)) => stack.push(*t),
                Some(Inst::Split(a, b)) => {
                    stack.push(*b);
                    stack.push(*a);
                }
                Some(Inst::Look(l)) => {
                    let at_word = |c: Option<char>| c.is_some_and(is_word);
                    let ok = match l {
                        Look::Start => prev.is_none(),
                        Look::End => next.is_none(),
                        Look::WordBoundary => at_word(prev) != at_word(next),
                        Look::NotWordBoundary => at_word(prev) == at_word(next),
                    };
                    if ok {
                        stack.push(pc + 1);
                    }
                }
                _ => list.dense.push(pc),
            }
        }
        false
    }
}

/// A sparse set of program counters: the threads at one position.
struct Threads {
    seen: Vec<bool>,
    visited: Vec<usize>,
    dense: Vec<usize>,
}

impl Threads {
    fn new(n: usize) -> Self {
        Threads {
            seen: vec![false; n],
            visited: Vec::new(),
            dense: Vec::new(),
        }
    }

    fn insert(&mut self, pc: usize) -> bool {
        match self.seen.get_mut(pc) {
            Some(s) if !*s => {
                *s = true;
                self.visited.push(pc);
                true
            }
            _ => false,
        }
    }

    fn clear(&mut self) {
        for pc in self.visited.drain(..) {
            if let Some(s) = self.seen.get_mut(pc) {
                *s = false;
            }
        }
        self.dense.clear();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        Pattern::new(p).unwrap().is_match(s)
    }

    #[test]
    fn matches_the_ecma_subset() {
        assert!(m("^a*$", "aaa") && m("^a*$", "") && !m("^a*$", "aab"));
        assert!(m("a+", "xxaxx") && !m("a+", "xx"));
        assert!(m("^[0-9]{2,}$", "123") && !m("^[0-9]{2,}$", "1"));
        assert!(m("^(ab|cd){2}$", "abcd") && !m("^(ab|cd){2}$", "abc"));
        assert!(m("^\\p{Letter}+$", "Hello") && m("^\\p{L}+$", "π") && !m("^\\p{L}+$", "123"));
        assert!(m("^[^a-c]$", "d") && !m("^[^a-c]$", "b"));
        assert!(m("\\bfoo\\b", "a foo b") && !m("\\bfoo\\b", "afoob"));
        assert!(m("^\\d\\s\\w$", "1 x") && !m("^\\d$", "١"));
        assert!(!m("^.$", "\n") && m("^.$", "é"));
        assert!(m("^(?:a|b)?c$", "c") && m("^(?<n>x)y$", "xy"));
        assert!(m("^\\u0041\\x42\\u{43}$", "ABC"));
        assert!(m("^[\\w-]+$", "a-b_c") && m("^a{1,3}$", "aaa") && !m("^a{1,3}$", "aaaa"));
    }

    #[test]
    fn refuses_what_needs_backtracking_or_is_unsupported() {
        for p in [
            "(a)\\1",
            "(?=a)",
            "(?<!a)b",
            "\\p{Greek}",
            "a{",
            "(",
            "[a",
            "*a",
            "a**",
            "(?i)a",
            "a{5,2}",
        ] {
            assert!(Pattern::new(p).is_err(), "{p}");
        }
        assert!(Pattern::new("(a{1000}){1000}").is_err());
    }

    #[test]
    fn runs_in_linear_time_on_evil_patterns() {
        let p = Pattern::new("^(a+)+$").unwrap();
        let evil = format!("{}!", "a".repeat(20_000));
        assert!(!p.is_match(&evil));
    }
}
