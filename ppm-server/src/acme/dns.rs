//! DNS providers for DNS-01: publish and withdraw the
//! `_acme-challenge.<name>` TXT record.
//!
//! Three kinds ship: Cloudflare (API token), RFC 2136 dynamic update signed
//! with TSIG, and an operator-supplied command, so any DNS can be scripted.

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use ppm_core::async_trait;
use serde::{Deserialize, Serialize};

use super::client::HttpsClient;

/// Publishes and withdraws TXT records.
#[async_trait]
pub trait DnsProvider: Send + Sync {
    /// Adds the TXT record `name` (fully qualified, no trailing dot) with
    /// `value`, keeping other values of the same name.
    async fn set_txt(&self, name: &str, value: &str) -> Result<(), String>;
    /// Removes the TXT record `name` with `value` (others stay).
    async fn clear_txt(&self, name: &str, value: &str) -> Result<(), String>;
}

/// Longest a command hook may run.
pub const MAX_COMMAND_TIMEOUT: u64 = 600;

/// A DNS provider's settings and credentials, as stored and as clients send
/// them. Credentials are blanked before the API answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DnsProviderSpec {
    /// Cloudflare's API with an API token allowed `Zone.DNS:Edit`.
    Cloudflare {
        /// The API token (never returned; send it empty or leave it out on
        /// update to keep the stored one).
        #[serde(default)]
        api_token: String,
        /// The zone id; when empty the zone is found by name.
        #[serde(default)]
        zone_id: String,
        /// API base URL (default `https://api.cloudflare.com/client/v4`).
        #[serde(default)]
        api_url: String,
    },
    /// RFC 2136 dynamic update, signed with a TSIG key (HMAC-SHA256 or
    /// HMAC-SHA512).
    Rfc2136 {
        /// The primary server, `ip:port`.
        server: String,
        /// The zone to update, e.g. `example.com`.
        zone: String,
        /// TSIG key name.
        tsig_key_name: String,
        /// `hmac-sha256` (default) or `hmac-sha512`.
        #[serde(default = "default_tsig_algorithm")]
        tsig_algorithm: String,
        /// The TSIG secret, base64 (never returned; send it empty or leave
        /// it out on update to keep the stored one).
        #[serde(default)]
        tsig_secret: String,
    },
    /// Runs a program: `command[0] command[1..] set|clear <name> <value>`,
    /// with `PPM_ACME_ACTION`, `PPM_ACME_TXT_NAME` and `PPM_ACME_TXT_VALUE`
    /// in its environment. Exit status 0 means done. No shell is involved.
    Command {
        /// The program (absolute path) and its leading arguments.
        command: Vec<String>,
        /// Seconds the program may run (default 60, at most 600).
        #[serde(default = "default_command_timeout")]
        timeout_seconds: u64,
    },
}

fn default_tsig_algorithm() -> String {
    "hmac-sha256".into()
}

fn default_command_timeout() -> u64 {
    60
}

