//! The subcommands, one module each.
pub mod demo;
pub mod ebxml;
pub mod inspect;
pub mod loadgen;
pub mod rehearsal;
pub mod seed;
pub mod serve;
pub mod transfer;
pub mod translate;
pub mod validate;
