//! The subcommands, one module each.
pub mod ebxml;
pub mod inspect;
pub mod serve;
pub mod translate;
pub mod validate;
