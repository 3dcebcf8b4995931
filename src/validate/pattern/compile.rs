//! A syntax tree to the matcher's program: alternations and repetitions become splits and
//! jumps, counted repetitions are expanded, and the program's size is bounded.

use super::parse::{parse, Ast};
use super::{err, Class, Inst, Pattern, PatternError, MAX_PROGRAM};

impl Pattern {
    /// Parses and compiles an ECMA-262 pattern (the subset in the module doc).
    pub fn new(pattern: &str) -> Result<Pattern, PatternError> {
        let ast = parse(pattern)?;
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
