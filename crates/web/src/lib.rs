//! Postfach's HTTP side (DESIGN.md "web"): the JSON admin API under `/api/v1` with its OpenAPI
//! document, client auto-configuration (P6), and the health endpoint. The Manager UI and
//! webmail will join this router.

mod api;
mod api_filters;
mod autoconfig;
pub mod error;
mod extract;
mod listener;

pub use listener::serve;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use postfach_core::Directory;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::ApiError;

#[derive(Clone)]
pub struct AppState {
    pub dir: Directory,
}

/// Largest CSV accepted by the import endpoint.
const IMPORT_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// Completes the generated document: the bearer security scheme, and a description for every
/// response (required by OpenAPI 3.1; the status's reason phrase unless one was written).
struct Complete;

impl Modify for Complete {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        for item in doc.paths.paths.values_mut() {
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in ops.into_iter().flatten() {
                for (code, resp) in op.responses.responses.iter_mut() {
                    if let utoipa::openapi::RefOr::T(r) = resp
                        && r.description.is_empty()
                    {
                        r.description = code
                            .parse::<u16>()
                            .ok()
                            .and_then(|c| StatusCode::from_u16(c).ok())
                            .and_then(|s| s.canonical_reason())
                            .unwrap_or("Response")
                            .to_string();
                    }
                }
            }
        }
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A session token from POST /api/v1/auth/login, or an API key from `postfach apikey add`.",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Postfach admin API", description = "The Manager of a Postfach mail hosting platform: organizations, users, domains, mail services, addresses, aliases. Errors are `{\"error\": {\"code\", \"message\"}}` with stable codes."),
    paths(
        api::login, api::logout, api::me,
        api::list_orgs, api::create_org, api::list_users, api::add_user, api::set_role,
        api::invite_user, api::org_invitations, api::my_invitations, api::accept_invitation,
        api::decline_invitation, api::activate_invitation,
        api::get_user, api::set_user_password, api::grant, api::revoke,
        api::list_api_keys, api::create_api_key, api::revoke_api_key,
        api::list_domains, api::add_domain, api::verify_domain,
        api::list_services, api::create_service, api::get_service, api::update_service,
        api::list_addresses, api::add_address, api::import_addresses, api::export_addresses,
        api::get_address, api::update_address, api::delete_address, api::set_address_password,
        api::rename_address, api::folder_roles, api::set_folder_role, api::list_aliases, api::add_alias, api::delete_alias,
        api::audit, api::health,
        api_filters::list_autoreplies, api_filters::put_autoreply, api_filters::set_autoreply_active,
        api_filters::delete_autoreply, api_filters::reset_autoreplies, api_filters::get_filters,
        api_filters::set_filters, api_filters::get_service_filters, api_filters::set_service_filters,
        api_filters::get_lists, api_filters::add_list_entry, api_filters::delete_list_entry,
        api_filters::list_scripts, api_filters::get_script, api_filters::put_script,
        api_filters::delete_script, api_filters::set_active_script, api_filters::get_signature,
        api_filters::set_signature, api_filters::delivery_log, api_filters::report_message,
        api_filters::list_reports, api_filters::list_templates, api_filters::put_template,
        api_filters::delete_template, api_filters::apply_template,
    ),
    modifiers(&Complete),
    tags(
        (name = "auth", description = "Sessions"),
        (name = "organizations"), (name = "users"), (name = "domains"), (name = "services"),
        (name = "addresses"), (name = "aliases"), (name = "audit"), (name = "operations"),
        (name = "delivery", description = "Sieve, autoresponders, filters and lists of the delivery pipeline"),
    )
)]
pub struct ApiDoc;

pub fn openapi_json() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serialises")
}

async fn openapi() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        openapi_json(),
    )
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not support that method",
    )
}

