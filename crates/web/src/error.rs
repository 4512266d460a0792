//! The API's error format: every refusal is `{"error": {"code": "…", "message": "…"}}` with an
//! HTTP status that matches the code. Codes come from the service layer and are stable.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use postfach_core::Error;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `quota_exceeded`, `weak_password`, `forbidden`.
    pub code: String,
    /// One sentence for people.
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<i64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_input", message)
    }
}

pub fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::Invalid { .. } => StatusCode::BAD_REQUEST,
        Error::WeakPassword(_) | Error::RenameNotSupported { .. } => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        Error::NotFound { .. } => StatusCode::NOT_FOUND,
        Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Error::Duplicate { .. }
        | Error::OverQuota(_)
        | Error::QuotaExceeded { .. }
        | Error::CatchallNotAvailable { .. }
        | Error::Conflict(_) => StatusCode::CONFLICT,
        Error::Forbidden(_) => StatusCode::FORBIDDEN,
        Error::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        Error::CreationLimit { .. } | Error::Throttled { .. } | Error::SendingLimit { .. } => {
            StatusCode::TOO_MANY_REQUESTS
        }
        Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let message = match &e {
            // Details of internal failures go to the log, not to the client.
            Error::Internal(_) => "internal error; see the server log".to_string(),
            other => other.to_string(),
        };
        let mut api = ApiError::new(status_of(&e), e.code(), message);
        if let Error::Throttled { retry_after } = e {
            api.retry_after = Some(retry_after);
        }
        api
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        let retry_after = self.retry_after;
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(seconds) = retry_after
            && let Ok(v) = header::HeaderValue::from_str(&seconds.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"postfach\""),
            );
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
