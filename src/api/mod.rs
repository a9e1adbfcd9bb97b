//! REST and the HTTP surface (axum): auth, the routes of COMPAT.md, `/health`, `/metrics`.
pub mod auth;
