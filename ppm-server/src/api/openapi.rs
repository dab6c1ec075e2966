//! `GET /api/openapi.json`: an OpenAPI 3.1 document generated from the same
//! Rust types the handlers parse and return, so it cannot drift from what
//! the server accepts (lengths, ranges, patterns and unknown-field rules
//! come from the types' serde and schemars attributes).

use std::sync::OnceLock;

use axum::Json;
use ppm_core::config::{DeadHost, ProxyHost, RedirectionHost, Settings, Stream};
use ppm_core::engine::GroupHealth;
use ppm_store::accounts::AuditEntry;
use ppm_store::{ExportDocument, RevisionChanges, RevisionInfo};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{json, Map, Value};

use super::resources::{AccessListInput, Resource};
use super::routes::{
    Counts, ExportQuery, Health, ImportQuery, ImportResult, LoginRequest, LoginResponse, Page,
    PasswordChange, RollbackResult, TokenInput, TokenView, UserInput, UserView,
};

/// Serves the document (built once).
pub async fn serve() -> Json<Value> {
    static DOC: OnceLock<Value> = OnceLock::new();
    Json(DOC.get_or_init(document).clone())
}

struct Doc {
    gen: SchemaGenerator,
    paths: Map<String, Value>,
}

/// How an operation is protected.
#[derive(Clone, Copy)]
enum Sec {
    Public,
    Bearer,
}

impl Doc {
    fn schema<T: JsonSchema>(&mut self) -> Value {
        serde_json::to_value(self.gen.subschema_for::<T>()).unwrap_or(Value::Null)
    }

    #[allow(clippy::too_many_arguments)]
    fn op(
        &mut self,
        method: &str,
        path: &str,
        tag: &str,
        summary: &str,
        sec: Sec,
        params: Vec<Value>,
        body: Option<Value>,
        ok: (u16, Option<Value>),
    ) {
        let mut responses = Map::new();
        let ok_resp = match ok.1 {
            Some(schema) => {
                json!({"description": "Success", "content": {"application/json": {"schema": schema}}})
            }
            None => json!({"description": "Success, no body"}),
        };
        let mut ok_resp = ok_resp;
        if method != "get" && writes_config(path) {
            ok_resp["headers"] = json!({crate::cluster::NODES_APPLIED_HEADER: {
                "description": "Present when the request committed a config revision \
                    (this node answers after serving it): `applied/live`, how many of the \
                    live nodes sharing the config database serve that revision at the time \
                    of the answer. On SQLite always `1/1`. GET /api/cluster/nodes shows \
                    the nodes catching up.",
                "schema": {"type": "string", "pattern": "^[0-9]+/[0-9]+$"},
                "example": "2/3",
            }});
        }
        responses.insert(ok.0.to_string(), ok_resp);
        let err = json!({"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
        let mut codes = vec!["400", "422", "500"];
        if matches!(sec, Sec::Bearer) {
            // 503: the config database is unreachable (or, for writes, was
            // migrated by a newer ppm); nothing was written.
            codes.extend(["401", "403", "503"]);
        }
        if path.contains('{') {
            codes.push("404");
        }
        if matches!(method, "post" | "put" | "delete") {
            codes.push("409");
        }
        if path == "/api/auth/login" {
            codes.push("429");
        }
        for c in codes {
            responses.insert(c.to_string(), err.clone());
        }
        let mut op = json!({
            "tags": [tag],
            "summary": summary,
            "operationId": format!("{method}_{}", path.trim_start_matches("/api/").replace(['/', '{', '}', '-'], "_")),
            "responses": responses,
        });
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        if let Some(b) = body {
            op["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": b}}});
        }
        if matches!(sec, Sec::Public) {
            op["security"] = json!([]);
        }
        let entry = self
            .paths
            .entry(path.to_string())
            .or_insert_with(|| json!({}));
        entry[method] = op;
    }

    fn crud<R: Resource + JsonSchema>(&mut self, input: Value, tag: &str) {
        let path = format!("/api/{}", R::PATH);
        let item = format!("{path}/{{id}}");
        let entity = self.schema::<R>();
        let list = json!({"type": "array", "items": entity.clone()});
        let id = id_param("id");
        self.op(
            "get",
            &path,
            tag,
            &format!("List {}", R::KIND),
            Sec::Bearer,
            vec![],
            None,
            (200, Some(list)),
        );
        self.op(
            "post",
            &path,
            tag,
            &format!("Create a {}", R::KIND),
            Sec::Bearer,
            vec![],
            Some(input.clone()),
            (201, Some(entity.clone())),
        );
        self.op(
            "get",
            &item,
            tag,
            &format!("Read a {}", R::KIND),
            Sec::Bearer,
            vec![id.clone()],
            None,
            (200, Some(entity.clone())),
        );
        self.op(
            "put",
            &item,
            tag,
            &format!("Replace a {}", R::KIND),
            Sec::Bearer,
            vec![id.clone()],
            Some(input),
            (200, Some(entity)),
        );
        self.op(
            "delete",
            &item,
            tag,
            &format!("Delete a {}", R::KIND),
            Sec::Bearer,
            vec![id],
            None,
            (204, None),
        );
    }
}

