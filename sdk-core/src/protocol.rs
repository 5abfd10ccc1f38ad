//! The Lifeline wire protocol, version 1: the JSON frames that travel on every transport, their
//! limits, and the typed errors for frames that break them.
//!
//! This module is shared by the SDK core and the reference server so that the two can never
//! disagree on the shape of a frame. It describes data only: it opens no connection, builds no URL
//! (see [`crate::endpoints`]) and makes no decision about what a frame means for a session.
//! docs/PROTOCOL.md is the normative description; the types here follow it field by field.

use crate::json::{self, ObjectWriter, Value};
use crate::text;
use std::fmt;

/// The protocol version spoken by this crate. It travels as `v=1` on every endpoint and in
/// [`Hello::v`].
pub const PROTOCOL_VERSION: u32 = 1;

/// The largest frame, in bytes of UTF-8 text, that either side may send or must accept.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// The largest message body, in bytes of UTF-8.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The longest identifier (conversation, user, client message id), in bytes.
pub const MAX_ID_BYTES: usize = 64;

/// The most frames one HTTP send request, send response or poll response may carry.
pub const MAX_FRAMES_PER_REQUEST: usize = 64;

/// The largest HTTP send request body a client assumes the server accepts when the `hello` does not
/// say (`max_body_bytes`): the reference server's default, 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;

/// The largest body of an HTTP send request or a poll or send response: 64 frames of at most
/// [`MAX_FRAME_BYTES`] each.
pub const MAX_BATCH_BYTES: usize = MAX_FRAME_BYTES * MAX_FRAMES_PER_REQUEST;

/// A message sequence number assigned by the server. Sequence numbers are unique per server,
/// strictly increasing in the order messages are stored, and never reused. A client's resume
/// cursor is the highest sequence number it has delivered to the application.
pub type Seq = u64;

/// Frames a client sends to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame {
    /// Publish a message. `id` is the client's idempotency key: a retransmission with the same id
    /// (same conversation and body) is acknowledged again with the original sequence number and
    /// never stored twice; the same id with another conversation or body is refused (`id_reused`).
    Send {
        id: String,
        conv: String,
        body: String,
    },
    /// Join a conversation (membership is durable) and receive its messages on every stream.
    Subscribe { conv: String },
    /// Leave a conversation.
    Unsubscribe { conv: String },
    /// The sender is typing in `conv`. Ephemeral: never stored, never replayed.
    Typing { conv: String },
    /// Application-level heartbeat (WebSocket only). The server answers with `pong` carrying the
    /// same `t`.
    Ping { t: u64 },
}

/// Frames the server sends to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerFrame {
    /// The first frame of every stream (and of the first long-poll response).
    Hello(Hello),
    /// A stored message.
    Msg(Message),
    /// A `send` was stored durably with sequence number `seq`.
    Ack { id: String, seq: Seq },
    /// A `subscribe` took effect.
    Subscribed { conv: String },
    /// An `unsubscribe` took effect.
    Unsubscribed { conv: String },
    /// A member of `conv` came online or went offline. Ephemeral.
    Presence {
        conv: String,
        user: String,
        online: bool,
    },
    /// A member of `conv` is typing. Ephemeral.
    Typing { conv: String, user: String },
    /// The answer to a client `ping`.
    Pong { t: u64 },
    /// The server is alive; sent when a stream has been quiet for `heartbeat_ms`.
    Heartbeat,
    /// Something went wrong; see [`ErrorCode`] for what the client should do.
    Error(ErrorFrame),
}

/// The first frame of a stream: what the server resumed from and how it will keep the stream alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Protocol version the server speaks.
    pub v: u32,
    /// The authenticated user.
    pub user: String,
    /// How often, at most, the server stays silent on this stream before sending a frame.
    pub heartbeat_ms: u64,
    /// The cursor the stream continues from: every message after it, in the user's
    /// conversations, follows on this stream. Equal to the client's cursor when `resumed`.
    pub cursor: Seq,
    /// `true` when the client's cursor was honoured (or none was given); `false` when it was older
    /// than the server keeps, in which case the stream starts after `cursor` and the messages
    /// between the client's cursor and `cursor` are gone from this stream.
    pub resumed: bool,
    /// The largest HTTP send request body the server accepts, in bytes; absent: the documented
    /// default [`DEFAULT_MAX_BODY_BYTES`].
    pub max_body_bytes: Option<u64>,
    /// The most frames one HTTP send request may carry; absent: [`MAX_FRAMES_PER_REQUEST`].
    pub max_frames: Option<u64>,
}

