//! The access layer: who may do what, asked by every entry point (DESIGN.md invariant 11), below
//! `api/`, `hub/` and `proxy/` (it imports none of them).
//!
//! - [`token`]: who the client is. Every client-facing door (REST, socket.io, `/_replicate`,
//!   proxies, `/_internal` when it takes client tokens) verifies its JWT with [`token::Auth`].
//! - [`rooms`]: what a reader may read. Socket.io subscriptions, REST reads, `/_replicate` and
//!   the live view's list of entities ask [`rooms::RoomAccess`] about the room (or path) read.
//! - [`groups`]: which group an action is decided in. Commands on an existing task take the
//!   group of the task as stored, never a group the client names.
//!
//! The permissions themselves (users, roles) are data of `users/`, which answers
//! [`rooms::GrantSource`] on the main process; a proxy answers it from its upstream.

pub mod groups;
pub mod rooms;
pub mod token;
