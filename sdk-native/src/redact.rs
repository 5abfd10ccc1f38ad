//! Keeping credentials out of logs and error texts: a URL built for a browser-style stream can
//! carry the token in its query, and an error's text can quote a URL or a header.
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

/// `text` with every `token=…` value and every `Bearer …` credential replaced by `***`.
pub(crate) fn text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let next = ["token=", "Bearer ", "bearer "]
            .iter()
            .filter_map(|marker| rest.find(marker).map(|at| (at, marker.len())))
            .min();
        let Some((at, len)) = next else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..at + len]);
        out.push_str("***");
        let value = &rest[at + len..];
        let end = value
            .find(|c: char| c == '&' || c == ')' || c == '"' || c.is_whitespace())
            .unwrap_or(value.len());
        rest = &value[end..];
    }
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

    #[test]
    fn hides_tokens_in_any_text() {
        assert_eq!(
            super::text("error for url (http://h/v1/poll?v=1&token=secret&cursor=4): refused"),
            "error for url (http://h/v1/poll?v=1&token=***&cursor=4): refused"
        );
        assert_eq!(
            super::text("header Authorization: Bearer secret was refused"),
            "header Authorization: Bearer *** was refused"
        );
        assert_eq!(super::text("no secret here"), "no secret here");
    }
}
