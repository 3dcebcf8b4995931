//! Runs a compiled schema over an instance: yes/no, the first violation, or every violation.
//!
//! No allocation on the success path beyond what `unevaluated*` annotations need (only when the
//! schema uses them); the instance pointer is built only when a violation is recorded.
//! Evaluation depth is bounded, so a reference cycle that never descends into the instance ends
//! as a violation, never as a stack overflow.

mod apply;
mod assert;
mod number;

use serde_json::Value;

use super::compile::{Kw, Program};

/// Deepest chain of nested subschema evaluations (a `$ref` per level of a 128-deep body is
/// 2 per level; a 1 MiB wasm stack holds far more).
const MAX_DEPTH: usize = 600;

/// One violation as the evaluator records it.
#[derive(Debug)]
pub(super) struct Failure {
    pub pointer: String,
    pub keyword: &'static str,
    pub missing: Option<String>,
    /// For `additionalProperties` / `unevaluatedProperties` with a false schema.
    pub unexpected: Vec<String>,
}

/// How much the caller wants to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Only yes/no.
    Quiet,
    /// Stop at the first violation and record it.
    First,
    /// Record every violation.
    All,
}

/// A location in the instance, as a chain on the stack.
#[derive(Clone, Copy)]
enum Seg<'a> {
    Root,
    Key(&'a str, &'a Path<'a>),
    Index(usize, &'a Path<'a>),
}

struct Path<'a>(Seg<'a>);

impl Path<'_> {
    fn pointer(&self) -> String {
        let mut parts = Vec::new();
        let mut at = self;
        loop {
            match at.0 {
                Seg::Root => break,
                Seg::Key(k, p) => {
                    parts.push(k.replace('~', "~0").replace('/', "~1"));
                    at = p;
                }
                Seg::Index(i, p) => {
                    parts.push(i.to_string());
                    at = p;
                }
            }
        }
        let mut s = String::new();
        for p in parts.iter().rev() {
            s.push('/');
            s.push_str(p);
        }
        s
    }
}

/// What subschemas evaluated on one instance (for `unevaluated*`).
#[derive(Default)]
struct Ann<'v> {
    props: Vec<&'v str>,
    all_props: bool,
    /// Items `0..items` evaluated.
    items: usize,
    all_items: bool,
    /// Single items evaluated (`contains`).
    item_set: Vec<usize>,
}

impl<'v> Ann<'v> {
    fn merge(&mut self, o: Ann<'v>) {
        self.props.extend(o.props);
        self.all_props |= o.all_props;
        self.items = self.items.max(o.items);
        self.all_items |= o.all_items;
        self.item_set.extend(o.item_set);
    }
}

/// The instance under evaluation: its value, where it sits, and the annotations it adds to
/// (`None` when nothing reads them). The three always travel together.
struct At<'a, 'v> {
    inst: &'v Value,
    path: &'a Path<'a>,
    ann: Option<&'a mut Ann<'v>>,
}

impl<'a, 'v> At<'a, 'v> {
    /// `inst` at `path`, its annotations not collected.
    fn of(inst: &'v Value, path: &'a Path<'a>) -> Self {
        At {
            inst,
            path,
            ann: None,
        }
    }

    /// The same instance and annotations, lent to one more evaluation.
    fn again(&mut self) -> At<'_, 'v> {
        At {
            inst: self.inst,
            path: self.path,
            ann: self.ann.as_deref_mut(),
        }
    }
}

pub(super) struct Eval<'p> {
    prog: &'p Program,
    mode: Mode,
    scope: Vec<usize>,
    depth: usize,
    pub failures: Vec<Failure>,
}

impl<'p> Eval<'p> {
    pub(super) fn new(prog: &'p Program, mode: Mode) -> Self {
        Eval {
            prog,
            mode,
            scope: Vec::new(),
            depth: 0,
            failures: Vec::new(),
        }
    }

    /// Validates `inst` against the program's root.
    pub(super) fn run(&mut self, inst: &Value) -> bool {
        let path = Path(Seg::Root);
        self.eval(self.prog.root, At::of(inst, &path))
    }

    fn all(&self) -> bool {
        self.mode == Mode::All
    }

    fn fail(&mut self, path: &Path<'_>, keyword: &'static str) {
        self.fail_with(path, keyword, None, Vec::new());
    }

