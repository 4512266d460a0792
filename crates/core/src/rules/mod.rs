//! The platform's rules, one file per rule, named by its PRODUCT.md ID. Each is a pure
//! predicate over facts; the service layer gathers the facts (inside the transaction that
//! writes, where one writes) and protocol sessions, the CLI and the API only turn the outcome
//! into their reply.

pub mod m11_mailbox_user_rights;
pub mod m1_grants_and_roles;
pub mod m2_domain_ownership;
pub mod m3_storage_quota;
pub mod m6_new_addresses;
pub mod m9_maintenance;
pub mod o2_dkim_authority;
pub mod o3_daily_sending;
pub mod o3_recipients_per_message;
pub mod p1_sender_ownership;
pub mod s1_passwords;
pub mod s4_login_throttle;
