//! Runs a compiled schema over an instance: yes/no, the first violation, or every violation.
//!
//! No allocation on the success path beyond what `unevaluated*` annotations need (only when the
//! schema uses them); the instance pointer is built only when a violation is recorded.
//! Evaluation depth is bounded, so a reference cycle that never descends into the instance ends
//! as a violation, never as a stack overflow.

use std::cmp::Ordering;

use serde_json::{Number, Value};

use super::compile::{
    Kw, Program, T_ARRAY, T_BOOL, T_INTEGER, T_NULL, T_NUMBER, T_OBJECT, T_STRING,
};

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
        let root = Path(Seg::Root);
        self.eval(self.prog.root, inst, &root, None)
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
    fn quiet<'v>(
        &mut self,
        node: usize,
        inst: &'v Value,
        path: &Path<'_>,
        ann: Option<&mut Ann<'v>>,
    ) -> bool {
        let saved = self.mode;
        self.mode = Mode::Quiet;
        let ok = self.eval(node, inst, path, ann);
        self.mode = saved;
        ok
    }

    fn eval<'v>(
        &mut self,
        node: usize,
        inst: &'v Value,
        path: &Path<'_>,
        ann: Option<&mut Ann<'v>>,
    ) -> bool {
        let prog = self.prog;
        let Some(n) = prog.nodes.get(node) else {
            return false;
        };
        match n.always {
            Some(true) => return true,
            Some(false) => {
                self.fail(path, "false");
                return false;
            }
            None => {}
        }
        if self.depth >= MAX_DEPTH {
            self.fail(path, "$ref");
            return false;
        }
        self.depth += 1;
        let pushed = self.scope.last() != Some(&n.resource);
        if pushed {
            self.scope.push(n.resource);
        }
        let collect = prog.annotations && (ann.is_some() || n.unevaluated);
        let mut local = Ann::default();
        let mut valid = true;
        for kw in &n.kws {
            let a = if collect { Some(&mut local) } else { None };
            if !self.keyword(kw, inst, path, a) {
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
            if let Some(a) = ann {
                a.merge(local);
            }
        }
        valid
    }

    fn keyword<'v>(
        &mut self,
        kw: &Kw,
        inst: &'v Value,
        path: &Path<'_>,
        ann: Option<&mut Ann<'v>>,
    ) -> bool {
        // One small function per applicator keeps the frames on the recursive path small
        // (the debug build reserves stack for every arm of a large match).
        match kw {
            Kw::Ref(t) => self.eval(*t, inst, path, ann),
            Kw::DynamicRef(..) => self.k_dynamic_ref(kw, inst, path, ann),
            Kw::DependentSchemas(..) => self.k_dependent_schemas(kw, inst, path, ann),
            Kw::AllOf(..) => self.k_all_of(kw, inst, path, ann),
            Kw::AnyOf(..) => self.k_any_of(kw, inst, path, ann),
            Kw::OneOf(..) => self.k_one_of(kw, inst, path, ann),
            Kw::Not(..) => self.k_not(kw, inst, path, ann),
            Kw::If(..) => self.k_if(kw, inst, path, ann),
            Kw::Properties(..) => self.k_properties(kw, inst, path, ann),
            Kw::PatternProperties(..) => self.k_pattern_properties(kw, inst, path, ann),
            Kw::AdditionalProperties(..) => self.k_additional_properties(kw, inst, path, ann),
            Kw::UnevaluatedProperties(..) => self.k_unevaluated_properties(kw, inst, path, ann),
            Kw::Contains(..) => self.k_contains(kw, inst, path, ann),
            Kw::PrefixItems(..) => self.k_prefix_items(kw, inst, path, ann),
            Kw::ItemsFrom(..) => self.k_items_from(kw, inst, path, ann),
            Kw::UnevaluatedItems(..) => self.k_unevaluated_items(kw, inst, path, ann),
            _ => self.assertion(kw, inst, path),
        }
    }

    /// The keywords that look at the instance alone (no subschema on the path).
    // Out of line, as every arm below: V8 (TurboFan only, in Envoy) keeps memory per compiled
    // function size, so one huge function costs more resident memory than the same code split.
    #[inline(never)]
    fn assertion(&mut self, kw: &Kw, inst: &Value, path: &Path<'_>) -> bool {
        match kw {
            Kw::Type(bits) => {
                let ok = bits & type_bits(inst) != 0;
                if !ok {
                    self.fail(path, "type");
                }
                ok
            }
            Kw::Enum(vals) => {
                let ok = vals.iter().any(|v| equal(v, inst));
                if !ok {
                    self.fail(path, "enum");
                }
                ok
            }
            Kw::Const(v) => {
                let ok = equal(v, inst);
                if !ok {
                    self.fail(path, "const");
                }
                ok
            }
            Kw::MultipleOf(m) => self.num(inst, path, "multipleOf", |x| multiple_of(x, m)),
            Kw::Maximum(l) => self.num(inst, path, "maximum", |x| {
                cmp(x, l).is_some_and(|o| o != Ordering::Greater)
            }),
            Kw::ExclusiveMaximum(l) => self.num(inst, path, "exclusiveMaximum", |x| {
                cmp(x, l) == Some(Ordering::Less)
            }),
            Kw::Minimum(l) => self.num(inst, path, "minimum", |x| {
                cmp(x, l).is_some_and(|o| o != Ordering::Less)
            }),
            Kw::ExclusiveMinimum(l) => self.num(inst, path, "exclusiveMinimum", |x| {
                cmp(x, l) == Some(Ordering::Greater)
            }),
            Kw::MaxLength(n) => self.check(
                path,
                "maxLength",
                match inst {
                    Value::String(s) => s.chars().count() as u64 <= *n,
                    _ => true,
                },
            ),
            Kw::MinLength(n) => self.check(
                path,
                "minLength",
                match inst {
                    Value::String(s) => s.chars().count() as u64 >= *n,
                    _ => true,
                },
            ),
            Kw::Pattern(p) => self.check(
                path,
                "pattern",
                match inst {
                    Value::String(s) => p.is_match(s),
                    _ => true,
                },
            ),
            Kw::MaxItems(n) => self.check(
                path,
                "maxItems",
                match inst {
                    Value::Array(a) => a.len() as u64 <= *n,
                    _ => true,
                },
            ),
            Kw::MinItems(n) => self.check(
                path,
                "minItems",
                match inst {
                    Value::Array(a) => a.len() as u64 >= *n,
                    _ => true,
                },
            ),
            Kw::UniqueItems => self.check(
                path,
                "uniqueItems",
                match inst {
                    Value::Array(a) => a
                        .iter()
                        .enumerate()
                        .all(|(i, x)| a.iter().skip(i + 1).all(|y| !equal(x, y))),
                    _ => true,
                },
            ),
            Kw::MaxProperties(n) => self.check(
                path,
                "maxProperties",
                match inst {
                    Value::Object(o) => o.len() as u64 <= *n,
                    _ => true,
                },
            ),
            Kw::MinProperties(n) => self.check(
                path,
                "minProperties",
                match inst {
                    Value::Object(o) => o.len() as u64 >= *n,
                    _ => true,
                },
            ),
            Kw::Required(names) => {
                let Value::Object(o) = inst else { return true };
                self.required(o, names, path, "required")
            }
            Kw::DependentRequired(keyword, deps) => {
                let Value::Object(o) = inst else { return true };
                let mut ok = true;
                for (name, req) in deps {
                    if o.contains_key(name) && !self.required(o, req, path, keyword) {
                        ok = false;
                        if !self.all() {
                            break;
                        }
                    }
                }
                ok
            }
            Kw::PropertyNames(s) => {
                let Value::Object(o) = inst else { return true };
                let ok = o
                    .keys()
                    .all(|k| self.quiet(*s, &Value::String(k.clone()), path, None));
                self.check(path, "propertyNames", ok)
            }
            _ => true,
        }
    }

    #[inline(never)]
    fn k_dynamic_ref<'v>(
        &mut self,
        kw: &Kw,
        inst: &'v Value,
        path: &Path<'_>,
        ann: Option<&mut Ann<'v>>,
    ) -> bool {
        match kw {
            Kw::DynamicRef(t, name) => {
                let prog = self.prog;
                let target = self
                    .scope
                    .iter()
                    .find_map(|r| {
                        prog.dynamic
                            .get(*r)
                            .and_then(|d| d.iter().find(|(n, _)| n == name))
                            .map(|(_, node)| *node)
                    })
                    .unwrap_or(*t);
                self.eval(target, inst, path, ann)
            }
            _ => true,
        }
    }

    #[inline(never)]
    fn k_dependent_schemas<'v>(
        &mut self,
        kw: &Kw,
        inst: &'v Value,
        path: &Path<'_>,
        mut ann: Option<&mut Ann<'v>>,
    ) -> bool {
        match kw {
            Kw::DependentSchemas(deps) => {
                let Value::Object(o) = inst else { return true };
                let mut ok = true;
                for (name, s) in deps {
                    if o.contains_key(name) && !self.eval(*s, inst, path, ann.as_deref_mut()) {
                        ok = false;
                        if !self.all() {
                            break;
                        }
                    }
                }
                ok
            }
            _ => true,
        }
    }

    #[inline(never)]
    fn k_all_of<'v>(
        &mut self,
        kw: &Kw,
        inst: &'v Value,
        path: &Path<'_>,
        mut ann: Option<&mut Ann<'v>>,
    ) -> bool {
        match kw {
            Kw::AllOf(subs) => {
                let mut ok = true;
                for s in subs {
                    if !self.eval(*s, inst, path, ann.as_deref_mut()) {
                        ok = false;
                        if !self.all() {
                            break;
                        }
                    }
                }
                ok
            }
            _ => true,
        }
    }

    #[inline(never)]
    fn k_any_of<'v>(
        &mut self,
        kw: &Kw,
        inst: &'v Value,
        path: &Path<'_>,
        mut ann: Option<&mut Ann<'v>>,
    ) -> bool {
        match kw {
            Kw::AnyOf(subs) => {
                let mut ok = false;
                for s in subs {
                    if self.quiet(*s, inst, path, ann.as_deref_mut()) {
                        ok = true;
                        if ann.is_none() {
                            break;
                        }
                    }
                }
                self.check(path, "anyOf", ok)
            }
            _ => true,
        }
    }

    #[inline(never)]
    fn k_one_of<'v>(
        &mut self,
        kw: &Kw,
        inst: &'v Value,
        path: &Path<'_>,
        ann: Option<&mut Ann<'v>>,
    ) -> bool {
        match kw {
            Kw::OneOf(subs) => {
                let mut passed = 0;
                let mut kept = Ann::default();
                for s in subs {
                    let mut a = Ann::default();
                    let want = ann.is_some();
                    if self.quiet(*s, inst, path, want.then_some(&mut a)) {
                        passed += 1;
                        kept = a;
                        if passed > 1 {
                            break;
                        }
                    }
                }
                if passed == 1 {
                    if let Some(x) = ann {
                        x.merge(kept);
                    }
                }
                self.check(path, "oneOf", passed == 1)
            }
            _ => true,
        }
    }

    #[inline(never)]
    fn k_not<'v>(
        &mut self,
        kw: &Kw,
        inst: &'v Value,
        path: &Path<'_>,
        _ann: Option<&mut Ann<'v>>,
    ) -> bool {
        match kw {
            Kw::Not(s) => {
                let ok = !self.quiet(*s, inst, path, None);
                self.check(path, "not", ok)
            }
            _ => true,
        }
    }

    #[inline(never)]
    fn k_if<'v>(
        &mut self,
        kw: &Kw,
        inst: &'v Value,
        path: &Path<'_>,
        mut ann: Option<&mut Ann<'v>>,
    ) -> bool {
        match kw {
            Kw::If(c, t, e) => {
                if self.quiet(*c, inst, path, ann.as_deref_mut()) {
                    t.is_none_or(|t| self.eval(t, inst, path, ann))
                } else {
                    e.is_none_or(|e| self.eval(e, inst, path, ann))
                }
            }
            _ => true,
        }
    }

    #[inline(never)]
    fn k_properties<'v>(
        &mut self,
        kw: &Kw,
        inst: &'v Value,
        path: &Path<'_>,
        mut ann: Option<&mut Ann<'v>>,
    ) -> bool {
        match kw {
            Kw::Properties(props) => {
                let Value::Object(o) = inst else { return true };
                let mut ok = true;
                for (name, s) in props {
                    if let Some((k, v)) = o.get_key_value(name) {
                        let p = Path(Seg::Key(k, path));
                        if !self.eval(*s, v, &p, None) {
                            ok = false;
                            if !self.all() {
                                break;
                            }
                        }
                        if let Some(a) = ann.as_deref_mut() {
                            a.props.push(k);
                        }
                    }
                }
                ok
            }
            _ => true,
        }
    }

    #[inline(never)]
    fn k_pattern_properties<'v>(
        &mut self,
        kw: &Kw,
        inst: &'v Value,
        path: &Path<'_>,
        mut ann: Option<&mut Ann<'v>>,
    ) -> bool {
        match kw {
            Kw::PatternProperties(pats) => {
                let Value::Object(o) = inst else { return true };
                let mut ok = true;
                for (k, v) in o {
                    for (re, s) in pats {
                        if re.is_match(k) {
                            let p = Path(Seg::Key(k, path));
                            if !self.eval(*s, v, &p, None) {
                                ok = false;
                                if !self.all() {
                                    return false;
                                }
                            }
                            if let Some(a) = ann.as_deref_mut() {
                                a.props.push(k);
                            }
                        }
                    }
                }
                ok
            }
            _ => true,
        }
    }

    #[inline(never)]
    fn k_additional_properties<'v>(
        &mut self,
        kw: &Kw,
        inst: &'v Value,
        path: &Path<'_>,
        ann: Option<&mut Ann<'v>>,
    ) -> bool {
        match kw {
            Kw::AdditionalProperties(s, names, pats) => {
                let Value::Object(o) = inst else { return true };
                let extra = o.iter().filter(|(k, _)| {
                    !names.iter().any(|n| n == *k) && !pats.iter().any(|p| p.is_match(k))
                });
                self.rest_of_object(*s, extra, path, "additionalProperties", ann)
            }
            _ => true,
        }
    }

    #[inline(never)]
    fn k_unevaluated_properties<'v>(
        &mut self,
        kw: &Kw,
        inst: &'v Value,
        path: &Path<'_>,
        ann: Option<&mut Ann<'v>>,
    ) -> bool {
        match kw {
            Kw::UnevaluatedProperties(s) => {
                let Value::Object(o) = inst else { return true };
                let done = ann.as_deref();
                if done.is_some_and(|a| a.all_props) {
                    return true;
                }
                let extra: Vec<(&'v String, &'v Value)> = o
                    .iter()
                    .filter(|(k, _)| !done.is_some_and(|a| a.props.contains(&k.as_str())))
                    .collect();
                self.rest_of_object(*s, extra.into_iter(), path, "unevaluatedProperties", ann)
            }
            _ => true,
        }
    }

    #[inline(never)]
    fn k_contains<'v>(
        &mut self,
        kw: &Kw,
        inst: &'v Value,
        path: &Path<'_>,
        mut ann: Option<&mut Ann<'v>>,
    ) -> bool {
        match kw {
            Kw::Contains(s, min, max) => {
                let Value::Array(items) = inst else {
                    return true;
                };
                let mut hits = 0u64;
                for (i, v) in items.iter().enumerate() {
                    let p = Path(Seg::Index(i, path));
                    if self.quiet(*s, v, &p, None) {
                        hits += 1;
                        if let Some(a) = ann.as_deref_mut() {
                            a.item_set.push(i);
                        }
                    }
                }
                if hits < min.unwrap_or(1) {
                    let k = if min.is_some() {
                        "minContains"
                    } else {
                        "contains"
                    };
                    self.fail(path, k);
                    return false;
                }
                if max.is_some_and(|m| hits > m) {
                    self.fail(path, "maxContains");
                    return false;
                }
                true
            }
            _ => true,
        }
    }

    #[inline(never)]
    fn k_prefix_items<'v>(
        &mut self,
        kw: &Kw,
        inst: &'v Value,
        path: &Path<'_>,
        ann: Option<&mut Ann<'v>>,
    ) -> bool {
        match kw {
            Kw::PrefixItems(subs) => {
                let Value::Array(items) = inst else {
                    return true;
                };
                let mut ok = true;
                for (i, (s, v)) in subs.iter().zip(items).enumerate() {
                    let p = Path(Seg::Index(i, path));
                    if !self.eval(*s, v, &p, None) {
                        ok = false;
                        if !self.all() {
                            break;
                        }
                    }
                }
                if let Some(a) = ann {
                    a.items = a.items.max(subs.len().min(items.len()));
                }
                ok
            }
            _ => true,
        }
    }

    #[inline(never)]
    fn k_items_from<'v>(
        &mut self,
        kw: &Kw,
        inst: &'v Value,
        path: &Path<'_>,
        ann: Option<&mut Ann<'v>>,
    ) -> bool {
        match kw {
            Kw::ItemsFrom(keyword, start, s) => {
                let Value::Array(items) = inst else {
                    return true;
                };
                let ok = self.rest_of_array(*s, items, path, keyword, |i| i >= *start);
                if let Some(a) = ann {
                    a.all_items = true;
                }
                ok
            }
            _ => true,
        }
    }

    #[inline(never)]
    fn k_unevaluated_items<'v>(
        &mut self,
        kw: &Kw,
        inst: &'v Value,
        path: &Path<'_>,
        ann: Option<&mut Ann<'v>>,
    ) -> bool {
        match kw {
            Kw::UnevaluatedItems(s) => {
                let Value::Array(items) = inst else {
                    return true;
                };
                let done = ann.as_deref();
                if done.is_some_and(|a| a.all_items) {
                    return true;
                }
                let upto = done.map_or(0, |a| a.items);
                let set: Vec<usize> = done.map(|a| a.item_set.clone()).unwrap_or_default();
                let ok = self.rest_of_array(*s, items, path, "unevaluatedItems", |i| {
                    i >= upto && !set.contains(&i)
                });
                if let Some(a) = ann {
                    a.all_items = true;
                }
                ok
            }
            _ => true,
        }
    }

    fn check(&mut self, path: &Path<'_>, keyword: &'static str, ok: bool) -> bool {
        if !ok {
            self.fail(path, keyword);
        }
        ok
    }

    fn num(
        &mut self,
        inst: &Value,
        path: &Path<'_>,
        keyword: &'static str,
        f: impl Fn(&Number) -> bool,
    ) -> bool {
        match inst {
            Value::Number(x) => self.check(path, keyword, f(x)),
            _ => true,
        }
    }

    fn required(
        &mut self,
        o: &serde_json::Map<String, Value>,
        names: &[String],
        path: &Path<'_>,
        keyword: &'static str,
    ) -> bool {
        let mut ok = true;
        for name in names {
            if !o.contains_key(name) {
                ok = false;
                self.fail_with(path, keyword, Some(name.clone()), Vec::new());
                if self.mode != Mode::All {
                    break;
                }
            }
        }
        ok
    }

    /// `additionalProperties` / `unevaluatedProperties` over the members `extra`.
    #[inline(never)]
    fn rest_of_object<'v>(
        &mut self,
        s: usize,
        extra: impl Iterator<Item = (&'v String, &'v Value)>,
        path: &Path<'_>,
        keyword: &'static str,
        ann: Option<&mut Ann<'v>>,
    ) -> bool {
        if let Some(a) = ann {
            a.all_props = true;
        }
        let never = self
            .prog
            .nodes
            .get(s)
            .is_some_and(|n| n.always == Some(false));
        if never {
            let unexpected: Vec<String> = extra.map(|(k, _)| k.clone()).collect();
            if unexpected.is_empty() {
                return true;
            }
            self.fail_with(path, keyword, None, unexpected);
            return false;
        }
        let mut ok = true;
        for (k, v) in extra {
            let p = Path(Seg::Key(k, path));
            if !self.eval(s, v, &p, None) {
                ok = false;
                if self.mode != Mode::All {
                    break;
                }
            }
        }
        ok
    }

    /// `items` / `additionalItems` / `unevaluatedItems` over the items `pick` selects.
    #[inline(never)]
    fn rest_of_array(
        &mut self,
        s: usize,
        items: &[Value],
        path: &Path<'_>,
        keyword: &'static str,
        pick: impl Fn(usize) -> bool,
    ) -> bool {
        let never = self
            .prog
            .nodes
            .get(s)
            .is_some_and(|n| n.always == Some(false));
        let mut ok = true;
        for (i, v) in items.iter().enumerate().filter(|(i, _)| pick(*i)) {
            if never {
                self.fail(path, keyword);
                return false;
            }
            let p = Path(Seg::Index(i, path));
            if !self.eval(s, v, &p, None) {
                ok = false;
                if self.mode != Mode::All {
                    break;
                }
            }
        }
        ok
    }
}