/// A stored chat message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub seq: Seq,
    pub conv: String,
    pub from: String,
    /// The sender's client message id (idempotency key).
    pub id: String,
    pub body: String,
    /// Server time of storage, milliseconds since the Unix epoch.
    pub ts: u64,
}

/// An error reported by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorFrame {
    pub code: ErrorCode,
    pub message: String,
    /// The client message id this error is about, when it is about one send.
    pub id: Option<String>,
    /// The conversation this error is about, when it is about one.
    pub conv: Option<String>,
    /// Do not retry before this many milliseconds.
    pub retry_after_ms: Option<u64>,
}

/// Error codes. Unknown codes from a newer server decode as [`ErrorCode::Unknown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The token is missing, forged or malformed. Fetch a fresh token; do not retry the same one.
    Unauthorized,
    /// The token has expired. Fetch a fresh token.
    TokenExpired,
    /// The user is not a member of the conversation.
    Forbidden,
    /// Too many requests: retry after `retry_after_ms`.
    RateLimited,
    /// The frame could not be parsed or broke the schema.
    BadFrame,
    /// The frame or the body is larger than the limits.
    TooLarge,
    /// The sender already used this client message id for a message with another conversation or
    /// body; this one was not stored. Send it again under a new id.
    IdReused,
    /// The server is shutting down or shedding load: reconnect within `retry_after_ms`.
    GoingAway,
    /// The requested protocol version is not supported.
    UnsupportedVersion,
    /// A notice, not a failure: this stream fell behind and presence or typing events meant for
    /// it were skipped (messages never are: they are re-read from storage). Presence shown from
    /// earlier events may be stale.
    Skipped,
    /// The server failed; the request may be retried.
    Internal,
    /// A code this client does not know.
    Unknown,
}

impl ErrorCode {
    /// Whether this code says the credentials must be replaced.
    pub fn is_auth(self) -> bool {
        matches!(self, ErrorCode::Unauthorized | ErrorCode::TokenExpired)
    }

    /// The code as it is written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::BadFrame => "bad_frame",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::IdReused => "id_reused",
            ErrorCode::GoingAway => "going_away",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::Skipped => "skipped",
            ErrorCode::Internal => "internal",
            ErrorCode::Unknown => "unknown",
        }
    }
}

impl crate::text::Piece for ErrorCode {
    fn push_to(&self, out: &mut String) {
        out.push_str(self.as_str());
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of an HTTP send request (`POST /v1/send`) and of the response to it, and the body of a
/// long-poll response (`GET /v1/poll`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch<F> {
    pub frames: Vec<F>,
}

/// A page of history (`GET /v1/history`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    /// Messages in increasing sequence order.
    pub messages: Vec<Message>,
    /// Pass as `before` to fetch the next older page; absent when there is none.
    pub next_before: Option<Seq>,
}

/// The body of an HTTP error response (any 4xx or 5xx).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpError {
    pub error: ErrorFrame,
}

/// Why a frame was rejected by [`decode_server_frame`], [`decode_client_frame`] or a `decode_*`
/// sibling.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// The text is longer than [`MAX_FRAME_BYTES`].
    TooLarge { len: usize, max: usize },
    /// The text is not JSON of a known frame shape.
    Malformed { detail: String },
    /// A field breaks a limit or a rule of the schema.
    Invalid {
        field: &'static str,
        reason: &'static str,
    },
}

impl FrameError {
    /// What is wrong with the frame, in words (also the `Display` text).
    pub fn describe(&self) -> String {
        match self {
            FrameError::TooLarge { len, max } => {
                text!("frame of ", len, " bytes is larger than the limit of ", max)
            }
            FrameError::Malformed { detail } => text!("malformed frame: ", detail),
            FrameError::Invalid { field, reason } => {
                text!("invalid field `", field, "`: ", reason)
            }
        }
    }
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl std::error::Error for FrameError {}

impl FrameError {
    /// The error code a server answers this error with.
    pub fn code(&self) -> ErrorCode {
        match self {
            FrameError::TooLarge { .. } => ErrorCode::TooLarge,
            FrameError::Invalid {
                reason: REASON_TOO_LONG,
                field: "body",
            } => ErrorCode::TooLarge,
            _ => ErrorCode::BadFrame,
        }
    }
}

const REASON_TOO_LONG: &str = "too long";

fn check_size(text: &str) -> Result<(), FrameError> {
    if text.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge {
            len: text.len(),
            max: MAX_FRAME_BYTES,
        });
    }
    Ok(())
}

