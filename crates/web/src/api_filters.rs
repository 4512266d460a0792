//! `/api/v1` for the delivery pipeline: autoresponders (F10), allow/block lists
//! (F7), spam/promotions switches and service filters (F5, F6, F8), Sieve scripts (F9),
//! signatures (M8) and the delivery log — the same operations as the CLI. Forwarding (F11)
//! is `PATCH /addresses/{address}` (`forward_to`, `forward_keep_copy`).
//!
//! `{target}` is an address, or a domain for the mail service's own settings.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use postfach_core::filters::{
    AutoreplyView, DeliveryLogView, FilterView, ListKind, ListView, ServiceFilterView,
    SieveScriptView,
};
use postfach_core::mail::settings::{Autoreply, BlockAction, SieveScript, Signature, Template};
use postfach_core::reports::{ReportKind, ReportOutcome, ReportView};
use postfach_core::templates::TemplateApplied;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Auth};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActiveBody {
    pub active: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResetView {
    /// How many senders were forgotten.
    pub forgotten: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListEntryBody {
    /// `name@example.com` or `@example.com`.
    pub entry: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterChanges {
    pub spam: Option<bool>,
    pub promotions: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceFilterChanges {
    pub block_action: Option<BlockAction>,
    pub external_marking: Option<bool>,
    pub spam_threshold: Option<f64>,
    /// F12: keep winmail.dat beside the files unpacked from it.
    pub tnef_keep_original: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScriptBody {
    pub source: String,
    #[serde(default)]
    pub activate: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActiveScriptBody {
    /// The script to run; null runs none.
    pub name: Option<String>,
}

fn kind(k: &str) -> Result<ListKind, crate::error::ApiError> {
    Ok(ListKind::parse(k)?)
}

/// The autoresponders of an address.
#[utoipa::path(get, path = "/api/v1/addresses/{address}/autoreplies", tag = "delivery", security(("bearer" = [])),
    params(("address" = String, Path)), responses((status = 200, body = [AutoreplyView]), (status = 404, body = ErrorBody)))]
pub async fn list_autoreplies(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(address): ApiPath<String>,
) -> ApiResult<Json<Vec<AutoreplyView>>> {
    Ok(Json(s.dir.autoreply_list(&a, &address).await?))
}

/// Save an autoresponder (same name: replaced; `active`: the only active one).
#[utoipa::path(post, path = "/api/v1/addresses/{address}/autoreplies", tag = "delivery", security(("bearer" = [])),
    params(("address" = String, Path)), request_body = Autoreply,
    responses((status = 200, body = AutoreplyView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn put_autoreply(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(address): ApiPath<String>,
    ApiJson(b): ApiJson<Autoreply>,
) -> ApiResult<Json<AutoreplyView>> {
    Ok(Json(s.dir.autoreply_put(&a, &address, &b).await?))
}

/// Activate (deactivating any other) or deactivate an autoresponder.
#[utoipa::path(put, path = "/api/v1/addresses/{address}/autoreplies/{name}/active", tag = "delivery", security(("bearer" = [])),
    params(("address" = String, Path), ("name" = String, Path)), request_body = ActiveBody,
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn set_autoreply_active(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath((address, name)): ApiPath<(String, String)>,
    ApiJson(b): ApiJson<ActiveBody>,
) -> ApiResult<StatusCode> {
    s.dir
        .autoreply_set_active(&a, &address, &name, b.active)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Delete an autoresponder.
#[utoipa::path(delete, path = "/api/v1/addresses/{address}/autoreplies/{name}", tag = "delivery", security(("bearer" = [])),
    params(("address" = String, Path), ("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_autoreply(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath((address, name)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    s.dir.autoreply_delete(&a, &address, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Forget whom the autoresponder answered (F10 "reset").
#[utoipa::path(post, path = "/api/v1/addresses/{address}/autoreplies/reset", tag = "delivery", security(("bearer" = [])),
    params(("address" = String, Path)), responses((status = 200, body = ResetView), (status = 404, body = ErrorBody)))]
pub async fn reset_autoreplies(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(address): ApiPath<String>,
) -> ApiResult<Json<ResetView>> {
    Ok(Json(ResetView {
        forgotten: s.dir.autoreply_reset(&a, &address).await?,
    }))
}

/// The spam and promotions switches of an address.
#[utoipa::path(get, path = "/api/v1/addresses/{address}/filters", tag = "delivery", security(("bearer" = [])),
    params(("address" = String, Path)), responses((status = 200, body = FilterView), (status = 404, body = ErrorBody)))]
pub async fn get_filters(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(address): ApiPath<String>,
) -> ApiResult<Json<FilterView>> {
    Ok(Json(s.dir.filters_get(&a, &address).await?))
}

/// Switch the spam filter (F5) or the promotions/social sorting (F6) of an address.
#[utoipa::path(patch, path = "/api/v1/addresses/{address}/filters", tag = "delivery", security(("bearer" = [])),
    params(("address" = String, Path)), request_body = FilterChanges,
    responses((status = 200, body = FilterView), (status = 403, body = ErrorBody)))]
pub async fn set_filters(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(address): ApiPath<String>,
    ApiJson(b): ApiJson<FilterChanges>,
) -> ApiResult<Json<FilterView>> {
    Ok(Json(
        s.dir
            .filters_set(&a, &address, b.spam, b.promotions)
            .await?,
    ))
}

/// A mail service's block action (F7), external marking (F8) and spam threshold (F5).
#[utoipa::path(get, path = "/api/v1/services/{domain}/filters", tag = "delivery", security(("bearer" = [])),
    params(("domain" = String, Path)), responses((status = 200, body = ServiceFilterView), (status = 404, body = ErrorBody)))]
pub async fn get_service_filters(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(domain): ApiPath<String>,
) -> ApiResult<Json<ServiceFilterView>> {
    Ok(Json(s.dir.service_filters_get(&a, &domain).await?))
}

#[utoipa::path(patch, path = "/api/v1/services/{domain}/filters", tag = "delivery", security(("bearer" = [])),
    params(("domain" = String, Path)), request_body = ServiceFilterChanges,
    responses((status = 200, body = ServiceFilterView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn set_service_filters(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(domain): ApiPath<String>,
    ApiJson(b): ApiJson<ServiceFilterChanges>,
) -> ApiResult<Json<ServiceFilterView>> {
    Ok(Json(
        s.dir
            .service_filters_set(
                &a,
                &domain,
                b.block_action,
                b.external_marking,
                b.spam_threshold,
                b.tnef_keep_original,
            )
            .await?,
    ))
}

/// Allow and block lists of an address or mail service, with warnings (own address allowed).
#[utoipa::path(get, path = "/api/v1/lists/{target}", tag = "delivery", security(("bearer" = [])),
    params(("target" = String, Path)), responses((status = 200, body = ListView), (status = 404, body = ErrorBody)))]
pub async fn get_lists(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(target): ApiPath<String>,
) -> ApiResult<Json<ListView>> {
    Ok(Json(s.dir.list_show(&a, &target).await?))
}

/// Add an entry to the `allow` or `block` list.
#[utoipa::path(post, path = "/api/v1/lists/{target}/{kind}", tag = "delivery", security(("bearer" = [])),
    params(("target" = String, Path), ("kind" = String, Path, description = "allow or block")), request_body = ListEntryBody,
    responses((status = 200, body = ListView), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn add_list_entry(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath((target, k)): ApiPath<(String, String)>,
    ApiJson(b): ApiJson<ListEntryBody>,
) -> ApiResult<Json<ListView>> {
    Ok(Json(
        s.dir
            .list_change(&a, &target, kind(&k)?, &b.entry, true)
            .await?,
    ))
}

/// Remove an entry from the `allow` or `block` list.
#[utoipa::path(delete, path = "/api/v1/lists/{target}/{kind}/{entry}", tag = "delivery", security(("bearer" = [])),
    params(("target" = String, Path), ("kind" = String, Path), ("entry" = String, Path)),
    responses((status = 200, body = ListView), (status = 404, body = ErrorBody)))]
