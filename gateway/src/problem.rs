//! RFC 7807 problems: every error the gateway answers, with a stable `code`
//! (`docs/OPERATIONS.md` lists them).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sdk::wire::Problem;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    problem: Problem,
    retry_after_s: Option<u32>,
    /// Extension member `errors` (one entry per problem of a document).
    errors: Vec<serde_json::Value>,
}

impl ApiError {
    /// A problem with `status`, stable `code`, summary `title` and `detail`.
    pub fn new(status: u16, code: &str, title: &str, detail: impl Into<String>) -> Self {
        ApiError {
            problem: Problem {
                status,
                code: code.to_owned(),
                title: title.to_owned(),
                detail: detail.into(),
            },
            retry_after_s: None,
            errors: Vec::new(),
        }
    }

    /// Adds the `errors` extension member: each problem of a document.
    pub fn with_errors(mut self, errors: Vec<serde_json::Value>) -> Self {
        self.errors = errors;
        self
    }

    /// 400 naming the bad parameter or field.
    pub fn bad_parameter(field: &str, reason: impl std::fmt::Display) -> Self {
        Self::new(400, "BAD_PARAMETER", "bad parameter", format!("{field}: {reason}"))
    }

    /// 404 for a missing thing (`UNKNOWN_LEDGER`, `UNKNOWN_BLOCK`, …).
    pub fn not_found(code: &str, detail: impl Into<String>) -> Self {
        Self::new(404, code, "not found", detail)
    }

    /// 500: the node failed (storage); the detail is logged by the caller's log too.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Self::new(500, "INTERNAL", "internal error", detail.to_string())
    }

    /// Adds `Retry-After` (seconds).
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after_s = Some(seconds);
        self
    }

    /// The problem's code.
    pub fn code(&self) -> &str {
        &self.problem.code
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.problem.status
    }

    /// What went wrong, for a person (`detail`).
    pub fn detail(&self) -> &str {
        &self.problem.detail
    }
}

impl From<engine::ledger::EngineError> for ApiError {
    fn from(error: engine::ledger::EngineError) -> Self {
        match error {
            engine::ledger::EngineError::InvalidInput(detail) => {
                Self::new(400, "BAD_PARAMETER", "bad parameter", detail)
            }
            other => Self::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut body = serde_json::to_value(&self.problem).unwrap_or_default();
        if !self.errors.is_empty()
            && let Some(map) = body.as_object_mut()
        {
            map.insert("errors".into(), serde_json::Value::Array(self.errors));
        }
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(seconds) = self.retry_after_s {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
