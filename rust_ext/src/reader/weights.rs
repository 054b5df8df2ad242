//! The event tail after the particles, up to `</event>`: the named weights (`<rwgt><wgt>`,
//! compact `<weights>`, LHEF 2.0 `<weight>`) and the weight columns they fill.

use std::collections::HashMap;

use super::event_lines::{event_line, fail, not_finite, EventFailure, Resync};
use super::header::lossy;
use super::markup::is_open_tag;
use super::wgt_lines::{simple_wgt_line, WgtLine, WgtLineShape};
use super::xml_scan::{attr, next_tag, text_until_close};
use crate::fields::{fields, parse_f64};
use crate::line_source::LineSource;

/// The named weights of a file and what reading them needs from one event to the next.
pub(super) struct EventWeights {
    columns: WeightColumns,
    /// Which weight each value of a compact `<weights>` block is, in order.
    compact_weight_slots: Vec<usize>,
    /// While the first event is read, weights it names that the header did not declare
    /// become columns; afterwards the set of weights is fixed.
    learning: bool,
    /// The text of the tail lines the fast paths did not read.
    tail: Vec<u8>,
}

impl Default for EventWeights {
    fn default() -> Self {
        EventWeights {
            columns: WeightColumns::default(),
            compact_weight_slots: Vec::new(),
            learning: true,
            tail: Vec::new(),
        }
    }
}

impl EventWeights {
    /// Ids of the named weights, in column order.
    pub(super) fn ids(&self) -> &[String] {
        &self.columns.ids
    }

    /// Adds the column of a weight declared in the header.
    pub(super) fn declare(&mut self, id: &[u8]) {
        self.columns.add(id);
    }

    /// The declared columns are complete: a compact `<weights>` block lists them in order.
    pub(super) fn end_declarations(&mut self) {
        self.compact_weight_slots = (0..self.columns.ids.len()).collect();
    }

    /// The first event has been read: from now on the set of weights is fixed.
    pub(super) fn stop_learning(&mut self) {
        self.learning = false;
    }

    /// Reads the lines after the particles up to `</event>` (consumed), with the values
    /// of the named weights into `row`.
    pub(super) fn read_tail(
        &mut self,
        lines: &mut LineSource,
        row: &mut Vec<Option<f64>>,
    ) -> Result<(), EventFailure> {
        // Everything after the particles up to </event>: weights, scales, comments, info.
        self.tail.clear();
        let mut tail_first_line = None;
        let mut tail_has_comment = false;
        let mut tail_has_weight_tag = false;
        let mut expected_slot = 0usize;
        loop {
            let (n, line, window) = event_line(lines)?;
            // MadGraph's one-weight lines take a fast path; any line it does not recognise
            // (and every line after an XML comment opens) goes to the general tag scanner.
            if !tail_has_comment {
                // The line of the weight that usually comes next, written as before.
                if let Some(value) = self.columns.shaped_value(expected_slot, line, window) {
                    if set_weight(row, expected_slot, value).is_err() {
                        let id = self.columns.ids[expected_slot].as_bytes();
                        return fail(n, Resync::SkipToEventEnd, wgt_line_not_finite(id, line));
                    }
                    expected_slot += 1;
                    continue;
                }
                if let Some(wgt) = simple_wgt_line(line, window) {
                    let Some(slot) = self.columns.slot(wgt.id, &mut expected_slot, self.learning)
                    else {
                        return fail(n, Resync::SkipToEventEnd, undeclared_weight(wgt.id));
                    };
                    if set_weight(row, slot, wgt.value).is_err() {
                        let text = &line[wgt.value_start..wgt.value_end];
                        return fail(n, Resync::SkipToEventEnd, weight_not_finite(wgt.id, text));
                    }
                    self.columns.learn_shape(slot, line, &wgt);
                    continue;
                }
            }
            tail_first_line.get_or_insert(n);
            let (event_end, opens_comment, weight_tag) = tail_line_marks(line);
            tail_has_comment |= opens_comment;
            tail_has_weight_tag |= weight_tag;
            if let Some(end) = event_end {
                self.tail.extend_from_slice(&line[..end]);
                break;
            }
            let trimmed = line.trim_ascii_start();
            if is_open_tag(trimmed, b"event") {
                return fail(
                    n,
                    Resync::AtNextEvent,
                    "unterminated event: <event> begins before </event>",
                );
            }
            if trimmed.starts_with(b"</LesHouchesEvents") {
                return fail(
                    n,
                    Resync::AtRootEnd,
                    "unterminated event: </LesHouchesEvents> before </event>",
                );
            }
            self.tail.extend_from_slice(line);
            self.tail.push(b'\n');
        }
        // The general scanner looks only at tags named `w...` (and past comments): a tail
        // with neither, such as `<scales>`, `<clustering>` or `#` lines, has nothing for it.
        if tail_has_weight_tag || tail_has_comment {
            let first = tail_first_line.unwrap_or(0);
            self.parse_weights(row, first)?;
        }
        Ok(())
    }