impl DnsProviderSpec {
    /// The kind name stored alongside.
    pub fn kind(&self) -> &'static str {
        match self {
            DnsProviderSpec::Cloudflare { .. } => "cloudflare",
            DnsProviderSpec::Rfc2136 { .. } => "rfc2136",
            DnsProviderSpec::Command { .. } => "command",
        }
    }

    /// Blanks the credentials.
    pub fn redact(&mut self) {
        match self {
            DnsProviderSpec::Cloudflare { api_token, .. } => api_token.clear(),
            DnsProviderSpec::Rfc2136 { tsig_secret, .. } => tsig_secret.clear(),
            DnsProviderSpec::Command { .. } => {}
        }
    }

    /// Fills blank credentials from `stored` (an update that leaves them
    /// out keeps them).
    pub fn keep_secrets(&mut self, stored: &DnsProviderSpec) {
        match (self, stored) {
            (
                DnsProviderSpec::Cloudflare { api_token, .. },
                DnsProviderSpec::Cloudflare { api_token: old, .. },
            ) if api_token.is_empty() => *api_token = old.clone(),
            (
                DnsProviderSpec::Rfc2136 { tsig_secret, .. },
                DnsProviderSpec::Rfc2136 {
                    tsig_secret: old, ..
                },
            ) if tsig_secret.is_empty() => *tsig_secret = old.clone(),
            _ => {}
        }
    }

    /// Checks the settings; errors name the field (relative to the spec).
    pub fn validate(&self) -> Result<(), (String, String)> {
        let err = |f: &str, m: &str| Err((f.to_string(), m.to_string()));
        match self {
            DnsProviderSpec::Cloudflare {
                api_token,
                zone_id,
                api_url,
            } => {
                if api_token.is_empty() || api_token.len() > 512 {
                    return err("api_token", "is required (1 to 512 characters)");
                }
                if !api_token.bytes().all(|b| b.is_ascii_graphic()) {
                    return err("api_token", "must be visible ASCII");
                }
                if !zone_id.bytes().all(|b| b.is_ascii_alphanumeric()) || zone_id.len() > 64 {
                    return err("zone_id", "must be a Cloudflare zone id (hex)");
                }
                if !api_url.is_empty() && ppm_core::validate::http_url(api_url).is_err() {
                    return err("api_url", "must be an http(s) URL");
                }
            }
            DnsProviderSpec::Rfc2136 {
                server,
                zone,
                tsig_key_name,
                tsig_algorithm,
                tsig_secret,
            } => {
                if server.parse::<SocketAddr>().is_err() {
                    return err("server", "must be ip:port, e.g. 192.0.2.1:53");
                }
                if ppm_core::validate::domain_name(zone).is_err() || zone.starts_with('*') {
                    return err("zone", "must be a DNS zone name, e.g. example.com");
                }
                if encode_name(tsig_key_name).is_err() || tsig_key_name.is_empty() {
                    return err("tsig_key_name", "must be a DNS name");
                }
                if !matches!(tsig_algorithm.as_str(), "hmac-sha256" | "hmac-sha512") {
                    return err("tsig_algorithm", "must be hmac-sha256 or hmac-sha512");
                }
                match base64::engine::general_purpose::STANDARD.decode(tsig_secret) {
                    Ok(k) if !k.is_empty() => {}
                    _ => return err("tsig_secret", "is required, base64"),
                }
            }
            DnsProviderSpec::Command {
                command,
                timeout_seconds,
            } => {
                let Some(program) = command.first() else {
                    return err("command", "must name a program");
                };
                if !program.starts_with('/') {
                    return err("command[0]", "must be an absolute path");
                }
                if command.len() > 32 || command.iter().any(|a| a.contains('\0') || a.len() > 4096)
                {
                    return err("command", "at most 32 arguments of 4096 bytes, no NUL");
                }
                if *timeout_seconds == 0 || *timeout_seconds > MAX_COMMAND_TIMEOUT {
                    return err("timeout_seconds", "must be 1 to 600");
                }
            }
        }
        Ok(())
    }

    /// A provider that acts on this spec.
    pub fn provider(&self, http: HttpsClient) -> Box<dyn DnsProvider> {
        match self.clone() {
            DnsProviderSpec::Cloudflare {
                api_token,
                zone_id,
                api_url,
            } => Box::new(Cloudflare {
                http,
                token: api_token,
                zone_id,
                api_url: if api_url.is_empty() {
                    "https://api.cloudflare.com/client/v4".into()
                } else {
                    api_url.trim_end_matches('/').to_string()
                },
            }),
            DnsProviderSpec::Rfc2136 {
                server,
                zone,
                tsig_key_name,
                tsig_algorithm,
                tsig_secret,
            } => Box::new(Rfc2136 {
                server,
                zone,
                key_name: tsig_key_name,
                algorithm: tsig_algorithm,
                secret: base64::engine::general_purpose::STANDARD
                    .decode(tsig_secret)
                    .unwrap_or_default(),
            }),
            DnsProviderSpec::Command {
                command,
                timeout_seconds,
            } => Box::new(CommandHook {
                command,
                timeout: Duration::from_secs(timeout_seconds),
            }),
        }
    }
}