fn parse<T: FromJson>(text: &str) -> Result<T, FrameError> {
    check_size(text)?;
    read(text)
}

fn read<T: FromJson>(text: &str) -> Result<T, FrameError> {
    let value = json::parse(text).map_err(|e| FrameError::Malformed {
        detail: e.reason.to_string(),
    })?;
    T::from_json(value)
}

// ----- who reads the JSON ----------------------------------------------------------------------

/// A parsed JSON value as the frame decoder reads it: the crate's own [`Value`], or a value a
/// platform's parser built (the browser's `JSON.parse`, in lifeline-wasm). What a value means
/// for a frame (a missing member, a mistyped one, an unknown type) is decided once, by the
/// [`FromJson`] impls of this module, whichever parser built it.
pub trait Document: Sized {
    /// Whether the value is a JSON object.
    fn is_object(&self) -> bool;
    /// Takes the member `name` out of an object (`None` when absent; `null` stays a value).
    fn take(&mut self, name: &str) -> Option<Self>;
    fn is_null(&self) -> bool;
    fn into_string(self) -> Option<String>;
    /// The value if it is an integer from 0 to `u64::MAX` (a parser that reads numbers as
    /// doubles answers only those it holds exactly, up to 2^53).
    fn as_u64(&self) -> Option<u64>;
    fn as_bool(&self) -> Option<bool>;
    fn into_array(self) -> Option<Vec<Self>>;
}

impl<'a> Document for Value<'a> {
    fn is_object(&self) -> bool {
        matches!(self, Value::Object(_))
    }
    fn take(&mut self, name: &str) -> Option<Self> {
        Value::take(self, name)
    }
    fn is_null(&self) -> bool {
        Value::is_null(self)
    }
    fn into_string(self) -> Option<String> {
        Value::into_string(self)
    }
    fn as_u64(&self) -> Option<u64> {
        Value::as_u64(self)
    }
    fn as_bool(&self) -> Option<bool> {
        Value::as_bool(self)
    }
    fn into_array(self) -> Option<Vec<Self>> {
        Value::into_array(self)
    }
}

/// How a session turns the texts it receives (frames, poll and send responses, history pages,
/// HTTP error bodies) into frames. [`OwnJson`] is this crate's reader, the one every native
/// driver uses; the browser package reads with `JSON.parse` instead (its `.wasm` then carries no
/// JSON reader), through [`decode_server_frame_from`] and its siblings, so that the limits and
/// the schema are still this module's.
pub trait FrameDecoder {
    /// What [`decode_server_frame`] does.
    fn server_frame(&self, text: &str) -> Result<ServerFrame, FrameError>;
    /// What [`decode_server_batch`] does.
    fn server_batch(&self, text: &str) -> Result<Batch<ServerFrame>, FrameError>;
    /// What [`decode_history`] does.
    fn history(&self, text: &str) -> Result<HistoryPage, FrameError>;
    /// What [`decode_http_error`] does.
    fn http_error(&self, text: &str) -> Option<ErrorFrame>;
}

/// The crate's own JSON reader ([`json::parse`], and natively the fast path of
/// `frame_reader.rs`): the [`FrameDecoder`] of [`crate::Session::new`].
#[derive(Debug, Clone, Copy, Default)]
pub struct OwnJson;

impl FrameDecoder for OwnJson {
    fn server_frame(&self, text: &str) -> Result<ServerFrame, FrameError> {
        decode_server_frame(text)
    }
    fn server_batch(&self, text: &str) -> Result<Batch<ServerFrame>, FrameError> {
        decode_server_batch(text)
    }
    fn history(&self, text: &str) -> Result<HistoryPage, FrameError> {
        decode_history(text)
    }
    fn http_error(&self, text: &str) -> Option<ErrorFrame> {
        decode_http_error(text)
    }
}

/// [`decode_server_frame`] with another parser: `parse` turns the text into a [`Document`] (or
/// says why it is not JSON) once the text has passed the size limit.
pub fn decode_server_frame_from<D: Document>(
    text: &str,
    parse: impl FnOnce(&str) -> Result<D, FrameError>,
) -> Result<ServerFrame, FrameError> {
    check_size(text)?;
    ServerFrame::from_json(parse(text)?)
}

/// [`decode_server_batch`] with another parser (see [`decode_server_frame_from`]).
pub fn decode_server_batch_from<D: Document>(
    text: &str,
    parse: impl FnOnce(&str) -> Result<D, FrameError>,
) -> Result<Batch<ServerFrame>, FrameError> {
    check_batch_size(text)?;
    Batch::from_json(parse(text)?)
}