/// What a stream write does to the listeners, for the OpenAPI document.
const STREAM_WRITES: &str = "The change is applied before the answer: a new or moved \
stream's listener is bound (or refused) first, a changed stream's new connections use the \
new settings while open ones keep theirs, and a deleted stream stops listening at once \
(its open connections close after the grace period). Refusals name the field: 409 \
`port_in_use` when another socket holds the port; 422 `cannot_listen` for a privileged \
port without permission or a bind address that is not local; 422 validation errors for \
a port of ppm-server itself, a port another stream uses, an unknown access list or \
certificate, a certificate on a `udp` or `both` stream (TLS termination is TCP only), \
PROXY protocol on UDP, or `idle_timeout_ms` outside 100..=86400000.";

fn certificates(d: &mut Doc) {
    use super::certificates::{CertificateRequest, CertificateUpdate, CertificateView};
    let view = d.schema::<CertificateView>();
    let req = d.schema::<CertificateRequest>();
    let upd = d.schema::<CertificateUpdate>();
    let list = json!({"type": "array", "items": view.clone()});
    d.op(
        "get",
        "/api/certificates",
        "certificates",
        "List certificates with their details (never private keys)",
        Sec::Bearer,
        vec![],
        None,
        (200, Some(list)),
    );
    d.op(
        "post",
        "/api/certificates",
        "certificates",
        "Upload a certificate (201) or start an ACME order (202)",
        Sec::Bearer,
        vec![],
        Some(req),
        (201, Some(view.clone())),
    );
    d.paths["/api/certificates"]["post"]["responses"]["202"] = json!({
        "description": "ACME order accepted; poll the certificate for its status",
        "content": {"application/json": {"schema": view.clone()}}
    });
    d.op(
        "get",
        "/api/certificates/{id}",
        "certificates",
        "Read a certificate: status, error, details, users",
        Sec::Bearer,
        vec![id_param("id")],
        None,
        (200, Some(view.clone())),
    );
    d.op(
        "put",
        "/api/certificates/{id}",
        "certificates",
        "Rename, or replace an uploaded certificate's PEMs",
        Sec::Bearer,
        vec![id_param("id")],
        Some(upd),
        (200, Some(view)),
    );
    d.op(
        "delete",
        "/api/certificates/{id}",
        "certificates",
        "Delete a certificate nothing uses",
        Sec::Bearer,
        vec![id_param("id")],
        None,
        (204, None),
    );
}

