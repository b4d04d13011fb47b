//! A small incremental Server-Sent Events parser (the WHATWG `text/event-stream` rules).
//!
//! Written here rather than taken from a crate because what we need is tiny and must be exact
//! where streams break: bytes arrive in arbitrary pieces (a line, even a UTF-8 character or a
//! CRLF pair, may be split across two chunks), lines end in LF, CRLF or CR, `data:` may span
//! several lines, and `:` lines are comments (keep-alives). An event is dispatched on a blank
//! line; at the end of the stream a pending event of complete lines is dispatched too (some
//! servers close without the final blank line), but an unterminated last line is dropped: it
//! may be half of a message cut off in flight.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field; empty when the server sent none (the spec's default "message").
    pub event: String,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
}

#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of the current, not yet terminated line.
    line: Vec<u8>,
    /// The previous chunk ended in CR: a LF starting the next chunk belongs to that line end.
    after_cr: bool,
    /// Nothing has been read yet (a leading byte-order mark is skipped).
    at_start: bool,
    event: String,
    data: String,
    has_data: bool,
}

impl SseParser {
    pub fn new() -> Self {
        Self { at_start: true, ..Self::default() }
    }

    /// Feeds a chunk of the stream; returns the events it completed, in order.
    pub fn feed(&mut self, mut chunk: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        if self.at_start && !chunk.is_empty() {
            // The BOM may itself be split; only the common whole-BOM case is worth handling.
            chunk = chunk.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(chunk);
            self.at_start = false;
        }
        for &b in chunk {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\n' => self.end_line(&mut out),
                b'\r' => {
                    self.after_cr = true;
                    self.end_line(&mut out);
                }
                _ => self.line.push(b),
            }
        }
        out
    }

    /// The stream ended: the pending event, if any complete line made one.
    pub fn finish(&mut self) -> Option<SseEvent> {
        self.line.clear();
        self.take_event()
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            out.extend(self.take_event());
            return;
        }
        let line = String::from_utf8_lossy(&line);
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_ref(), ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = value.to_owned(),
            // `id` and `retry` only matter to reconnecting browsers; a model stream is never resumed.
            _ => {}
        }
    }

    fn take_event(&mut self) -> Option<SseEvent> {
        let event = std::mem::take(&mut self.event);
        if !std::mem::take(&mut self.has_data) {
            // The spec drops events without data (an `event:` line alone dispatches nothing).
            return None;
        }
        Some(SseEvent { event, data: std::mem::take(&mut self.data) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: &str, data: &str) -> SseEvent {
        SseEvent { event: event.into(), data: data.into() }
    }

    fn all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::new();
        let mut out: Vec<SseEvent> = chunks.iter().flat_map(|c| p.feed(c)).collect();
        out.extend(p.finish());
        out
    }

    #[test]
    fn lf_crlf_and_cr_line_ends() {
        let want = vec![ev("", "a"), ev("x", "b"), ev("", "c")];
        assert_eq!(all(&[b"data: a\n\nevent: x\r\ndata: b\r\n\r\ndata: c\r\r"]), want);
    }

    #[test]
    fn chunks_split_anywhere() {
        let text = "event: message_start\r\ndata: {\"a\":\"é\"}\r\n\r\n: ping\r\ndata: [DONE]\r\n\r\n";
        let want = vec![ev("message_start", "{\"a\":\"é\"}"), ev("", "[DONE]")];
        for cut in 0..text.len() {
            let (a, b) = text.as_bytes().split_at(cut);
            assert_eq!(all(&[a, b]), want, "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = text.as_bytes().chunks(1).collect();
        assert_eq!(all(&bytes), want);
    }

    #[test]
    fn multi_line_data_and_comments() {
        assert_eq!(all(&[b": keep-alive\ndata: one\ndata:two\ndata\n\n"]), vec![ev("", "one\ntwo\n")]);
    }

    #[test]
    fn events_without_data_are_dropped_and_bom_skipped() {
        assert_eq!(all(&[b"\xEF\xBB\xBFevent: ping\n\ndata: x\n\n"]), vec![ev("", "x")]);
    }

    #[test]
    fn end_of_stream_keeps_complete_lines_and_drops_a_half_line() {
        assert_eq!(all(&[b"data: whole\n"]), vec![ev("", "whole")]);
        assert_eq!(all(&[b"data: {\"half"]), vec![]);
    }
}