/// [`decode_history`] with another parser (see [`decode_server_frame_from`]).
pub fn decode_history_from<D: Document>(
    text: &str,
    parse: impl FnOnce(&str) -> Result<D, FrameError>,
) -> Result<HistoryPage, FrameError> {
    check_batch_size(text)?;
    HistoryPage::from_json(parse(text)?)
}

/// [`decode_http_error`] with another parser (see [`decode_server_frame_from`]).
pub fn decode_http_error_from<D: Document>(
    text: &str,
    parse: impl FnOnce(&str) -> Result<D, FrameError>,
) -> Option<ErrorFrame> {
    check_size(text).ok()?;
    HttpError::from_json(parse(text).ok()?)
        .ok()
        .map(|e| e.error)
}

/// Checks an identifier (conversation, user or client message id): 1 to [`MAX_ID_BYTES`] bytes of
/// ASCII letters, digits, `-`, `_`, `.` and `:`.
pub fn validate_id(field: &'static str, id: &str) -> Result<(), FrameError> {
    if id.is_empty() {
        return Err(FrameError::Invalid {
            field,
            reason: "empty",
        });
    }
    if id.len() > MAX_ID_BYTES {
        return Err(FrameError::Invalid {
            field,
            reason: REASON_TOO_LONG,
        });
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    {
        return Err(FrameError::Invalid {
            field,
            reason: "only ASCII letters, digits, '-', '_', '.' and ':' are allowed",
        });
    }
    Ok(())
}

/// Checks a message body: at most [`MAX_BODY_BYTES`] bytes.
pub fn validate_body(body: &str) -> Result<(), FrameError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(FrameError::Invalid {
            field: "body",
            reason: REASON_TOO_LONG,
        });
    }
    Ok(())
}

impl ClientFrame {
    /// Checks every field against the schema's limits.
    pub fn validate(&self) -> Result<(), FrameError> {
        match self {
            ClientFrame::Send { id, conv, body } => {
                validate_id("id", id)?;
                validate_id("conv", conv)?;
                validate_body(body)
            }
            ClientFrame::Subscribe { conv }
            | ClientFrame::Unsubscribe { conv }
            | ClientFrame::Typing { conv } => validate_id("conv", conv),
            ClientFrame::Ping { .. } => Ok(()),
        }
    }
}

/// Decodes and validates one client frame (what a server does with every frame it receives).
pub fn decode_client_frame(text: &str) -> Result<ClientFrame, FrameError> {
    let frame: ClientFrame = parse(text)?;
    frame.validate()?;
    Ok(frame)
}

/// Decodes and validates an HTTP send request body.
pub fn decode_client_batch(text: &str) -> Result<Batch<ClientFrame>, FrameError> {
    let batch: Batch<ClientFrame> = parse_batch(text)?;
    if batch.frames.len() > MAX_FRAMES_PER_REQUEST {
        return Err(FrameError::Invalid {
            field: "frames",
            reason: "more frames than one request may carry",
        });
    }
    for frame in &batch.frames {
        frame.validate()?;
    }
    Ok(batch)
}

/// Decodes one server frame (what a client does with every WebSocket message and SSE event).
///
/// Natively, the frames a server writes are read member by member straight into their fields
/// (`frame_reader.rs`); anything else, and every error, goes through the general reader.
pub fn decode_server_frame(text: &str) -> Result<ServerFrame, FrameError> {
    check_size(text)?;
    #[cfg(not(target_arch = "wasm32"))]
    if let Some(frame) = crate::frame_reader::server_frame(text) {
        return Ok(frame);
    }
    read(text)
}

/// [`decode_server_frame`] through the general reader only, never the native fast path: what the
/// fast path is checked against (its unit tests and the `decode_frames` fuzz target).
#[doc(hidden)]
#[cfg(not(target_arch = "wasm32"))]
pub fn decode_server_frame_generally(text: &str) -> Result<ServerFrame, FrameError> {
    parse(text)
}

/// Decodes a long-poll or HTTP-send response body.
pub fn decode_server_batch(text: &str) -> Result<Batch<ServerFrame>, FrameError> {
    parse_batch(text)
}

/// Decodes a history page.
pub fn decode_history(text: &str) -> Result<HistoryPage, FrameError> {
    parse_batch(text)
}

/// Like `parse`, for bodies that carry up to [`MAX_FRAMES_PER_REQUEST`] frames.
fn parse_batch<T: FromJson>(text: &str) -> Result<T, FrameError> {
    check_batch_size(text)?;
    read(text)
}