fn type_bits(v: &Value) -> u8 {
    match v {
        Value::Null => T_NULL,
        Value::Bool(_) => T_BOOL,
        Value::Object(_) => T_OBJECT,
        Value::Array(_) => T_ARRAY,
        Value::String(_) => T_STRING,
        Value::Number(n) if is_integer(n) => T_NUMBER | T_INTEGER,
        Value::Number(_) => T_NUMBER,
    }
}

fn is_integer(n: &Number) -> bool {
    n.is_i64()
        || n.is_u64()
        || n.as_f64()
            .is_some_and(|f| f.is_finite() && f.fract() == 0.0)
}

fn as_i128(n: &Number) -> Option<i128> {
    n.as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))
}

/// Numeric order: exact for integers, as `f64` otherwise.
fn cmp(a: &Number, b: &Number) -> Option<Ordering> {
    match (as_i128(a), as_i128(b)) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

/// JSON equality: numbers by value (`1` equals `1.0`), objects regardless of member order.
pub(super) fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => cmp(x, y) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| equal(v, w)))
        }
        _ => a == b,
    }
}

/// A number as an exact decimal: (mantissa, power of ten), from its shortest representation.
fn decimal(n: &Number) -> Option<(u128, i32)> {
    let s = n.to_string();
    let s = s.strip_prefix('-').unwrap_or(&s);
    let (digits, exp) = match s.find(['e', 'E']) {
        Some(i) => (s.get(..i)?, s.get(i + 1..)?.parse::<i32>().ok()?),
        None => (s, 0),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let mut m: u128 = 0;
    for c in int.chars().chain(frac.chars()) {
        m = m
            .checked_mul(10)?
            .checked_add(u128::from(c.to_digit(10)?))?;
    }
    let frac_len = i32::try_from(frac.len()).ok()?;
    Some((m, exp.checked_sub(frac_len)?))
}

/// `x` is an integer multiple of `m`: exactly in decimal when both fit, else in `f64`.
fn multiple_of(x: &Number, m: &Number) -> bool {
    if let (Some(a), Some(b)) = (as_i128(x), as_i128(m)) {
        return b != 0 && a % b == 0;
    }
    if let (Some((a, ea)), Some((b, eb))) = (decimal(x), decimal(m)) {
        let e = ea.min(eb);
        let scale = |v: u128, from: i32| -> Option<u128> {
            let k = u32::try_from(from.checked_sub(e)?).ok()?;
            v.checked_mul(10u128.checked_pow(k)?)
        };
        if let (Some(a), Some(b)) = (scale(a, ea), scale(b, eb)) {
            return b != 0 && a % b == 0;
        }
    }
    match (x.as_f64(), m.as_f64()) {
        (Some(a), Some(b)) if b != 0.0 => {
            let q = a / b;
            q.is_finite() && q.fract() == 0.0
        }
        _ => false,
    }
}
