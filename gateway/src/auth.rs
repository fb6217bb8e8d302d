//! Bearer tokens (`[[gateway.tokens]]`): when any is configured, every request except the
//! explorer page, `/healthz`, `/readyz` and `/metrics` needs `Authorization: Bearer
//! <token>`. The configuration holds each token's SHA-256, never the token; a request's
//! token is hashed and looked up. A token may stand for a user: then every transaction it
//! submits must be signed first by that user (the transaction's actor), so a leaked
//! token cannot submit in another user's name even with that user's signed bytes.
//!
//! Tokens never appear in logs, errors or metrics: a rejection names the token's
//! configured `name` (or "unknown token"), nothing else.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use actors::config::TokenSection;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use crypto_parallel::PublicKey;
use sha2::{Digest, Sha256};

use crate::problem::ApiError;

/// Paths open without a token: liveness, readiness, metrics (scraped by Prometheus on
/// the node's network) and the explorer page (static; its API calls need a token).
const OPEN_PATHS: [&str; 4] = ["/", "/healthz", "/readyz", "/metrics"];

/// Who a request's token names; handlers find it in the request's extensions.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's configured name.
    pub name: String,
    /// The user the token stands for, if any.
    pub user: Option<PublicKey>,
}

/// The configured tokens, by hash.
#[derive(Clone, Default)]
pub struct Tokens(Arc<HashMap<[u8; 32], Caller>>);

impl Tokens {
    /// The tokens of `[[gateway.tokens]]`.
    pub fn new(tokens: &[TokenSection]) -> Self {
        Tokens(Arc::new(
            tokens
                .iter()
                .map(|t| (t.sha256, Caller { name: t.name.clone(), user: t.user.clone() }))
                .collect(),
        ))
    }

    /// True when no token is configured (the API is open).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn find(&self, token: &str) -> Option<&Caller> {
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.0.get(&hash)
    }
}

/// The hex SHA-256 of `token`, as `[[gateway.tokens]] sha256` wants it.
pub fn token_hash_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn unauthenticated(detail: &str) -> Response {
    let mut response =
        ApiError::new(401, "UNAUTHENTICATED", "authentication required", detail).into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// The middleware: checks the bearer token and records the [`Caller`].
pub async fn require_token(
    State(tokens): State<Tokens>,
    mut request: Request,
    next: Next,
) -> Response {
    if tokens.is_empty() || OPEN_PATHS.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let remote = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0);
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        // The scheme is case-insensitive (RFC 7235 §2.1).
        .and_then(|value| value.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty());
    let Some(presented) = presented else {
        return unauthenticated("send `Authorization: Bearer <token>`");
    };
    let Some(caller) = tokens.find(presented).cloned() else {
        tracing::warn!(remote = ?remote, path = request.uri().path(), "unknown bearer token");
        return unauthenticated("unknown token");
    };
    tracing::debug!(token = %caller.name, path = request.uri().path(), "authenticated");
    request.extensions_mut().insert(caller);
    next.run(request).await
}
