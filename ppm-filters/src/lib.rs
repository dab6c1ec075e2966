//! Default filters for the ppm proxy engine.
//!
//! This crate will hold the built-in filters (ACME HTTP-01 challenge, access
//! lists, redirects, force-HTTPS with HSTS, rate limits, error pages, header
//! rules). None is implemented yet.
