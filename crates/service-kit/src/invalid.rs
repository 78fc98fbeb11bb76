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
