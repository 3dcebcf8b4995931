//! The tables against their generator, and the normaliser against `unicode-normalization` for
//! every code point and for strings of marks.

use super::*;
use proptest::prelude::*;
use unicode_normalization::char::canonical_combining_class;
use unicode_normalization::UnicodeNormalization;

/// Every scalar value.
fn all_chars() -> impl Iterator<Item = char> {
    (0..=0x10_FFFF).filter_map(char::from_u32)
}

/// The crate's NFKD of `s`.
fn reference(s: &str) -> String {
    s.nfkd().collect()
}

/// The version of `unicode-normalization` in Cargo.lock.
fn crate_version() -> String {
    let lock = include_str!("../../Cargo.lock");
    let at = lock
        .find("name = \"unicode-normalization\"\nversion = \"")
        .unwrap();
    let rest = &lock[at..];
    let rest = &rest[rest.find("version = \"").unwrap() + 11..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// Longest run of consecutive code points mapped to consecutive code points in one entry.
const MAX_RUN: u32 = 1 << 11;

/// The source of `nfkd_tables.rs`, from the crate's decompositions.
fn generate() -> String {
    // Each code point whose NFKD differs from itself, Hangul syllables aside (computed).
    let maps: Vec<(u32, Vec<char>)> = all_chars()
        .filter(|&c| !(0xAC00..=0xD7A3).contains(&u32::from(c)))
        .filter_map(|c| {
            let d: Vec<char> = c.to_string().nfkd().collect();
            (d != [c]).then_some((u32::from(c), d))
        })
        .collect();
    // Runs of two or more; the rest goes to the pool.
    let (mut run_key, mut run_target) = (Vec::new(), Vec::new());
    let mut rest: Vec<(u32, String)> = Vec::new();
    let mut i = 0;
    while i < maps.len() {
        let (cp, d) = &maps[i];
        let mut j = i + 1;
        if d.len() == 1 {
            while j < maps.len()
                && ((j - i) as u32) < MAX_RUN
                && maps[j].1.len() == 1
                && maps[j].0 == cp + (j - i) as u32
                && u32::from(maps[j].1[0]) == u32::from(d[0]) + (j - i) as u32
            {
                j += 1;
            }
        }
        if j - i >= 2 {
            run_key.push(cp | ((j - i - 1) as u32) << 21);
            run_target.push(u32::from(d[0]));
        } else {
            rest.push((*cp, d.iter().collect()));
        }
        i = j;
    }
    // The pool: longest first, each reusing an earlier occurrence when there is one.
    let mut by_len: Vec<&(u32, String)> = rest.iter().collect();
    by_len.sort_by_key(|(cp, s)| (std::cmp::Reverse(s.len()), *cp));
    let mut pool = String::new();
    let mut offset = std::collections::HashMap::new();
    for (cp, s) in by_len {
        let at = pool.find(s.as_str()).unwrap_or_else(|| {
            pool.push_str(s);
            pool.len() - s.len()
        });
        offset.insert(*cp, u16::try_from(at).unwrap());
    }
    let map_key: Vec<u32> = rest
        .iter()
        .map(|(cp, s)| {
            assert!(s.len() < 1 << 11);
            cp | (s.len() as u32) << 21
        })
        .collect();
    let map_offset: Vec<u16> = rest.iter().map(|(cp, _)| offset[cp]).collect();
    // Canonical combining classes: an entry wherever the class changes.
    let mut ccc = Vec::new();
    let mut class = 0;
    for cp in 0..=0x10_FFFFu32 {
        let c = char::from_u32(cp).map_or(0, canonical_combining_class);
        if c != class {
            ccc.push(cp | u32::from(c) << 24);
            class = c;
        }
    }

    let (major, minor, micro) = unicode_normalization::UNICODE_VERSION;
    let version = crate_version();
    let mut out = format!(
        "\
//! NFKD tables for [`super`] ({bytes} bytes), generated from the `unicode-normalization` crate
//! {version} (Unicode {major}.{minor}.{micro}) by `generate` in `nfkd_tests.rs`; do not edit. After a
//! bump of that crate the test `tables_match_the_generator` fails; regenerate with
//! `cargo test --lib text::nfkd -- --ignored --exact text::nfkd::tests::regenerate_tables`.
//! Data, not code: rustfmt would put one number a line.

/// The Unicode version of these tables.
pub const UNICODE_VERSION: (u8, u8, u8) = ({major}, {minor}, {micro});
",
        bytes = 4 * (run_key.len() + run_target.len() + map_key.len() + ccc.len())
            + 2 * map_offset.len()
            + pool.len(),
    );
    let mut array = |doc: &str, name: &str, ty: &str, words: &[String], per_line: usize| {
        out.push_str(&format!(
            "\n{doc}\n#[rustfmt::skip]\npub(super) static {name}: &[{ty}] = &[\n"
        ));
        for line in words.chunks(per_line) {
            out.push_str(&format!("    {},\n", line.join(", ")));
        }
        out.push_str("];\n");
    };
    let hex32 = |v: &[u32]| v.iter().map(|w| format!("0x{w:08X}")).collect::<Vec<_>>();
    array(
        "/// Runs, sorted: `start | (len - 1) << 21`; code point `start + i` (`i < len`) decomposes\n\
         /// to the single code point `RUN_TARGET[k] + i`.",
        "RUN_KEY",
        "u32",
        &hex32(&run_key),
        8,
    );
    array(
        "/// The first target of each run in `RUN_KEY`.",
        "RUN_TARGET",
        "u32",
        &hex32(&run_target),
        8,
    );
    array(
        "/// The other decompositions, sorted: `cp | len << 21`, where the decomposition is `len`\n\
         /// bytes of `POOL` from `MAP_OFFSET[k]`.",
        "MAP_KEY",
        "u32",
        &hex32(&map_key),
        8,
    );
    let hex16: Vec<String> = map_offset.iter().map(|w| format!("0x{w:04X}")).collect();
    array(
        "/// Where each decomposition of `MAP_KEY` starts in `POOL`.",
        "MAP_OFFSET",
        "u16",
        &hex16,
        12,
    );
    array(
        "/// Canonical combining classes, sorted: `start | class << 24`, the class from `start` up\n\
         /// to the next entry (0 before the first).",
        "CCC",
        "u32",
        &hex32(&ccc),
        8,
    );
    // The pool, escaped: every character but ASCII letters, digits and punctuation as \u{..},
    // so that no combining mark or right-to-left letter sits in the source.
    out.push_str(
        "\n/// The decompositions of `MAP_KEY`, in canonical order, overlapping where they can.\n\
         #[rustfmt::skip]\npub(super) static POOL: &str = \"\\\n",
    );
    let mut line = String::new();
    for c in pool.chars() {
        if c.is_ascii_graphic() && c != '"' && c != '\\' {
            line.push(c);
        } else {
            line.push_str(&format!("\\u{{{:X}}}", u32::from(c)));
        }
        if line.len() >= 88 {
            out.push_str(&format!("    {line}\\\n"));
            line.clear();
        }
    }
    out.push_str(&format!("    {line}\";\n"));
    out
}

const TABLES: &str = "src/text/nfkd_tables.rs";

#[test]
fn tables_match_the_generator() {
    let committed = include_str!("nfkd_tables.rs");
    assert!(
        committed == generate(),
        "{TABLES} differs from what unicode-normalization {} gives: regenerate it \
         (see its header) and review the diff",
        crate_version()
    );
}

/// Writes the tables; run by hand (see the header of the tables).
#[test]
#[ignore]
fn regenerate_tables() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(TABLES);
    std::fs::write(path, generate()).unwrap();
}

#[test]
fn every_code_point_decomposes_as_the_crate_does() {
    let mut buf = [0; 4];
    for c in all_chars() {
        let s: &str = c.encode_utf8(&mut buf);
        assert_eq!(nfkd(s), reference(s), "U+{:04X}", u32::from(c));
    }
}

#[test]
fn every_code_point_has_the_crate_combining_class() {
    for c in all_chars() {
        assert_eq!(
            combining_class(c),
            canonical_combining_class(c),
            "U+{:04X}",
            u32::from(c)
        );
    }
}

#[test]
fn the_version_is_the_crate_version() {
    assert_eq!(UNICODE_VERSION, unicode_normalization::UNICODE_VERSION);
}

#[test]
fn ascii_is_borrowed() {
    assert!(matches!(nfkd("victim 1"), Cow::Borrowed("victim 1")));
}

#[test]
fn strings_decompose_as_the_crate_does() {
    let cases = [
        // Marks in every order, on a letter with and without a precomposed form.
        "a\u{301}\u{316}\u{308}",
        "a\u{316}\u{301}\u{308}",
        "\u{E1}\u{316}",
        "q\u{345}\u{301}\u{316}\u{31B}",
        "\u{1FB3}\u{301}\u{345}",
        // Marks before any starter, and a run cut by a starter.
        "\u{301}\u{316}x\u{308}\u{323}y",
        // Marks from a decomposition mixed with marks that follow.
        "\u{1E69}\u{323}\u{307}",
        "\u{1E0B}\u{323}",
        "\u{FB2C}\u{5B0}",
        // Decompositions that begin with a mark, and with marks of class 0.
        "e\u{344}\u{F73}\u{F81}\u{FF9E}",
        // Hangul: LV, LVT, the first and the last syllable, jamo that follow.
        "\u{D55C}\u{AE00} \u{AC00}\u{D7A3}\u{1100}\u{1161}\u{11A8}",
        // Fullwidth, ligatures, fractions, compatibility ideographs, the longest mapping.
        "\u{FF56}\u{FF49}\u{FF43}\u{FF54}\u{FF49}\u{FF4D} \u{FB03}\u{FB06} \u{BD}\u{2154}",
        "\u{F900}\u{2F800}\u{FDFA}\u{1D400}\u{1D7FF}\u{24B6}\u{3392}\u{2474}",
        "\u{2160}ictim \u{2173}",
    ];
    for s in cases {
        assert_eq!(nfkd(s), reference(s), "{s:?}");
    }
}

/// Characters that decompose, reorder, or are marks of many classes.
fn interesting_char() -> impl Strategy<Value = char> {
    prop_oneof![
        prop::sample::select(vec![
            'a',
            'A',
            'e',
            'q',
            'I',
            ' ',
            '\u{3B1}',
            '\u{3B9}',
            '\u{399}',
            '\u{345}',
            '\u{1100}',
            '\u{1161}',
            '\u{11A8}',
            '\u{AC00}',
            '\u{D55C}',
            '\u{E1}',
            '\u{1E69}',
            '\u{1FB3}',
            '\u{1FBC}',
            '\u{344}',
            '\u{F73}',
            '\u{FF9E}',
            '\u{FB03}',
            '\u{FDFA}',
            '\u{130}',
            '\u{2126}',
            '\u{212B}',
            '\u{1D15E}',
            '\u{1D400}',
            '\u{3000}',
            '\u{FF21}',
        ]),
        (0x300u32..0x370).prop_filter_map("scalar", char::from_u32),
        (0x591u32..0x5C8).prop_filter_map("scalar", char::from_u32),
        (0x1DC0u32..0x1E00).prop_filter_map("scalar", char::from_u32),
        any::<char>(),
    ]
}

proptest! {
    #[test]
    fn random_strings_decompose_as_the_crate_does(
        chars in prop::collection::vec(interesting_char(), 0..12)
    ) {
        let s: String = chars.into_iter().collect();
        prop_assert_eq!(nfkd(&s), reference(&s));
    }
}