/// The ACME manager's routes: renewal, DNS providers, ACME settings.
fn acme_ops(d: &mut Doc) {
    use super::certificates::CertificateView;
    use crate::acme::api::{
        AcmeSettingsInput, AcmeSettingsView, DnsProviderInput, DnsProviderView,
    };
    let status = d.schema::<CertificateView>();
    d.op(
        "post",
        "/api/certificates/{id}/renew",
        "certificates",
        "Order a new certificate for an ACME certificate now (the current one keeps serving)",
        Sec::Bearer,
        vec![id_param("id")],
        None,
        (202, Some(status)),
    );

    let input = d.schema::<DnsProviderInput>();
    let view = d.schema::<DnsProviderView>();
    d.op(
        "get",
        "/api/dns-providers",
        "dns-providers",
        "List DNS providers for DNS-01 (credentials blank)",
        Sec::Bearer,
        vec![],
        None,
        (200, Some(json!({"type": "array", "items": view.clone()}))),
    );
    d.op(
        "post",
        "/api/dns-providers",
        "dns-providers",
        "Create a DNS provider (command providers: admins only)",
        Sec::Bearer,
        vec![],
        Some(input.clone()),
        (201, Some(view.clone())),
    );
    d.op(
        "get",
        "/api/dns-providers/{id}",
        "dns-providers",
        "Read a DNS provider (credentials blank)",
        Sec::Bearer,
        vec![id_param("id")],
        None,
        (200, Some(view.clone())),
    );
    d.op(
        "put",
        "/api/dns-providers/{id}",
        "dns-providers",
        "Replace a DNS provider; blank credentials keep the stored ones",
        Sec::Bearer,
        vec![id_param("id")],
        Some(input),
        (200, Some(view)),
    );
    d.op(
        "delete",
        "/api/dns-providers/{id}",
        "dns-providers",
        "Delete a DNS provider no ACME order uses",
        Sec::Bearer,
        vec![id_param("id")],
        None,
        (204, None),
    );

    let sv = d.schema::<AcmeSettingsView>();
    let settings_input = d.schema::<AcmeSettingsInput>();
    d.op(
        "get",
        "/api/settings/acme",
        "settings",
        "ACME settings in effect (the EAB HMAC is never shown)",
        Sec::Bearer,
        vec![],
        None,
        (200, Some(sv.clone())),
    );
    d.op(
        "put",
        "/api/settings/acme",
        "settings",
        "Override ACME settings of the command line (null or absent: use the command line)",
        Sec::Bearer,
        vec![],
        Some(settings_input),
        (200, Some(sv)),
    );
}

