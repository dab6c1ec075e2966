// The API's shapes, as far as the dashboard reads them. Forms edit whole
// entities and send them back, so fields the dashboard does not show are kept.

export type Id = number;

export interface Upstream {
  host: string;
  port: number;
  weight: number;
}

export interface FilterSpec {
  kind: string;
  config: Record<string, unknown>;
  priority?: number | null;
}

export interface HostCommon {
  id: Id;
  domain_names: string[];
  certificate_id: Id | null;
  ssl_forced: boolean;
  hsts_enabled: boolean;
  hsts_subdomains: boolean;
  filters: FilterSpec[];
  enabled: boolean;
}

export interface ProxyHost extends HostCommon {
  upstreams: Upstream[];
  balancing: { algorithm: string; key?: { source: string; name?: string } };
  forward_scheme: "http" | "https";
  access_list_id: Id | null;
  allow_websocket_upgrade: boolean;
  http2_support: boolean;
  block_exploits: boolean;
  locations: unknown[];
}

export interface RedirectionHost extends HostCommon {
  status: number;
  forward_scheme: "http" | "https" | null;
  forward_domain: string;
  preserve_path: boolean;
  block_exploits: boolean;
}

export type DeadHost = HostCommon;

export interface Stream {
  id: Id;
  incoming_port: number;
  bind_address: string;
  protocol: "tcp" | "udp" | "both";
  upstreams: Upstream[];
  balancing: { algorithm: string };
  access_list_id: Id | null;
  certificate_id: Id | null;
  proxy_protocol: number | null;
  idle_timeout_ms: number;
  enabled: boolean;
}

export interface AccessList {
  id: Id;
  name: string;
  rules: { action: "allow" | "deny"; address: string }[];
  default_action: "allow" | "deny";
  users: { username: string; password_hash?: string; password?: string }[];
  satisfy: "any" | "all";
  pass_auth: boolean;
}

export interface Certificate {
  id: Id;
  name: string;
  source: "upload" | "acme";
  domain_names: string[];
  status?: "pending" | "validating" | "issued" | "failed";
  error?: string | null;
  issuer?: string | null;
  subject?: string | null;
  not_before?: number | null;
  not_after?: number | null;
  days_left?: number | null;
  chain_length?: number | null;
  certificate_pem: string;
  is_default?: boolean;
  used_by?: { kind: string; id: Id; domain_names: string[] }[];
  /** The ACME order, for ACME certificates. */
  acme?: AcmeOrder | null;
}

export interface AcmeOrder {
  status: "pending" | "validating" | "issued" | "failed";
  error?: string | null;
  challenge: "http-01" | "dns-01";
  dns_provider_id?: Id | null;
  attempts: number;
  /** Unix ms. */
  next_attempt_at?: number | null;
  renew_at?: number | null;
  issued_at?: number | null;
}

export type DnsProviderSpec =
  | { kind: "cloudflare"; api_token: string; zone_id: string; api_url: string }
  | { kind: "rfc2136"; server: string; zone: string; tsig_key_name: string; tsig_algorithm: string; tsig_secret: string }
  | { kind: "command"; command: string[]; timeout_seconds: number };

export interface DnsProvider {
  id: Id;
  name: string;
  propagation_seconds: number;
  provider: DnsProviderSpec;
  created_at: number;
  updated_at: number;
}

export interface AcmeSettings {
  directory_url: string;
  email?: string | null;
  ca_roots?: string | null;
  eab_key_id?: string | null;
  eab_hmac_set: boolean;
  overridden: string[];
}

export interface User {
  id: Id;
  email: string;
  name: string;
  role: "admin" | "operator" | "viewer";
  disabled: boolean;
  /** The user must choose a new password before anything else works. */
  must_change_password?: boolean;
  created_at: number;
  updated_at: number;
}

export interface ApiToken {
  id: Id;
  user_id: Id;
  name: string;
  scopes: string[];
  created_at: number;
  last_used_at: number | null;
  revoked_at: number | null;
  token?: string;
}

export interface AuditEntry {
  id: Id;
  at: number;
  user_id: Id | null;
  actor: string;
  client_ip: string | null;
  action: string;
  entity: string;
  entity_id: Id | null;
  before: unknown;
  after: unknown;
}

export interface RevisionInfo {
  revision: number;
  at: number;
  actor: string;
  client_ip: string | null;
  summary: string;
}

export interface EntityJson {
  kind: string;
  value: { id: Id } & Record<string, unknown>;
}

export type Change =
  | { op: "create"; after: EntityJson }
  | { op: "update"; before: EntityJson; after: EntityJson }
  | { op: "delete"; before: EntityJson }
  | { op: "settings"; before: unknown; after: unknown }
  | { op: "replace_all" };

export interface RevisionChanges {
  info: RevisionInfo;
  changes: Change[];
}

export interface MemberHealth {
  addr: string;
  host: string;
  weight: number;
  healthy: boolean;
  passive_down: boolean;
  active_requests: number;
}

export interface GroupHealth {
  host_ids: Id[];
  scheme: string;
  active_checks: boolean;
  upstreams: MemberHealth[];
}

export interface Settings {
  default_site: { behaviour: "not_found" } | { behaviour: "redirect"; url: string } | { behaviour: "host"; host_id: Id };
  trusted_proxies: string[];
  filters: FilterSpec[];
  allow_link_local_upstreams: boolean;
  [k: string]: unknown;
}

export const RESOURCES = [
  "proxy-hosts",
  "redirection-hosts",
  "dead-hosts",
  "streams",
  "access-lists",
  "certificates",
  "dns-providers",
  "settings",
  "config",
  "upstreams",
  "audit-log",
  "users",
  "tokens",
  "stats",
  "logs",
  "metrics",
] as const;
