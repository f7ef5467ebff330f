//! Authentication of requests: basic credentials, and bearer tokens
//! fetched per scope set from the realm a registry's challenge names,
//! cached until shortly before their `expires_in`.

use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{error_message, read_limited, Client, MAX_MANIFEST_BYTES};
use crate::registry::auth::{self, Challenge};
use crate::registry::Error;

/// A bearer token and when to stop using it.
pub(super) struct Token {
    value: String,
    /// `expires_in` after it was issued (less a margin), so that a long
    /// push asks for a new one before the registry rejects the old one.
    expires: Instant,
}

/// What the token spec says to assume when a response has no `expires_in`.
const DEFAULT_TOKEN_SECONDS: u64 = 60;

impl Client {
    /// The `Authorization` header for a request needing `scopes`, fetching
    /// a token if the registry uses bearer tokens and none is cached.
    pub(super) fn authorization(&self, scopes: &[String]) -> Result<Option<String>, Error> {
        let (bearer, basic) = {
            let state = self.auth.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(token) = state
                .tokens
                .get(&scopes.join(" "))
                .filter(|t| t.expires > Instant::now())
            {
                return Ok(Some(format!("Bearer {}", token.value)));
            }
            (state.bearer.clone(), state.basic)
        };
        if let Some((realm, service)) = bearer {
            let token = self.fetch_token(&realm, service.as_deref(), scopes)?;
            let header = format!("Bearer {}", token.value);
            self.auth
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .tokens
                .insert(scopes.join(" "), token);
            return Ok(Some(header));
        }
        Ok(match (&self.credentials, basic) {
            (Some(creds), true) => Some(auth::basic_header(creds)),
            _ => None,
        })
    }

    /// Learns from a 401 how to authenticate, so that the retry can; the
    /// `Authorization` value for the retry when it is a new bearer token.
    pub(super) fn answer_challenge(
        &self,
        op: &'static str,
        url: &str,
        header: Option<&str>,
        scopes: &[String],
    ) -> Result<Option<String>, Error> {
        let unauthorized = |reason: String| Error::Unauthorized {
            op,
            url: url.to_string(),
            reason,
        };
        match header.and_then(auth::parse_challenge) {
            Some(Challenge::Basic) => {
                if self.credentials.is_none() {
                    return Err(unauthorized(format!(
                        "the registry wants a user name and password and none is configured for {} \
                         (docker login, or the auth option)",
                        self.host
                    )));
                }
                self.auth.lock().unwrap_or_else(|e| e.into_inner()).basic = true;
                Ok(None)
            }
            Some(Challenge::Bearer {
                realm,
                service,
                scope,
                ..
            }) => {
                // Ask for what the request needs plus whatever the
                // challenge names, cached under the request's own scopes.
                let mut wanted = scopes.to_vec();
                for s in scope.iter().flat_map(|s| s.split(' ')) {
                    if !s.is_empty() && !wanted.iter().any(|w| w == s) {
                        wanted.push(s.to_string());
                    }
                }
                let token = self.fetch_token(&realm, service.as_deref(), &wanted)?;
                let header = format!("Bearer {}", token.value);
                let mut state = self.auth.lock().unwrap_or_else(|e| e.into_inner());
                state.bearer = Some((realm, service));
                state.tokens.insert(scopes.join(" "), token);
                Ok(Some(header))
            }
            None => Err(unauthorized(format!(
                "unsupported authentication challenge `{}`",
                header.unwrap_or("")
            ))),
        }
    }

    /// `GET realm?service=…&scope=…`, with basic credentials when known.
    fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<Token, Error> {
        let asked = Instant::now();
        let token_error = |reason: String| Error::Token {
            realm: realm.to_string(),
            reason,
        };
        let mut request = self.agent.get(realm);
        if let Some(service) = service {
            request = request.query("service", service);
        }
        for scope in scopes {
            request = request.query("scope", scope);
        }
        if let Some(creds) = &self.credentials {
            request = request.set("Authorization", &auth::basic_header(creds));
        }
        let response = match request.call() {
            Ok(response) => response,
            Err(ureq::Error::Status(status @ (401 | 403), response)) => {
                let who = match &self.credentials {
                    Some((user, _)) => format!(
                        "the token service refused the credentials of user `{user}` \
                         (wrong password? bake login {})",
                        self.host
                    ),
                    None => format!(
                        "the token service wants credentials and none are configured for {} \
                         (bake login {})",
                        self.host, self.host
                    ),
                };
                return Err(Error::Unauthorized {
                    op: "get token",
                    url: realm.to_string(),
                    reason: format!("{who}: HTTP {status}: {}", error_message(response)),
                });
            }
            Err(ureq::Error::Status(status, response)) => {
                return Err(token_error(format!(
                    "HTTP {status}: {}",
                    error_message(response)
                )))
            }
            Err(ureq::Error::Transport(t)) => return Err(token_error(t.to_string())),
        };
        #[derive(Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let bytes = read_limited(response, MAX_MANIFEST_BYTES, "token response", realm)?;
        let parsed: TokenResponse =
            serde_json::from_slice(&bytes).map_err(|e| token_error(e.to_string()))?;
        let seconds = parsed.expires_in.unwrap_or(DEFAULT_TOKEN_SECONDS);
        let value = parsed
            .token
            .or(parsed.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| token_error("no token in the response".to_string()))?;
        Ok(Token {
            value,
            // A tenth of its life (at least a second) early: the request
            // that uses it must still arrive in time.
            expires: asked + Duration::from_secs(seconds - (seconds / 10).max(1).min(seconds)),
        })
    }
}