pub async fn delete_list_entry(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath((target, k, entry)): ApiPath<(String, String, String)>,
) -> ApiResult<Json<ListView>> {
    Ok(Json(
        s.dir
            .list_change(&a, &target, kind(&k)?, &entry, false)
            .await?,
    ))
}

/// The Sieve scripts of an address or mail service.
#[utoipa::path(get, path = "/api/v1/sieve/{target}", tag = "delivery", security(("bearer" = [])),
    params(("target" = String, Path)), responses((status = 200, body = [SieveScriptView]), (status = 404, body = ErrorBody)))]
pub async fn list_scripts(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(target): ApiPath<String>,
) -> ApiResult<Json<Vec<SieveScriptView>>> {
    Ok(Json(s.dir.sieve_list(&a, &target).await?))
}

#[utoipa::path(get, path = "/api/v1/sieve/{target}/{name}", tag = "delivery", security(("bearer" = [])),
    params(("target" = String, Path), ("name" = String, Path)),
    responses((status = 200, body = SieveScript), (status = 404, body = ErrorBody)))]
pub async fn get_script(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath((target, name)): ApiPath<(String, String)>,
) -> ApiResult<Json<SieveScript>> {
    Ok(Json(s.dir.sieve_get(&a, &target, &name).await?))
}

