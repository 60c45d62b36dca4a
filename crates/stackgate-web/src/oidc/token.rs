//! The token endpoint (authorization code with PKCE, refresh with rotation, client
//! credentials), introspection (RFC 7662) and revocation (RFC 7009).

use super::{
    client_auth::authenticate,
    errors::OAuthError,
    params::Params,
    tokens_issued::{Authentication, Mint, TokenResponse},
};
use crate::state::AppState;
use axum::{
    Json,
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use stackgate_identity::{User, Uuid, hash_secret};
use stackgate_oidc::{
    AccessTokenClaims, Client, ClientKind, GrantType, OidcError, Scopes, verify, verify_s256,
};
use stackgate_store::{Redemption, RefreshOutcome};

fn form_params(headers: &HeaderMap, body: &[u8]) -> Result<Params, OAuthError> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    if !form {
        return Err(OidcError::InvalidRequest(
            "send parameters as application/x-www-form-urlencoded".into(),
        )
        .into());
    }
    Ok(Params::parse(body)?)
}

fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

pub(crate) async fn exchange(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match exchange_inner(&state, &headers, &body).await {
        Ok(tokens) => no_store(Json(tokens).into_response()),
        Err(err) => err.into_response(),
    }
}

async fn exchange_inner(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<TokenResponse, OAuthError> {
    let params = form_params(headers, body)?;
    let client = authenticate(state, headers, &params).await?;
    match params.require("grant_type")? {
        "authorization_code" => code_grant(state, &client, &params).await,
        "refresh_token" => refresh_grant(state, &client, &params).await,
        "client_credentials" => client_credentials(state, &client, &params).await,
        other => Err(OidcError::UnsupportedGrantType(format!(
            "grant_type {other:?} is not supported"
        ))
        .into()),
    }
}

async fn user_and_groups(
    state: &AppState,
    id: Uuid,
) -> Result<Option<(User, Vec<String>)>, OAuthError> {
    let user = match state.store.get_user(id).await {
        Ok(user) if !user.disabled => user,
        Ok(_) | Err(stackgate_store::StoreError::NotFound(_)) => return Ok(None),
        Err(other) => return Err(other.into()),
    };
    let groups = state
        .store
        .groups_of(user.id)
        .await?
        .into_iter()
        .map(|g| g.name)
        .collect();
    Ok(Some((user, groups)))
}

/// Authentication methods as stored (space-separated) to the `amr` claim's list.
fn amr_list(stored: &str) -> Vec<String> {
    stored
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn invalid_grant(why: &str) -> OidcError {
    OidcError::InvalidGrant(why.to_owned())
}

async fn code_grant(
    state: &AppState,
    client: &Client,
    params: &Params,
) -> Result<TokenResponse, OAuthError> {
    if !client.allows(GrantType::AuthorizationCode) {
        return Err(OidcError::UnauthorizedClient(
            "this client may not use authorization_code".into(),
        )
        .into());
    }
    let code_hash = hash_secret(params.require("code")?);
    let redirect_uri = params.require("redirect_uri")?;
    let verifier = params.get("code_verifier");
    // The user's claims are read before the atomic exchange, which cannot wait on queries.
    let owner = state.store.code_owner(&code_hash).await?;
    let subject = match owner {
        Some(id) => user_and_groups(state, id).await?,
        None => None,
    };
    let keys = state.keyring.keys();
    let now = state.clock.unix();
    let mint = Mint {
        keys: &keys,
        issuer: &state.config.issuer,
        client,
        now,
    };
    let outcome = state
        .store
        .exchange_code(&code_hash, |code| {
            if code.client_id != client.id {
                return Err(invalid_grant("the code was issued to another client"));
            }
            if code.redirect_uri != redirect_uri {
                return Err(invalid_grant(
                    "redirect_uri differs from the authorization request's",
                ));
            }
            match (&code.code_challenge, verifier) {
                (Some(challenge), Some(verifier)) if verify_s256(verifier, challenge) => {}
                (Some(_), Some(_)) => return Err(invalid_grant("PKCE verification failed")),
                (Some(_), None) => return Err(invalid_grant("code_verifier is required")),
                (None, Some(_)) => {
                    return Err(invalid_grant(
                        "code_verifier sent for a code issued without code_challenge",
                    ));
                }
                (None, None) => {}
            }
            let Some((user, groups)) = subject
                .as_ref()
                .filter(|(u, _)| u.id.to_string() == code.user_id)
            else {
                return Err(invalid_grant("the user of this code can no longer sign in"));
            };
            let scopes = Scopes::parse(&code.scope, &client.scopes)?;
            let amr = amr_list(&code.amr);
            let auth = Authentication {
                user,
                groups,
                session_id: Some(&code.session_id),
                auth_time: code.auth_time,
                acr: code.acr.as_deref(),
                amr: &amr,
                nonce: code.nonce.as_deref(),
            };
            mint.for_user(
                Uuid::new_v4(),
                &auth,
                &scopes,
                client.allows(GrantType::RefreshToken),
            )
        })
        .await?;
    match outcome {
        Redemption::Issued(tokens) => Ok(tokens),
        Redemption::Rejected(err) => Err(err.into()),
        Redemption::Replayed => {
            tracing::warn!(client = %client.id, "authorization code replayed; its tokens are revoked");
            Err(invalid_grant(
                "the authorization code was already used; tokens issued from it are revoked",
            )
            .into())
        }
        Redemption::SessionEnded => {
            Err(invalid_grant("the sign-in this code came from has ended").into())
        }
        Redemption::Invalid => {
            Err(invalid_grant("the authorization code is invalid or expired").into())
        }
    }
}

async fn refresh_grant(
    state: &AppState,
    client: &Client,
    params: &Params,
) -> Result<TokenResponse, OAuthError> {
    if !client.allows(GrantType::RefreshToken) {
        return Err(
            OidcError::UnauthorizedClient("this client may not use refresh_token".into()).into(),
        );
    }
    let token_hash = hash_secret(params.require("refresh_token")?);
    let active = state.store.active_refresh_token(&token_hash).await?;
    let subject = match active
        .as_ref()
        .map(|a| a.grant.user())
        .transpose()?
        .flatten()
    {
        Some(id) => user_and_groups(state, id).await?,
        None => None,
    };
    let keys = state.keyring.keys();
    let now = state.clock.unix();
    let mint = Mint {
        keys: &keys,
        issuer: &state.config.issuer,
        client,
        now,
    };
    let outcome = state
        .store
        .rotate_refresh(&token_hash, |grant| {
            if grant.client_id != client.id {
                return Err(invalid_grant(
                    "the refresh token was issued to another client",
                ));
            }
            let Some((user, groups)) = subject
                .as_ref()
                .filter(|(u, _)| grant.user_id.as_deref() == Some(&u.id.to_string()))
            else {
                return Err(invalid_grant(
                    "the user of this grant can no longer sign in",
                ));
            };
            let granted = Scopes::parse(&grant.scope, &client.scopes)?;
            let scopes = granted.narrow(params.get("scope"))?;
            let amr = amr_list(grant.amr.as_deref().unwrap_or_default());
            let auth = Authentication {
                user,
                groups,
                session_id: grant.session_id.as_deref(),
                auth_time: grant.auth_time.unwrap_or(now),
                acr: grant.acr.as_deref(),
                amr: &amr,
                nonce: None,
            };
            let grant_id =
                Uuid::parse_str(&grant.id).map_err(|_| invalid_grant("corrupt grant"))?;
            mint.for_user(grant_id, &auth, &scopes, true)
        })
        .await?;
    match outcome {
        RefreshOutcome::Issued(tokens) => Ok(tokens),
        RefreshOutcome::Rejected(err) => Err(err.into()),
        RefreshOutcome::Reused => {
            tracing::warn!(client = %client.id, "refresh token reused; its grant is revoked");
            Err(invalid_grant("the refresh token was already used; its grant is revoked").into())
        }
        RefreshOutcome::Invalid => {
            Err(invalid_grant("the refresh token is invalid, expired or revoked").into())
        }
    }
}

async fn client_credentials(
    state: &AppState,
    client: &Client,
    params: &Params,
) -> Result<TokenResponse, OAuthError> {
    if client.kind != ClientKind::Confidential || !client.allows(GrantType::ClientCredentials) {
        return Err(OidcError::UnauthorizedClient(
            "this client may not use client_credentials".into(),
        )
        .into());
    }
    let scopes = Scopes::parse(params.get("scope").unwrap_or_default(), &client.scopes)?;
    if scopes.contains("openid") || scopes.contains("offline_access") {
        return Err(OidcError::InvalidScope(
            "client credentials act for no user: openid and offline_access do not apply".into(),
        )
        .into());
    }
    let keys = state.keyring.keys();
    let mint = Mint {
        keys: &keys,
        issuer: &state.config.issuer,
        client,
        now: state.clock.unix(),
    };
    let (grant, tokens) = mint.for_client(&scopes)?;
    state.store.create_grant(&grant).await?;
    Ok(tokens)
}

/// The claims of a well-signed, unexpired access token of ours, without asking the store.
pub(crate) async fn decode_access_token(
    state: &AppState,
    token: &str,
) -> Option<AccessTokenClaims> {
    let keys = state.keyring.keys_for(token).await;
    let issuer = &state.config.issuer;
    let claims: AccessTokenClaims =
        verify(&keys.keyset, token, "at+jwt", issuer, Some(issuer)).ok()?;
    (claims.exp > state.clock.unix()).then_some(claims)
}

pub(crate) async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let params = form_params(&headers, &body)?;
        let client = authenticate(&state, &headers, &params).await?;
        if client.kind == ClientKind::Public {
            return Err(OAuthError::Client {
                description: "public clients may not introspect".into(),
                basic: false,
            });
        }
        let token = params.require("token")?;
        let inactive = serde_json::json!({ "active": false });
        if let Some(claims) = decode_access_token(&state, token).await
            && let Some(active) = state.store.active_access_token(&claims.jti).await?
            && active.grant.client_id == client.id
        {
            let username = match active.grant.user()? {
                Some(id) => state.store.get_user(id).await.ok().map(|u| u.username),
                None => None,
            };
            return Ok(serde_json::json!({
                "active": true,
                "token_type": "Bearer",
                "scope": active.grant.scope,
                "client_id": active.grant.client_id,
                "username": username,
                "sub": claims.sub,
                "aud": claims.aud,
                "iss": claims.iss,
                "exp": claims.exp,
                "iat": claims.iat,
                "jti": claims.jti,
            }));
        }
        if let Some(active) = state
            .store
            .active_refresh_token(&hash_secret(token))
            .await?
            && active.grant.client_id == client.id
        {
            return Ok(serde_json::json!({
                "active": true,
                "token_type": "refresh_token",
                "scope": active.grant.scope,
                "client_id": active.grant.client_id,
                "sub": active.grant.user_id,
                "exp": active.expires_at,
            }));
        }
        Ok(inactive)
    }
    .await;
    match result {
        Ok(body) => no_store(Json(body).into_response()),
        Err(err) => err.into_response(),
    }
}

pub(crate) async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let params = form_params(&headers, &body)?;
        let client = authenticate(&state, &headers, &params).await?;
        let token = params.require("token")?;
        let jti = decode_access_token(&state, token).await.map(|c| c.jti);
        state
            .store
            .revoke_token(&client.id, &hash_secret(token), jti.as_deref())
            .await?;
        Ok::<_, OAuthError>(())
    }
    .await;
    match result {
        // RFC 7009 §2.2: unknown or foreign tokens get the same 200 as revoked ones.
        Ok(()) => no_store(StatusCode::OK.into_response()),
        Err(err) => err.into_response(),
    }
}
