//! Tag and comment marks of whole lines, as the reader's state machine sees them.

/// `<name>` or `<name attr...>` at the start of `trimmed` (not `<name_longer>`).
pub(super) fn is_open_tag(trimmed: &[u8], name: &[u8]) -> bool {
    trimmed.len() > name.len()
        && trimmed[0] == b'<'
        && trimmed[1..].starts_with(name)
        && matches!(
            trimmed.get(1 + name.len()),
            Some(b'>' | b' ' | b'\t' | b'/') | None
        )
}

/// Whether an XML comment is still open after `line`, given whether one was open before.
pub(super) fn comment_state_after(line: &[u8], mut in_comment: bool) -> bool {
    let mut rest = line;
    loop {
        if in_comment {
            match memchr::memmem::find(rest, b"-->") {
                Some(i) => {
                    in_comment = false;
                    rest = &rest[i + 3..];
                }
                None => return true,
            }
        } else {
            match memchr::memmem::find(rest, b"<!--") {
                Some(i) => {
                    in_comment = true;
                    rest = &rest[i + 4..];
                }
                None => return false,
            }
        }
    }
}
