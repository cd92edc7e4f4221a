//! One mint, the same way for every route that mints (`POST /v1/tokens`, `POST /oauth2/token`)
//! and for `tokenmint mint`. Read top to bottom, it is what happens once a request's envelope
//! is parsed:
//!
//! 1. [`App::limit_client`]: the client address spends its quota, before any credential is
//!    looked at (so bad credentials cannot burn CPU).
//! 2. [`App::admit`]: the credential is verified (a refusal is counted and logged with its
//!    reason), then the principal spends its own quota.
//! 3. [`App::issue`]: the policy decides (the deny list first: a refusal there is counted and
//!    audited); a backend naming another identity spends that identity's quota too; the rule's
//!    Twilio account signs; the audit record is written (or, unless the operator chose
//!    best effort, the token is not handed out); the grants are counted.
//!
//! Plain values in and out, no HTTP: each route turns an [`IssueError`] into its own envelope
//! (problem+json, or an RFC 6749 error).

use std::net::IpAddr;

use secrecy::ExposeSecret;
use tracing::Instrument;

use crate::app::App;
use crate::audit::{self, AuditError, Timestamp, TokenMinted, TokenRefused};
use crate::auth::{Accepted, AuthError, Principal, identity_quota_key};
use crate::policy::{PolicyError, TokenRequest};
use crate::ratelimit::{RateLimitError, RateLimitFields};
use crate::token::TokenError;

/// Why no token was issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error(transparent)]
    Unauthorized(#[from] AuthError),
    #[error(transparent)]
    RateLimited(#[from] RateLimitError),
    #[error(transparent)]
    Refused(#[from] PolicyError),
    #[error(transparent)]
    Token(#[from] TokenError),
    /// A bug: the policy chose an account that has no minter.
    #[error("{0}")]
    Internal(String),
    /// The token's audit record could not be written, so the token is not handed out.
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// A verified principal, and the state of its own quota.
#[derive(Debug)]
pub struct Admitted {
    pub principal: Principal,
    pub quota: RateLimitFields,
}

/// A token and what it carries, for any envelope's answer.
#[derive(Debug)]
pub struct Issued {
    pub token: String,
    pub identity: String,
    pub ttl: u32,
    pub expires_at: u64,
    pub grants: Vec<&'static str>,
    /// The Twilio region the token is for, when its account has one: where SDKs should connect.
    pub region: Option<String>,
}

impl App {
    /// The quota of `client` on `route` (a route template).
    pub async fn limit_client(&self, route: &str, client: IpAddr) -> Result<RateLimitFields, IssueError> {
        self.limiter.load_full().check_ip(route, client).await.map_err(|e| self.limited(e))
    }

    /// Verifies `credential` (of the kinds `accepted` names), then spends the principal's quota.
    pub async fn admit(
        &self,
        credential: Result<&str, AuthError>,
        accepted: Accepted,
        request_id: &str,
    ) -> Result<Admitted, IssueError> {
        let verified = match credential {
            Ok(credential) => {
                let authenticator = self.authenticator.load_full();
                authenticator.authenticate(credential, accepted).instrument(tracing::debug_span!("authenticate")).await
            }
            Err(e) => Err(e),
        };
        let principal = verified.inspect_err(|e| {
            self.metrics.auth_failures.with_label_values(&[e.reason()]).inc();
            tracing::info!(reason = e.reason(), request_id, "authentication failed");
        })?;
        let quota = self
            .limiter
            .load_full()
            .check_identity(&principal.quota_key(), &principal.roles)
            .await
            .map_err(|e| self.limited(e))?;
        tracing::Span::current().record("identity", principal.identity.as_str());
        Ok(Admitted { principal, quota })
    }

    /// Decides, mints, counts and audits one token for `principal`, signed at `now`.
    pub async fn issue(
        &self,
        principal: &Principal,
        request: &TokenRequest,
        client_ip: IpAddr,
        request_id: &str,
        now: u64,
    ) -> Result<Issued, IssueError> {
        let trace_id = crate::traces::current_trace_id();
        let decision = tracing::debug_span!("policy").in_scope(|| self.policy.load().decide(principal, request));
        let decision = decision.inspect_err(|e| {
            if let PolicyError::Denied(list) = e {
                self.metrics.denied.with_label_values(&[list.label()]).inc();
                self.audit.record_quietly(&TokenRefused {
                    timestamp: Timestamp::now(),
                    level: "INFO",
                    target: audit::TARGET,
                    message: "token refused: deny list",
                    request_id,
                    trace_id: trace_id.as_deref(),
                    identity: request.identity.as_deref().unwrap_or(&principal.identity),
                    subject: &principal.subject,
                    principal: principal.source.to_string(),
                    deny_list: list.label(),
                    client_ip,
                });
            }
        })?;
        // A backend minting for someone else spends their quota as well as its own.
        if decision.spec.identity != principal.identity {
            self.limiter
                .load_full()
                .check_identity(&identity_quota_key(&decision.spec.identity), &[])
                .await
                .map_err(|e| self.limited(e))?;
        }
        let minters = self.minters.load();
        let minter = minters.get(&decision.account).ok_or_else(|| {
            IssueError::Internal(format!(
                "policy rule {:?} chose the unloaded account {:?}",
                decision.rule, decision.account
            ))
        })?;
        let timer = self.metrics.mint_duration.start_timer();
        let minted =
            tracing::debug_span!("mint", account = %decision.account).in_scope(|| minter.mint(&decision.spec, now))?;
        timer.observe_duration();
        let grants = decision.spec.grants.names();
        // The record first: a token whose record is not written is not handed out.
        let record = TokenMinted {
            timestamp: Timestamp::now(),
            level: "INFO",
            target: audit::TARGET,
            message: "token minted",
            request_id,
            trace_id: trace_id.as_deref(),
            identity: &decision.spec.identity,
            original_identity: decision.original_identity.as_deref(),
            subject: &principal.subject,
            principal: principal.source.to_string(),
            tenant: principal.tenant.as_deref(),
            rule: &decision.rule,
            account: &decision.account,
            grants: &grants,
            ttl: decision.spec.ttl_secs,
            jti: &minted.jti,
            key_sid: &minted.key_sid,
            client_ip,
        };
        self.audit.record(&record).instrument(tracing::debug_span!("audit")).await?;
        for grant in &grants {
            self.metrics.tokens_issued.with_label_values(&[grant]).inc();
        }
        Ok(Issued {
            token: minted.token.expose_secret().to_owned(),
            identity: decision.spec.identity,
            ttl: decision.spec.ttl_secs,
            expires_at: minted.expires_at,
            grants,
            region: minter.region().map(str::to_owned),
        })
    }

    /// A rate-limit refusal, counted by the limit that refused.
    fn limited(&self, error: RateLimitError) -> IssueError {
        if let RateLimitError::Limited(limited) = &error {
            self.metrics.rate_limited.with_label_values(&[limited.scope.label()]).inc();
        }
        error.into()
    }
}