fn check_batch_size(text: &str) -> Result<(), FrameError> {
    if text.len() > MAX_BATCH_BYTES {
        return Err(FrameError::TooLarge {
            len: text.len(),
            max: MAX_BATCH_BYTES,
        });
    }
    Ok(())
}

/// Decodes the body of an HTTP error response, if it is one.
pub fn decode_http_error(text: &str) -> Option<ErrorFrame> {
    if text.len() > MAX_FRAME_BYTES {
        return None;
    }
    read::<HttpError>(text).ok().map(|e| e.error)
}

/// Encodes any frame or body as JSON text. Encoding cannot fail.
pub fn encode<T: ToJson + ?Sized>(value: &T) -> String {
    let mut out = String::with_capacity(64);
    value.write_json(&mut out);
    out
}

// ----- encoding --------------------------------------------------------------------------------

/// A protocol type that writes itself as JSON, members in the order docs/PROTOCOL.md lists them.
pub trait ToJson {
    fn write_json(&self, out: &mut String);
}

impl ToJson for ClientFrame {
    fn write_json(&self, out: &mut String) {
        let mut o = ObjectWriter::new(out);
        match self {
            ClientFrame::Send { id, conv, body } => {
                write_send_members(&mut o, id, conv, body);
            }
            ClientFrame::Subscribe { conv } => {
                o.str("type", "subscribe").str("conv", conv);
            }
            ClientFrame::Unsubscribe { conv } => {
                o.str("type", "unsubscribe").str("conv", conv);
            }
            ClientFrame::Typing { conv } => {
                o.str("type", "typing").str("conv", conv);
            }
            ClientFrame::Ping { t } => {
                o.str("type", "ping").u64("t", *t);
            }
        }
        o.finish();
    }
}

fn write_send_members(o: &mut ObjectWriter<'_>, id: &str, conv: &str, body: &str) {
    o.str("type", "send")
        .str("id", id)
        .str("conv", conv)
        .str("body", body);
}

/// Encodes a `send` frame straight from its fields: the text of [`ClientFrame::Send`] without
/// building one (no copies of the fields), in one allocation unless a field needs escapes.
///
/// The browser build encodes a [`ClientFrame::Send`] built from copies instead: the one frame
/// encoder it has anyway is smaller than a second one.
pub fn encode_send(id: &str, conv: &str, body: &str) -> String {
    #[cfg(target_arch = "wasm32")]
    let out = encode(&ClientFrame::Send {
        id: id.into(),
        conv: conv.into(),
        body: body.into(),
    });
    #[cfg(not(target_arch = "wasm32"))]
    let out = {
        // `{"type":"send","id":"","conv":"","body":""}` is 44 bytes.
        let mut out = String::with_capacity(44 + id.len() + conv.len() + body.len());
        let mut o = ObjectWriter::new(&mut out);
        write_send_members(&mut o, id, conv, body);
        o.finish();
        out
    };
    out
}

fn write_message_members(o: &mut ObjectWriter<'_>, m: &Message) {
    o.u64("seq", m.seq)
        .str("conv", &m.conv)
        .str("from", &m.from)
        .str("id", &m.id)
        .str("body", &m.body)
        .u64("ts", m.ts);
}

fn write_error_members(o: &mut ObjectWriter<'_>, e: &ErrorFrame) {
    o.str("code", e.code.as_str())
        .str("message", &e.message)
        .opt_str("id", e.id.as_deref())
        .opt_str("conv", e.conv.as_deref())
        .opt_u64("retry_after_ms", e.retry_after_ms);
}

impl ToJson for Message {
    fn write_json(&self, out: &mut String) {
        let mut o = ObjectWriter::new(out);
        write_message_members(&mut o, self);
        o.finish();
    }
}

impl ToJson for ErrorFrame {
    fn write_json(&self, out: &mut String) {
        let mut o = ObjectWriter::new(out);
        write_error_members(&mut o, self);
        o.finish();
    }
}

