//! Where each transport of protocol version 1 lives: the URLs of the WebSocket, the SSE stream, the
//! long poll, the HTTP send and the history endpoint, with their query parameters.
//!
//! How the token travels is decided here ([`StreamToken`]): plain HTTP requests (long polls, sends,
//! history) always carry it as `Authorization: Bearer`, never in a URL. Browsers cannot set headers
//! on a WebSocket or an `EventSource`, so for those two only a browser driver puts it in the query
//! ([`StreamToken::Query`]); a native driver sends it as a header there too
//! ([`StreamToken::Header`]). This module only builds strings: it performs no request and holds no
//! state.

use crate::json::write_u64;
use crate::protocol::{Seq, PROTOCOL_VERSION};
use crate::text;
use std::fmt;

/// How long the server may hold a long poll open before answering with no frames.
pub const DEFAULT_POLL_WAIT_MS: u64 = 10_000;

/// Where the token of a WebSocket or SSE stream travels. Every other request carries it in
/// `Authorization: Bearer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamToken {
    /// In the `token` query parameter: the only way a browser's `WebSocket` and `EventSource` can
    /// send it. The default, since the browser SDK cannot do otherwise.
    #[default]
    Query,
    /// In `Authorization: Bearer` on the upgrade or stream request, so that the token never
    /// appears in a URL (and so in no proxy log or error text). Native drivers use this.
    Header,
}

impl StreamToken {
    /// The token to put in a stream's query under this placement.
    pub fn in_query(self, token: Option<&str>) -> Option<&str> {
        match self {
            StreamToken::Query => token,
            StreamToken::Header => None,
        }
    }

    /// The token to send as `Authorization: Bearer` on a stream under this placement.
    pub fn in_header(self, token: Option<&str>) -> Option<String> {
        match self {
            StreamToken::Query => None,
            StreamToken::Header => token.map(str::to_string),
        }
    }
}

/// The base URL of a Lifeline server, such as `http://127.0.0.1:8080` or `https://chat.example/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `http` or `https`.
    secure: bool,
    /// Host, port and any path prefix, without a trailing slash: `chat.example/api`.
    authority_and_prefix: String,
}

/// The URL given to [`Endpoint::parse`] is not an `http(s)://` or `ws(s)://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadEndpoint(pub String);

impl BadEndpoint {
    /// What is wrong with the URL, in words (also the `Display` text).
    pub fn describe(&self) -> String {
        text!(
            "`",
            self.0,
            "` is not a server URL: expected http://, https://, ws:// or wss:// followed by a host"
        )
    }
}

impl fmt::Display for BadEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl std::error::Error for BadEndpoint {}

/// `value` percent-encoded for a query: every byte but RFC 3986's unreserved characters (letters,
/// digits, `-`, `_`, `.`, `~`) becomes `%XX`. Written here rather than taken from the
/// percent-encoding crate, whose table of all 256 escapes weighs more in the `.wasm` than this
/// loop; a test checks the two agree.
fn encode(value: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
    out
}

