//! Who looks at the dashboard: the API key they signed in with, kept in an
//! HTTP-only, same-site cookie and sent with every call the pages make.
//! With keys off (`fresco dev`, `--insecure-no-auth`) there is no sign-in
//! and every page is open.
//!
//! Signing in checks the key against the job API at once, so a wrong or
//! revoked key, or a worker token, is refused on the form with the API's
//! own reason.

use axum::Form;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use fresco_proto::v1 as pb;
use maud::{Markup, html};
use serde::Deserialize;
use tracing::info;

use crate::Dashboard;
use crate::api::request;
use crate::layout;

/// The cookie holding the viewer's key.
pub const KEY_COOKIE: &str = "fresco_key";

/// The viewer of a page: their key when the farm asks for keys.
#[derive(Clone, Debug)]
pub struct Viewer {
    pub key: Option<String>,
    /// Whether this farm asks for keys (a sign-out link is shown).
    pub signed_in: bool,
}

impl Viewer {
    /// A job API request on the viewer's behalf.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        request(self.key.as_deref(), message)
    }
}

/// The value of cookie `name` in a request's headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Where an unsigned viewer goes: the sign-in form, then back here.
fn to_sign_in(parts: &Parts) -> Response {
    let next = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let query = next_query(&next);
    Redirect::to(&format!("/login?{query}")).into_response()
}

/// `next=PATH`, the way back after signing in, as a query string.
fn next_query(next: &str) -> String {
    serde_urlencoded::to_string([("next", next)]).unwrap_or_default()
}

impl FromRequestParts<Dashboard> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        dashboard: &Dashboard,
    ) -> Result<Self, Self::Rejection> {
        if !dashboard.login_required {
            return Ok(Viewer {
                key: None,
                signed_in: false,
            });
        }
        match cookie(&parts.headers, KEY_COOKIE) {
            Some(key) if !key.is_empty() => Ok(Viewer {
                key: Some(key.to_owned()),
                signed_in: true,
            }),
            _ => Err(to_sign_in(parts)),
        }
    }
}

/// A redirect target of our own: a path on this site, never another.
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(path) if path.starts_with('/') && !path.starts_with("//") => path,
        _ => "/",
    }
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginForm {
    key: String,
    next: Option<String>,
}

/// `GET /login`: the sign-in form.
pub async fn login_page(
    State(dashboard): State<Dashboard>,
    Query(query): Query<LoginQuery>,
) -> Response {
    if !dashboard.login_required {
        return Redirect::to("/").into_response();
    }
    login_form(local_path(query.next.as_deref()), None).into_response()
}

fn login_form(next: &str, error: Option<&str>) -> Markup {
    layout::bare(
        "Sign in",
        html! {
            main.narrow {
                h1 { "Sign in to fresco" }
                p { "Use the API key your farm's operator gave you (" code { "fresco keys create" } ")." }
                @if let Some(error) = error {
                    p.error role="alert" id="login-error" { (error) }
                }
                form method="post" action="/login" {
                    input type="hidden" name="next" value=(next);
                    label for="key" { "API key" }
                    input #key type="password" name="key" autocomplete="current-password" required autofocus;
                    button type="submit" { "Sign in" }
                }
            }
        },
    )
}

/// `POST /login`: checks the key against the job API, then keeps it.
pub async fn login(State(dashboard): State<Dashboard>, Form(form): Form<LoginForm>) -> Response {
    let next = local_path(form.next.as_deref()).to_owned();
    let key = form.key.trim();
    let refused = |message: &str| {
        (StatusCode::UNAUTHORIZED, login_form(&next, Some(message))).into_response()
    };
    if key.is_empty()
        || !key
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b';' && b != b',')
    {
        return refused("That is not an API key.");
    }
    let probe = pb::ListJobsRequest {
        limit: 1,
        ..Default::default()
    };
    if let Err(status) = dashboard
        .api
        .client()
        .list_jobs(request(Some(key), probe))
        .await
    {
        info!(code = ?status.code(), "dashboard sign-in refused");
        return refused(status.message());
    }
    let cookie = format!(
        "{KEY_COOKIE}={key}; Path=/; HttpOnly; SameSite=Strict{}",
        if dashboard.secure_cookies {
            "; Secure"
        } else {
            ""
        }
    );
    with_cookie(Redirect::to(&next).into_response(), &cookie)
}

/// `POST /logout`: forgets the key.
pub async fn logout(State(dashboard): State<Dashboard>) -> Response {
    let cookie = format!(
        "{KEY_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if dashboard.secure_cookies {
            "; Secure"
        } else {
            ""
        }
    );
    with_cookie(Redirect::to("/login").into_response(), &cookie)
}

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(local_path(Some("/jobs/x?from=60")), "/jobs/x?from=60");
        assert_eq!(local_path(Some("//evil.example/")), "/");
        assert_eq!(local_path(Some("https://evil.example/")), "/");
        assert_eq!(local_path(None), "/");
    }

    #[test]
    fn the_key_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; fresco_key=fk_abc.def; x=1"),
        );
        assert_eq!(cookie(&headers, KEY_COOKIE), Some("fk_abc.def"));
        assert_eq!(cookie(&headers, "missing"), None);
    }

    #[test]
    fn the_next_path_is_escaped_for_the_query() {
        let query = next_query("/jobs?state=failed&q=a b");
        assert_eq!(query, "next=%2Fjobs%3Fstate%3Dfailed%26q%3Da+b");
        let back: LoginQuery = serde_urlencoded::from_str(&query).expect("decodes");
        assert_eq!(back.next.as_deref(), Some("/jobs?state=failed&q=a b"));
    }
}