impl ToJson for ServerFrame {
    fn write_json(&self, out: &mut String) {
        let mut o = ObjectWriter::new(out);
        match self {
            ServerFrame::Hello(h) => {
                o.str("type", "hello")
                    .u64("v", u64::from(h.v))
                    .str("user", &h.user)
                    .u64("heartbeat_ms", h.heartbeat_ms)
                    .u64("cursor", h.cursor)
                    .bool("resumed", h.resumed)
                    .opt_u64("max_body_bytes", h.max_body_bytes)
                    .opt_u64("max_frames", h.max_frames);
            }
            ServerFrame::Msg(m) => {
                o.str("type", "msg");
                write_message_members(&mut o, m);
            }
            ServerFrame::Ack { id, seq } => {
                o.str("type", "ack").str("id", id).u64("seq", *seq);
            }
            ServerFrame::Subscribed { conv } => {
                o.str("type", "subscribed").str("conv", conv);
            }
            ServerFrame::Unsubscribed { conv } => {
                o.str("type", "unsubscribed").str("conv", conv);
            }
            ServerFrame::Presence { conv, user, online } => {
                o.str("type", "presence")
                    .str("conv", conv)
                    .str("user", user)
                    .bool("online", *online);
            }
            ServerFrame::Typing { conv, user } => {
                o.str("type", "typing").str("conv", conv).str("user", user);
            }
            ServerFrame::Pong { t } => {
                o.str("type", "pong").u64("t", *t);
            }
            ServerFrame::Heartbeat => {
                o.str("type", "heartbeat");
            }
            ServerFrame::Error(e) => {
                o.str("type", "error");
                write_error_members(&mut o, e);
            }
        }
        o.finish();
    }
}

fn write_array<T: ToJson>(out: &mut String, items: &[T]) {
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        item.write_json(out);
    }
    out.push(']');
}

impl<F: ToJson> ToJson for Batch<F> {
    fn write_json(&self, out: &mut String) {
        ObjectWriter::new(out)
            .with("frames", |out| write_array(out, &self.frames))
            .finish();
    }
}

impl ToJson for HistoryPage {
    fn write_json(&self, out: &mut String) {
        ObjectWriter::new(out)
            .with("messages", |out| write_array(out, &self.messages))
            .opt_u64("next_before", self.next_before)
            .finish();
    }
}

impl ToJson for HttpError {
    fn write_json(&self, out: &mut String) {
        ObjectWriter::new(out)
            .with("error", |out| self.error.write_json(out))
            .finish();
    }
}

// ----- decoding --------------------------------------------------------------------------------

/// A protocol type that reads itself from a parsed JSON value. Unknown members are ignored;
/// missing or mistyped required members are [`FrameError::Malformed`].
pub trait FromJson: Sized {
    fn from_json<D: Document>(value: D) -> Result<Self, FrameError>;
}

fn malformed(what: &str, field: &str) -> FrameError {
    FrameError::Malformed {
        detail: [what, " `", field, "`"].concat(),
    }
}

/// Reads the members of one JSON object.
struct Fields<D>(D);

impl<D: Document> Fields<D> {
    fn of(value: D) -> Result<Self, FrameError> {
        if value.is_object() {
            Ok(Fields(value))
        } else {
            Err(FrameError::Malformed {
                detail: "expected a JSON object".into(),
            })
        }
    }

    /// A member that may be absent or null.
    fn optional(&mut self, name: &str) -> Option<D> {
        self.0.take(name).filter(|v| !v.is_null())
    }

    fn required(&mut self, name: &str) -> Result<D, FrameError> {
        self.0
            .take(name)
            .ok_or_else(|| malformed("missing field", name))
    }

    fn string(&mut self, name: &str) -> Result<String, FrameError> {
        self.required(name)?
            .into_string()
            .ok_or_else(|| malformed("expected a string for", name))
    }

    fn u64(&mut self, name: &str) -> Result<u64, FrameError> {
        self.required(name)?
            .as_u64()
            .ok_or_else(|| malformed("expected an unsigned integer for", name))
    }

    fn bool(&mut self, name: &str) -> Result<bool, FrameError> {
        self.required(name)?
            .as_bool()
            .ok_or_else(|| malformed("expected a boolean for", name))
    }

    fn opt_string(&mut self, name: &str) -> Result<Option<String>, FrameError> {
        match self.optional(name) {
            None => Ok(None),
            Some(v) => v
                .into_string()
                .map(Some)
                .ok_or_else(|| malformed("expected a string for", name)),
        }
    }

    fn opt_u64(&mut self, name: &str) -> Result<Option<u64>, FrameError> {
        match self.optional(name) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| malformed("expected an unsigned integer for", name)),
        }
    }

    fn list<T: FromJson>(&mut self, name: &str) -> Result<Vec<T>, FrameError> {
        let items = self
            .required(name)?
            .into_array()
            .ok_or_else(|| malformed("expected an array for", name))?;
        let mut list = Vec::with_capacity(items.len());
        for item in items {
            list.push(T::from_json(item)?);
        }
        Ok(list)
    }
}

