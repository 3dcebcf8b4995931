//! A pattern's syntax: ECMA-262 source (the subset in the [`super`] module doc) to a syntax
//! tree, refusing, with a reason, whatever is outside the subset.

use super::{err, Class, Item, Look, PatternError, Set, MAX_NESTING};
use crate::validate::unicode_tables::{DECIMAL_NUMBER, LETTER, NUMBER};

/// Parses the whole of `pattern`.
pub(super) fn parse(pattern: &str) -> Result<Ast, PatternError> {
    let mut p = Parser {
        chars: pattern.chars().collect(),
        pos: 0,
        depth: 0,
    };
    let ast = p.alternation()?;
    if p.pos < p.chars.len() {
        return err("unmatched ')'");
    }
    Ok(ast)
}

/// The syntax tree of a pattern.
#[derive(Debug)]
pub(super) enum Ast {
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