impl Endpoint {
    /// Parses a base URL. `ws://` and `wss://` are accepted as spellings of `http://` and
    /// `https://`. A query or fragment is refused.
    pub fn parse(url: &str) -> Result<Self, BadEndpoint> {
        let bad = || BadEndpoint(url.to_string());
        let (secure, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("wss://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("ws://") {
            (false, rest)
        } else {
            return Err(bad());
        };
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.starts_with('/') || rest.contains(['?', '#', ' ']) {
            return Err(bad());
        }
        Ok(Endpoint {
            secure,
            authority_and_prefix: rest.to_string(),
        })
    }

    /// A stable key naming this endpoint, for remembering which transport last worked here.
    pub fn key(&self) -> String {
        text!(
            if self.secure { "https://" } else { "http://" },
            self.authority_and_prefix
        )
    }

    fn http(&self, path: &str) -> String {
        text!(self.key(), "/v1/", path, "?v=", PROTOCOL_VERSION)
    }

    fn stream_query(mut url: String, token: Option<&str>, cursor: Option<Seq>) -> String {
        if let Some(token) = token {
            url.push_str("&token=");
            url.push_str(&encode(token));
        }
        if let Some(cursor) = cursor {
            url.push_str("&cursor=");
            write_u64(&mut url, cursor);
        }
        url
    }

    /// `ws(s)://…/v1/ws?v=1&token=…&cursor=…`
    pub fn websocket_url(&self, token: Option<&str>, cursor: Option<Seq>) -> String {
        let url = text!(
            if self.secure { "wss://" } else { "ws://" },
            self.authority_and_prefix,
            "/v1/ws?v=",
            PROTOCOL_VERSION
        );
        Self::stream_query(url, token, cursor)
    }

    /// `http(s)://…/v1/sse?v=1&token=…&cursor=…`
    pub fn sse_url(&self, token: Option<&str>, cursor: Option<Seq>) -> String {
        Self::stream_query(self.http("sse"), token, cursor)
    }

    /// `http(s)://…/v1/poll?v=1&cursor=…&wait_ms=…[&hello=1]`, to be fetched with
    /// `Authorization: Bearer …`. The first poll of a session asks for `hello=1`, which the server
    /// answers at once.
    pub fn poll_url(&self, cursor: Option<Seq>, wait_ms: u64, hello: bool) -> String {
        let mut url = Self::stream_query(self.http("poll"), None, cursor);
        url.push_str("&wait_ms=");
        write_u64(&mut url, wait_ms);
        if hello {
            url.push_str("&hello=1");
        }
        url
    }

    /// `http(s)://…/v1/send?v=1`, to be POSTed with `Authorization: Bearer …`.
    pub fn send_url(&self) -> String {
        self.http("send")
    }

    /// `http(s)://…/v1/history?v=1&conv=…&limit=…[&before=…]`, to be fetched with
    /// `Authorization: Bearer …`.
    pub fn history_url(&self, conv: &str, before: Option<Seq>, limit: u32) -> String {
        let mut url = self.http("history");
        url.push_str("&conv=");
        url.push_str(&encode(conv));
        url.push_str("&limit=");
        write_u64(&mut url, limit.into());
        if let Some(before) = before {
            url.push_str("&before=");
            write_u64(&mut url, before);
        }
        url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_encoded_like_the_percent_encoding_crate() {
        use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
        const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'_')
            .remove(b'.')
            .remove(b'~');
        let all_bytes: String = (0u8..=127).map(char::from).collect();
        for value in [
            "",
            "abc-_.~XYZ019",
            "a b&c=d?e#f/g+h%",
            "žluťoučký 🐎",
            &all_bytes,
        ] {
            assert_eq!(
                encode(value),
                utf8_percent_encode(value, UNRESERVED).to_string(),
                "{value:?}"
            );
        }
    }

    #[test]
    fn urls_for_every_transport() {
        let e = Endpoint::parse("http://127.0.0.1:8080/").unwrap();
        assert_eq!(
            e.websocket_url(Some("a b+c"), Some(5)),
            "ws://127.0.0.1:8080/v1/ws?v=1&token=a%20b%2Bc&cursor=5"
        );
        assert_eq!(e.sse_url(None, None), "http://127.0.0.1:8080/v1/sse?v=1");
        assert_eq!(
            e.poll_url(Some(3), 10_000, true),
            "http://127.0.0.1:8080/v1/poll?v=1&cursor=3&wait_ms=10000&hello=1"
        );
        assert_eq!(e.send_url(), "http://127.0.0.1:8080/v1/send?v=1");
        assert_eq!(
            e.history_url("general", Some(9), 50),
            "http://127.0.0.1:8080/v1/history?v=1&conv=general&limit=50&before=9"
        );
    }

    #[test]
    fn a_header_placement_keeps_the_token_out_of_stream_urls() {
        let e = Endpoint::parse("http://h").unwrap();
        let header = StreamToken::Header;
        assert_eq!(
            e.websocket_url(header.in_query(Some("secret")), None),
            "ws://h/v1/ws?v=1"
        );
        assert_eq!(header.in_header(Some("secret")).as_deref(), Some("secret"));
        assert_eq!(StreamToken::Query.in_header(Some("secret")), None);
        assert_eq!(StreamToken::Query.in_query(Some("secret")), Some("secret"));
    }

    #[test]
    fn secure_schemes_and_prefixes() {
        let e = Endpoint::parse("wss://chat.example/api").unwrap();
        assert_eq!(e.key(), "https://chat.example/api");
        assert!(e
            .websocket_url(None, None)
            .starts_with("wss://chat.example/api/v1/ws"));
    }

    #[test]
    fn bad_urls_are_refused() {
        for url in [
            "",
            "ftp://x",
            "http://",
            "http:///path",
            "http://h?x=1",
            "localhost:80",
        ] {
            assert!(Endpoint::parse(url).is_err(), "{url}");
        }
    }
}