// ---------------------------------------------------------------- command

/// Runs an operator-supplied program.
struct CommandHook {
    command: Vec<String>,
    timeout: Duration,
}

impl CommandHook {
    async fn run(&self, action: &str, name: &str, value: &str) -> Result<(), String> {
        let Some(program) = self.command.first() else {
            return Err("the command hook names no program".into());
        };
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(&self.command[1..])
            .arg(action)
            .arg(name)
            .arg(value)
            .env("PPM_ACME_ACTION", action)
            .env("PPM_ACME_TXT_NAME", name)
            .env("PPM_ACME_TXT_VALUE", value)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .map_err(|e| format!("DNS hook {program}: cannot start: {e}"))?;
        let out = tokio::time::timeout(self.timeout, child.wait_with_output())
            .await
            .map_err(|_| {
                format!(
                    "DNS hook {program} {action}: still running after {} s, killed",
                    self.timeout.as_secs()
                )
            })?
            .map_err(|e| format!("DNS hook {program}: {e}"))?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: String = stderr
            .trim()
            .chars()
            .rev()
            .take(300)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        Err(format!(
            "DNS hook {program} {action} {name} failed ({}): {tail}",
            out.status
        ))
    }
}

#[async_trait]
impl DnsProvider for CommandHook {
    async fn set_txt(&self, name: &str, value: &str) -> Result<(), String> {
        self.run("set", name, value).await
    }
    async fn clear_txt(&self, name: &str, value: &str) -> Result<(), String> {
        self.run("clear", name, value).await
    }
}

// ------------------------------------------------------------- cloudflare

/// Cloudflare's v4 API.
struct Cloudflare {
    http: HttpsClient,
    token: String,
    zone_id: String,
    api_url: String,
}

impl Cloudflare {
    async fn call(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, String> {
        let uri = format!("{}{path_and_query}", self.api_url);
        let req = axum::http::Request::builder()
            .method(method)
            .uri(&uri)
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json")
            .body(instant_acme::BodyWrapper::from(
                body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
            ))
            .map_err(|e| format!("Cloudflare request: {e}"))?;
        let rsp = tokio::time::timeout(
            Duration::from_secs(30),
            instant_acme::HttpClient::request(&self.http, req),
        )
        .await
        .map_err(|_| "Cloudflare API: no answer in 30 s".to_string())?
        .map_err(|e| format!("Cloudflare API: {e}"))?;
        let status = rsp.parts.status;
        let mut body = rsp.body;
        let bytes = body
            .into_bytes()
            .await
            .map_err(|e| format!("Cloudflare API: {e}"))?;
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|_| format!("Cloudflare API answered {status} without JSON"))?;
        if !status.is_success() || v["success"] != serde_json::Value::Bool(true) {
            let msg = v["errors"]
                .as_array()
                .and_then(|a| a.first())
                .and_then(|e| e["message"].as_str())
                .unwrap_or("no message");
            return Err(format!("Cloudflare API answered {status}: {msg}"));
        }
        Ok(v)
    }

    async fn zone(&self, name: &str) -> Result<String, String> {
        if !self.zone_id.is_empty() {
            return Ok(self.zone_id.clone());
        }
        // The longest suffix of the record name that is a zone.
        let labels: Vec<&str> = name.split('.').collect();
        for i in 0..labels.len().saturating_sub(1) {
            let candidate = labels[i..].join(".");
            let v = self
                .call("GET", &format!("/zones?name={candidate}"), None)
                .await?;
            if let Some(id) = v["result"]
                .as_array()
                .and_then(|a| a.first())
                .and_then(|z| z["id"].as_str())
            {
                return Ok(id.to_string());
            }
        }
        Err(format!(
            "no Cloudflare zone this token can see holds {name}"
        ))
    }
}