    fn fail_with(
        &mut self,
        path: &Path<'_>,
        keyword: &'static str,
        missing: Option<String>,
        unexpected: Vec<String>,
    ) {
        if self.mode != Mode::Quiet {
            self.failures.push(Failure {
                pointer: path.pointer(),
                keyword,
                missing,
                unexpected,
            });
        }
    }

    /// Evaluates without recording violations (inside `anyOf`, `not`, `if`...).
    fn quiet(&mut self, node: usize, at: At<'_, '_>) -> bool {
        let saved = self.mode;
        self.mode = Mode::Quiet;
        let ok = self.eval(node, at);
        self.mode = saved;
        ok
    }

    fn eval(&mut self, node: usize, at: At<'_, '_>) -> bool {
        let prog = self.prog;
        let Some(n) = prog.nodes.get(node) else {
            return false;
        };
        match n.always {
            Some(true) => return true,
            Some(false) => {
                self.fail(at.path, "false");
                return false;
            }
            None => {}
        }
        if self.depth >= MAX_DEPTH {
            self.fail(at.path, "$ref");
            return false;
        }
        self.depth += 1;
        let pushed = self.scope.last() != Some(&n.resource);
        if pushed {
            self.scope.push(n.resource);
        }
        let collect = prog.annotations && (at.ann.is_some() || n.unevaluated);
        let mut local = Ann::default();
        let mut valid = true;
        for kw in &n.kws {
            let here = At {
                inst: at.inst,
                path: at.path,
                ann: collect.then_some(&mut local),
            };
            if !self.keyword(kw, here) {
                valid = false;
                if self.mode != Mode::All {
                    break;
                }
            }
        }
        if pushed {
            self.scope.pop();
        }
        self.depth -= 1;
        if valid {
            if let Some(a) = at.ann {
                a.merge(local);
            }
        }
        valid
    }

    fn keyword(&mut self, kw: &Kw, at: At<'_, '_>) -> bool {
        // One small function per applicator keeps the frames on the recursive path small
        // (the debug build reserves stack for every arm of a large match). Assertions are in
        // `assert.rs`, applicators in `apply.rs`.
        match kw {
            Kw::Ref(t) => self.eval(*t, at),
            Kw::DynamicRef(t, name) => self.k_dynamic_ref(*t, name, at),
            Kw::DependentSchemas(deps) => self.k_dependent_schemas(deps, at),
            Kw::AllOf(subs) => self.k_all_of(subs, at),
            Kw::AnyOf(subs) => self.k_any_of(subs, at),
            Kw::OneOf(subs) => self.k_one_of(subs, at),
            Kw::Not(s) => self.k_not(*s, at),
            Kw::If(c, t, e) => self.k_if(*c, *t, *e, at),
            Kw::Properties(props) => self.k_properties(props, at),
            Kw::PatternProperties(pats) => self.k_pattern_properties(pats, at),
            Kw::AdditionalProperties(s, names, pats) => {
                self.k_additional_properties(*s, names, pats, at)
            }
            Kw::UnevaluatedProperties(s) => self.k_unevaluated_properties(*s, at),
            Kw::Contains(s, min, max) => self.k_contains(*s, *min, *max, at),
            Kw::PrefixItems(subs) => self.k_prefix_items(subs, at),
            Kw::ItemsFrom(keyword, start, s) => self.k_items_from(*s, keyword, *start, at),
            Kw::UnevaluatedItems(s) => self.k_unevaluated_items(*s, at),
            _ => self.assertion(kw, at.inst, at.path),
        }
    }

    fn check(&mut self, path: &Path<'_>, keyword: &'static str, ok: bool) -> bool {
        if !ok {
            self.fail(path, keyword);
        }
        ok
    }

    /// Runs `check` on each item: all of them when every violation is wanted, else up to the
    /// first that fails. True when none failed.
    fn every<T>(
        &mut self,
        items: impl IntoIterator<Item = T>,
        mut check: impl FnMut(&mut Self, T) -> bool,
    ) -> bool {
        let mut ok = true;
        for item in items {
            if !check(self, item) {
                ok = false;
                if !self.all() {
                    break;
                }
            }
        }
        ok
    }
}
