//! A real relying party, the `openidconnect` crate, against the running server: discovery, the
//! code flow with PKCE through the login form, ID token and `at_hash` verification, userinfo,
//! refresh rotation with reuse detection, and RFC 7009 revocation. If this crate is happy, a
//! Rust application can sign in with Stackgate without special cases.

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreClaimName, CoreClaimType,
    CoreClientAuthMethod, CoreErrorResponseType, CoreGenderClaim, CoreGrantType, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreJwsSigningAlgorithm,
    CoreResponseMode, CoreResponseType, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreSubjectIdentifierType, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::reqwest as rp_reqwest; // oauth2's reqwest (0.12), not the workspace's 0.13
use openidconnect::url::form_urlencoded;
use openidconnect::{
    AccessToken, AccessTokenHash, AdditionalClaims, AdditionalProviderMetadata, AuthType,
    AuthorizationCode, Client, ClientId, ClientSecret, ConfigurationError, CsrfToken,
    EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, HttpClientError,
    IdTokenClaims, IdTokenFields, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    ProviderMetadata, RedirectUrl, RefreshToken, RequestTokenError, RevocationUrl, Scope,
    StandardErrorResponse, StandardTokenResponse, SubjectIdentifier, TokenResponse, UserInfoClaims,
    UserInfoError,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use stackgate_testkit::{ADMIN_PASSWORD, TestServer, authorize_in_browser, on_both_backends};
use std::collections::HashMap;

const CLIENT_ID: &str = "rp-rust";
const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";

/// `groups` is not a standard claim: without this the crate would drop it.
#[derive(Clone, Debug, Deserialize, Serialize)]
struct Groups {
    #[serde(default)]
    groups: Vec<String>,
}
impl AdditionalClaims for Groups {}

/// Discovery fields the core metadata type does not model but this RP relies on.
#[derive(Clone, Debug, Deserialize, Serialize)]
struct ExtraMetadata {
    revocation_endpoint: String,
    code_challenge_methods_supported: Vec<String>,
}
impl AdditionalProviderMetadata for ExtraMetadata {}

type Metadata = ProviderMetadata<
    ExtraMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

type Tokens = StandardTokenResponse<
    IdTokenFields<
        Groups,
        EmptyExtraTokenFields,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    CoreTokenType,
>;

type Claims = IdTokenClaims<Groups, CoreGenderClaim>;

/// What a request through the reqwest client can fail with, below the OAuth layer.
type HttpError = HttpClientError<rp_reqwest::Error>;
type TokenError = RequestTokenError<HttpError, StandardErrorResponse<CoreErrorResponseType>>;

/// `CoreClient` with `groups` kept. The endpoint states are those `from_provider_metadata`
/// gives (authorization set; token and userinfo "maybe"); the revocation URL is added after.
type RpClient<HasRevocationUrl> = Client<
    Groups,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    Tokens,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,      // authorization
    EndpointNotSet,   // device authorization
    EndpointNotSet,   // introspection
    HasRevocationUrl, // revocation
    EndpointMaybeSet, // token
    EndpointMaybeSet, // userinfo
>;
type Rp = RpClient<EndpointSet>;

/// The relying party's HTTP client. The crate's docs require it not to follow redirects:
/// following them would let a hostile provider point the RP at internal URLs (SSRF).
fn rp_http() -> rp_reqwest::Client {
    rp_reqwest::Client::builder()
        .redirect(rp_reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

/// Registers the confidential client through the admin API and returns its secret.
async fn register_client(server: &TestServer, admin_token: &str) -> String {
    let response = reqwest::Client::new()
        .post(server.url("/api/v1/clients"))
        .bearer_auth(admin_token)
        .json(&json!({
            "id": CLIENT_ID,
            "name": "Rust RP",
            "redirect_uris": [REDIRECT_URI],
            "first_party": true,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["client"]["id"], CLIENT_ID);
    created["client_secret"].as_str().unwrap().to_owned()
}

/// One complete sign-in of `root`: fresh PKCE pair, state and nonce; the browser part; the
/// checks a careful RP makes on the redirect; the code exchange; the ID token verification.
async fn sign_in(server: &TestServer, rp: &Rp, http: &rp_reqwest::Client) -> (Tokens, Claims) {
    let (pkce_challenge, pkce_verifier) = PkceCodeChallenge::new_random_sha256();
    // `openid` is added by the crate itself; listing it again would send it twice.
    let (authorize_url, csrf, nonce) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scopes(
            ["profile", "email", "groups", "offline_access"].map(|s| Scope::new(s.to_owned())),
        )
        .set_pkce_challenge(pkce_challenge)
        .url();
    assert_eq!(
        authorize_url.as_str().split('?').next(),
        Some(server.url("/authorize").as_str()),
        "the authorization endpoint comes from discovery"
    );

    let callback =
        authorize_in_browser(server, authorize_url.as_str(), "root", ADMIN_PASSWORD).await;
    let params: HashMap<String, String> = callback.query_pairs().into_owned().collect();
    assert_eq!(
        callback.as_str().split('?').next(),
        Some(REDIRECT_URI),
        "back at the registered redirect URI"
    );
    assert_eq!(
        params.get("error"),
        None,
        "authorization failed: {callback}"
    );
    // CSRF: the state must come back unchanged. Mix-up defence (RFC 9207): `iss` names our issuer.
    assert_eq!(params.get("state"), Some(csrf.secret()));
    assert_eq!(
        params.get("iss").map(String::as_str),
        Some(server.base_url.as_str())
    );

    let code = AuthorizationCode::new(params["code"].clone());
    let tokens = rp
        .exchange_code(code)
        .expect("discovery gave a token endpoint")
        .set_pkce_verifier(pkce_verifier)
        .request_async(http)
        .await
        .expect("code exchange");

    // Signature (ES256 by default, allowed because discovery lists it), iss, aud, exp, nonce.
    let verifier = rp.id_token_verifier();
    let id_token = tokens
        .id_token()
        .expect("an ID token with the openid scope");
    assert_eq!(
        id_token.signing_alg().unwrap(),
        &CoreJwsSigningAlgorithm::EcdsaP256Sha256,
        "ID tokens are ES256 by default"
    );
    let claims = id_token
        .claims(&verifier, &nonce)
        .expect("a valid ID token")
        .clone();

    // at_hash binds the access token to this ID token, so it cannot be swapped for another.
    let expected_hash = claims.access_token_hash().expect("at_hash is present");
    let actual_hash = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(
        &actual_hash, expected_hash,
        "at_hash matches the access token"
    );

    (tokens, claims)
}

/// Asserts a token request was refused with `invalid_grant` (not a transport or parse error).
fn assert_invalid_grant(result: Result<Tokens, TokenError>, what: &str) {
    match result {
        Err(RequestTokenError::ServerResponse(response)) => assert!(
            matches!(response.error(), CoreErrorResponseType::InvalidGrant),
            "{what}: expected invalid_grant, got {response:?}"
        ),
        Err(other) => panic!("{what}: expected invalid_grant, got {other:?}"),
        Ok(_) => panic!("{what}: the token endpoint accepted it"),
    }
}

/// Userinfo through the crate, checking `sub` against the ID token's.
async fn user_info(
    rp: &Rp,
    http: &rp_reqwest::Client,
    access_token: &AccessToken,
    subject: &SubjectIdentifier,
) -> Result<UserInfoClaims<Groups, CoreGenderClaim>, UserInfoError<HttpError>> {
    rp.user_info(access_token.clone(), Some(subject.clone()))
        .expect("discovery gave a userinfo endpoint")
        .request_async(http)
        .await
}

/// A refresh-token grant through the crate.
async fn refresh(
    rp: &Rp,
    http: &rp_reqwest::Client,
    refresh_token: &RefreshToken,
) -> Result<Tokens, TokenError> {
    rp.exchange_refresh_token(refresh_token)
        .expect("discovery gave a token endpoint")
        .request_async(http)
        .await
}

/// An RFC 7009 revocation request exactly as oauth2 builds one: form-encoded `token` and
/// `token_type_hint`, the client authenticated with HTTP Basic over form-encoded credentials
/// (RFC 6749 §2.3.1). The endpoint answers 200 with an empty body.
async fn revoke(revocation_url: &str, client_secret: &str, refresh_token: &RefreshToken) {
    let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let response = reqwest::Client::new()
        .post(revocation_url)
        .basic_auth(encode(CLIENT_ID), Some(encode(client_secret)))
        .form(&[
            ("token", refresh_token.secret().as_str()),
            ("token_type_hint", "refresh_token"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK, "revocation");
}

on_both_backends! {
    full_code_flow_with_the_openidconnect_crate => |server: TestServer| async move {
        let admin = server.bootstrap_admin().await;
        let secret = register_client(&server, &admin.token).await;
        let http = rp_http();

        // Discovery, as the crate does it: it insists that `issuer` equals the URL it was given
        // exactly, and fetches the JWKS from `jwks_uri`.
        let issuer = IssuerUrl::new(server.base_url.clone()).unwrap();
        let metadata = Metadata::discover_async(issuer.clone(), &http).await.expect("discovery");
        assert_eq!(metadata.issuer(), &issuer);
        let token_endpoint = metadata.token_endpoint().map(|u| u.as_str().to_owned());
        assert_eq!(token_endpoint, Some(server.url("/token")));
        let userinfo_endpoint = metadata.userinfo_endpoint().map(|u| u.as_str().to_owned());
        assert_eq!(userinfo_endpoint, Some(server.url("/userinfo")));
        let algs = metadata.id_token_signing_alg_values_supported();
        assert!(algs.contains(&CoreJwsSigningAlgorithm::EcdsaP256Sha256));
        let auth_methods = metadata.token_endpoint_auth_methods_supported();
        assert!(auth_methods.is_some_and(|m| m.contains(&CoreClientAuthMethod::ClientSecretBasic)));
        let extra = metadata.additional_metadata().clone();
        assert_eq!(extra.code_challenge_methods_supported, ["S256"]);
        assert_eq!(extra.revocation_endpoint, server.url("/revoke"));

        // A confidential client using client_secret_basic (the crate's default, made explicit).
        let rp: Rp = RpClient::<EndpointNotSet>::from_provider_metadata(
            metadata,
            ClientId::new(CLIENT_ID.to_owned()),
            Some(ClientSecret::new(secret.clone())),
        )
        .set_auth_type(AuthType::BasicAuth)
        .set_redirect_uri(RedirectUrl::new(REDIRECT_URI.to_owned()).unwrap())
        .set_revocation_url(RevocationUrl::new(extra.revocation_endpoint).unwrap());

        // First sign-in: ID token claims for the profile, email and groups scopes.
        let (tokens, claims) = sign_in(&server, &rp, &http).await;
        let subject = claims.subject().clone();
        assert!(!subject.as_str().is_empty());
        assert_eq!(claims.authorized_party().map(|c| c.as_str()), Some(CLIENT_ID));
        assert!(claims.auth_time().is_some(), "auth_time is always sent");
        let amr = claims.auth_method_refs().expect("amr");
        assert!(amr.iter().any(|m| m.as_str() == "pwd"), "signed in with a password");
        assert_eq!(claims.preferred_username().map(|u| u.as_str()), Some("root"));
        let name = claims.name().and_then(|n| n.get(None)).map(|n| n.as_str());
        assert_eq!(name, Some("First Admin"));
        assert_eq!(claims.email().map(|e| e.as_str()), Some("root@example.org"));
        assert!(claims.additional_claims().groups.iter().any(|g| g == "admins"));

        // Userinfo with the access token says the same about the same subject.
        let info = user_info(&rp, &http, tokens.access_token(), &subject)
            .await
            .expect("userinfo");
        assert_eq!(info.subject(), &subject);
        assert_eq!(info.preferred_username().map(|u| u.as_str()), Some("root"));
        let name = info.name().and_then(|n| n.get(None)).map(|n| n.as_str());
        assert_eq!(name, Some("First Admin"));
        assert_eq!(info.email().map(|e| e.as_str()), Some("root@example.org"));
        assert!(info.additional_claims().groups.iter().any(|g| g == "admins"));

        // Refresh rotates: a new refresh token each time, and the new access token works.
        let first_refresh = tokens.refresh_token().expect("offline_access gives one").clone();
        let refreshed = refresh(&rp, &http, &first_refresh).await.expect("refresh");
        let second_refresh = refreshed.refresh_token().expect("rotation gives a new one").clone();
        assert_ne!(second_refresh.secret(), first_refresh.secret(), "refresh tokens rotate");
        user_info(&rp, &http, refreshed.access_token(), &subject)
            .await
            .expect("the refreshed access token works");

        // Replaying the rotated-out token is theft detection: refused, and the whole family goes,
        // so the legitimate newest token dies too.
        assert_invalid_grant(refresh(&rp, &http, &first_refresh).await, "reused refresh token");
        let newest = refresh(&rp, &http, &second_refresh).await;
        assert_invalid_grant(newest, "the newest token of a revoked family");

        // Revocation needs a live grant, so sign in again.
        let (tokens, claims) = sign_in(&server, &rp, &http).await;
        assert_eq!(claims.subject(), &subject, "same user, same public subject");
        let refresh_token = tokens.refresh_token().expect("a refresh token").clone();
        user_info(&rp, &http, tokens.access_token(), &subject)
            .await
            .expect("the new grant works");

        // RFC 7009. The crate's `revoke_token` refuses any non-HTTPS revocation URL (RFC 7009 §2:
        // clients MUST check), and this server is plain HTTP on loopback. So confirm that
        // refusal, then send the request the crate would have sent.
        assert!(
            matches!(
                rp.revoke_token(CoreRevocableToken::from(refresh_token.clone())),
                Err(ConfigurationError::InsecureUrl(_))
            ),
            "the crate only revokes over HTTPS"
        );
        revoke(rp.revocation_url().as_str(), &secret, &refresh_token).await;

        // Revoking the refresh token ends the grant: the refresh token and the grant's access
        // token stop working.
        assert_invalid_grant(refresh(&rp, &http, &refresh_token).await, "revoked refresh token");
        match user_info(&rp, &http, tokens.access_token(), &subject).await {
            Err(UserInfoError::Response(status, _, _)) => {
                assert_eq!(status, openidconnect::http::StatusCode::UNAUTHORIZED);
            }
            Err(other) => panic!("userinfo after revocation: expected 401, got {other:?}"),
            Ok(_) => panic!("userinfo accepted the access token of a revoked grant"),
        }

        server.stop().await;
    };
}
