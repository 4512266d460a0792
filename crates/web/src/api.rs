//! `/api/v1`: the JSON admin API — the same operations as the CLI, on the same service layer.
//! Every handler only translates HTTP to a `Directory` call and back.

use std::net::SocketAddr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use postfach_core::invitations::InvitationView;
use postfach_core::model::{
    AddressView, AliasView, ApiKeyView, AuditView, DomainView, FolderRoleView, GrantLevel,
    ImportReport, NewAddressView, NewUserView, OrgView, Role, ServiceView, TokenView, UserView,
};
use postfach_core::rules::m1_grants_and_roles::KeyScope;
use postfach_core::{AddressChanges, NewServiceRequest, ServiceChanges};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Auth, bearer};

type Created<T> = (StatusCode, Json<T>);

fn created<T>(v: T) -> Created<T> {
    (StatusCode::CREATED, Json(v))
}

/// `local` or `local@domain` → `local@domain` of the service in the path.
fn in_domain(name: &str, domain: &str) -> String {
    if name.contains('@') {
        name.to_string()
    } else {
        format!("{name}@{domain}")
    }
}

// ------------------------------------------------------------------ request bodies

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Login e-mail of the Manager account.
    pub login: String,
    pub password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrg {
    pub name: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    pub login: String,
    pub role: Role,
    /// Password of a new account; omitted: one is generated and returned once.
    pub password: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    pub role: Role,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    pub password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantBody {
    pub level: GrantLevel,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInvitation {
    pub login: String,
    pub role: Role,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivateInvitation {
    /// The token of the invitation mail.
    pub token: String,
    /// The password the invited person chooses for the new account.
    pub password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    pub name: String,
    /// What the key may reach (M1); omitted: all of the account's rights.
    #[serde(default)]
    pub scope: KeyScope,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDomain {
    pub name: String,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct VerifyDomain {
    /// Verify without proof (platform operators only).
    #[serde(default)]
    pub force: bool,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewService {
    pub org: String,
    pub domain: String,
    pub offer: String,
    /// Address quota; default: the offer's minimum.
    pub quota: Option<i64>,
    /// Display name; default: the domain.
    pub name: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAddress {
    /// The part before the `@`.
    pub local_part: String,
    /// The mail password; omitted, one is generated and returned once.
    pub password: Option<String>,
    /// Storage quota in MiB; default: the offer's.
    pub storage_quota_mib: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameRequest {
    pub new_local_part: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAlias {
    /// Alias local part (or full address in the service's domain).
    pub alias: String,
    /// Local part (or full address) of the address that receives the mail.
    pub target: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrgFilter {
    /// Only this organization.
    pub org: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Only addresses (or aliases) containing this text.
    pub search: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this organization's entries (administrators).
    pub org: Option<String>,
    /// 1–1000, default 50.
    pub limit: Option<i64>,
    /// Entries older than this id.
    pub before: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    pub status: String,
}

// ------------------------------------------------------------------ auth

/// Log in with a Manager account; returns a bearer token for the other calls. Repeated
/// failures from one client are refused for a while with 429 and `Retry-After` (S4).
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenView), (status = 401, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn login(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(b): ApiJson<LoginRequest>,
) -> ApiResult<Json<TokenView>> {
    Ok(Json(
        s.dir.login(&b.login, &b.password, Some(peer.ip())).await?,
    ))
}

/// End the session of the bearer token.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorBody)))]
pub async fn logout(
    State(s): State<AppState>,
    Auth(_): Auth,
    headers: axum::http::HeaderMap,
) -> ApiResult<StatusCode> {
    if let Some(token) = bearer(&headers) {
        s.dir.logout(token).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The authenticated account.
#[utoipa::path(get, path = "/api/v1/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody)))]
pub async fn me(State(s): State<AppState>, Auth(a): Auth) -> ApiResult<Json<UserView>> {
    let login = a.login().unwrap_or_default().to_string();
    Ok(Json(s.dir.get_user(&a, &login).await?))
}

// ------------------------------------------------------------------ organizations and users

/// Organizations the account belongs to (all for operators).
#[utoipa::path(get, path = "/api/v1/orgs", tag = "organizations", security(("bearer" = [])),
    responses((status = 200, body = [OrgView]), (status = 401, body = ErrorBody)))]
pub async fn list_orgs(State(s): State<AppState>, Auth(a): Auth) -> ApiResult<Json<Vec<OrgView>>> {
    Ok(Json(s.dir.list_orgs(&a).await?))
}

/// Create an organization (operators).
#[utoipa::path(post, path = "/api/v1/orgs", tag = "organizations", security(("bearer" = [])), request_body = NewOrg,
    responses((status = 201, body = OrgView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_org(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiJson(b): ApiJson<NewOrg>,
) -> ApiResult<Created<OrgView>> {
    Ok(created(s.dir.create_org(&a, &b.name).await?))
}

/// Members of an organization.
#[utoipa::path(get, path = "/api/v1/orgs/{org}/users", tag = "users", security(("bearer" = [])),
    params(("org" = String, Path, description = "Organization name")),
    responses((status = 200, body = [UserView]), (status = 404, body = ErrorBody)))]
pub async fn list_users(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(org): ApiPath<String>,
) -> ApiResult<Json<Vec<UserView>>> {
    Ok(Json(s.dir.list_users(&a, &org).await?))
}

/// Add a user to an organization directly, creating the account if needed (platform
/// operators; an organization's administrators invite instead, 403 here).
#[utoipa::path(post, path = "/api/v1/orgs/{org}/users", tag = "users", security(("bearer" = [])),
    params(("org" = String, Path, description = "Organization name")), request_body = NewMember,
    responses((status = 201, body = NewUserView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn add_user(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(org): ApiPath<String>,
    ApiJson(b): ApiJson<NewMember>,
) -> ApiResult<Created<NewUserView>> {
    Ok(created(
        s.dir
            .add_user(&a, &b.login, &org, b.role, b.password.as_deref())
            .await?,
    ))
}

/// Invite a login into an organization (M1, administrators): it joins when its owner
/// accepts. The answer is the same whether or not the login has an account; the invitation
/// is mailed to the login.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/invitations", tag = "users", security(("bearer" = [])),
    params(("org" = String, Path, description = "Organization name")), request_body = NewInvitation,
    responses((status = 201, body = InvitationView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn invite_user(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(org): ApiPath<String>,
    ApiJson(b): ApiJson<NewInvitation>,
) -> ApiResult<Created<InvitationView>> {
    Ok(created(
        s.dir.invite_user(&a, &b.login, &org, b.role).await?,
    ))
}

/// The pending invitations of an organization (its administrators).
#[utoipa::path(get, path = "/api/v1/orgs/{org}/invitations", tag = "users", security(("bearer" = [])),
    params(("org" = String, Path, description = "Organization name")),
    responses((status = 200, body = [InvitationView]), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn org_invitations(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(org): ApiPath<String>,
) -> ApiResult<Json<Vec<InvitationView>>> {
    Ok(Json(s.dir.org_invitations(&a, &org).await?))
}

/// The authenticated account's pending invitations.
#[utoipa::path(get, path = "/api/v1/me/invitations", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = [InvitationView]), (status = 401, body = ErrorBody)))]
pub async fn my_invitations(
    State(s): State<AppState>,
    Auth(a): Auth,
) -> ApiResult<Json<Vec<InvitationView>>> {
    Ok(Json(s.dir.my_invitations(&a).await?))
}

/// Accept an invitation: the account joins the organization with the invitation's role.
#[utoipa::path(post, path = "/api/v1/me/invitations/{org}/accept", tag = "users", security(("bearer" = [])),
    params(("org" = String, Path, description = "Organization name")),
    responses((status = 200, body = UserView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn accept_invitation(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(org): ApiPath<String>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(s.dir.accept_invitation(&a, &org).await?))
}

/// Decline an invitation.
#[utoipa::path(delete, path = "/api/v1/me/invitations/{org}", tag = "users", security(("bearer" = [])),
    params(("org" = String, Path, description = "Organization name")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn decline_invitation(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(org): ApiPath<String>,
) -> ApiResult<StatusCode> {
    s.dir.decline_invitation(&a, &org).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// First invitation of a login that had no account: the token of the invitation mail sets
/// the account's password and the account joins. No bearer token: the mailed token is the
/// proof. An account that has a password logs in and accepts instead (409).
#[utoipa::path(post, path = "/api/v1/invitations/activate", tag = "users", request_body = ActivateInvitation,
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn activate_invitation(
    State(s): State<AppState>,
    ApiJson(b): ApiJson<ActivateInvitation>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(
        s.dir.activate_invitation(&b.token, &b.password).await?,
    ))
}

/// Change a member's role.
#[utoipa::path(put, path = "/api/v1/orgs/{org}/users/{login}/role", tag = "users", security(("bearer" = [])),
    params(("org" = String, Path), ("login" = String, Path)), request_body = RoleChange,
    responses((status = 200, body = UserView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn set_role(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath((org, login)): ApiPath<(String, String)>,
    ApiJson(b): ApiJson<RoleChange>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(s.dir.set_role(&a, &login, &org, b.role).await?))
}

/// One account.
#[utoipa::path(get, path = "/api/v1/users/{login}", tag = "users", security(("bearer" = [])),
    params(("login" = String, Path)), responses((status = 200, body = UserView), (status = 404, body = ErrorBody)))]
pub async fn get_user(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(login): ApiPath<String>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(s.dir.get_user(&a, &login).await?))
}

/// Set an account's Manager password (itself or operators).
#[utoipa::path(put, path = "/api/v1/users/{login}/password", tag = "users", security(("bearer" = [])),
    params(("login" = String, Path)), request_body = PasswordBody,
    responses((status = 204), (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set_user_password(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(login): ApiPath<String>,
    ApiJson(b): ApiJson<PasswordBody>,
) -> ApiResult<StatusCode> {
    s.dir.set_user_password(&a, &login, &b.password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Grant a collaborator or external member access to a mail service.
#[utoipa::path(put, path = "/api/v1/users/{login}/grants/{domain}", tag = "users", security(("bearer" = [])),
    params(("login" = String, Path), ("domain" = String, Path, description = "Domain of the mail service")), request_body = GrantBody,
    responses((status = 200, body = UserView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn grant(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath((login, domain)): ApiPath<(String, String)>,
    ApiJson(b): ApiJson<GrantBody>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(s.dir.grant(&a, &login, &domain, b.level).await?))
}

/// Revoke a grant.
#[utoipa::path(delete, path = "/api/v1/users/{login}/grants/{domain}", tag = "users", security(("bearer" = [])),
    params(("login" = String, Path), ("domain" = String, Path)),
    responses((status = 200, body = UserView), (status = 404, body = ErrorBody)))]
pub async fn revoke(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath((login, domain)): ApiPath<(String, String)>,
) -> ApiResult<Json<UserView>> {
    Ok(Json(s.dir.revoke(&a, &login, &domain).await?))
}

/// API keys of an account.
#[utoipa::path(get, path = "/api/v1/users/{login}/api-keys", tag = "users", security(("bearer" = [])),
    params(("login" = String, Path)), responses((status = 200, body = [ApiKeyView]), (status = 403, body = ErrorBody)))]
pub async fn list_api_keys(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(login): ApiPath<String>,
) -> ApiResult<Json<Vec<ApiKeyView>>> {
    Ok(Json(s.dir.list_api_keys(&a, &login).await?))
}

/// Create an API key (returned once).
#[utoipa::path(post, path = "/api/v1/users/{login}/api-keys", tag = "users", security(("bearer" = [])),
    params(("login" = String, Path)), request_body = NewApiKey,
    responses((status = 201, body = TokenView), (status = 403, body = ErrorBody)))]
pub async fn create_api_key(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(login): ApiPath<String>,
    ApiJson(b): ApiJson<NewApiKey>,
) -> ApiResult<Created<TokenView>> {
    Ok(created(
        s.dir.create_api_key(&a, &login, &b.name, &b.scope).await?,
    ))
}

/// Revoke an API key.
#[utoipa::path(delete, path = "/api/v1/users/{login}/api-keys/{id}", tag = "users", security(("bearer" = [])),
    params(("login" = String, Path), ("id" = i64, Path)),
    responses((status = 200, body = ApiKeyView), (status = 404, body = ErrorBody)))]
pub async fn revoke_api_key(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath((login, id)): ApiPath<(String, i64)>,
) -> ApiResult<Json<ApiKeyView>> {
    Ok(Json(s.dir.revoke_api_key(&a, &login, id).await?))
}

// ------------------------------------------------------------------ domains and services

/// Domains visible to the account.
#[utoipa::path(get, path = "/api/v1/domains", tag = "domains", security(("bearer" = [])), params(OrgFilter),
    responses((status = 200, body = [DomainView]), (status = 404, body = ErrorBody)))]
pub async fn list_domains(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiQuery(q): ApiQuery<OrgFilter>,
) -> ApiResult<Json<Vec<DomainView>>> {
    Ok(Json(s.dir.list_domains(&a, q.org.as_deref()).await?))
}

/// Add a domain to an organization.
#[utoipa::path(post, path = "/api/v1/orgs/{org}/domains", tag = "domains", security(("bearer" = [])),
    params(("org" = String, Path)), request_body = NewDomain,
    responses((status = 201, body = DomainView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn add_domain(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(org): ApiPath<String>,
    ApiJson(b): ApiJson<NewDomain>,
) -> ApiResult<Created<DomainView>> {
    Ok(created(s.dir.add_domain(&a, &org, &b.name).await?))
}

/// Check a pending domain again (M2): the TXT record `postfach-verify=<token>` at the domain
/// verifies it; 409 says what was not found.
#[utoipa::path(post, path = "/api/v1/domains/{name}/verify", tag = "domains", security(("bearer" = [])),
    params(("name" = String, Path)), request_body = VerifyDomain,
    responses((status = 200, body = DomainView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn verify_domain(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(name): ApiPath<String>,
    ApiJson(b): ApiJson<VerifyDomain>,
) -> ApiResult<Json<DomainView>> {
    Ok(Json(s.dir.verify_domain(&a, &name, b.force).await?))
}

/// Mail services visible to the account.
#[utoipa::path(get, path = "/api/v1/services", tag = "services", security(("bearer" = [])), params(OrgFilter),
    responses((status = 200, body = [ServiceView])))]
pub async fn list_services(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiQuery(q): ApiQuery<OrgFilter>,
) -> ApiResult<Json<Vec<ServiceView>>> {
    Ok(Json(s.dir.list_services(&a, q.org.as_deref()).await?))
}

/// Create the mail service of a domain.
#[utoipa::path(post, path = "/api/v1/services", tag = "services", security(("bearer" = [])), request_body = NewService,
    responses((status = 201, body = ServiceView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_service(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiJson(b): ApiJson<NewService>,
) -> ApiResult<Created<ServiceView>> {
    let req = NewServiceRequest {
        org: b.org,
        domain: b.domain,
        offer: b.offer,
        quota: b.quota,
        name: b.name,
        tags: b.tags,
    };
    Ok(created(s.dir.create_service(&a, &req).await?))
}

/// One mail service.
#[utoipa::path(get, path = "/api/v1/services/{domain}", tag = "services", security(("bearer" = [])),
    params(("domain" = String, Path)), responses((status = 200, body = ServiceView), (status = 404, body = ErrorBody)))]
pub async fn get_service(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(domain): ApiPath<String>,
) -> ApiResult<Json<ServiceView>> {
    Ok(Json(s.dir.get_service(&a, &domain).await?))
}

/// Change a mail service (name, tags; offer, quota and maintenance for administrators).
#[utoipa::path(patch, path = "/api/v1/services/{domain}", tag = "services", security(("bearer" = [])),
    params(("domain" = String, Path)), request_body = ServiceChanges,
    responses((status = 200, body = ServiceView), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update_service(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(domain): ApiPath<String>,
    ApiJson(b): ApiJson<ServiceChanges>,
) -> ApiResult<Json<ServiceView>> {
    Ok(Json(s.dir.update_service(&a, &domain, &b).await?))
}

// ------------------------------------------------------------------ addresses and aliases

/// Addresses of a mail service.
#[utoipa::path(get, path = "/api/v1/services/{domain}/addresses", tag = "addresses", security(("bearer" = [])),
    params(("domain" = String, Path), SearchQuery), responses((status = 200, body = [AddressView]), (status = 403, body = ErrorBody)))]
pub async fn list_addresses(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(domain): ApiPath<String>,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> ApiResult<Json<Vec<AddressView>>> {
    Ok(Json(
        s.dir
            .list_addresses(&a, &domain, q.search.as_deref())
            .await?,
    ))
}

/// Create an address.
#[utoipa::path(post, path = "/api/v1/services/{domain}/addresses", tag = "addresses", security(("bearer" = [])),
    params(("domain" = String, Path)), request_body = NewAddress,
    responses((status = 201, body = NewAddressView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn add_address(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(domain): ApiPath<String>,
    ApiJson(b): ApiJson<NewAddress>,
) -> ApiResult<Created<NewAddressView>> {
    let address = format!("{}@{domain}", b.local_part);
    Ok(created(
        s.dir
            .create_address(&a, &address, b.password.as_deref(), b.storage_quota_mib)
            .await?,
    ))
}

/// Create addresses from a CSV file (M6); the body is the file (`text/csv`).
#[utoipa::path(post, path = "/api/v1/services/{domain}/addresses/import", tag = "addresses", security(("bearer" = [])),
    params(("domain" = String, Path)), request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = ImportReport), (status = 400, body = ErrorBody)))]
pub async fn import_addresses(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(domain): ApiPath<String>,
    body: Bytes,
) -> ApiResult<Json<ImportReport>> {
    Ok(Json(
        s.dir.import_csv(&a, &domain, &body, &mut |_, _| {}).await?,
    ))
}

/// The addresses of a mail service as CSV (M7).
#[utoipa::path(get, path = "/api/v1/services/{domain}/addresses/export", tag = "addresses", security(("bearer" = [])),
    params(("domain" = String, Path)), responses((status = 200, content_type = "text/csv", body = String), (status = 403, body = ErrorBody)))]
pub async fn export_addresses(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(domain): ApiPath<String>,
) -> ApiResult<impl IntoResponse> {
    let csv = s.dir.export_csv(&a, &domain).await?;
    let disposition = format!("attachment; filename=\"{domain}-addresses.csv\"");
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        csv,
    ))
}

/// One address.
#[utoipa::path(get, path = "/api/v1/addresses/{address}", tag = "addresses", security(("bearer" = [])),
    params(("address" = String, Path)), responses((status = 200, body = AddressView), (status = 404, body = ErrorBody)))]
pub async fn get_address(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(address): ApiPath<String>,
) -> ApiResult<Json<AddressView>> {
    Ok(Json(s.dir.get_address(&a, &address).await?))
}

/// Change an address's settings.
#[utoipa::path(patch, path = "/api/v1/addresses/{address}", tag = "addresses", security(("bearer" = [])),
    params(("address" = String, Path)), request_body = AddressChanges,
    responses((status = 200, body = AddressView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn update_address(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(address): ApiPath<String>,
    ApiJson(b): ApiJson<AddressChanges>,
) -> ApiResult<Json<AddressView>> {
    Ok(Json(s.dir.update_address(&a, &address, &b).await?))
}

/// Delete an address with its aliases.
#[utoipa::path(delete, path = "/api/v1/addresses/{address}", tag = "addresses", security(("bearer" = [])),
    params(("address" = String, Path)), responses((status = 200, body = AddressView), (status = 404, body = ErrorBody)))]
pub async fn delete_address(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(address): ApiPath<String>,
) -> ApiResult<Json<AddressView>> {
    Ok(Json(s.dir.delete_address(&a, &address).await?))
}

/// Set an address's mail password.
#[utoipa::path(put, path = "/api/v1/addresses/{address}/password", tag = "addresses", security(("bearer" = [])),
    params(("address" = String, Path)), request_body = PasswordBody,
    responses((status = 204), (status = 422, body = ErrorBody)))]
pub async fn set_address_password(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(address): ApiPath<String>,
    ApiJson(b): ApiJson<PasswordBody>,
) -> ApiResult<StatusCode> {
    s.dir
        .set_address_password(&a, &address, &b.password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FolderRoleBody {
    /// The folder, `/` between levels (e.g. `Archive/2026`).
    pub folder: String,
    /// `drafts`, `sent`, `trash`, `archive`, `junk` (or the RFC 6154 attribute such as
    /// `\\Sent`), or "" to clear.
    pub role: String,
}

/// The folders of an address with the special role each plays (P5).
#[utoipa::path(get, path = "/api/v1/addresses/{address}/folders", tag = "addresses", security(("bearer" = [])),
    params(("address" = String, Path)),
    responses((status = 200, body = [FolderRoleView]), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn folder_roles(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(address): ApiPath<String>,
) -> ApiResult<Json<Vec<FolderRoleView>>> {
    Ok(Json(s.dir.folder_roles(&a, &address).await?))
}

/// Make a folder play a special role (P5; the role moves from the folder that had it).
/// Managers of the mail service may; the mailbox's user only if M11 allows it.
#[utoipa::path(put, path = "/api/v1/addresses/{address}/folders/role", tag = "addresses", security(("bearer" = [])),
    params(("address" = String, Path)), request_body = FolderRoleBody,
    responses((status = 200, body = [FolderRoleView]), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set_folder_role(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(address): ApiPath<String>,
    ApiJson(b): ApiJson<FolderRoleBody>,
) -> ApiResult<Json<Vec<FolderRoleView>>> {
    Ok(Json(
        s.dir
            .set_folder_role(&a, &address, &b.folder, &b.role)
            .await?,
    ))
}

/// Renaming is not possible (M3): always answers 422 `rename_not_supported` with the
/// alternative (an alias).
#[utoipa::path(post, path = "/api/v1/addresses/{address}/rename", tag = "addresses", security(("bearer" = [])),
    params(("address" = String, Path)), request_body = RenameRequest,
    responses((status = 422, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn rename_address(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(address): ApiPath<String>,
    ApiJson(b): ApiJson<RenameRequest>,
) -> ApiResult<Json<AddressView>> {
    Ok(Json(
        s.dir
            .rename_address(&a, &address, &b.new_local_part)
            .await?,
    ))
}

/// Aliases of a mail service.
#[utoipa::path(get, path = "/api/v1/services/{domain}/aliases", tag = "aliases", security(("bearer" = [])),
    params(("domain" = String, Path)), responses((status = 200, body = [AliasView]), (status = 403, body = ErrorBody)))]
pub async fn list_aliases(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(domain): ApiPath<String>,
) -> ApiResult<Json<Vec<AliasView>>> {
    Ok(Json(s.dir.list_aliases(&a, &domain).await?))
}

/// Create an alias of an address (M4).
#[utoipa::path(post, path = "/api/v1/services/{domain}/aliases", tag = "aliases", security(("bearer" = [])),
    params(("domain" = String, Path)), request_body = NewAlias,
    responses((status = 201, body = AliasView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn add_alias(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(domain): ApiPath<String>,
    ApiJson(b): ApiJson<NewAlias>,
) -> ApiResult<Created<AliasView>> {
    let (alias, target) = (in_domain(&b.alias, &domain), in_domain(&b.target, &domain));
    Ok(created(s.dir.add_alias(&a, &alias, &target).await?))
}

/// Delete an alias.
#[utoipa::path(delete, path = "/api/v1/aliases/{alias}", tag = "aliases", security(("bearer" = [])),
    params(("alias" = String, Path)), responses((status = 200, body = AliasView), (status = 404, body = ErrorBody)))]
pub async fn delete_alias(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(alias): ApiPath<String>,
) -> ApiResult<Json<AliasView>> {
    Ok(Json(s.dir.delete_alias(&a, &alias).await?))
}

// ------------------------------------------------------------------ audit, health

/// The activity log (M12): everything for operators, an organization's for its
/// administrators, one's own otherwise.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", security(("bearer" = [])), params(AuditQuery),
    responses((status = 200, body = [AuditView]), (status = 403, body = ErrorBody)))]
pub async fn audit(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<Vec<AuditView>>> {
    Ok(Json(
        s.dir
            .list_audit(&a, q.org.as_deref(), q.limit.unwrap_or(50), q.before)
            .await?,
    ))
}

/// Liveness and store reachability (X3).
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, body = Health), (status = 503, body = ErrorBody)))]
pub async fn health(State(s): State<AppState>) -> impl IntoResponse {
    match s.dir.store().ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(Health {
                status: "ok".into(),
            }),
        )
            .into_response(),
        Err(e) => crate::error::ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        )
        .into_response(),
    }
}
