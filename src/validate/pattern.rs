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

use super::unicode_tables::{DECIMAL_NUMBER, LETTER, NUMBER};

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

#[derive(Debug)]
enum Ast {
    Empty,
    Char(char),
    Any,
    Class(Class),
    Look(Look),
    Concat(Vec<Ast>),
    Alt(Vec<Ast>),
    Repeat(Box<Ast>, u32, Option<u32>),
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn alternation(&mut self) -> Result<Ast, PatternError> {
        let mut alts = vec![self.concat()?];
        while self.eat('|') {
            alts.push(self.concat()?);
        }
        Ok(if alts.len() == 1 {
            alts.pop().unwrap_or(Ast::Empty)
        } else {
            Ast::Alt(alts)
        })
    }

    fn concat(&mut self) -> Result<Ast, PatternError> {
        let mut items = Vec::new();
        while let Some(c) = self.peek() {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.atom()?;
            let atom = self.quantified(atom)?;
            items.push(atom);
        }
        Ok(Ast::Concat(items))
    }

    fn quantified(&mut self, atom: Ast) -> Result<Ast, PatternError> {
        let (min, max) = match self.peek() {
            Some('*') => (0, None),
            Some('+') => (1, None),
            Some('?') => (0, Some(1)),
            Some('{') => {
                let save = self.pos;
                self.pos += 1;
                match self.counted()? {
                    Some(b) => {
                        self.pos -= 1; // the shared advance below
                        b
                    }
                    None => {
                        self.pos = save;
                        return err("a '{' that is not a quantifier must be escaped");
                    }
                }
            }
            _ => return Ok(atom),
        };
        self.pos += 1;
        self.eat('?'); // lazy: the same set of matches
        if matches!(atom, Ast::Look(_)) {
            return err("a quantifier cannot apply to an assertion");
        }
        if matches!(self.peek(), Some('*' | '+' | '?' | '{')) {
            return err("nothing to repeat");
        }
        if max.is_some_and(|m| m < min) {
            return err("numbers out of order in {} quantifier");
        }
        Ok(Ast::Repeat(Box::new(atom), min, max))
    }

    /// After `{`: `n}`, `n,}` or `n,m}`; leaves the position after `}`.
    fn counted(&mut self) -> Result<Option<(u32, Option<u32>)>, PatternError> {
        let Some(min) = self.number()? else {
            return Ok(None);
        };
        let max = if self.eat(',') {
            if self.peek() == Some('}') {
                None
            } else {
                match self.number()? {
                    Some(m) => Some(m),
                    None => return Ok(None),
                }
            }
        } else {
            Some(min)
        };
        Ok(self.eat('}').then_some((min, max)))
    }

    fn number(&mut self) -> Result<Option<u32>, PatternError> {
        let mut n: Option<u32> = None;
        while let Some(d) = self.peek().and_then(|c| c.to_digit(10)) {
            self.pos += 1;
            let v = n
                .unwrap_or(0)
                .checked_mul(10)
                .and_then(|v| v.checked_add(d))
                .filter(|v| *v <= 1000);
            match v {
                Some(v) => n = Some(v),
                None => return err("repetition count above 1000"),
            }
        }
        Ok(n)
    }

    fn atom(&mut self) -> Result<Ast, PatternError> {
        let Some(c) = self.next() else {
            return Ok(Ast::Empty);
        };
        Ok(match c {
            '.' => Ast::Any,
            '^' => Ast::Look(Look::Start),
            '$' => Ast::Look(Look::End),
            '(' => {
                if self.eat('?') {
                    if self.eat(':') {
                    } else if self.eat('<') {
                        if matches!(self.peek(), Some('=' | '!')) {
                            return err("lookbehind is not supported");
                        }
                        while let Some(c) = self.next() {
                            if c == '>' {
                                break;
                            }
                            if !(c.is_alphanumeric() || c == '_' || c == '$') {
                                return err("invalid group name");
                            }
                        }
                    } else if matches!(self.peek(), Some('=' | '!')) {
                        return err("lookahead is not supported");
                    } else {
                        return err("unsupported group syntax (flags are not supported)");
                    }
                }
                self.depth += 1;
                if self.depth > MAX_NESTING {
                    return err("groups nested too deeply");
                }
                let inner = self.alternation()?;
                self.depth -= 1;
                if !self.eat(')') {
                    return err("unclosed group");
                }
                inner
            }
            ')' => return err("unmatched ')'"),
            '*' | '+' | '?' => return err("nothing to repeat"),
            '{' => return err("a '{' that is not a quantifier must be escaped"),
            '[' => Ast::Class(self.class()?),
            '\\' => match self.escape(false)? {
                Esc::Char(c) => Ast::Char(c),
                Esc::Item(i) => Ast::Class(Class {
                    negated: false,
                    items: vec![i],
                }),
                Esc::Look(l) => Ast::Look(l),
            },
            c => Ast::Char(c),
        })
    }

