//! Cloudflare's v4 envelope: `{"success","errors","messages","result"}`,
//! plus `result_info` on paginated lists.

use axum::http::StatusCode;
use serde_json::{json, Value};

/// A failed call, answered as Cloudflare does: HTTP status plus one
/// `{code, message}` in `errors`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: u32,
    pub message: String,
    /// The request itself is wrong whatever the state (e.g. percentages
    /// not summing to 100), so it is also recorded as a violation.
    pub violation: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, code: u32, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            violation: false,
        }
    }

    /// A 400 for a request that Cloudflare refuses on its content alone.
    pub fn invalid_request(code: u32, message: impl Into<String>) -> ApiError {
        ApiError {
            violation: true,
            ..ApiError::bad_request(code, message)
        }
    }

    pub fn bad_request(code: u32, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(code: u32, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    /// What Cloudflare answers for a path it has no route for: 400/7000.
    pub fn no_route() -> ApiError {
        ApiError::bad_request(7000, "No route for that URI")
    }

    /// What Cloudflare answers when an identifier in the path leads nowhere
    /// (an account the token cannot reach, a malformed id): 400/7003 naming
    /// the path below `/client/v4`.
    pub fn unroutable(path: &str) -> ApiError {
        ApiError::bad_request(
            7003,
            format!("Could not route to {path}, perhaps your object identifier is invalid?"),
        )
    }

    pub fn conflict(code: u32, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }

    pub fn body(&self) -> Value {
        json!({
            "success": false,
            "errors": [{"code": self.code, "message": self.message}],
            "messages": [],
            "result": null,
        })
    }
}

/// A successful call's `result` (and `result_info` for lists).
#[derive(Debug, Clone)]
pub struct Reply {
    pub result: Value,
    pub result_info: Option<Value>,
    pub messages: Vec<Value>,
    /// A non-envelope answer (content type, body), e.g. a script download.
    pub raw: Option<(String, bytes::Bytes)>,
}

impl Reply {
    pub fn new(result: Value) -> Reply {
        Reply {
            result,
            result_info: None,
            messages: Vec::new(),
            raw: None,
        }
    }

    pub fn body(&self) -> Value {
        let mut body = json!({
            "success": true,
            "errors": [],
            "messages": self.messages,
            "result": self.result,
        });
        if let Some(info) = &self.result_info {
            body["result_info"] = info.clone();
        }
        body
    }
}

pub type ApiResult = Result<Reply, ApiError>;

/// Page-based pagination as Cloudflare does it: `page` from 1, `per_page`,
/// and `result_info {page, per_page, count, total_count, total_pages}`.
pub fn paginate(items: Vec<Value>, page: Option<u64>, per_page: u64) -> Reply {
    let page = page.unwrap_or(1).max(1);
    let per_page = per_page.max(1);
    let total = items.len() as u64;
    let start = ((page - 1) * per_page).min(total) as usize;
    let slice: Vec<Value> = items
        .into_iter()
        .skip(start)
        .take(per_page as usize)
        .collect();
    let info = json!({
        "page": page,
        "per_page": per_page,
        "count": slice.len(),
        "total_count": total,
        "total_pages": total.div_ceil(per_page),
    });
    Reply {
        result: Value::Array(slice),
        result_info: Some(info),
        messages: Vec::new(),
        raw: None,
    }
}
