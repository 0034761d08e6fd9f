//! Header fields kept as the bytes they arrived in: an HTTP/1.1 backend's response head, whose
//! fields go to an HTTP/1 client as they came (copied line by line, the hop-by-hop ones left
//! out), with no header map built and dropped for every response. An HTTP/2 client's response
//! needs a map: `add_to` makes one then. Content-Length is never copied as it came (it may be a
//! list, `5, 5`): the one value the head says is written instead.

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};

/// Where one field lies in the head: its line from the name to the value's end (the separator
/// between them as it came), and its value.
#[derive(Debug, Clone, Copy)]
struct Span {
    line_start: u32,
    name_end: u32,
    value_start: u32,
    value_end: u32,
}

/// Fields of a head, as offsets into its bytes.
#[derive(Debug)]
pub(crate) struct Fields {
    head: Bytes,
    spans: Vec<Span>,
    /// The value of the Content-Length field among them, if there is one.
    pub(crate) content_length: Option<u64>,
    /// Whether a `Date` field is among them.
    pub(crate) date: bool,
}

impl Fields {
    /// No fields yet; room for `capacity`.
    pub(crate) fn new(capacity: usize) -> Self {
        Fields {
            head: Bytes::new(),
            spans: Vec::with_capacity(capacity),
            content_length: None,
            date: false,
        }
    }

    /// The fields kept so far, as offsets into `head`.
    pub(crate) fn of_head(mut self, head: Bytes) -> Self {
        self.head = head;
        self
    }

    /// Leaves out the fields whose name `keep` refuses.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&[u8]) -> bool) {
        let head = &self.head;
        self.spans
            .retain(|span| keep(&head[span.line_start as usize..span.name_end as usize]));
    }

    /// Keeps the field whose name is at `name` and value at `value` (offsets into the head
    /// [`of_head`](Self::of_head) gives; httparse checked both: a token, and no CR, LF or other
    /// control byte).
    pub(crate) fn keep(&mut self, name: (usize, usize), value: (usize, usize)) {
        // A head is at most 64 KiB (`MAX_HEAD_SIZE`): offsets fit in 32 bits.
        let at = |offset: usize| u32::try_from(offset).unwrap_or(u32::MAX);
        self.spans.push(Span {
            line_start: at(name.0),
            name_end: at(name.1),
            value_start: at(value.0),
            value_end: at(value.1),
        });
    }

    /// Writes every field, `name: value` and CRLF, as it came (the line from the name to the
    /// value's end: httparse admits no CR or LF in it, as long as obsolete line folding stays
    /// refused, its default), but Content-Length, which [`content_length`](Self::content_length)
    /// carries.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        for span in &self.spans {
            let name = &self.head[span.line_start as usize..span.name_end as usize];
            if name.eq_ignore_ascii_case(b"content-length") {
                continue;
            }
            let line = &self.head[span.line_start as usize..span.value_end as usize];
            debug_assert!(!line.contains(&b'\r') && !line.contains(&b'\n'));
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
    }

    /// The fields as a header map, added to `headers` (Content-Length as its one value).
    pub(crate) fn add_to(self, headers: &mut HeaderMap) {
        headers.reserve(self.spans.len());
        for span in &self.spans {
            let name = &self.head[span.line_start as usize..span.name_end as usize];
            if name.eq_ignore_ascii_case(b"content-length") {
                continue;
            }
            let value = self
                .head
                .slice(span.value_start as usize..span.value_end as usize);
            // httparse admitted both; a name or value the http crate still refuses is left out.
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name),
                HeaderValue::from_maybe_shared(value),
            ) {
                headers.append(name, value);
            }
        }
        if let Some(length) = self.content_length {
            headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(length));
        }
    }
}

/// A response body that may carry its head's fields as [`Fields`], for the writer to copy.
pub(crate) trait FieldSource {
    /// Takes the fields, if the response has them this way (its header map then holds only
    /// what was added to it).
    fn take_fields(&mut self) -> Option<Fields>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_written_as_they_came_and_mapped_alike() {
        let head = Bytes::from_static(b"HTTP/1.1 200 OK\r\nX-A:  b c\r\nContent-Length: 2\r\n\r\n");
        let mut fields = Fields::new(2);
        let find = |needle: &[u8]| {
            head.windows(needle.len())
                .position(|window| window == needle)
                .unwrap()
        };
        let a = find(b"X-A");
        fields.keep((a, a + 3), (find(b"b c"), find(b"b c") + 3));
        let length = find(b"Content-Length");
        fields.keep((length, length + 14), (find(b"2\r"), find(b"2\r") + 1));
        let fields = fields.of_head(head.clone());
        let mut fields = fields;
        fields.content_length = Some(2);
        let mut out = Vec::new();
        fields.encode(&mut out);
        assert_eq!(out, b"X-A:  b c\r\n", "the length is the writer's to write");
        let mut map = HeaderMap::new();
        fields.add_to(&mut map);
        assert_eq!(map["x-a"], "b c");
        assert_eq!(map["content-length"], "2");
    }
}
