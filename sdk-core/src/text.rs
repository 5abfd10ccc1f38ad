//! Human-readable texts (causes, error messages) and URLs built without `core::fmt`.
//!
//! The browser build ships this crate as WebAssembly, where the formatting machinery behind
//! `format!` and `write!` costs kilobytes. Texts are built here by appending pieces instead, with
//! [`text!`](crate::text!); the `Display` impls of the crate's types print the same texts. Nothing
//! else lives here: no parsing, no decisions.

use crate::json::write_u64;

/// Something that can be appended to a text.
pub trait Piece {
    fn push_to(&self, out: &mut String);
}

impl Piece for str {
    fn push_to(&self, out: &mut String) {
        out.push_str(self);
    }
}

impl Piece for String {
    fn push_to(&self, out: &mut String) {
        out.push_str(self);
    }
}

impl<T: Piece + ?Sized> Piece for &T {
    fn push_to(&self, out: &mut String) {
        (**self).push_to(out);
    }
}

macro_rules! unsigned_pieces {
    ($($t:ty),*) => {$(
        impl Piece for $t {
            fn push_to(&self, out: &mut String) {
                write_u64(out, *self as u64);
            }
        }
    )*};
}

unsigned_pieces!(u16, u32, u64, usize);

/// Concatenates pieces (`&str`, `String`, unsigned integers, and the crate's named values such
/// as transports and error codes) into a new `String`: `text!("HTTP ", status, ": ", message)`.
#[macro_export]
macro_rules! text {
    ($($piece:expr),* $(,)?) => {{
        let mut out = ::std::string::String::new();
        $( $crate::text::Piece::push_to(&$piece, &mut out); )*
        out
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_concatenate_like_format() {
        let status: u16 = 503;
        let detail = String::from("busy");
        let big: u64 = u64::MAX;
        assert_eq!(
            crate::text!("HTTP ", status, ": ", detail, " ", big, " ", 0usize),
            format!("HTTP {status}: {detail} {big} 0")
        );
        let mut out = String::new();
        "x".push_to(&mut out);
        assert_eq!(out, "x");
    }
}
