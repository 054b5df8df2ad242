//! A tolerant scanner for the XML-like tags of LHE files.
//!
//! LHE headers are not well-formed XML in practice (MadGraph banners hold cards with `<`,
//! `&`, unbalanced tags), so instead of an XML parser this finds tags one at a time, skips
//! comments, and reads attributes with either quote style.

/// One tag found in a text: `<name attrs>`, `</name>` or `<name attrs/>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tag<'a> {
    pub(crate) name: &'a [u8],
    pub(crate) attrs: &'a [u8],
    pub(crate) closing: bool,
    /// Byte offset of the `<`.
    pub(crate) start: usize,
    /// Byte offset just after the `>`.
    pub(crate) end: usize,
}

/// The next tag at or after `from`, skipping `<!-- -->` comments and `<?...?>`
/// declarations. A `<` not followed by a name (as in `a < b`) is text, not a tag.
pub(crate) fn next_tag(text: &[u8], mut from: usize) -> Option<Tag<'_>> {
    while from < text.len() {
        let lt = from + memchr::memchr(b'<', &text[from..])?;
        let rest = &text[lt + 1..];
        if rest.starts_with(b"!--") {
            from = match memchr::memmem::find(&rest[3..], b"-->") {
                Some(i) => lt + 1 + 3 + i + 3,
                None => return None,
            };
            continue;
        }
        let closing = rest.first() == Some(&b'/');
        let name_start = lt + 1 + usize::from(closing);
        let name_len = text[name_start..]
            .iter()
            .position(|&b| !(b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b':'))
            .unwrap_or(text.len() - name_start);
        let starts_with_letter = text.get(name_start).is_some_and(u8::is_ascii_alphabetic);
        if name_len == 0 || !starts_with_letter {
            from = lt + 1;
            continue;
        }
        let attrs_start = name_start + name_len;
        let gt = find_tag_end(&text[attrs_start..])?;
        let mut attrs = &text[attrs_start..attrs_start + gt];
        if attrs.last() == Some(&b'/') {
            attrs = &attrs[..attrs.len() - 1];
        }
        return Some(Tag {
            name: &text[name_start..attrs_start],
            attrs,
            closing,
            start: lt,
            end: attrs_start + gt + 1,
        });
    }
    None
}

/// Offset of the `>` that ends a tag, ignoring `>` inside quoted attribute values.
fn find_tag_end(s: &[u8]) -> Option<usize> {
    let mut quote = None;
    for (i, &b) in s.iter().enumerate() {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if b == b'>' => return Some(i),
            None => {}
        }
    }
    None
}

/// The value of attribute `name` (quoted with `'` or `"`, or bare), whitespace-trimmed.
pub(crate) fn attr<'a>(attrs: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let mut i = 0;
    while i < attrs.len() {
        while i < attrs.len() && attrs[i].is_ascii_whitespace() {
            i += 1;
        }
        let key_start = i;
        while i < attrs.len() && !attrs[i].is_ascii_whitespace() && attrs[i] != b'=' {
            i += 1;
        }
        let key = &attrs[key_start..i];
        while i < attrs.len() && attrs[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= attrs.len() || attrs[i] != b'=' {
            if key.is_empty() {
                i += 1;
            }
            continue;
        }
        i += 1;
        while i < attrs.len() && attrs[i].is_ascii_whitespace() {
            i += 1;
        }
        let value = match attrs.get(i) {
            Some(&q @ (b'"' | b'\'')) => {
                let v_start = i + 1;
                let v_len = attrs[v_start..]
                    .iter()
                    .position(|&b| b == q)
                    .unwrap_or(attrs.len() - v_start);
                i = v_start + v_len + 1;
                &attrs[v_start..v_start + v_len]
            }
            _ => {
                let v_start = i;
                while i < attrs.len() && !attrs[i].is_ascii_whitespace() {
                    i += 1;
                }
                &attrs[v_start..i]
            }
        };
        if key == name {
            return Some(value.trim_ascii());
        }
    }
    None
}

/// The text from `from` up to the closing tag `</name>`, and the offset after that tag.
pub(crate) fn text_until_close<'a>(
    text: &'a [u8],
    from: usize,
    name: &[u8],
) -> Option<(&'a [u8], usize)> {
    let mut pos = from;
    while let Some(i) = memchr::memchr(b'<', &text[pos..]) {
        let at = pos + i;
        pos = at + 1;
        let Some(after) = text[pos..].strip_prefix(b"/") else {
            continue;
        };
        let Some(rest) = after.strip_prefix(name) else {
            continue;
        };
        let g = rest.iter().position(|&b| !b.is_ascii_whitespace())?;
        if rest[g] == b'>' {
            return Some((&text[from..at], at + 2 + name.len() + g + 1));
        }
    }
    None
}

/// Offset of the first occurrence in `text` of `needle`, which starts with `<` (a closing
/// tag such as `</event>`, or `<!--`). Cheaper than a general substring search for the
/// short lines of LHE events, which hold few `<`.
#[inline]
pub(crate) fn find_closing(text: &[u8], needle: &[u8]) -> Option<usize> {
    if text.len() > 256 {
        return memchr::memchr_iter(b'<', text).find(|&i| text[i..].starts_with(needle));
    }
    // Short lines: a plain loop beats setting up a SIMD search.
    (0..text.len()).find(|&i| text[i] == b'<' && text[i..].starts_with(needle))
}

/// Decodes the five predefined XML entities; other text is kept as it is.
pub(crate) fn unescape(text: &[u8]) -> String {
    let s = String::from_utf8_lossy(text);
    if !s.contains('&') {
        return s.into_owned();
    }
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_tags_and_skips_comments_and_less_than_signs() {
        let t = b"a < b <!-- <wgt id='no'> --> <wgt id='1001'> 1.5 </wgt><br/>";
        let tag = next_tag(t, 0).unwrap();
        assert_eq!(tag.name, b"wgt");
        assert_eq!(attr(tag.attrs, b"id"), Some(&b"1001"[..]));
        let (body, after) = text_until_close(t, tag.end, b"wgt").unwrap();
        assert_eq!(body.trim_ascii(), b"1.5");
        let br = next_tag(t, after).unwrap();
        assert_eq!(br.name, b"br");
        assert!(!br.closing);
        assert!(next_tag(t, br.end).is_none());
    }

    #[test]
    fn attributes_in_both_quote_styles_and_bare() {
        let a = b" name=\"sqme prc\" id = 'x>y'  n=3 flag";
        assert_eq!(attr(a, b"name"), Some(&b"sqme prc"[..]));
        assert_eq!(attr(a, b"id"), Some(&b"x>y"[..]));
        assert_eq!(attr(a, b"n"), Some(&b"3"[..]));
        assert_eq!(attr(a, b"flag"), None);
        assert_eq!(attr(a, b"missing"), None);
        let t = b"<weight id='x>y'>d</weight>";
        let tag = next_tag(t, 0).unwrap();
        assert_eq!(attr(tag.attrs, b"id"), Some(&b"x>y"[..]));
    }

    #[test]
    fn closing_tag_with_space_and_unterminated() {
        let t = b"<weights>1 2\n3</weights >";
        let tag = next_tag(t, 0).unwrap();
        let (body, end) = text_until_close(t, tag.end, b"weights").unwrap();
        assert_eq!(body, b"1 2\n3");
        assert_eq!(end, t.len());
        assert!(text_until_close(b"<wgt>1", 5, b"wgt").is_none());
        assert!(next_tag(b"<!-- never closed <wgt>", 0).is_none());
        assert!(next_tag(b"<wgt id='1'", 0).is_none());
    }
}
