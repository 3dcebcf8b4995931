//! The request as the adapter snapshots it in the headers phase: what every stage reads.

/// The request as the adapter snapshots it in the headers phase.
#[derive(Debug, Clone, Default)]
pub struct RequestFacts {
    /// `:method`.
    pub method: String,
    /// Raw `:path`, query included.
    pub path: String,
    /// `:authority` (or `host`).
    pub authority: String,
    /// Request headers whose name and value are text (UTF-8), names lower-case as Envoy gives
    /// them, in order. A header whose value is not UTF-8 is in `opaque` instead.
    pub headers: Vec<(String, String)>,
    /// Request headers whose name or value is not UTF-8 (RFC 9110 obs-text such as a Latin-1
    /// file name), as bytes, in order. They go upstream untouched; a check that reads one of
    /// them refuses the request ([`crate::inbound::check_route_headers`]).
    pub opaque: Vec<(Vec<u8>, Vec<u8>)>,
    /// The headers end the request (no body follows).
    pub end_of_stream: bool,
}

/// A header exists but its value is not text (UTF-8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotText;

impl RequestFacts {
    /// The first text value of a header (name lower-case). `None` also when the header's only
    /// values are not UTF-8: use [`Self::header_text`] where absence matters.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// The first value of a header as text; `Err(NotText)` when any value of it is not UTF-8,
    /// so that a value that is not text never reads as an absent header.
    pub fn header_text(&self, name: &str) -> Result<Option<&str>, NotText> {
        if self
            .opaque
            .iter()
            .any(|(k, _)| k.as_slice() == name.as_bytes())
        {
            return Err(NotText);
        }
        Ok(self.header(name))
    }
    /// Whether the request has this header at all (text or not; name lower-case).
    pub fn has_header(&self, name: &str) -> bool {
        self.headers.iter().any(|(k, _)| k == name)
            || self
                .opaque
                .iter()
                .any(|(k, _)| k.as_slice() == name.as_bytes())
    }
    /// The first value of a header as bytes, text or not (text values first).
    pub fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        self.header(name).map(str::as_bytes).or_else(|| {
            self.opaque
                .iter()
                .find(|(k, _)| k.as_slice() == name.as_bytes())
                .map(|(_, v)| v.as_slice())
        })
    }
    /// True for a gRPC request as Envoy decides it (`content-type` is `application/grpc` or
    /// starts with `application/grpc+`): Envoy then turns a local reply into a gRPC status.
    pub fn is_grpc(&self) -> bool {
        self.header("content-type")
            .is_some_and(|ct| ct == "application/grpc" || ct.starts_with("application/grpc+"))
    }
    /// `x-request-id`, set by Envoy's connection manager.
    pub fn request_id(&self) -> Option<&str> {
        self.header("x-request-id")
    }
}
