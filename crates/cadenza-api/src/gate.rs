//! The gate: every request to a documented operation is authorized here, before any handler
//! runs, from the same operation list the OpenAPI document is built from
//! ([`openapi::operations`]). What the document says an operation needs is therefore exactly what
//! the server asks for, and under `/v1/` a route the list does not name is never reached (a 404,
//! or a 405 for a documented path's other methods): a route and its document cannot drift apart
//! without the route becoming unreachable, never unguarded.

use std::borrow::Cow;
use std::sync::OnceLock;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cadenza_domain::principal::Principal;
use cadenza_domain::{Error, Reason};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::openapi::{self, Access};

/// The caller the gate authenticated, for the handler's extractors (`auth::Caller`).
#[derive(Clone)]
pub(crate) struct Authenticated(pub Principal);

/// One segment of an operation's path template.
#[derive(Debug, PartialEq)]
enum Segment {
    Literal(&'static str),
    /// `{param}`: any non-empty segment.
    Param,
    /// `{param}:verb`: a segment ending in `:verb`, with something before it.
    ParamVerb(&'static str),
}

struct Route {
    id: &'static str,
    method: Method,
    segments: Vec<Segment>,
    access: Access,
    unimplemented: bool,
}

impl Segment {
    fn matches(&self, s: &str) -> bool {
        match self {
            Segment::Literal(l) => s == *l,
            Segment::Param => !s.is_empty(),
            Segment::ParamVerb(v) => {
                s.strip_suffix(v).and_then(|rest| rest.strip_suffix(':')).is_some_and(|id| !id.is_empty())
            }
        }
    }
}

impl Route {
    fn matches(&self, segments: &[Cow<'_, str>]) -> bool {
        self.segments.len() == segments.len() && self.segments.iter().zip(segments).all(|(t, s)| t.matches(s))
    }

    /// How specific the template is: a literal or a verb beats a bare parameter
    /// (`/v1/workspaces/current` over `/v1/workspaces/{workspace_id}`).
    fn specificity(&self) -> usize {
        self.segments.iter().filter(|s| !matches!(s, Segment::Param)).count()
    }

    /// This route's template with the last segment's verb ignored (`{id}:publish`, or a literal
    /// like `global_api_key:rotate`): for telling an unknown `:verb` from an unknown route.
    fn matches_but_verb(&self, segments: &[Cow<'_, str>]) -> bool {
        let n = self.segments.len();
        if n == 0 || n != segments.len() {
            return false;
        }
        let Some((id, _)) = segments[n - 1].rsplit_once(':') else { return false };
        let base = match &self.segments[n - 1] {
            Segment::ParamVerb(_) => !id.is_empty(),
            Segment::Literal(l) => l.rsplit_once(':').is_some_and(|(base, _)| base == id),
            Segment::Param => false,
        };
        base && self.segments[..n - 1].iter().zip(&segments[..n - 1]).all(|(t, s)| t.matches(s))
    }
}

fn template(path: &'static str) -> Vec<Segment> {
    path.trim_start_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| match s.strip_prefix('{') {
            Some(rest) => match rest.split_once("}:") {
                Some((_, verb)) => Segment::ParamVerb(verb),
                None => Segment::Param,
            },
            None => Segment::Literal(s),
        })
        .collect()
}

fn table() -> &'static [Route] {
    static TABLE: OnceLock<Vec<Route>> = OnceLock::new();
    TABLE.get_or_init(|| {
        openapi::all_operations()
            .into_iter()
            .map(|op| Route {
                id: op.id,
                method: Method::from_bytes(op.method.to_ascii_uppercase().as_bytes()).unwrap_or(Method::GET),
                segments: template(op.path),
                access: op.access,
                unimplemented: op.unimplemented,
            })
            .collect()
    })
}

/// What a request's method and path name.
enum Found {
    Route(&'static Route),
    /// A documented path, not with this method.
    OtherMethod,
    /// A documented `{id}:verb` path with a verb it does not have.
    UnknownVerb,
    Nothing,
}

fn find(method: &Method, path: &str) -> Found {
    // HEAD is served by GET's handler.
    let method = if method == Method::HEAD { &Method::GET } else { method };
    let segments: Vec<Cow<'_, str>> = path
        .trim_start_matches('/')
        .split('/')
        .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy())
        .collect();
    let mut best: Option<&'static Route> = None;
    let mut path_known = false;
    let mut verb_family = false;
    for route in table() {
        if !route.matches(&segments) {
            verb_family |= route.method == *method && route.matches_but_verb(&segments);
            continue;
        }
        path_known = true;
        if route.method == *method && best.is_none_or(|b| route.specificity() > b.specificity()) {
            best = Some(route);
        }
    }
    match best {
        Some(route) => Found::Route(route),
        None if verb_family => Found::UnknownVerb,
        None if path_known => Found::OtherMethod,
        None => Found::Nothing,
    }
}

/// The `operationId` of the documented operation a request's method and path name, as the gate
/// routes it: for tests that hold each answer to the schema its operation documents.
pub fn operation_id(method: &Method, path: &str) -> Option<&'static str> {
    match find(method, path) {
        Found::Route(route) => Some(route.id),
        _ => None,
    }
}

/// The middleware: authorizes the request as its operation says, or answers for it.
pub(crate) async fn gate(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let route = match find(req.method(), path) {
        Found::Route(route) => route,
        Found::OtherMethod => {
            return refuse(Error::of(Reason::MethodNotAllowed, "method not allowed on this route"));
        }
        Found::UnknownVerb => {
            return refuse(Error::of(Reason::CustomMethodUnknown, format!("no such method on {path:?}")));
        }
        Found::Nothing if path == "/v1" || path.starts_with("/v1/") => {
            return refuse(Error::of(Reason::RouteNotFound, "no such route"));
        }
        // The server's own pages (the document, /docs, /metrics) and the fallback's 404.
        Found::Nothing => return next.run(req).await,
    };
    let mut resp = 'answer: {
        if route.access != Access::Public {
            match authorize(&s, req.headers(), route.access).await {
                Ok(p) => req.extensions_mut().insert(Authenticated(p)),
                Err(e) => break 'answer e.into_response(),
            };
        }
        if route.unimplemented {
            break 'answer refuse(Error::of(
                Reason::Unimplemented,
                "this operation is not supported by this server yet",
            ));
        }
        next.run(req).await
    };
    resp.extensions_mut().insert(OperationId(route.id));
    resp
}

