//! The portal: public health officers sign in (local accounts with a password and a TOTP second
//! factor, or the health authority's OpenID Connect provider), issue teleTANs through
//! verification's gRPC, and administrators manage accounts and read the audit log. Every officer
//! action is written to an append-only, hash-chained audit log in the portal's own database.

pub mod audit;
mod store;

pub use store::Store;

pub const NAME: &str = "portal";

pub(crate) const MIGRATIONS_PG: diesel_migrations::EmbeddedMigrations =
    diesel_migrations::embed_migrations!("migrations/postgres");
pub(crate) const MIGRATIONS_SQLITE: diesel_migrations::EmbeddedMigrations =
    diesel_migrations::embed_migrations!("migrations/sqlite");
