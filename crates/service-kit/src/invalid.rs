/// A rule broken by the caller's input: answered 422 with this code and message.
///
/// Plain data, so the services' domain modules can name the rule they enforce without
/// knowing about HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub code: &'static str,
    pub message: String,
}

impl Invalid {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}

/// How many characters of a caller's value an error message repeats.
pub const ECHOED_CHARS: usize = 64;

/// `value` quoted for an error message, as `{:?}` would, but cut after
/// [`ECHOED_CHARS`] characters with an ellipsis: enough to recognise it, while a
/// rejected 1.5 MB label is not sent back whole.
pub fn quoted(value: &str) -> String {
    match value.char_indices().nth(ECHOED_CHARS) {
        None => format!("{value:?}"),
        Some((end, _)) => format!("{:?}…", &value[..end]),
    }
}

/// `text` cut after `max` characters with an ellipsis, for messages that may repeat a
/// caller's value somewhere inside (a JSON parser's, say).
pub fn shortened(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((end, _)) => format!("{}…", &text[..end]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_quoted_whole_and_long_ones_cut_with_an_ellipsis() {
        assert_eq!(quoted("A-1"), "\"A-1\"");
        assert_eq!(quoted("nul\0"), "\"nul\\0\"");
        let long = "é".repeat(100_000);
        assert_eq!(quoted(&long), format!("{:?}…", "é".repeat(ECHOED_CHARS)));
        assert_eq!(shortened("abcdef", 3), "abc…");
        assert_eq!(shortened("abc", 3), "abc");
    }
}
