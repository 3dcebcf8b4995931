//! `mask_upstream_errors`: an upstream 5xx (or a 5xx Envoy made on the upstream's behalf, such
//! as "no healthy upstream") becomes meshguard's problem+json with the same status, so stack
//! traces and infrastructure detail never leave the mesh.
//!
//! It decides from the status and content type alone; it never reads the upstream's body.

use crate::error::{reply, Denial, Reason, Reply};

/// Whether a response with this status and content type is masked (when masking is on).
/// gRPC answers carry their error in trailers and are left alone.
pub fn masks(status: u16, content_type: Option<&[u8]>) -> bool {
    let grpc = content_type.is_some_and(|c| c.starts_with(b"application/grpc"));
    (500..=599).contains(&status) && !grpc
}

/// The problem reply that replaces an upstream error, with the upstream's status.
pub fn masked_reply(status: u16, request_id: Option<&str>) -> Reply {
    status_reply(&Denial::new(Reason::UpstreamError), status, request_id)
}

/// A denial's reply with another status than its reason's (the problem body says it too).
pub fn status_reply(denial: &Denial, status: u16, request_id: Option<&str>) -> Reply {
    let mut r = reply(denial, request_id);
    if r.status != status {
        r.status = status;
        if let Ok(serde_json::Value::Object(mut m)) = serde_json::from_slice(&r.body) {
            m.insert("status".into(), status.into());
            if let Ok(b) = serde_json::to_vec(&m) {
                r.body = b;
            }
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_5xx_but_not_grpc_or_4xx() {
        assert!(masks(500, Some(b"text/html")));
        assert!(masks(503, None));
        assert!(!masks(404, Some(b"text/html")));
        assert!(!masks(500, Some(b"application/grpc+proto")));
    }

    #[test]
    fn masked_reply_keeps_the_status_and_says_nothing_else() {
        let r = masked_reply(503, Some("req-1"));
        assert_eq!(r.status, 503);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["status"], 503);
        assert_eq!(v["reason"], "upstream_error");
        assert_eq!(v["request_id"], "req-1");
        assert!(v.get("detail").is_none());
    }
}
