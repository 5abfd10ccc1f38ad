//! The browser's own `JSON.parse` as the session's JSON reader ([`BrowserJson`]), so that the
//! `.wasm` links no JSON reader of its own: what each parsed value means (the frame's type, a
//! missing or mistyped member, the size limits) is still decided by lifeline-core's `protocol`
//! module, which reads the parsed value through [`Document`].
//!
//! Where `JSON.parse` reads differently from the core's reader (docs/PROTOCOL.md, "Decoding in
//! the browser"): a number is a double, so an integer field above 2^53 is refused as mistyped and
//! `1.0` reads as `1`; a repeated member name keeps the last value instead of refusing the frame;
//! nesting is bounded by the browser rather than by `json::MAX_DEPTH`; a text that is not JSON is
//! malformed with the detail "not JSON". No server writes any of these.

use lifeline_core::protocol::{
    self, Batch, Document, ErrorFrame, FrameDecoder, FrameError, HistoryPage, ServerFrame,
};
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = JSON, js_name = parse, catch)]
    fn json_parse(text: &str) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_namespace = Reflect, js_name = get)]
    fn member(object: &JsValue, name: &str) -> JsValue;
    #[wasm_bindgen(js_namespace = Reflect, js_name = get)]
    fn item(array: &JsValue, index: u32) -> JsValue;
    #[wasm_bindgen(js_namespace = Array, js_name = isArray)]
    fn is_array(value: &JsValue) -> bool;
}

/// The largest integer a double holds exactly (`Number.MAX_SAFE_INTEGER`).
const MAX_EXACT: f64 = 9_007_199_254_740_991.0;

/// The session's [`FrameDecoder`] in the browser.
#[derive(Debug, Clone, Copy, Default)]
pub struct BrowserJson;

fn parse(text: &str) -> Result<JsDoc, FrameError> {
    json_parse(text)
        .map(JsDoc)
        .map_err(|_| FrameError::Malformed {
            detail: "not JSON".into(),
        })
}

impl FrameDecoder for BrowserJson {
    fn server_frame(&self, text: &str) -> Result<ServerFrame, FrameError> {
        protocol::decode_server_frame_from(text, parse)
    }
    fn server_batch(&self, text: &str) -> Result<Batch<ServerFrame>, FrameError> {
        protocol::decode_server_batch_from(text, parse)
    }
    fn history(&self, text: &str) -> Result<HistoryPage, FrameError> {
        protocol::decode_history_from(text, parse)
    }
    fn http_error(&self, text: &str) -> Option<ErrorFrame> {
        protocol::decode_http_error_from(text, parse)
    }
}

/// A value `JSON.parse` built.
struct JsDoc(JsValue);

impl Document for JsDoc {
    fn is_object(&self) -> bool {
        self.0.is_object() && !is_array(&self.0)
    }
    fn take(&mut self, name: &str) -> Option<Self> {
        // Only objects are asked (`protocol` checks first); JSON has no `undefined`, so it means
        // absent. No member name of the protocol is one of `Object.prototype`'s.
        let value = member(&self.0, name);
        (!value.is_undefined()).then_some(JsDoc(value))
    }
    fn is_null(&self) -> bool {
        self.0.is_null()
    }
    fn into_string(self) -> Option<String> {
        self.0.as_string()
    }
    fn as_u64(&self) -> Option<u64> {
        let n = self.0.as_f64()?;
        let whole = n as u64;
        (whole as f64 == n && n <= MAX_EXACT).then_some(whole)
    }
    fn as_bool(&self) -> Option<bool> {
        self.0.as_bool()
    }
    fn into_array(self) -> Option<Vec<Self>> {
        if !is_array(&self.0) {
            return None;
        }
        let len = member(&self.0, "length").as_f64().unwrap_or(0.0) as u32;
        Some((0..len).map(|i| JsDoc(item(&self.0, i))).collect())
    }
}