    fn class(&mut self) -> Result<Class, PatternError> {
        let mut class = Class {
            negated: self.eat('^'),
            items: Vec::new(),
        };
        loop {
            let Some(c) = self.next() else {
                return err("unclosed character class");
            };
            if c == ']' {
                return Ok(class);
            }
            let lo = if c == '\\' {
                match self.escape(true)? {
                    Esc::Char(c) => c,
                    Esc::Item(i) => {
                        class.items.push(i);
                        continue;
                    }
                    Esc::Look(_) => return err("assertion inside a class"),
                }
            } else {
                c
            };
            if self.peek() == Some('-') && self.chars.get(self.pos + 1).is_some_and(|c| *c != ']') {
                self.pos += 1;
                let hi = match self.next() {
                    Some('\\') => match self.escape(true)? {
                        Esc::Char(c) => c,
                        _ => return err("a class escape cannot end a range"),
                    },
                    Some(c) => c,
                    None => return err("unclosed character class"),
                };
                if hi < lo {
                    return err("range out of order in character class");
                }
                class.items.push(Item::Range(lo, hi));
            } else {
                class.items.push(Item::Range(lo, lo));
            }
        }
    }

    fn escape(&mut self, in_class: bool) -> Result<Esc, PatternError> {
        let Some(c) = self.next() else {
            return err("trailing backslash");
        };
        Ok(match c {
            'd' => Esc::Item(Item::Set(Set::Digit, false)),
            'D' => Esc::Item(Item::Set(Set::Digit, true)),
            'w' => Esc::Item(Item::Set(Set::Word, false)),
            'W' => Esc::Item(Item::Set(Set::Word, true)),
            's' => Esc::Item(Item::Set(Set::Space, false)),
            'S' => Esc::Item(Item::Set(Set::Space, true)),
            'p' | 'P' => Esc::Item(Item::Set(Set::Table(self.property()?), c == 'P')),
            'b' if in_class => Esc::Char('\u{8}'),
            'b' => Esc::Look(Look::WordBoundary),
            'B' if !in_class => Esc::Look(Look::NotWordBoundary),
            't' => Esc::Char('\t'),
            'n' => Esc::Char('\n'),
            'r' => Esc::Char('\r'),
            'v' => Esc::Char('\u{b}'),
            'f' => Esc::Char('\u{c}'),
            '0' if !self.peek().is_some_and(|c| c.is_ascii_digit()) => Esc::Char('\0'),
            '1'..='9' => return err("backreferences are not supported"),
            'k' => return err("backreferences are not supported"),
            'c' => match self.next() {
                Some(l) if l.is_ascii_alphabetic() => Esc::Char(char::from(l as u8 % 32)),
                _ => return err("invalid \\c escape"),
            },
            'x' => Esc::Char(self.hex(2)?),
            'u' => {
                if self.eat('{') {
                    let mut v: u32 = 0;
                    let mut n = 0;
                    while let Some(d) = self.peek().and_then(|c| c.to_digit(16)) {
                        self.pos += 1;
                        n += 1;
                        v = v.saturating_mul(16).saturating_add(d);
                    }
                    if n == 0 || !self.eat('}') {
                        return err("invalid \\u{..} escape");
                    }
                    Esc::Char(char::from_u32(v).ok_or_else(|| {
                        PatternError("\\u{..} escape is not a Unicode scalar value".into())
                    })?)
                } else {
                    Esc::Char(self.hex(4)?)
                }
            }
            '-' if in_class => Esc::Char('-'),
            '^' | '$' | '\\' | '.' | '*' | '+' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '|'
            | '/' => Esc::Char(c),
            _ => return err("unsupported escape"),
        })
    }

