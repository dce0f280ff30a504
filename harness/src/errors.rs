//! Error text helpers every layer uses (the bottom of the module graph: no imports).

/// An error and its causes on one line each (`anyhow`-style `{:#}` for library errors).
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// [`chain`] on a single line, for messages that are one line (a tar or curl stderr tail in a
/// cause may hold several).
pub fn chain_line(error: &dyn std::error::Error) -> String {
    chain(error).replace('\n', "; ")
}