    /// Reads `<rwgt><wgt id>`, compact `<weights>` and LHEF 2.0 `<weight name|id>` values.
    fn parse_weights(
        &mut self,
        row: &mut Vec<Option<f64>>,
        first_line: u64,
    ) -> Result<(), EventFailure> {
        let tail = std::mem::take(&mut self.tail);
        let result = self.parse_weights_in(row, &tail, first_line);
        self.tail = tail;
        result
    }

    fn parse_weights_in(
        &mut self,
        row: &mut Vec<Option<f64>>,
        tail: &[u8],
        first_line: u64,
    ) -> Result<(), EventFailure> {
        let line_at =
            |offset: usize| first_line + memchr::memchr_iter(b'\n', &tail[..offset]).count() as u64;
        let mut pos = 0;
        let mut expected_slot = 0usize;
        while let Some(tag) = next_tag(tail, pos) {
            pos = tag.end;
            if tag.closing {
                continue;
            }
            match tag.name {
                b"wgt" | b"weight" => {
                    let id = if tag.name == b"wgt" {
                        attr(tag.attrs, b"id")
                    } else {
                        attr(tag.attrs, b"name").or_else(|| attr(tag.attrs, b"id"))
                    };
                    let tag_name = if tag.name == b"wgt" { "wgt" } else { "weight" };
                    let Some(id) = id else {
                        return fail(
                            line_at(tag.start),
                            Resync::AtEventEnd,
                            format!("<{tag_name}> without an id"),
                        );
                    };
                    let Some((body, after)) = text_until_close(tail, tag.end, tag.name) else {
                        return fail(
                            line_at(tag.start),
                            Resync::AtEventEnd,
                            format!("<{tag_name}> without </{tag_name}>"),
                        );
                    };
                    pos = after;
                    let Some(value) = parse_f64(body.trim_ascii()) else {
                        return fail(
                            line_at(tag.start),
                            Resync::AtEventEnd,
                            format!(
                                "weight {:?} is not a number: {:?}",
                                lossy(id),
                                lossy(body.trim_ascii())
                            ),
                        );
                    };
                    let Some(slot) = self.columns.slot(id, &mut expected_slot, self.learning)
                    else {
                        return fail(
                            line_at(tag.start),
                            Resync::AtEventEnd,
                            undeclared_weight(id),
                        );
                    };
                    if set_weight(row, slot, value).is_err() {
                        return fail(
                            line_at(tag.start),
                            Resync::AtEventEnd,
                            weight_not_finite(id, body.trim_ascii()),
                        );
                    }
                    expected_slot = slot + 1;
                }
                b"weights" => {
                    let Some((body, after)) = text_until_close(tail, tag.end, b"weights") else {
                        return fail(
                            line_at(tag.start),
                            Resync::AtEventEnd,
                            "<weights> without </weights>",
                        );
                    };
                    pos = after;
                    for (k, field) in fields(body).enumerate() {
                        let Some(&slot) = self.compact_weight_slots.get(k) else {
                            return fail(
                                line_at(tag.start),
                                Resync::AtEventEnd,
                                format!(
                                    "<weights> has more than the {} values declared in <initrwgt>",
                                    self.compact_weight_slots.len()
                                ),
                            );
                        };
                        let Some(value) = parse_f64(field).map(finite_weight) else {
                            return fail(
                                line_at(tag.start),
                                Resync::AtEventEnd,
                                format!(
                                    "<weights> value {} is not a number: {:?}",
                                    k + 1,
                                    lossy(field)
                                ),
                            );
                        };
                        let Ok(value) = value else {
                            return fail(
                                line_at(tag.start),
                                Resync::AtEventEnd,
                                not_finite(&format!("<weights> value {}", k + 1), Some(field)),
                            );
                        };
                        // Explicit <wgt id> values win over positional ones, in either order.
                        row[slot].get_or_insert(value);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The named-weight columns: ids in column order and a map from id to column.
#[derive(Default)]
struct WeightColumns {
    ids: Vec<String>,
    lookup: HashMap<Box<[u8]>, usize>,
    /// Per column, the shape of its last `<wgt>` line read the long way.
    shapes: Vec<Option<WgtLineShape>>,
}

impl WeightColumns {
    fn add(&mut self, id: &[u8]) -> usize {
        if let Some(&slot) = self.lookup.get(id) {
            return slot;
        }
        let slot = self.ids.len();
        self.ids.push(String::from_utf8_lossy(id).into_owned());
        self.lookup.insert(id.into(), slot);
        self.shapes.push(None);
        slot
    }

    /// The value of `line` if it is the `<wgt>` line of column `slot` in the shape seen
    /// before.
    #[inline(always)]
    fn shaped_value(&self, slot: usize, line: &[u8], window: &[u8]) -> Option<f64> {
        self.shapes.get(slot)?.as_ref()?.value(line, window)
    }

    /// Remembers the shape of the `<wgt>` line of column `slot` (the latest one wins).
    fn learn_shape(&mut self, slot: usize, line: &[u8], wgt: &WgtLine<'_>) {
        if let Some(shape) = self.shapes.get_mut(slot) {
            *shape = WgtLineShape::of(line, wgt.value_start, wgt.value_end);
        }
    }

    /// The column of weight `id`; `expected_slot` becomes the column after it, where the
    /// next weight usually is (weights come in the same order in every event). While
    /// `learning` (the first event), an undeclared id becomes a new column; afterwards it
    /// is `None`.
    #[inline]
    fn slot(&mut self, id: &[u8], expected_slot: &mut usize, learning: bool) -> Option<usize> {
        let slot = match self.lookup.get(id) {
            Some(&slot) => slot,
            None if learning && usable_weight_id(id) => self.add(id),
            None => return None,
        };
        *expected_slot = slot + 1;
        Some(slot)
    }
}

/// A weight value that is NaN or infinite: it would make the sum of its column NaN, so
/// the event that has it is malformed.
#[derive(Debug)]
struct NotFinite;

/// Every weight value read is checked here before it is stored.
#[inline(always)]
fn finite_weight(value: f64) -> Result<f64, NotFinite> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(NotFinite)
    }
}

/// Stores a weight value, growing the row when the first event added a column; refuses a
/// value that is not finite.
#[inline]
fn set_weight(weights: &mut Vec<Option<f64>>, slot: usize, value: f64) -> Result<(), NotFinite> {
    let value = finite_weight(value)?;
    if slot >= weights.len() {
        weights.resize(slot + 1, None);
    }
    weights[slot] = Some(value);
    Ok(())
}

#[cold]
fn weight_not_finite(id: &[u8], text: &[u8]) -> String {
    not_finite(&format!("weight {:?}", lossy(id)), Some(text))
}

/// [`weight_not_finite`] for a `<wgt>` line read through its shape (whose numbers are
/// always finite; kept so that every reader of a weight refuses the same values).
#[cold]
fn wgt_line_not_finite(id: &[u8], line: &[u8]) -> String {
    let text = line
        .iter()
        .position(|&b| b == b'>')
        .and_then(|open| {
            let rest = &line[open + 1..];
            let close = memchr::memmem::find(rest, b"</wgt>")?;
            Some(rest[..close].trim_ascii())
        })
        .unwrap_or(line.trim_ascii());
    weight_not_finite(id, text)
}

/// A weight id becomes a column name `w_<id>`: no control characters (Arrow refuses a
/// NUL in a name, and none belongs in an id).
pub(super) fn usable_weight_id(id: &[u8]) -> bool {
    !id.is_empty() && id.iter().all(|&b| b >= b' ' && b != 0x7f)
}

#[cold]
pub(super) fn undeclared_weight(id: &[u8]) -> String {
    if usable_weight_id(id) {
        format!(
            "weight id {:?} is neither declared in <initrwgt> nor present in the first event",
            lossy(id)
        )
    } else {
        format!(
            "weight id {:?} is empty or contains a control character",
            lossy(id)
        )
    }
}

/// In one pass over the `<` of a line after the particles: where `</event>` starts,
/// whether an XML comment opens before it, and whether a tag named `w...` (`<wgt`,
/// `<weight`, `<weights`) starts before it: a tail without one has no weights to read.
#[inline]
fn tail_line_marks(line: &[u8]) -> (Option<usize>, bool, bool) {
    let mut opens_comment = false;
    let mut weight_tag = false;
    for i in memchr::memchr_iter(b'<', line) {
        let rest = &line[i..];
        if rest.starts_with(b"</event>") {
            return (Some(i), opens_comment, weight_tag);
        }
        opens_comment |= rest.starts_with(b"<!--");
        weight_tag |= rest.get(1) == Some(&b'w');
    }
    (None, opens_comment, weight_tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_marks_in_short_and_long_lines() {
        assert_eq!(tail_line_marks(b"</event>"), (Some(0), false, false));
        assert_eq!(tail_line_marks(b"<rwgt>"), (None, false, false));
        assert_eq!(tail_line_marks(b" <wgt id='1'>"), (None, false, true));
        assert_eq!(
            tail_line_marks(b"</wgt> </event> <w"),
            (Some(7), false, false)
        );
        assert_eq!(
            tail_line_marks(b"<!-- x --> </event>"),
            (Some(11), true, false)
        );
        let long = format!("{}<!--{}</event>", "a".repeat(70), "b".repeat(10));
        assert_eq!(tail_line_marks(long.as_bytes()), (Some(84), true, false));
        // A tag that starts in the first 64 bytes and ends after them.
        let across = format!("{}</event>", " ".repeat(60));
        assert_eq!(tail_line_marks(across.as_bytes()), (Some(60), false, false));
        let late = format!("{}<!-- {}</event>", " ".repeat(62), "c".repeat(3));
        assert_eq!(tail_line_marks(late.as_bytes()), (Some(70), true, false));
    }
}
