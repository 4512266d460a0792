//! End-to-end tests: the real `postfach` binary, a throw-away data directory (SQLite, or a
//! throw-away PostgreSQL database), and independent clients (the CLI as a user types it,
//! `ureq` as an HTTP client, Python for the OpenAPI validation).

mod api;
mod autoconfig;
mod cli;
mod crash;
mod delivery;
mod imap;
mod limits;
mod managesieve;
mod pop3;
mod sender_auth;
mod server;
mod smtp;
mod spam;
mod support;
mod tenancy;