    fn hex(&mut self, n: usize) -> Result<char, PatternError> {
        let mut v: u32 = 0;
        for _ in 0..n {
            match self.next().and_then(|c| c.to_digit(16)) {
                Some(d) => v = v * 16 + d,
                None => return err("invalid hexadecimal escape"),
            }
        }
        char::from_u32(v).ok_or_else(|| PatternError("escape is a lone surrogate".into()))
    }

    fn property(&mut self) -> Result<&'static [(u32, u32)], PatternError> {
        if !self.eat('{') {
            return err("\\p needs {..}");
        }
        let mut name = String::new();
        loop {
            match self.next() {
                Some('}') => break,
                Some(c) if name.len() < 40 => name.push(c),
                _ => return err("unclosed \\p{..}"),
            }
        }
        let name = name.strip_prefix("General_Category=").unwrap_or(&name);
        let name = name.strip_prefix("gc=").unwrap_or(name);
        Ok(match name {
            "L" | "Letter" => LETTER,
            "N" | "Number" => NUMBER,
            "Nd" | "Decimal_Number" | "digit" => DECIMAL_NUMBER,
            _ => return err("unsupported Unicode property (supported: L, N, Nd)"),
        })
    }
}

enum Esc {
    Char(char),
    Item(Item),
    Look(Look),
}

struct Compiler {
    prog: Vec<Inst>,
    classes: Vec<Class>,
}

impl Compiler {
    fn push(&mut self, i: Inst) -> Result<usize, PatternError> {
        if self.prog.len() >= MAX_PROGRAM {
            return err("pattern too large once repetitions are expanded");
        }
        self.prog.push(i);
        Ok(self.prog.len() - 1)
    }

    fn set(&mut self, at: usize, i: Inst) {
        if let Some(slot) = self.prog.get_mut(at) {
            *slot = i;
        }
    }

    fn emit(&mut self, ast: &Ast) -> Result<(), PatternError> {
        match ast {
            Ast::Empty => {}
            Ast::Char(c) => {
                self.push(Inst::Char(*c))?;
            }
            Ast::Any => {
                self.push(Inst::Any)?;
            }
            Ast::Class(c) => {
                self.classes.push(c.clone());
                self.push(Inst::Class(self.classes.len() - 1))?;
            }
            Ast::Look(l) => {
                self.push(Inst::Look(*l))?;
            }
            Ast::Concat(items) => {
                for i in items {
                    self.emit(i)?;
                }
            }
            Ast::Alt(alts) => {
                let mut jumps = Vec::new();
                let last = alts.len().saturating_sub(1);
                for (n, a) in alts.iter().enumerate() {
                    if n < last {
                        let split = self.push(Inst::Split(0, 0))?;
                        self.emit(a)?;
                        jumps.push(self.push(Inst::Jmp(0))?);
                        let next = self.prog.len();
                        self.set(split, Inst::Split(split + 1, next));
                    } else {
                        self.emit(a)?;
                    }
                }
                let end = self.prog.len();
                for j in jumps {
                    self.set(j, Inst::Jmp(end));
                }
            }
            Ast::Repeat(node, min, max) => {
                for _ in 0..*min {
                    self.emit(node)?;
                }
                match max {
                    None => {
                        let split = self.push(Inst::Split(0, 0))?;
                        self.emit(node)?;
                        self.push(Inst::Jmp(split))?;
                        let end = self.prog.len();
                        self.set(split, Inst::Split(split + 1, end));
                    }
                    Some(max) => {
                        let mut splits = Vec::new();
                        for _ in *min..*max {
                            splits.push(self.push(Inst::Split(0, 0))?);
                            self.emit(node)?;
                        }
                        let end = self.prog.len();
                        for s in splits {
                            self.set(s, Inst::Split(s + 1, end));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

impl Pattern {
    /// Parses and compiles an ECMA-262 pattern (the subset in the module doc).
    pub fn new(pattern: &str) -> Result<Pattern, PatternError> {
        let mut p = Parser {
            chars: pattern.chars().collect(),
            pos: 0,
            depth: 0,
        };
        let ast = p.alternation()?;
        if p.pos < p.chars.len() {
            return err("unmatched ')'");
        }
        let mut c = Compiler {
            prog: Vec::new(),
            classes: Vec::new(),
        };
        c.emit(&ast)?;
        c.push(Inst::Match)?;
        Ok(Pattern {
            prog: c.prog,
            classes: c.classes,
        })
    }

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