/// The complete HTTP application.
pub fn router(dir: Directory) -> Router {
    let v1 = Router::new()
        .route("/auth/login", post(api::login))
        .route("/invitations/activate", post(api::activate_invitation))
        .route("/auth/logout", post(api::logout))
        .route("/me", get(api::me))
        .route("/orgs", get(api::list_orgs).post(api::create_org))
        .route(
            "/orgs/{org}/users",
            get(api::list_users).post(api::add_user),
        )
        .route("/orgs/{org}/users/{login}/role", put(api::set_role))
        .route(
            "/orgs/{org}/invitations",
            get(api::org_invitations).post(api::invite_user),
        )
        .route("/me/invitations", get(api::my_invitations))
        .route("/me/invitations/{org}/accept", post(api::accept_invitation))
        .route("/me/invitations/{org}", delete(api::decline_invitation))
        .route("/orgs/{org}/domains", post(api::add_domain))
        .route("/users/{login}", get(api::get_user))
        .route("/users/{login}/password", put(api::set_user_password))
        .route(
            "/users/{login}/grants/{domain}",
            put(api::grant).delete(api::revoke),
        )
        .route(
            "/users/{login}/api-keys",
            get(api::list_api_keys).post(api::create_api_key),
        )
        .route("/users/{login}/api-keys/{id}", delete(api::revoke_api_key))
        .route("/domains", get(api::list_domains))
        .route("/domains/{name}/verify", post(api::verify_domain))
        .route(
            "/services",
            get(api::list_services).post(api::create_service),
        )
        .route(
            "/services/{domain}",
            get(api::get_service).patch(api::update_service),
        )
        .route(
            "/services/{domain}/addresses",
            get(api::list_addresses).post(api::add_address),
        )
        .route(
            "/services/{domain}/addresses/import",
            post(api::import_addresses).layer(DefaultBodyLimit::max(IMPORT_BODY_LIMIT)),
        )
        .route(
            "/services/{domain}/addresses/export",
            get(api::export_addresses),
        )
        .route(
            "/addresses/{address}",
            get(api::get_address)
                .patch(api::update_address)
                .delete(api::delete_address),
        )
        .route(
            "/addresses/{address}/password",
            put(api::set_address_password),
        )
        .route("/addresses/{address}/rename", post(api::rename_address))
        .route("/addresses/{address}/folders", get(api::folder_roles))
        .route(
            "/addresses/{address}/folders/role",
            put(api::set_folder_role),
        )
        .route(
            "/services/{domain}/aliases",
            get(api::list_aliases).post(api::add_alias),
        )
        .route("/aliases/{alias}", delete(api::delete_alias))
        .route("/audit", get(api::audit))
        // Delivery pipeline.
        .route(
            "/addresses/{address}/autoreplies",
            get(api_filters::list_autoreplies).post(api_filters::put_autoreply),
        )
        .route(
            "/addresses/{address}/autoreplies/reset",
            post(api_filters::reset_autoreplies),
        )
        .route(
            "/addresses/{address}/autoreplies/{name}",
            delete(api_filters::delete_autoreply),
        )
        .route(
            "/addresses/{address}/autoreplies/{name}/active",
            put(api_filters::set_autoreply_active),
        )
        .route(
            "/addresses/{address}/filters",
            get(api_filters::get_filters).patch(api_filters::set_filters),
        )
        .route(
            "/addresses/{address}/delivery-log",
            get(api_filters::delivery_log),
        )
        .route(
            "/addresses/{address}/reports",
            post(api_filters::report_message),
        )
        .route("/reports", get(api_filters::list_reports))
        .route(
            "/services/{domain}/templates",
            get(api_filters::list_templates).post(api_filters::put_template),
        )
        .route(
            "/services/{domain}/templates/{name}",
            delete(api_filters::delete_template),
        )
        .route(
            "/services/{domain}/templates/{name}/apply",
            post(api_filters::apply_template),
        )
        .route(
            "/services/{domain}/filters",
            get(api_filters::get_service_filters).patch(api_filters::set_service_filters),
        )
        .route("/lists/{target}", get(api_filters::get_lists))
        .route("/lists/{target}/{kind}", post(api_filters::add_list_entry))
        .route(
            "/lists/{target}/{kind}/{entry}",
            delete(api_filters::delete_list_entry),
        )
        .route(
            "/sieve/{target}",
            get(api_filters::list_scripts).put(api_filters::set_active_script),
        )
        .route(
            "/sieve/{target}/{name}",
            get(api_filters::get_script)
                .put(api_filters::put_script)
                .delete(api_filters::delete_script),
        )
        .route(
            "/signatures/{target}",
            get(api_filters::get_signature).put(api_filters::set_signature),
        )
        .route("/openapi.json", get(openapi));
    Router::new()
        .nest("/api/v1", v1)
        .route("/healthz", get(api::health))
        .route(
            "/.well-known/autoconfig/mail/config-v1.1.xml",
            get(autoconfig::thunderbird_config),
        )
        .route("/mail/config-v1.1.xml", get(autoconfig::thunderbird_config))
        // Outlook tries both spellings.
        .route(
            "/autodiscover/autodiscover.xml",
            post(autoconfig::outlook_autodiscover).get(autoconfig::autodiscover_get),
        )
        .route(
            "/Autodiscover/Autodiscover.xml",
            post(autoconfig::outlook_autodiscover).get(autoconfig::autodiscover_get),
        )
        .route("/apple/{file}", get(autoconfig::apple_profile))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(AppState { dir })
}