/// Store a script (compiled first: a syntax error is a 400 naming its line).
#[utoipa::path(put, path = "/api/v1/sieve/{target}/{name}", tag = "delivery", security(("bearer" = [])),
    params(("target" = String, Path), ("name" = String, Path)), request_body = ScriptBody,
    responses((status = 200, body = SieveScriptView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn put_script(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath((target, name)): ApiPath<(String, String)>,
    ApiJson(b): ApiJson<ScriptBody>,
) -> ApiResult<Json<SieveScriptView>> {
    Ok(Json(
        s.dir
            .sieve_put(&a, &target, &name, &b.source, b.activate)
            .await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/sieve/{target}/{name}", tag = "delivery", security(("bearer" = [])),
    params(("target" = String, Path), ("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_script(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath((target, name)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    s.dir.sieve_delete(&a, &target, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Choose the active script (null: none runs).
#[utoipa::path(put, path = "/api/v1/sieve/{target}", tag = "delivery", security(("bearer" = [])),
    params(("target" = String, Path)), request_body = ActiveScriptBody,
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn set_active_script(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(target): ApiPath<String>,
    ApiJson(b): ApiJson<ActiveScriptBody>,
) -> ApiResult<StatusCode> {
    s.dir.sieve_activate(&a, &target, b.name.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signature of an address or the service-wide one (M8).
#[utoipa::path(get, path = "/api/v1/signatures/{target}", tag = "delivery", security(("bearer" = [])),
    params(("target" = String, Path)), responses((status = 200, body = Signature), (status = 404, body = ErrorBody)))]
pub async fn get_signature(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(target): ApiPath<String>,
) -> ApiResult<Json<Signature>> {
    Ok(Json(s.dir.signature_get(&a, &target).await?))
}

#[utoipa::path(put, path = "/api/v1/signatures/{target}", tag = "delivery", security(("bearer" = [])),
    params(("target" = String, Path)), request_body = Signature,
    responses((status = 204), (status = 400, body = ErrorBody)))]
pub async fn set_signature(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(target): ApiPath<String>,
    ApiJson(b): ApiJson<Signature>,
) -> ApiResult<StatusCode> {
    s.dir.signature_set(&a, &target, &b.text).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What delivery recorded for an address: Sieve errors, loops stopped, blocked senders.
#[utoipa::path(get, path = "/api/v1/addresses/{address}/delivery-log", tag = "delivery", security(("bearer" = [])),
    params(("address" = String, Path)), responses((status = 200, body = [DeliveryLogView]), (status = 404, body = ErrorBody)))]
pub async fn delivery_log(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(address): ApiPath<String>,
) -> ApiResult<Json<Vec<DeliveryLogView>>> {
    Ok(Json(s.dir.delivery_log(&a, &address, 100).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportBody {
    /// The folder the message is in (`INBOX`, `Spam`…).
    pub folder: String,
    pub uid: i64,
    /// `spam`, `phishing` or `ham` ("not spam").
    pub kind: ReportKind,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportsQuery {
    /// `spam` or `phishing`; both when absent.
    pub kind: Option<ReportKind>,
    /// 1–1000, default 50.
    pub limit: Option<i64>,
}

/// Report a message as spam, phishing or not spam (F5): trains the classifier, moves the
/// message into Spam (or back to INBOX) and records spam/phishing for the operator.
#[utoipa::path(post, path = "/api/v1/addresses/{address}/reports", tag = "delivery", security(("bearer" = [])),
    params(("address" = String, Path)), request_body = ReportBody,
    responses((status = 200, body = ReportOutcome), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn report_message(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(address): ApiPath<String>,
    ApiJson(b): ApiJson<ReportBody>,
) -> ApiResult<Json<ReportOutcome>> {
    Ok(Json(
        s.dir
            .report_message(&a, &address, &b.folder, b.uid, b.kind)
            .await?,
    ))
}

/// Messages users reported, newest first (platform operators).
#[utoipa::path(get, path = "/api/v1/reports", tag = "delivery", security(("bearer" = [])),
    params(ReportsQuery), responses((status = 200, body = [ReportView]), (status = 403, body = ErrorBody)))]
pub async fn list_reports(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiQuery(q): ApiQuery<ReportsQuery>,
) -> ApiResult<Json<Vec<ReportView>>> {
    Ok(Json(
        s.dir
            .reports_list(&a, q.kind, q.limit.unwrap_or(50))
            .await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyBody {
    /// Addresses of the service; null or absent = every address.
    #[serde(default)]
    pub addresses: Option<Vec<String>>,
}

/// The templates of a mail service (M8).
#[utoipa::path(get, path = "/api/v1/services/{domain}/templates", tag = "delivery", security(("bearer" = [])),
    params(("domain" = String, Path)), responses((status = 200, body = [Template]), (status = 404, body = ErrorBody)))]
pub async fn list_templates(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(domain): ApiPath<String>,
) -> ApiResult<Json<Vec<Template>>> {
    Ok(Json(s.dir.template_list(&a, &domain).await?))
}

/// Save a template (same name: replaced; `default`: applied to every new address).
#[utoipa::path(post, path = "/api/v1/services/{domain}/templates", tag = "delivery", security(("bearer" = [])),
    params(("domain" = String, Path)), request_body = Template,
    responses((status = 200, body = Template), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn put_template(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath(domain): ApiPath<String>,
    ApiJson(b): ApiJson<Template>,
) -> ApiResult<Json<Template>> {
    Ok(Json(s.dir.template_put(&a, &domain, &b).await?))
}

/// Delete a template.
#[utoipa::path(delete, path = "/api/v1/services/{domain}/templates/{name}", tag = "delivery", security(("bearer" = [])),
    params(("domain" = String, Path), ("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_template(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath((domain, name)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    s.dir.template_delete(&a, &domain, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Apply a template to addresses of the service (all when none are named).
#[utoipa::path(post, path = "/api/v1/services/{domain}/templates/{name}/apply", tag = "delivery", security(("bearer" = [])),
    params(("domain" = String, Path), ("name" = String, Path)), request_body = ApplyBody,
    responses((status = 200, body = TemplateApplied), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn apply_template(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiPath((domain, name)): ApiPath<(String, String)>,
    ApiJson(b): ApiJson<ApplyBody>,
) -> ApiResult<Json<TemplateApplied>> {
    Ok(Json(
        s.dir
            .template_apply(&a, &domain, &name, b.addresses.as_deref())
            .await?,
    ))
}
