//! The whitespace-separated numeric fields of LHE records: a cursor that reads a line's
//! fields in one pass, the parsers of one number, and the fixed-layout fast paths with
//! their SSE2 helpers.
//!
//! Dependencies run one way: [`number`] (scalar parsing) <- [`simd_float`] (SSE2) <-
//! [`fixed_layout`] <- [`cursor`].

mod cursor;
mod fixed_layout;
mod number;
mod simd_float;

pub(crate) use cursor::{fields, FieldCursor, FieldError};
pub(crate) use fixed_layout::{parse_fixed_layout, FixedFloatShape};
pub(crate) use number::eight_digit_values;
#[cfg(test)]
pub(crate) use number::parse_i32;
pub(crate) use number::{parse_f64, parse_i64};
