//! Where access tokens come from.
//!
//! Every request that may carry a token asks a [`TokenProvider`] for one, just before it is
//! sent, so a provider that mints short-lived tokens (SMART Backend Services: a signed JWT client
//! assertion exchanged for a ≤ 300 s token) can cache and renew them on its own; that provider
//! implements this trait in its own module. Downloads ask only when the manifest says
//! `requiresAccessToken: true`.

use std::future::Future;
use std::pin::Pin;

use crate::Error;

/// The future a [`TokenProvider`] returns: a bearer token, or `None` to send no
/// `Authorization` header.
pub type TokenFuture<'a> = Pin<Box<dyn Future<Output = Result<Option<String>, Error>> + Send + 'a>>;

/// A source of bearer tokens for the kick-off, status, download and DELETE requests.
pub trait TokenProvider: Send + Sync {
    /// The token to send now (renewed by the provider when it is about to expire).
    fn access_token(&self) -> TokenFuture<'_>;

    /// The server answered 401 to `token`: a provider that caches tokens drops it, so the
    /// next [`access_token`](TokenProvider::access_token) gets a new one. The request is then
    /// tried once more. Providers without a cache have nothing to drop.
    fn invalidate(&self, _token: &str) {}
}

/// No authorization: an open server.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAuth;

impl TokenProvider for NoAuth {
    fn access_token(&self) -> TokenFuture<'_> {
        Box::pin(async { Ok(None) })
    }
}

/// A fixed bearer token (`--token` or `HAVEN_TOKEN`), obtained out of band.
#[derive(Clone)]
pub struct StaticToken(String);

impl StaticToken {
    /// A provider that always sends `token`.
    pub fn new(token: impl Into<String>) -> Self {
        StaticToken(token.into())
    }
}

impl std::fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StaticToken(..)")
    }
}

impl TokenProvider for StaticToken {
    fn access_token(&self) -> TokenFuture<'_> {
        Box::pin(async { Ok(Some(self.0.clone())) })
    }
}
