//! The applicator keywords: those that evaluate subschemas, on the instance itself (`allOf`,
//! `if`, `$dynamicRef`...) or on its members and items (`properties`, `prefixItems`...), and
//! record what they evaluated for `unevaluated*`.
//!
//! Every keyword function is out of line (`#[inline(never)]`): V8 (TurboFan only, in Envoy)
//! keeps memory per compiled function size, and small frames keep the recursive path shallow.

use serde_json::Value;

use super::{Ann, At, Eval, Path, Seg};
use crate::validate::pattern::Pattern;

impl Eval<'_> {
    #[inline(never)]
    pub(super) fn k_dynamic_ref(&mut self, fallback: usize, name: &str, at: At<'_, '_>) -> bool {
        // The outermost resource in the dynamic scope with this anchor wins.
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
            .unwrap_or(fallback);
        self.eval(target, at)
    }

    #[inline(never)]
    pub(super) fn k_dependent_schemas(&mut self, deps: &[(String, usize)], at: At<'_, '_>) -> bool {
        let Value::Object(o) = at.inst else {
            return true;
        };
        let present = deps.iter().filter(|(name, _)| o.contains_key(name));
        self.in_place(present.map(|(_, s)| *s), at)
    }

    #[inline(never)]
    pub(super) fn k_all_of(&mut self, subs: &[usize], at: At<'_, '_>) -> bool {
        self.in_place(subs.iter().copied(), at)
    }

    /// Each schema of `subs` on the instance itself, its annotations kept.
    fn in_place(&mut self, subs: impl Iterator<Item = usize>, mut at: At<'_, '_>) -> bool {
        self.every(subs, |ev, s| ev.eval(s, at.again()))
    }

    #[inline(never)]
    pub(super) fn k_any_of(&mut self, subs: &[usize], mut at: At<'_, '_>) -> bool {
        let mut ok = false;
        for s in subs {
            if self.quiet(*s, at.again()) {
                ok = true;
                // Annotations come from every passing branch: go on only if they are read.
                if at.ann.is_none() {
                    break;
                }
            }
        }
        self.check(at.path, "anyOf", ok)
    }

    #[inline(never)]
    pub(super) fn k_one_of(&mut self, subs: &[usize], at: At<'_, '_>) -> bool {
        let mut passed = 0;
        let mut kept = Ann::default();
        for s in subs {
            let mut a = Ann::default();
            let branch = At {
                inst: at.inst,
                path: at.path,
                ann: at.ann.is_some().then_some(&mut a),
            };
            if self.quiet(*s, branch) {
                passed += 1;
                kept = a;
                if passed > 1 {
                    break;
                }
            }
        }
        if passed == 1 {
            if let Some(x) = at.ann {
                x.merge(kept);
            }
        }
        self.check(at.path, "oneOf", passed == 1)
    }

    #[inline(never)]
    pub(super) fn k_not(&mut self, s: usize, at: At<'_, '_>) -> bool {
        let ok = !self.quiet(s, At::of(at.inst, at.path));
        self.check(at.path, "not", ok)
    }

    #[inline(never)]
    pub(super) fn k_if(
        &mut self,
        cond: usize,
        then: Option<usize>,
        otherwise: Option<usize>,
        mut at: At<'_, '_>,
    ) -> bool {
        if self.quiet(cond, at.again()) {
            then.is_none_or(|t| self.eval(t, at))
        } else {
            otherwise.is_none_or(|e| self.eval(e, at))
        }
    }

    #[inline(never)]
    pub(super) fn k_properties(&mut self, props: &[(String, usize)], at: At<'_, '_>) -> bool {
        let Value::Object(o) = at.inst else {
            return true;
        };
        let present = props
            .iter()
            .filter_map(|(name, s)| o.get_key_value(name).map(|(k, v)| (k, v, *s)));
        self.members(present, at)
    }

    #[inline(never)]
    pub(super) fn k_pattern_properties(
        &mut self,
        pats: &[(Pattern, usize)],
        at: At<'_, '_>,
    ) -> bool {
        let Value::Object(o) = at.inst else {
            return true;
        };
        let matched = o.iter().flat_map(|(k, v)| {
            pats.iter()
                .filter(move |(re, _)| re.is_match(k))
                .map(move |(_, s)| (k, v, *s))
        });
        self.members(matched, at)
    }

    /// Each `(name, value, schema)` of `members`, every name recorded as evaluated.
    fn members<'v>(
        &mut self,
        members: impl Iterator<Item = (&'v String, &'v Value, usize)>,
        mut at: At<'_, 'v>,
    ) -> bool {
        self.every(members, |ev, (k, v, s)| {
            let ok = ev.member(s, k, v, at.path);
            if let Some(a) = at.ann.as_deref_mut() {
                a.props.push(k);
            }
            ok
        })
    }

    #[inline(never)]
    pub(super) fn k_additional_properties(
        &mut self,
        s: usize,
        names: &[String],
        pats: &[Pattern],
        at: At<'_, '_>,
    ) -> bool {
        let Value::Object(o) = at.inst else {
            return true;
        };
        let extra = o
            .iter()
            .filter(|(k, _)| !names.iter().any(|n| n == *k) && !pats.iter().any(|p| p.is_match(k)));
        self.rest_of_object(s, extra, "additionalProperties", at)
    }

    #[inline(never)]
    pub(super) fn k_unevaluated_properties(&mut self, s: usize, at: At<'_, '_>) -> bool {
        let Value::Object(o) = at.inst else {
            return true;
        };
        let done = at.ann.as_deref();
        if done.is_some_and(|a| a.all_props) {
            return true;
        }
        let extra: Vec<(&String, &Value)> = o
            .iter()
            .filter(|(k, _)| !done.is_some_and(|a| a.props.contains(&k.as_str())))
            .collect();
        self.rest_of_object(s, extra.into_iter(), "unevaluatedProperties", at)
    }

    #[inline(never)]
    pub(super) fn k_contains(
        &mut self,
        s: usize,
        min: Option<u64>,
        max: Option<u64>,
        mut at: At<'_, '_>,
    ) -> bool {
        let Value::Array(items) = at.inst else {
            return true;
        };
        let mut hits = 0u64;
        for (i, v) in items.iter().enumerate() {
            let p = Path(Seg::Index(i, at.path));
            if self.quiet(s, At::of(v, &p)) {
                hits += 1;
                if let Some(a) = at.ann.as_deref_mut() {
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
            self.fail(at.path, k);
            return false;
        }
        if max.is_some_and(|m| hits > m) {
            self.fail(at.path, "maxContains");
            return false;
        }
        true
    }

    #[inline(never)]
    pub(super) fn k_prefix_items(&mut self, subs: &[usize], at: At<'_, '_>) -> bool {
        let Value::Array(items) = at.inst else {
            return true;
        };
        let pairs = subs.iter().zip(items).enumerate();
        let ok = self.every(pairs, |ev, (i, (s, v))| ev.item(*s, i, v, at.path));
        if let Some(a) = at.ann {
            a.items = a.items.max(subs.len().min(items.len()));
        }
        ok
    }

    #[inline(never)]
    pub(super) fn k_items_from(
        &mut self,
        s: usize,
        keyword: &'static str,
        start: usize,
        at: At<'_, '_>,
    ) -> bool {
        let Value::Array(items) = at.inst else {
            return true;
        };
        let ok = self.rest_of_array(s, items, keyword, |i| i >= start, at.path);
        if let Some(a) = at.ann {
            a.all_items = true;
        }
        ok
    }

    #[inline(never)]
    pub(super) fn k_unevaluated_items(&mut self, s: usize, at: At<'_, '_>) -> bool {
        let Value::Array(items) = at.inst else {
            return true;
        };
        let done = at.ann.as_deref();
        if done.is_some_and(|a| a.all_items) {
            return true;
        }
        let upto = done.map_or(0, |a| a.items);
        let set: Vec<usize> = done.map(|a| a.item_set.clone()).unwrap_or_default();
        let pick = |i: usize| i >= upto && !set.contains(&i);
        let ok = self.rest_of_array(s, items, "unevaluatedItems", pick, at.path);
        if let Some(a) = at.ann {
            a.all_items = true;
        }
        ok
    }

    /// `additionalProperties` / `unevaluatedProperties` over the members `extra`.
    #[inline(never)]
    fn rest_of_object<'v>(
        &mut self,
        s: usize,
        extra: impl Iterator<Item = (&'v String, &'v Value)>,
        keyword: &'static str,
        at: At<'_, 'v>,
    ) -> bool {
        if let Some(a) = at.ann {
            a.all_props = true;
        }
        if self.never(s) {
            // One violation naming every unexpected member, not one per member.
            let unexpected: Vec<String> = extra.map(|(k, _)| k.clone()).collect();
            if unexpected.is_empty() {
                return true;
            }
            self.fail_with(at.path, keyword, None, unexpected);
            return false;
        }
        self.every(extra, |ev, (k, v)| ev.member(s, k, v, at.path))
    }

    /// `items` / `additionalItems` / `unevaluatedItems` over the items `pick` selects.
    #[inline(never)]
    fn rest_of_array(
        &mut self,
        s: usize,
        items: &[Value],
        keyword: &'static str,
        pick: impl Fn(usize) -> bool,
        path: &Path<'_>,
    ) -> bool {
        let mut picked = items
            .iter()
            .enumerate()
            .filter(|(i, _)| pick(*i))
            .peekable();
        if self.never(s) {
            // One violation at the array, not one per item.
            if picked.peek().is_some() {
                self.fail(path, keyword);
                return false;
            }
            return true;
        }
        self.every(picked, |ev, (i, v)| ev.item(s, i, v, path))
    }

    /// Schema `s` is the `false` schema: nothing to evaluate, every instance fails.
    fn never(&self, s: usize) -> bool {
        self.prog
            .nodes
            .get(s)
            .is_some_and(|n| n.always == Some(false))
    }

    /// Schema `s` on member `k` (value `v`) of the object at `path`.
    fn member(&mut self, s: usize, k: &str, v: &Value, path: &Path<'_>) -> bool {
        let p = Path(Seg::Key(k, path));
        self.eval(s, At::of(v, &p))
    }

    /// Schema `s` on item `i` (value `v`) of the array at `path`.
    fn item(&mut self, s: usize, i: usize, v: &Value, path: &Path<'_>) -> bool {
        let p = Path(Seg::Index(i, path));
        self.eval(s, At::of(v, &p))
    }
}
