//! Text from outside (watchdog output, operators' names) kept to a bounded size.

/// At most `max` bytes of `text`, cut at a character boundary.
pub fn bounded(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn cuts_at_a_character_boundary() {
        assert_eq!(super::bounded("héllo", 2), "h");
        assert_eq!(super::bounded("abc", 10), "abc");
    }
}
