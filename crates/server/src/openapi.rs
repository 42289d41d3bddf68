//! Parts of the OpenAPI document that the handler attributes cannot say on
//! their own: the shared error answers, the bearer-token scheme, and the
//! exact shape of a scale body.
//!
//! Every answer the API gives is listed in the document, so a client (and
//! the schemathesis run of `.ci/run`) can hold the server to it.

use std::borrow::Cow;

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder, SecurityRequirement};
use utoipa::{Modify, PartialSchema, ToResponse, ToSchema};

/// Name of the bearer-token security scheme.
pub const BEARER: &str = "bearer_auth";

/// Routes that answer without a token (orchestrator probes).
pub const OPEN_PATHS: [&str; 2] = ["/api/v1/health", "/api/v1/ready"];

/// Process name used in the document's examples (the user guide's queue
/// workers; `.ci/run` starts a manager with it).
pub const EXAMPLE_PROCESS: &str = "queue-default";
/// A scheduled process, as named in the examples of `run` and `runs`.
pub const EXAMPLE_SCHEDULED: &str = "report";
/// A process with an autoscaler, as named in the example of `autoscale`.
pub const EXAMPLE_AUTOSCALED: &str = "queue-high";
/// Instance name used in the document's examples.
pub const EXAMPLE_INSTANCE: &str = "queue-default-2";

fn error_response(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorResponse")))
            .build(),
    )
}

macro_rules! error_answer {
    ($(#[$doc:meta])* $name:ident, $description:expr) => {
        $(#[$doc])*
        pub struct $name;

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                (stringify!($name), error_response($description).build().into())
            }
        }
    };
}

error_answer!(
    /// 400 for a bad body, query or path encoding.
    BadRequest,
    "Refused: a body, query value or path segment that cannot be read, a value out of \
     range (such as a scale above `max_scale`), or a process disabled in the config."
);
error_answer!(
    /// 404 for an unknown name.
    NotFound,
    "No process or instance has that name."
);
error_answer!(
    /// 409 while the manager cannot apply the request.
    Conflict,
    "The manager cannot apply the request now: it is shutting down (or, for a reload, the \
     reload task failed)."
);
error_answer!(
    /// 413 for a body above the limit.
    PayloadTooLarge,
    "The request body is above 64 KiB."
);

/// 401: a token is configured and the request does not carry it, or the
/// listener wants client certificates and the connection presented none.
pub struct Unauthorized;

impl<'r> ToResponse<'r> for Unauthorized {
    fn response() -> (&'r str, RefOr<Response>) {
        let header = HeaderBuilder::new()
            .schema(Some(ObjectBuilder::new().schema_type(Type::String).build()))
            .description(Some("`Bearer`"))
            .build();
        (
            "Unauthorized",
            error_response(
                "`api_auth` is set and the request lacks `Authorization: Bearer <token>` \
                 (the answer then carries `WWW-Authenticate: Bearer`), or `api_tls.client_ca` \
                 is set and the TLS connection presented no client certificate \
                 (`{\"error\":\"client certificate required\"}`).",
            )
            .header("WWW-Authenticate", header)
            .build()
            .into(),
        )
    }
}

/// The documented shape of a scale body: `desired` or `scale` (or both,
/// then `desired` wins), each a whole number. `phpeek_wire::ScaleRequest`
/// keeps raw values so the handler can say what is wrong with a bad one.
pub struct ScaleBody;

fn count(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(0))
        .maximum(Some(u32::MAX))
        .description(Some(description))
}

fn scale_variant(required: &str) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            "desired",
            count(
                "Wanted number of instances, at most the process's `max_scale` and \
                   `max_process_scale`.",
            ),
        )
        .property(
            "scale",
            count("Same as `desired`; `desired` wins when both are given."),
        )
        .required(required)
        .build()
        .into()
}

impl PartialSchema for ScaleBody {
    fn schema() -> RefOr<Schema> {
        RefOr::T(Schema::AnyOf(
            AnyOfBuilder::new()
                .item(scale_variant("desired"))
                .item(scale_variant("scale"))
                .description(Some(
                    "`POST /api/v1/processes/{name}/scale` body: `{\"desired\": N}` or \
                 `{\"scale\": N}`.",
                ))
                .examples([serde_json::json!({"desired": 3})])
                .build(),
        ))
    }
}

impl ToSchema for ScaleBody {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ScaleRequest")
    }
}

/// Adds the bearer scheme, required everywhere but on the open routes.
pub struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "Needed on every route but health and ready when `api_auth` is set.",
                    ))
                    .build(),
            ),
        );
        let required = vec![SecurityRequirement::new(BEARER, Vec::<String>::new())];
        for (path, item) in doc.paths.paths.iter_mut() {
            let open = OPEN_PATHS.contains(&path.as_str());
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                op.security = Some(if open { Vec::new() } else { required.clone() });
            }
        }
    }
}
