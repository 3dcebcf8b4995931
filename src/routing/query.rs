//! Query-string parsing shared by every check that reads query parameters.

/// Decodes `application/x-www-form-urlencoded` text: `+` is a space, `%XX` a byte. `None` when an
/// escape is malformed or the result is not UTF-8.
pub fn form_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|c| (*c as char).to_digit(16))?;
                let lo = bytes.get(i + 2).and_then(|c| (*c as char).to_digit(16))?;
                out.push(u8::try_from(hi * 16 + lo).ok()?);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The query's parameters in request order, names and values decoded, repeats kept. `None` when
/// any part does not decode (the caller decides whether that is a denial).
pub fn pairs(query: &str) -> Option<Vec<(String, String)>> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((form_decode(k)?, form_decode(v)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_pairs_in_order_with_repeats() {
        assert_eq!(
            pairs("a=1&b=x+y&a=%C3%A9&flag"),
            Some(vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y".into()),
                ("a".into(), "\u{e9}".into()),
                ("flag".into(), String::new()),
            ])
        );
        assert_eq!(pairs(""), Some(vec![]));
        assert_eq!(pairs("a=%zz"), None);
        assert_eq!(pairs("a=%FF"), None);
    }
}
