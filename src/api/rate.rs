//! A per-token rate limit: a fixed one-minute window per token (kept in memory, per
//! instance). Beyond it, 429 with `Retry-After` (seconds until the window ends).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use poem::{Endpoint, IntoResponse, Request, Response};
use sha2::{Digest, Sha256};

use super::problem::ApiError;

const WINDOW: Duration = Duration::from_secs(60);

/// Counts requests per key in fixed windows.
#[derive(Default)]
pub struct Limiter {
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Limiter {
    /// Counts one request of `key` at `now`; `Err(seconds)` to wait when over `limit`.
    pub fn hit(&self, key: &str, now: Instant, limit: u32) -> Result<(), u64> {
        let mut w = self
            .windows
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if w.len() > 100_000 {
            w.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        }
        let entry = w.entry(key.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        if entry.1 >= limit {
            let left = WINDOW.saturating_sub(now.duration_since(entry.0));
            return Err(left.as_secs().max(1));
        }
        entry.1 += 1;
        Ok(())
    }
}

/// The middleware.
pub struct RateLimit<E> {
    /// The API.
    pub inner: E,
    /// The counts.
    pub limiter: Limiter,
    /// Requests per token per minute.
    pub per_minute: u32,
}

impl<E: Endpoint> Endpoint for RateLimit<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let token = req
            .headers()
            .get(poem::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if let Some(t) = token {
            // Keyed by the token's hash: the secret is not kept in memory longer than needed.
            let key = hex::encode(Sha256::digest(t.as_bytes()));
            if let Err(wait) = self.limiter.hit(&key, Instant::now(), self.per_minute) {
                return Ok(ApiError::rate_limited(wait).into_response());
            }
        }
        self.inner.call(req).await.map(IntoResponse::into_response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_over_its_limit_waits_for_the_window() {
        let l = Limiter::default();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.hit("a", t0, 3), Ok(()));
        }
        let wait = l
            .hit("a", t0 + Duration::from_secs(20), 3)
            .expect_err("over");
        assert_eq!(wait, 40);
        assert_eq!(l.hit("b", t0, 3), Ok(()), "other tokens are not affected");
        assert_eq!(l.hit("a", t0 + Duration::from_secs(60), 3), Ok(()));
    }
}
