//! The subcommands, one module each.
pub mod inspect;
pub mod validate;