/// The documented operation that answered, on its response: the request metrics count by it.
#[derive(Debug, Clone, Copy)]
pub struct OperationId(pub &'static str);

fn refuse(e: Error) -> Response {
    ApiError::from(e).into_response()
}

async fn authorize(s: &AppState, headers: &HeaderMap, access: Access) -> ApiResult<Principal> {
    let principal = crate::auth::authenticate(s, headers).await?;
    match access {
        Access::Public | Access::AnyKey => {}
        Access::Permission(resource, verb) => crate::auth::require(&principal, resource, verb)?,
        Access::System if principal.system => {}
        Access::System => {
            return Err(Error::of(Reason::SystemKeyRequired, "only the account's global API key may do this").into());
        }
    }
    Ok(principal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(method: Method, path: &str) -> Option<(Access, bool)> {
        match find(&method, path) {
            Found::Route(r) => Some((r.access, r.unimplemented)),
            _ => None,
        }
    }

    #[test]
    fn templates_split_into_literals_parameters_and_verbs() {
        assert_eq!(
            template("/v1/workspaces/{workspace_id}/agents/{agent_id}:publish"),
            [
                Segment::Literal("v1"),
                Segment::Literal("workspaces"),
                Segment::Param,
                Segment::Literal("agents"),
                Segment::ParamVerb("publish"),
            ]
        );
    }

    #[test]
    fn requests_find_their_operation() {
        use cadenza_domain::scopes::Verb;
        let ws = "/v1/workspaces/default";
        let agents = Access::Permission("agents", Verb::Read);
        let manage = Access::Permission("agents", Verb::Manage);
        assert_eq!(found(Method::GET, &format!("{ws}/agents")), Some((agents, false)));
        assert_eq!(found(Method::HEAD, &format!("{ws}/agents")), Some((agents, false)));
        assert_eq!(found(Method::GET, &format!("{ws}/agents/external_id:a:publish")), Some((agents, false)));
        assert_eq!(found(Method::POST, &format!("{ws}/agents/external_id:a:publish")), Some((manage, false)));
        // A percent-encoded colon is a colon, as the handler's path extractor reads it.
        assert_eq!(found(Method::POST, &format!("{ws}/agents/agent_1%3Apublish")), Some((manage, false)));
        assert!(matches!(find(&Method::POST, &format!("{ws}/agents/agent_1:fly")), Found::UnknownVerb));
        assert!(matches!(find(&Method::POST, "/v1/account/global_api_key:explode"), Found::UnknownVerb));
        assert!(matches!(find(&Method::PUT, &format!("{ws}/agents")), Found::OtherMethod));
        assert!(matches!(find(&Method::GET, &format!("{ws}/agents/")), Found::Nothing));
        assert!(matches!(find(&Method::GET, &format!("{ws}/nothing")), Found::Nothing));
        assert!(matches!(find(&Method::POST, &format!("{ws}/agents/:publish")), Found::OtherMethod));
        // A literal beats a parameter.
        assert_eq!(found(Method::GET, "/v1/workspaces/current"), Some((Access::AnyKey, false)));
        assert_eq!(found(Method::GET, "/healthz"), Some((Access::Public, false)));
        assert_eq!(found(Method::POST, "/v1/account/global_api_key:rotate"), Some((Access::System, false)));
        assert_eq!(
            found(Method::POST, &format!("{ws}/objectives/objective_1:compact")),
            Some((Access::Permission("objectives", Verb::Manage), true))
        );
    }
}
