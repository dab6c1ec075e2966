//! Header rules: set, add or remove request and response headers.
//!
//! [`Headers`] applies the model's `request_headers` (to the request sent
//! upstream) and `response_headers` (to every response sent to the client,
//! including the ones filters and the engine produce). Values may hold
//! variables, resolved per request:
//!
//! | variable | value |
//! | --- | --- |
//! | `$client_ip` | the client IP (trusted-proxy aware) |
//! | `$host` | the request host, lower case, without port |
//! | `$scheme` | `http` or `https` |
//! | `$request_uri` | the original path and query |
//! | `$remote_port` | the TCP peer's port |
//!
//! `$$` is a literal `$`; any other `$name` is a config error, so typos do
//! not go unnoticed. A `$` not followed by a letter is literal.

use std::sync::Arc;

use ppm_core::config::{HeaderAction, HeaderRule};
use ppm_core::filter::{
    kinds, priority, Filter, FilterAction, FilterRegistry, ModelFilter, Phases, RequestCtx,
};
use ppm_core::http::{HeaderName, HeaderValue, RequestHeader, ResponseHeader};
use ppm_core::validate;
use serde::Deserialize;

use crate::util::path_and_query;

/// Most rules per direction.
pub const MAX_RULES: usize = 256;

/// Config of the `headers` kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct HeadersConfig {
    /// Changes to the request sent upstream, in order.
    pub request: Vec<HeaderRule>,
    /// Changes to the response sent to the client, in order.
    pub response: Vec<HeaderRule>,
}

impl HeadersConfig {
    /// A config with these rules.
    pub fn new(request: Vec<HeaderRule>, response: Vec<HeaderRule>) -> Self {
        HeadersConfig { request, response }
    }
}

/// A variable of a header template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Variable {
    /// `$client_ip`
    ClientIp,
    /// `$host`
    Host,
    /// `$scheme`
    Scheme,
    /// `$request_uri`
    RequestUri,
    /// `$remote_port`
    RemotePort,
}

impl Variable {
    fn from_name(name: &str) -> Option<Variable> {
        Some(match name {
            "client_ip" => Variable::ClientIp,
            "host" => Variable::Host,
            "scheme" => Variable::Scheme,
            "request_uri" => Variable::RequestUri,
            "remote_port" => Variable::RemotePort,
            _ => return None,
        })
    }
}

/// A piece of a header template.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Segment {
    /// Literal text.
    Text(String),
    /// A variable resolved per request.
    Var(Variable),
}

/// Parses a header value template into literal text and variables.
pub fn parse_template(value: &str) -> Result<Vec<Segment>, String> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut rest = value;
    while let Some(pos) = rest.find('$') {
        text.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(r) = after.strip_prefix('$') {
            text.push('$');
            rest = r;
            continue;
        }
        let name_len = after
            .bytes()
            .take_while(|b| b.is_ascii_lowercase() || *b == b'_')
            .count();
        if name_len == 0 || !after.as_bytes()[0].is_ascii_alphabetic() {
            text.push('$');
            rest = after;
            continue;
        }
        let name = &after[..name_len];
        let var = Variable::from_name(name).ok_or_else(|| {
            format!(
                "unknown variable `${name}` (known: $client_ip, $host, $scheme, $request_uri, $remote_port; write $$ for a literal $)"
            )
        })?;
        if !text.is_empty() {
            out.push(Segment::Text(std::mem::take(&mut text)));
        }
        out.push(Segment::Var(var));
        rest = &after[name_len..];
    }
    text.push_str(rest);
    if !text.is_empty() {
        out.push(Segment::Text(text));
    }
    Ok(out)
}

/// The original request URI, kept from the request phase for rules that use
/// `$request_uri` (the upstream request may have been rewritten).
struct OriginalUri(String);

#[derive(Debug, Clone)]
enum Value {
    Static(HeaderValue),
    Template(Vec<Segment>),
}

#[derive(Debug, Clone)]
struct Rule {
    name: HeaderName,
    action: HeaderAction,
    value: Value,
}