/// Traffic statistics, logs and `/metrics`.
fn stats_ops(d: &mut Doc) {
    use super::stats::{LogPage, LogsQuery, Series, SeriesQuery, Summary, SummaryQuery};
    use crate::stats::RollupResult;
    let summary = d.schema::<Summary>();
    d.op(
        "get",
        "/api/stats/summary",
        "stats",
        "Traffic totals since the statistics began over every node sharing the database, with each node's share (`nodes`); this node's counters since startup, rates over the last minute and requests in flight; top hosts by requests and by errors; access-log counters",
        Sec::Bearer,
        query_params::<SummaryQuery>(),
        None,
        (200, Some(summary)),
    );
    let series = d.schema::<Series>();
    let all_params = query_params::<SeriesQuery>();
    let no_kind: Vec<Value> = all_params
        .iter()
        .filter(|p| p["name"] != "kind")
        .cloned()
        .collect();
    let mut host_params = vec![id_param("id")];
    host_params.extend(all_params);
    d.op(
        "get",
        "/api/stats/hosts/{id}",
        "stats",
        "A host's traffic series (requests, status classes, bytes, errors, latency sums) in buckets of `step` seconds, summed over every node (or one with `node`), with each node's share of the range",
        Sec::Bearer,
        host_params,
        None,
        (200, Some(series.clone())),
    );
    let mut up_params = vec![
        json!({"name": "upstream", "in": "path", "required": true, "description": "`host:port` as configured, URL-encoded", "schema": {"type": "string"}}),
    ];
    up_params.extend(no_kind.clone());
    d.op(
        "get",
        "/api/stats/upstreams/{upstream}",
        "stats",
        "An upstream's traffic series, summed over every node (or one with `node`), with each node's share of the range",
        Sec::Bearer,
        up_params,
        None,
        (200, Some(series.clone())),
    );
    let mut st_params = vec![id_param("id")];
    st_params.extend(no_kind);
    d.op(
        "get",
        "/api/stats/streams/{id}",
        "stats",
        "A stream's traffic series (connections as requests, bytes, errors), summed over every node (or one with `node`), with each node's share of the range",
        Sec::Bearer,
        st_params,
        None,
        (200, Some(series)),
    );
    let rr = d.schema::<RollupResult>();
    d.op(
        "post",
        "/api/stats/rollup",
        "stats",
        "Roll this node's counters up into the series now, as its rows (they are also rolled up every --stats-interval seconds and at shutdown)",
        Sec::Bearer,
        vec![],
        None,
        (200, Some(rr)),
    );
    // An unknown id is an empty series, not a 404.
    for p in [
        "/api/stats/hosts/{id}",
        "/api/stats/streams/{id}",
        "/api/stats/upstreams/{upstream}",
    ] {
        if let Some(r) = d.paths[p]["get"]["responses"].as_object_mut() {
            r.remove("404");
        }
    }

    let page = d.schema::<LogPage>();
    let off = json!({"description": "The access log is off", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    for (path, what) in [
        ("/api/logs/access", "Access log lines, newest first, read from the end of the file and its rotations (operators and admins)"),
        ("/api/logs/errors", "Failed requests (no response, 5xx, proxy errors), newest first (operators and admins)"),
    ] {
        d.op(
            "get",
            path,
            "logs",
            what,
            Sec::Bearer,
            query_params::<LogsQuery>(),
            None,
            (200, Some(page.clone())),
        );
        d.paths[path]["get"]["responses"]["404"] = off.clone();
    }

    d.op(
        "get",
        "/metrics",
        "stats",
        "Prometheus metrics (OpenMetrics text). Needs a bearer token (the metrics token, an API token or a session) unless the server runs with --metrics-public",
        Sec::Bearer,
        vec![],
        None,
        (200, None),
    );
    if let Some(r) = d.paths["/metrics"]["get"]["responses"].as_object_mut() {
        r.remove("400");
        r.remove("422");
    }
    d.paths["/metrics"]["get"]["responses"]["200"] = json!({
        "description": "Metrics in the OpenMetrics text format",
        "content": {"application/openmetrics-text": {"schema": {"type": "string"}}}
    });
}

/// Whether a non-GET operation on `path` writes the config (and so
/// answers with the nodes-applied header).
fn writes_config(path: &str) -> bool {
    const CONFIG: [&str; 6] = [
        "/api/proxy-hosts",
        "/api/redirection-hosts",
        "/api/dead-hosts",
        "/api/streams",
        "/api/access-lists",
        "/api/certificates",
    ];
    if path.ends_with("/renew") {
        return false;
    }
    CONFIG
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/{{")))
        || matches!(
            path,
            "/api/settings" | "/api/config/import" | "/api/config/rollback/{revision}"
        )
}

fn id_param(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "integer", "format": "int64"}})
}

fn query_params<T: JsonSchema>() -> Vec<Value> {
    let schema = schemars::schema_for!(T);
    let v = serde_json::to_value(schema).unwrap_or(Value::Null);
    let Some(props) = v.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    props
        .iter()
        .map(|(k, s)| json!({"name": k, "in": "query", "required": false, "schema": s}))
        .collect()
}

/// Builds the document.
pub fn document() -> Value {
    let settings = SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = "/components/schemas".into();
    });
    let mut d = Doc {
        gen: settings.into_generator(),
        paths: Map::new(),
    };

    let h = d.schema::<Health>();
    d.op(
        "get",
        "/api/health",
        "system",
        "Liveness",
        Sec::Public,
        vec![],
        None,
        (200, Some(h)),
    );
    let spec = json!({"type": "object"});
    d.op(
        "get",
        "/api/openapi.json",
        "system",
        "This document",
        Sec::Public,
        vec![],
        None,
        (200, Some(spec)),
    );

    let (lreq, lres) = (d.schema::<LoginRequest>(), d.schema::<LoginResponse>());
    d.op(
        "post",
        "/api/auth/login",
        "auth",
        "Log in; returns a session token",
        Sec::Public,
        vec![],
        Some(lreq),
        (200, Some(lres)),
    );
    let user = d.schema::<UserView>();
    d.op(
        "get",
        "/api/auth/me",
        "auth",
        "The calling user",
        Sec::Bearer,
        vec![],
        None,
        (200, Some(user.clone())),
    );
    let pw = d.schema::<PasswordChange>();
    d.op(
        "post",
        "/api/auth/password",
        "auth",
        "Change your password (ends other sessions)",
        Sec::Bearer,
        vec![],
        Some(pw),
        (204, None),
    );

    let uin = d.schema::<UserInput>();
    let users = json!({"type": "array", "items": user.clone()});
    d.op(
        "get",
        "/api/users",
        "users",
        "List users (admin)",
        Sec::Bearer,
        vec![],
        None,
        (200, Some(users)),
    );
    d.op(
        "post",
        "/api/users",
        "users",
        "Create a user (admin)",
        Sec::Bearer,
        vec![],
        Some(uin.clone()),
        (201, Some(user.clone())),
    );
    d.op(
        "get",
        "/api/users/{id}",
        "users",
        "Read a user (admin)",
        Sec::Bearer,
        vec![id_param("id")],
        None,
        (200, Some(user.clone())),
    );
    d.op(
        "put",
        "/api/users/{id}",
        "users",
        "Replace a user (admin)",
        Sec::Bearer,
        vec![id_param("id")],
        Some(uin),
        (200, Some(user)),
    );
    d.op(
        "delete",
        "/api/users/{id}",
        "users",
        "Delete a user (admin)",
        Sec::Bearer,
        vec![id_param("id")],
        None,
        (204, None),
    );

    let (tin, tv) = (d.schema::<TokenInput>(), d.schema::<TokenView>());
    let tl = json!({"type": "array", "items": tv.clone()});
    d.op(
        "get",
        "/api/tokens",
        "tokens",
        "List API tokens (yours; all for admins)",
        Sec::Bearer,
        vec![],
        None,
        (200, Some(tl)),
    );
    d.op(
        "post",
        "/api/tokens",
        "tokens",
        "Create an API token; the token is in this answer only",
        Sec::Bearer,
        vec![],
        Some(tin),
        (201, Some(tv.clone())),
    );
    d.op(
        "get",
        "/api/tokens/{id}",
        "tokens",
        "Read an API token",
        Sec::Bearer,
        vec![id_param("id")],
        None,
        (200, Some(tv)),
    );
    d.op(
        "delete",
        "/api/tokens/{id}",
        "tokens",
        "Revoke an API token",
        Sec::Bearer,
        vec![id_param("id")],
        None,
        (204, None),
    );

    let ph = d.schema::<ProxyHost>();
    d.crud::<ProxyHost>(ph, "proxy-hosts");
    let rh = d.schema::<RedirectionHost>();
    d.crud::<RedirectionHost>(rh, "redirection-hosts");
    let dh = d.schema::<DeadHost>();
    d.crud::<DeadHost>(dh, "dead-hosts");
    let st = d.schema::<Stream>();
    d.crud::<Stream>(st, "streams");
    for (method, path) in [
        ("post", "/api/streams"),
        ("put", "/api/streams/{id}"),
        ("delete", "/api/streams/{id}"),
    ] {
        d.paths[path][method]["description"] = json!(STREAM_WRITES);
    }
    let al = d.schema::<AccessListInput>();
    d.crud::<ppm_core::config::AccessList>(al, "access-lists");
    certificates(&mut d);
    acme_ops(&mut d);
    stats_ops(&mut d);

    let se = d.schema::<Settings>();
    d.op(
        "get",
        "/api/settings",
        "settings",
        "Global settings",
        Sec::Bearer,
        vec![],
        None,
        (200, Some(se.clone())),
    );
    d.op(
        "put",
        "/api/settings",
        "settings",
        "Replace the global settings",
        Sec::Bearer,
        vec![],
        Some(se.clone()),
        (200, Some(se)),
    );

    let gh = d.schema::<Vec<GroupHealth>>();
    d.op(
        "get",
        "/api/upstreams/health",
        "upstreams",
        "Health of every upstream group",
        Sec::Bearer,
        vec![],
        None,
        (200, Some(gh)),
    );
    let cn = d.schema::<crate::cluster::NodesView>();
    d.op(
        "get",
        "/api/cluster/nodes",
        "cluster",
        "Every node sharing the config database, and whether it serves the latest revision",
        Sec::Bearer,
        vec![],
        None,
        (200, Some(cn)),
    );
    let ss = d.schema::<Vec<ppm_core::stream::StreamStatus>>();
    d.op(
        "get",
        "/api/streams/status",
        "streams",
        "Listeners (bound, or why not) and counters of every stream",
        Sec::Bearer,
        vec![],
        None,
        (200, Some(ss)),
    );
    let au = d.schema::<Vec<AuditEntry>>();
    d.op(
        "get",
        "/api/audit-log",
        "audit",
        "Audit log, newest first",
        Sec::Bearer,
        query_params::<Page>(),
        None,
        (200, Some(au)),
    );

    let ex = d.schema::<ExportDocument>();
    d.op(
        "get",
        "/api/config/export",
        "config",
        "Export the whole config",
        Sec::Bearer,
        query_params::<ExportQuery>(),
        None,
        (200, Some(ex.clone())),
    );
    let _ = d.schema::<Counts>();
    let ir = d.schema::<ImportResult>();
    d.op(
        "post",
        "/api/config/import",
        "config",
        "Replace the config with an export document",
        Sec::Bearer,
        query_params::<ImportQuery>(),
        Some(ex),
        (200, Some(ir)),
    );
    let hi = d.schema::<Vec<RevisionInfo>>();
    d.op(
        "get",
        "/api/config/history",
        "config",
        "Config revisions, newest first",
        Sec::Bearer,
        query_params::<Page>(),
        None,
        (200, Some(hi)),
    );
    let rc = d.schema::<RevisionChanges>();
    d.op(
        "get",
        "/api/config/history/{revision}",
        "config",
        "What one revision changed",
        Sec::Bearer,
        vec![id_param("revision")],
        None,
        (200, Some(rc)),
    );
    let rb = d.schema::<RollbackResult>();
    d.op(
        "post",
        "/api/config/rollback/{revision}",
        "config",
        "Restore the config of an earlier revision as a new revision",
        Sec::Bearer,
        vec![id_param("revision")],
        None,
        (200, Some(rb)),
    );

    let mut schemas: Map<String, Value> = d.gen.take_definitions(true).into_iter().collect();
    schemas.insert(
        "Error".into(),
        json!({
            "type": "object",
            "required": ["error"],
            "properties": {"error": {
                "type": "object",
                "required": ["code", "message", "fields"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "fields": {"type": "array", "items": {
                        "type": "object",
                        "required": ["path", "message"],
                        "properties": {"path": {"type": "string"}, "message": {"type": "string"}}
                    }}
                }
            }}
        }),
    );

    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "ppm-server API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The REST API of ppm-server. Log in with POST /api/auth/login and send the token as `Authorization: Bearer <token>`, or use an API token from /api/tokens. Every write answers after the proxy serves it. A user whose `must_change_password` is true (a generated first-run password, or one an admin set) gets 403 `password_change_required` from every call except GET /api/auth/me and POST /api/auth/password.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": d.paths,
    })
}