#[async_trait]
impl DnsProvider for Cloudflare {
    async fn set_txt(&self, name: &str, value: &str) -> Result<(), String> {
        let zone = self.zone(name).await?;
        self.call(
            "POST",
            &format!("/zones/{zone}/dns_records"),
            Some(serde_json::json!({"type": "TXT", "name": name, "content": value, "ttl": 60})),
        )
        .await
        .map(|_| ())
    }

    async fn clear_txt(&self, name: &str, value: &str) -> Result<(), String> {
        let zone = self.zone(name).await?;
        let v = self
            .call(
                "GET",
                &format!("/zones/{zone}/dns_records?type=TXT&name={name}"),
                None,
            )
            .await?;
        let ids: Vec<String> = v["result"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|r| r["content"].as_str().map(|c| c.trim_matches('"')) == Some(value))
                    .filter_map(|r| r["id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        for id in ids {
            self.call("DELETE", &format!("/zones/{zone}/dns_records/{id}"), None)
                .await?;
        }
        Ok(())
    }
}

// --------------------------------------------------------------- rfc 2136

/// RFC 2136 dynamic update over UDP, signed with TSIG (RFC 8945).
struct Rfc2136 {
    server: String,
    zone: String,
    key_name: String,
    algorithm: String,
    secret: Vec<u8>,
}

const TYPE_SOA: u16 = 6;
const TYPE_TXT: u16 = 16;
const TYPE_TSIG: u16 = 250;
const CLASS_IN: u16 = 1;
const CLASS_NONE: u16 = 254;
const CLASS_ANY: u16 = 255;
const TSIG_FUDGE: u16 = 300;

/// A DNS name in wire form (lower case, so also canonical form).
pub(crate) fn encode_name(name: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(name.len() + 2);
    let name = name.trim_end_matches('.');
    if !name.is_empty() {
        for label in name.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(format!("{name}: labels must be 1 to 63 octets"));
            }
            out.push(label.len() as u8);
            out.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
        }
    }
    out.push(0);
    if out.len() > 255 {
        return Err(format!("{name}: longer than 255 octets"));
    }
    Ok(out)
}

fn put_u16(b: &mut Vec<u8>, v: u16) {
    b.extend_from_slice(&v.to_be_bytes());
}