fn compile(rules: &[HeaderRule], field: &str) -> Result<(Vec<Rule>, bool), String> {
    if rules.len() > MAX_RULES {
        return Err(format!("{field}: at most {MAX_RULES} rules are allowed"));
    }
    let mut out = Vec::with_capacity(rules.len());
    let mut uses_uri = false;
    for (i, r) in rules.iter().enumerate() {
        validate::header_name(&r.name).map_err(|m| format!("{field}[{i}].name: {m}"))?;
        let name = HeaderName::from_bytes(r.name.as_bytes())
            .map_err(|_| format!("{field}[{i}].name: invalid header name"))?;
        let value = if r.action == HeaderAction::Remove {
            Value::Static(HeaderValue::from_static(""))
        } else {
            validate::header_value(&r.value).map_err(|m| format!("{field}[{i}].value: {m}"))?;
            let segments =
                parse_template(&r.value).map_err(|m| format!("{field}[{i}].value: {m}"))?;
            if segments.iter().all(|s| matches!(s, Segment::Text(_))) {
                let text: String = segments
                    .iter()
                    .map(|s| match s {
                        Segment::Text(t) => t.as_str(),
                        Segment::Var(_) => "",
                    })
                    .collect();
                Value::Static(
                    HeaderValue::from_str(&text)
                        .map_err(|_| format!("{field}[{i}].value: invalid header value"))?,
                )
            } else {
                uses_uri |= segments.contains(&Segment::Var(Variable::RequestUri));
                Value::Template(segments)
            }
        };
        out.push(Rule {
            name,
            action: r.action,
            value,
        });
    }
    Ok((out, uses_uri))
}

fn render(segments: &[Segment], ctx: &RequestCtx) -> Option<HeaderValue> {
    use std::fmt::Write;
    let mut s = String::new();
    for seg in segments {
        match seg {
            Segment::Text(t) => s.push_str(t),
            Segment::Var(Variable::ClientIp) => {
                if let Some(ip) = ctx.client_ip {
                    let _ = write!(s, "{ip}");
                }
            }
            Segment::Var(Variable::Host) => s.push_str(&ctx.host),
            Segment::Var(Variable::Scheme) => s.push_str(ctx.scheme()),
            Segment::Var(Variable::RequestUri) => {
                if let Some(OriginalUri(u)) = ctx.extensions.get::<OriginalUri>() {
                    s.push_str(u);
                }
            }
            Segment::Var(Variable::RemotePort) => {
                let _ = write!(s, "{}", ctx.peer_port);
            }
        }
    }
    // A value that cannot be a header (control bytes from the request) is
    // skipped rather than sent.
    HeaderValue::from_str(&s).ok()
}

/// Applies header rules. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Headers {
    request: Vec<Rule>,
    response: Vec<Rule>,
    uses_uri: bool,
}

impl Headers {
    /// Checks names, values and variables of `config` and builds the filter.
    pub fn new(config: HeadersConfig) -> Result<Self, String> {
        Self::from_rules(&config.request, &config.response)
    }

    /// Like [`new`](Self::new), from borrowed rule lists.
    pub fn from_rules(request: &[HeaderRule], response: &[HeaderRule]) -> Result<Self, String> {
        let (request, a) = compile(request, "request")?;
        let (response, b) = compile(response, "response")?;
        Ok(Headers {
            request,
            response,
            uses_uri: a || b,
        })
    }
}

macro_rules! apply_rules {
    ($rules:expr, $target:expr, $ctx:expr) => {
        for r in $rules {
            let value = match &r.value {
                Value::Static(v) => v.clone(),
                Value::Template(t) => match render(t, $ctx) {
                    Some(v) => v,
                    None => continue,
                },
            };
            match r.action {
                HeaderAction::Remove => {
                    $target.remove_header(&r.name);
                }
                HeaderAction::Add => {
                    $target.append_header(r.name.clone(), value)?;
                }
                _ => {
                    $target.insert_header(r.name.clone(), value)?;
                }
            }
        }
    };
}

#[ppm_core::async_trait]
impl Filter for Headers {
    fn name(&self) -> &str {
        kinds::HEADERS
    }

    fn phases(&self) -> Phases {
        let mut p = Phases::NONE;
        if self.uses_uri {
            p = p | Phases::REQUEST;
        }
        if !self.request.is_empty() {
            p = p | Phases::UPSTREAM_REQUEST;
        }
        if !self.response.is_empty() {
            p = p | Phases::RESPONSE;
        }
        p
    }

    async fn request_filter(
        &self,
        req: &RequestHeader,
        ctx: &mut RequestCtx,
    ) -> ppm_core::Result<FilterAction> {
        if self.uses_uri && ctx.extensions.get::<OriginalUri>().is_none() {
            ctx.extensions
                .insert(OriginalUri(path_and_query(req).to_string()));
        }
        Ok(FilterAction::Continue)
    }

