//! Keeping credentials out of logs: URLs the core builds carry the token in the query.
//!
//! Only string handling lives here; no logging.

/// `url` with the value of every `token` query parameter replaced by `***`.
pub(crate) fn url(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some(("token", _)) => "token=***".to_string(),
            _ => pair.to_string(),
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn hides_the_token_only() {
        assert_eq!(
            super::url("ws://h/v1/ws?v=1&token=secret&cursor=4"),
            "ws://h/v1/ws?v=1&token=***&cursor=4"
        );
        assert_eq!(super::url("http://h/healthz"), "http://h/healthz");
    }
}