/// An UPDATE message adding (or, with `delete`, removing) one TXT value,
/// signed with TSIG at `time_signed` (unix seconds).
#[allow(clippy::too_many_arguments)]
pub(crate) fn update_message(
    id: u16,
    zone: &str,
    name: &str,
    value: &str,
    delete: bool,
    key_name: &str,
    algorithm: &str,
    secret: &[u8],
    time_signed: u64,
) -> Result<Vec<u8>, String> {
    if value.len() > 255 {
        return Err("TXT value longer than 255 octets".into());
    }
    let mut m = Vec::with_capacity(256);
    put_u16(&mut m, id);
    put_u16(&mut m, 5 << 11); // opcode UPDATE
    put_u16(&mut m, 1); // ZOCOUNT
    put_u16(&mut m, 0); // PRCOUNT
    put_u16(&mut m, 1); // UPCOUNT
    put_u16(&mut m, 0); // ADCOUNT, 1 once signed
    m.extend(encode_name(zone)?);
    put_u16(&mut m, TYPE_SOA);
    put_u16(&mut m, CLASS_IN);
    m.extend(encode_name(name)?);
    put_u16(&mut m, TYPE_TXT);
    put_u16(&mut m, if delete { CLASS_NONE } else { CLASS_IN });
    m.extend_from_slice(&(if delete { 0u32 } else { 60u32 }).to_be_bytes());
    put_u16(&mut m, value.len() as u16 + 1);
    m.push(value.len() as u8);
    m.extend_from_slice(value.as_bytes());

    // TSIG: the MAC covers the unsigned message and the TSIG variables.
    let key = encode_name(key_name)?;
    let alg = encode_name(algorithm)?;
    let time = time_signed.to_be_bytes();
    let mut vars = Vec::with_capacity(64);
    vars.extend(&key);
    put_u16(&mut vars, CLASS_ANY);
    vars.extend_from_slice(&0u32.to_be_bytes());
    vars.extend(&alg);
    vars.extend_from_slice(&time[2..]);
    put_u16(&mut vars, TSIG_FUDGE);
    put_u16(&mut vars, 0); // error
    put_u16(&mut vars, 0); // other len
    let mac = match algorithm {
        "hmac-sha256" => {
            let mut h = Hmac::<sha2::Sha256>::new_from_slice(secret).map_err(|e| e.to_string())?;
            h.update(&m);
            h.update(&vars);
            h.finalize().into_bytes().to_vec()
        }
        "hmac-sha512" => {
            let mut h = Hmac::<sha2::Sha512>::new_from_slice(secret).map_err(|e| e.to_string())?;
            h.update(&m);
            h.update(&vars);
            h.finalize().into_bytes().to_vec()
        }
        other => return Err(format!("unsupported TSIG algorithm {other}")),
    };
    let mut rdata = Vec::with_capacity(96);
    rdata.extend(&alg);
    rdata.extend_from_slice(&time[2..]);
    put_u16(&mut rdata, TSIG_FUDGE);
    put_u16(&mut rdata, mac.len() as u16);
    rdata.extend(&mac);
    put_u16(&mut rdata, id); // original id
    put_u16(&mut rdata, 0); // error
    put_u16(&mut rdata, 0); // other len
    m.extend(&key);
    put_u16(&mut m, TYPE_TSIG);
    put_u16(&mut m, CLASS_ANY);
    m.extend_from_slice(&0u32.to_be_bytes());
    put_u16(&mut m, rdata.len() as u16);
    m.extend(rdata);
    m[11] = 1; // ADCOUNT
    Ok(m)
}

const RCODES: [&str; 11] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
    "NXRRSET", "NOTAUTH", "NOTZONE",
];

impl Rfc2136 {
    async fn update(&self, name: &str, value: &str, delete: bool) -> Result<(), String> {
        let server: SocketAddr = self
            .server
            .parse()
            .map_err(|_| format!("RFC 2136 server {} is not ip:port", self.server))?;
        let mut id = [0u8; 2];
        getrandom::fill(&mut id).map_err(|e| e.to_string())?;
        let id = u16::from_be_bytes(id);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let msg = update_message(
            id,
            &self.zone,
            name,
            value,
            delete,
            &self.key_name,
            &self.algorithm,
            &self.secret,
            now,
        )?;
        let bind: SocketAddr = if server.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        }
        .parse()
        .map_err(|_| "bad bind address".to_string())?;
        let sock = tokio::net::UdpSocket::bind(bind)
            .await
            .map_err(|e| format!("RFC 2136: {e}"))?;
        sock.connect(server)
            .await
            .map_err(|e| format!("RFC 2136 {server}: {e}"))?;
        let mut buf = [0u8; 1500];
        for _ in 0..3 {
            sock.send(&msg)
                .await
                .map_err(|e| format!("RFC 2136 {server}: {e}"))?;
            let Ok(got) = tokio::time::timeout(Duration::from_secs(5), sock.recv(&mut buf)).await
            else {
                continue;
            };
            let n = got.map_err(|e| format!("RFC 2136 {server}: {e}"))?;
            if n < 12 || u16::from_be_bytes([buf[0], buf[1]]) != id {
                continue;
            }
            let rcode = usize::from(buf[3] & 0x0f);
            return if rcode == 0 {
                Ok(())
            } else {
                Err(format!(
                    "RFC 2136 server {server} refused the update of {name}: {}",
                    RCODES.get(rcode).copied().unwrap_or("error")
                ))
            };
        }
        Err(format!("RFC 2136 server {server}: no answer"))
    }
}

