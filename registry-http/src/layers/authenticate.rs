//! Authentication: the caller's credentials, verified once, placed in the request's extensions
//! as an [`Authentication`] for the services behind to authorize against.
//!
//! Three modes: bearer tokens (the distribution API), Basic credentials through the
//! [`Authenticator`] (the management API, as Harbor's), and an identity assumed for every
//! request (the local admin socket, whose file permissions are the credential). A failed check is
//! recorded, not answered: the service behind knows which challenge to send. Only a locked
//! account (429) and a fault of the account store are answered here.

use std::sync::Arc;
use std::time::Duration;

use registry_auth::{AuthError, Authenticator, Credentials, Identity, TokenError, TokenVerifier, VerifiedToken};
use registry_core::event::Operator;

use super::{BoxService, FnLayer, Layer, call, service_fn};
use crate::error::ApiError;
use crate::request::RequestBody;

/// How long after expiry a token still authorizes requests on an upload session it could have
/// started (see `distribution::access`).
pub const UPLOAD_GRACE: Duration = Duration::from_secs(3600);

/// Who the caller proved to be.
#[derive(Debug, Clone)]
pub enum Authentication {
    /// No credentials (or credentials of a kind this service does not take).
    Anonymous,
    /// A valid bearer token.
    Token(VerifiedToken),
    /// A bearer token past its expiry by less than [`UPLOAD_GRACE`]: good only on an upload
    /// session.
    ExpiredToken(VerifiedToken),
    /// A bearer token that does not verify (the reason is for the log).
    InvalidToken(TokenError),
    /// An identity proved by Basic credentials, a session, or the admin socket.
    Identity(Identity),
    /// Basic credentials that do not verify.
    InvalidCredentials,
}

impl Authentication {
    /// Who a request's changes and pulls are recorded for, from its credentials and the client's
    /// address.
    pub fn operator_of(req: &http::Request<RequestBody>) -> Operator {
        let address = crate::request::client_ip(req);
        match req.extensions().get::<Authentication>() {
            Some(Authentication::Token(t) | Authentication::ExpiredToken(t)) if !t.claims.sub.is_empty() => {
                Operator::named(&t.claims.sub, address)
            }
            Some(Authentication::Identity(Identity::User { name, .. } | Identity::Robot { name, .. })) => {
                Operator::named(name, address)
            }
            _ => Operator::anonymous(address),
        }
    }

    /// The identity, when one was proved.
    pub fn identity(&self) -> Option<&Identity> {
        match self {
            Authentication::Identity(who) => Some(who),
            _ => None,
        }
    }
}

/// How the layer authenticates.
#[derive(Clone)]
pub enum Mode {
    /// Bearer tokens, checked by this verifier.
    Bearer(TokenVerifier),
    /// Basic credentials, checked by this authenticator, or the portal's session cookie when
    /// sessions are on (see [`crate::session`]).
    Basic(Arc<dyn Authenticator>, Option<crate::session::Sessions>),
    /// Every request is this identity.
    Assume(Identity),
}

/// Verifies a bearer token, with the upload grace.
pub(crate) fn verify_bearer(verifier: &TokenVerifier, token: &str) -> Authentication {
    let now = registry_core::time::now_secs();
    match verifier.verify_at(token, now) {
        Ok(t) => Authentication::Token(t),
        Err(AuthError::InvalidToken(TokenError::Expired)) => {
            match verifier.verify_with_grace(token, now, UPLOAD_GRACE.as_secs()) {
                Ok(t) => Authentication::ExpiredToken(t),
                Err(AuthError::InvalidToken(reason)) => Authentication::InvalidToken(reason),
                Err(_) => Authentication::InvalidToken(TokenError::Malformed),
            }
        }
        Err(AuthError::InvalidToken(reason)) => Authentication::InvalidToken(reason),
        Err(_) => Authentication::InvalidToken(TokenError::Malformed),
    }
}

async fn authenticate(
    mode: &Mode,
    req: &http::Request<RequestBody>,
) -> Result<(Authentication, Option<crate::session::Session>), ApiError> {
    let header = || req.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if let Mode::Basic(authenticator, Some(sessions)) = mode
        && Credentials::from_authorization(header()) == Credentials::None
        && let Some((who, session)) = crate::session::signed_in(authenticator.as_ref(), sessions, req.headers()).await?
    {
        return Ok((Authentication::Identity(who), Some(session)));
    }
    let authentication = match mode {
        Mode::Assume(who) => Authentication::Identity(who.clone()),
        // Borrowed: a token is read on every distribution request, never copied.
        Mode::Bearer(verifier) => match Credentials::bearer(header()) {
            Some(token) => verify_bearer(verifier, token),
            None => Authentication::Anonymous,
        },
        Mode::Basic(authenticator, _) => {
            basic(authenticator.as_ref(), Credentials::from_authorization(header())).await?
        }
    };
    Ok((authentication, None))
}

/// Basic credentials through the authenticator (anything else is anonymous here).
async fn basic(authenticator: &dyn Authenticator, credentials: Credentials) -> Result<Authentication, ApiError> {
    Ok(match credentials {
        Credentials::Basic { username, password } => match authenticator.authenticate(&username, &password).await {
            Ok(who) => Authentication::Identity(who),
            Err(AuthError::InvalidCredentials) => {
                tracing::info!(user = %username, "login refused");
                Authentication::InvalidCredentials
            }
            Err(e) => return Err(e.into()),
        },
        _ => Authentication::Anonymous,
    })
}

/// Whether a method changes something (and so needs the CSRF token with a session).
fn changes(method: &http::Method) -> bool {
    !matches!(*method, http::Method::GET | http::Method::HEAD | http::Method::OPTIONS)
}

/// The layer.
pub fn layer(mode: Mode) -> impl Layer<BoxService, Service = BoxService> + Clone {
    let mode = Arc::new(mode);
    FnLayer(move |inner: BoxService| {
        let mode = mode.clone();
        service_fn(move |mut req: http::Request<RequestBody>| {
            let (inner, mode) = (inner.clone(), mode.clone());
            async move {
                match authenticate(&mode, &req).await {
                    Ok((_, Some(session)))
                        if changes(req.method()) && !crate::session::csrf_matches(req.headers(), &session) =>
                    {
                        ApiError::harbor(
                            http::StatusCode::FORBIDDEN,
                            "CSRF token invalid: a change made with the portal's session must send its token in X-Harbor-CSRF-Token",
                        )
                        .into_response(false)
                    }
                    Ok((authentication, session)) => {
                        req.extensions_mut().insert(authentication);
                        if let Some(session) = session {
                            req.extensions_mut().insert(session);
                        }
                        call(&inner, req).await
                    }
                    Err(e) => e.into_response(req.method() == http::Method::HEAD),
                }
            }
        })
    })
}