impl ErrorCode {
    /// The inverse of [`ErrorCode::as_str`]; unknown codes are [`ErrorCode::Unknown`].
    pub fn parse(code: &str) -> ErrorCode {
        match code {
            "unauthorized" => ErrorCode::Unauthorized,
            "token_expired" => ErrorCode::TokenExpired,
            "forbidden" => ErrorCode::Forbidden,
            "rate_limited" => ErrorCode::RateLimited,
            "bad_frame" => ErrorCode::BadFrame,
            "too_large" => ErrorCode::TooLarge,
            "id_reused" => ErrorCode::IdReused,
            "going_away" => ErrorCode::GoingAway,
            "unsupported_version" => ErrorCode::UnsupportedVersion,
            "skipped" => ErrorCode::Skipped,
            "internal" => ErrorCode::Internal,
            _ => ErrorCode::Unknown,
        }
    }
}

fn read_message<D: Document>(f: &mut Fields<D>) -> Result<Message, FrameError> {
    Ok(Message {
        seq: f.u64("seq")?,
        conv: f.string("conv")?,
        from: f.string("from")?,
        id: f.string("id")?,
        body: f.string("body")?,
        ts: f.u64("ts")?,
    })
}

fn read_error<D: Document>(f: &mut Fields<D>) -> Result<ErrorFrame, FrameError> {
    Ok(ErrorFrame {
        code: ErrorCode::parse(&f.string("code")?),
        message: f.opt_string("message")?.unwrap_or_default(),
        id: f.opt_string("id")?,
        conv: f.opt_string("conv")?,
        retry_after_ms: f.opt_u64("retry_after_ms")?,
    })
}

impl FromJson for Message {
    fn from_json<D: Document>(value: D) -> Result<Self, FrameError> {
        read_message(&mut Fields::of(value)?)
    }
}

impl FromJson for ErrorFrame {
    fn from_json<D: Document>(value: D) -> Result<Self, FrameError> {
        read_error(&mut Fields::of(value)?)
    }
}

impl FromJson for ClientFrame {
    fn from_json<D: Document>(value: D) -> Result<Self, FrameError> {
        let mut f = Fields::of(value)?;
        let kind = f.string("type")?;
        Ok(match kind.as_str() {
            "send" => ClientFrame::Send {
                id: f.string("id")?,
                conv: f.string("conv")?,
                body: f.string("body")?,
            },
            "subscribe" => ClientFrame::Subscribe {
                conv: f.string("conv")?,
            },
            "unsubscribe" => ClientFrame::Unsubscribe {
                conv: f.string("conv")?,
            },
            "typing" => ClientFrame::Typing {
                conv: f.string("conv")?,
            },
            "ping" => ClientFrame::Ping { t: f.u64("t")? },
            _ => return Err(malformed("unknown frame type", &kind)),
        })
    }
}

impl FromJson for ServerFrame {
    fn from_json<D: Document>(value: D) -> Result<Self, FrameError> {
        let mut f = Fields::of(value)?;
        let kind = f.string("type")?;
        Ok(match kind.as_str() {
            "hello" => ServerFrame::Hello(Hello {
                v: u32::try_from(f.u64("v")?).map_err(|_| malformed("out of range", "v"))?,
                user: f.string("user")?,
                heartbeat_ms: f.u64("heartbeat_ms")?,
                cursor: f.u64("cursor")?,
                resumed: f.bool("resumed")?,
                max_body_bytes: f.opt_u64("max_body_bytes")?,
                max_frames: f.opt_u64("max_frames")?,
            }),
            "msg" => ServerFrame::Msg(read_message(&mut f)?),
            "ack" => ServerFrame::Ack {
                id: f.string("id")?,
                seq: f.u64("seq")?,
            },
            "subscribed" => ServerFrame::Subscribed {
                conv: f.string("conv")?,
            },
            "unsubscribed" => ServerFrame::Unsubscribed {
                conv: f.string("conv")?,
            },
            "presence" => ServerFrame::Presence {
                conv: f.string("conv")?,
                user: f.string("user")?,
                online: f.bool("online")?,
            },
            "typing" => ServerFrame::Typing {
                conv: f.string("conv")?,
                user: f.string("user")?,
            },
            "pong" => ServerFrame::Pong { t: f.u64("t")? },
            "heartbeat" => ServerFrame::Heartbeat,
            "error" => ServerFrame::Error(read_error(&mut f)?),
            _ => return Err(malformed("unknown frame type", &kind)),
        })
    }
}