#[async_trait]
impl DnsProvider for Rfc2136 {
    async fn set_txt(&self, name: &str, value: &str) -> Result<(), String> {
        self.update(name, value, false).await
    }
    async fn clear_txt(&self, name: &str, value: &str) -> Result<(), String> {
        self.update(name, value, true).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn names_encode_to_wire_form() {
        assert_eq!(
            encode_name("_acme-challenge.Example.com.").unwrap(),
            b"\x0f_acme-challenge\x07example\x03com\x00".to_vec()
        );
        assert_eq!(encode_name("").unwrap(), vec![0]);
        assert!(encode_name("a..b").is_err());
        assert!(encode_name(&"x".repeat(64)).is_err());
    }

    #[test]
    fn update_messages_are_signed_over_the_unsigned_message() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let m = update_message(
            0x1234,
            "example.com",
            "_acme-challenge.example.com",
            "tok",
            false,
            "ppm-key",
            "hmac-sha256",
            secret,
            1_700_000_000,
        )
        .unwrap();
        // Header: id, UPDATE opcode, one zone, one update, one TSIG.
        assert_eq!(&m[..12], &[0x12, 0x34, 0x28, 0, 0, 1, 0, 0, 0, 1, 0, 1]);
        // The add carries class IN, TTL 60 and the length-prefixed value.
        assert!(m
            .windows(12)
            .any(|w| w == [0, 16, 0, 1, 0, 0, 0, 60, 0, 4, 3, b't']));
        // Recompute the MAC the way a server verifies it.
        let key = encode_name("ppm-key").unwrap();
        let tsig_at = m
            .windows(key.len() + 2)
            .rposition(|w| w[..key.len()] == key[..] && w[key.len()..] == [0, 250])
            .unwrap();
        let mut unsigned = m[..tsig_at].to_vec();
        unsigned[11] = 0;
        let alg = encode_name("hmac-sha256").unwrap();
        let mut vars = key.clone();
        vars.extend([0, 255, 0, 0, 0, 0]);
        vars.extend(&alg);
        vars.extend(&1_700_000_000u64.to_be_bytes()[2..]);
        vars.extend([1, 44, 0, 0, 0, 0]);
        let mut h = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
        h.update(&unsigned);
        h.update(&vars);
        let mac = h.finalize().into_bytes();
        let mac_at = tsig_at + key.len() + 10 + alg.len() + 6 + 2 + 2;
        assert_eq!(&m[mac_at..mac_at + 32], &mac[..]);
        // The delete form uses class NONE and TTL 0.
        let d = update_message(
            1,
            "example.com",
            "a.example.com",
            "v",
            true,
            "k",
            "hmac-sha256",
            secret,
            0,
        )
        .unwrap();
        assert!(d.windows(8).any(|w| w == [0, 16, 0, 254, 0, 0, 0, 0]));
        assert!(update_message(
            1,
            "example.com",
            "a.example.com",
            &"v".repeat(256),
            false,
            "k",
            "hmac-sha256",
            secret,
            0
        )
        .is_err());
    }

    #[test]
    fn specs_validate_and_keep_secrets() {
        let mut s: DnsProviderSpec = serde_json::from_str(
            r#"{"kind":"rfc2136","server":"127.0.0.1:53","zone":"example.com","tsig_key_name":"k"}"#,
        )
        .unwrap();
        assert_eq!(s.validate().unwrap_err().0, "tsig_secret");
        s.keep_secrets(&DnsProviderSpec::Rfc2136 {
            server: String::new(),
            zone: String::new(),
            tsig_key_name: String::new(),
            tsig_algorithm: String::new(),
            tsig_secret: "c2VjcmV0".into(),
        });
        s.validate().unwrap();
        s.redact();
        assert!(!serde_json::to_string(&s).unwrap().contains("c2VjcmV0"));
        let c: DnsProviderSpec =
            serde_json::from_str(r#"{"kind":"command","command":["hook.sh"]}"#).unwrap();
        assert_eq!(c.validate().unwrap_err().0, "command[0]");
        assert!(serde_json::from_str::<DnsProviderSpec>(r#"{"kind":"route53"}"#).is_err());
    }
}