    async fn upstream_request_filter(
        &self,
        upstream_req: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> ppm_core::Result<()> {
        apply_rules!(&self.request, upstream_req, ctx);
        Ok(())
    }

    async fn response_filter(
        &self,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> ppm_core::Result<()> {
        apply_rules!(&self.response, resp, ctx);
        Ok(())
    }
}

pub(crate) fn register(registry: &mut FilterRegistry) {
    registry.register_fn_with_model(
        kinds::HEADERS,
        priority::HEADERS,
        |cfg: HeadersConfig, _| Ok(Arc::new(Headers::new(cfg)?) as Arc<dyn Filter>),
        |spec, _| match *spec {
            ModelFilter::Headers { request, response } => {
                Some(Headers::from_rules(request, response).map(|h| Arc::new(h) as Arc<dyn Filter>))
            }
            _ => None,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, value: &str, action: HeaderAction) -> HeaderRule {
        HeaderRule {
            name: name.into(),
            value: value.into(),
            action,
        }
    }

    #[test]
    fn templates() {
        assert_eq!(parse_template("").unwrap(), vec![]);
        assert_eq!(
            parse_template("ip=$client_ip;").unwrap(),
            vec![
                Segment::Text("ip=".into()),
                Segment::Var(Variable::ClientIp),
                Segment::Text(";".into())
            ]
        );
        assert_eq!(
            parse_template("$$5 $1 $").unwrap(),
            vec![Segment::Text("$5 $1 $".into())]
        );
        assert_eq!(
            parse_template("$scheme://$host$request_uri").unwrap(),
            vec![
                Segment::Var(Variable::Scheme),
                Segment::Text("://".into()),
                Segment::Var(Variable::Host),
                Segment::Var(Variable::RequestUri)
            ]
        );
        assert!(parse_template("$hots").unwrap_err().contains("$hots"));
    }

    #[tokio::test]
    async fn applies_request_and_response_rules() {
        let h = Headers::new(HeadersConfig::new(
            vec![
                rule("X-Real-IP", "$client_ip", HeaderAction::Set),
                rule("X-Orig", "$scheme://$host$request_uri", HeaderAction::Set),
                rule("X-Port", "$remote_port", HeaderAction::Add),
                rule("Cookie", "", HeaderAction::Remove),
            ],
            vec![
                rule("X-Frame-Options", "DENY", HeaderAction::Set),
                rule("Server", "", HeaderAction::Remove),
                rule("Vary", "Origin", HeaderAction::Add),
            ],
        ))
        .unwrap();
        assert_eq!(
            h.phases(),
            Phases::REQUEST | Phases::UPSTREAM_REQUEST | Phases::RESPONSE
        );
        let req = RequestHeader::build("GET", b"/a?b=1", None).unwrap();
        let mut ctx = RequestCtx::new(Some("2001:db8::5".parse().unwrap()));
        ctx.host = "app.test".into();
        ctx.tls = true;
        ctx.peer_port = 40000;
        assert!(matches!(
            h.request_filter(&req, &mut ctx).await.unwrap(),
            FilterAction::Continue
        ));
        let mut up = RequestHeader::build("GET", b"/rewritten", None).unwrap();
        up.insert_header("cookie", "a=b").unwrap();
        up.insert_header("x-real-ip", "spoofed").unwrap();
        up.insert_header("x-port", "1").unwrap();
        h.upstream_request_filter(&mut up, &mut ctx).await.unwrap();
        assert_eq!(up.headers.get("x-real-ip").unwrap(), "2001:db8::5");
        assert_eq!(up.headers.get("x-orig").unwrap(), "https://app.test/a?b=1");
        assert_eq!(up.headers.get_all("x-port").iter().count(), 2);
        assert!(up.headers.get("cookie").is_none());

        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.insert_header("server", "internal/1.0").unwrap();
        resp.insert_header("vary", "Accept").unwrap();
        h.response_filter(&mut resp, &mut ctx).await.unwrap();
        assert_eq!(resp.headers.get("x-frame-options").unwrap(), "DENY");
        assert!(resp.headers.get("server").is_none());
        assert_eq!(resp.headers.get_all("vary").iter().count(), 2);
    }

    #[test]
    fn rejects_invalid_rules() {
        let bad_name = HeadersConfig::new(vec![rule("Bad Name", "x", HeaderAction::Set)], vec![]);
        assert!(Headers::new(bad_name)
            .unwrap_err()
            .starts_with("request[0].name"));
        let injected = HeadersConfig::new(
            vec![],
            vec![rule("X", "a\r\nSet-Cookie: x", HeaderAction::Set)],
        );
        assert!(Headers::new(injected)
            .unwrap_err()
            .starts_with("response[0].value"));
        let typo = HeadersConfig::new(vec![], vec![rule("X", "$clientip", HeaderAction::Set)]);
        assert!(Headers::new(typo).is_err());
        let cfg: HeadersConfig = serde_json::from_value(serde_json::json!({
            "request": [{"name": "X-A", "value": "1"}],
            "response": [{"name": "X-B", "action": "remove"}]
        }))
        .unwrap();
        let h = Headers::new(cfg).unwrap();
        assert_eq!(h.phases(), Phases::UPSTREAM_REQUEST | Phases::RESPONSE);
    }
}