impl<F: FromJson> FromJson for Batch<F> {
    fn from_json<D: Document>(value: D) -> Result<Self, FrameError> {
        Ok(Batch {
            frames: Fields::of(value)?.list("frames")?,
        })
    }
}

impl FromJson for HistoryPage {
    fn from_json<D: Document>(value: D) -> Result<Self, FrameError> {
        let mut f = Fields::of(value)?;
        Ok(HistoryPage {
            messages: f.list("messages")?,
            next_before: f.opt_u64("next_before")?,
        })
    }
}

impl FromJson for HttpError {
    fn from_json<D: Document>(value: D) -> Result<Self, FrameError> {
        Ok(HttpError {
            error: ErrorFrame::from_json(Fields::of(value)?.required("error")?)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_round_trip_with_type_tag() {
        let f = ClientFrame::Send {
            id: "c1".into(),
            conv: "general".into(),
            body: "hi".into(),
        };
        let text = encode(&f);
        assert_eq!(
            text,
            r#"{"type":"send","id":"c1","conv":"general","body":"hi"}"#
        );
        assert_eq!(decode_client_frame(&text).unwrap(), f);
    }

    #[test]
    fn server_frames_round_trip() {
        let frames = vec![
            ServerFrame::Hello(Hello {
                v: 1,
                user: "alice".into(),
                heartbeat_ms: 10_000,
                cursor: 7,
                resumed: true,
                max_body_bytes: None,
                max_frames: None,
            }),
            ServerFrame::Hello(Hello {
                v: 1,
                user: "alice".into(),
                heartbeat_ms: 10_000,
                cursor: 7,
                resumed: true,
                max_body_bytes: Some(1 << 20),
                max_frames: Some(64),
            }),
            ServerFrame::Error(ErrorFrame {
                code: ErrorCode::IdReused,
                message: "id used for another message".into(),
                id: Some("c1".into()),
                conv: Some("general".into()),
                retry_after_ms: None,
            }),
            ServerFrame::Msg(Message {
                seq: 8,
                conv: "general".into(),
                from: "bob".into(),
                id: "b-1".into(),
                body: "hello".into(),
                ts: 1,
            }),
            ServerFrame::Heartbeat,
            ServerFrame::Error(ErrorFrame {
                code: ErrorCode::RateLimited,
                message: "slow down".into(),
                id: Some("c1".into()),
                conv: None,
                retry_after_ms: Some(250),
            }),
        ];
        for f in frames {
            assert_eq!(decode_server_frame(&encode(&f)).unwrap(), f);
        }
        assert_eq!(encode(&ServerFrame::Heartbeat), r#"{"type":"heartbeat"}"#);
    }

    #[test]
    fn unknown_error_code_decodes_as_unknown() {
        let f = decode_server_frame(r#"{"type":"error","code":"brand_new"}"#).unwrap();
        match f {
            ServerFrame::Error(e) => assert_eq!(e.code, ErrorCode::Unknown),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn oversized_frame_is_a_typed_error() {
        let text = format!(
            r#"{{"type":"send","id":"a","conv":"b","body":"{}"}}"#,
            "x".repeat(MAX_FRAME_BYTES)
        );
        assert!(matches!(
            decode_client_frame(&text),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn body_over_limit_is_too_large() {
        let f = ClientFrame::Send {
            id: "a".into(),
            conv: "b".into(),
            body: "x".repeat(MAX_BODY_BYTES + 1),
        };
        let err = decode_client_frame(&encode(&f)).unwrap_err();
        assert_eq!(err.code(), ErrorCode::TooLarge);
    }

    #[test]
    fn malformed_and_invalid_frames_are_typed_errors() {
        for text in [
            "",
            "{",
            "[]",
            r#"{"type":"nope"}"#,
            r#"{"type":"send"}"#,
            "\u{0}",
        ] {
            assert!(matches!(
                decode_client_frame(text),
                Err(FrameError::Malformed { .. })
            ));
        }
        let err = decode_client_frame(r#"{"type":"subscribe","conv":"a b"}"#).unwrap_err();
        assert!(matches!(err, FrameError::Invalid { field: "conv", .. }));
        let err = decode_client_frame(r#"{"type":"subscribe","conv":""}"#).unwrap_err();
        assert_eq!(err.code(), ErrorCode::BadFrame);
    }

    #[test]
    fn batch_limits_are_enforced() {
        let frame = ClientFrame::Typing { conv: "c".into() };
        let batch = Batch {
            frames: vec![frame; MAX_FRAMES_PER_REQUEST + 1],
        };
        assert!(decode_client_batch(&encode(&batch)).is_err());
    }
}
