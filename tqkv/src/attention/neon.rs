//! The attention loops compiled for NEON (see `rows`; NEON is baseline on
//! aarch64, so this is the generic build under the one dispatch).

crate::backend::neon_features!(super::rows::instantiate {});

pub(super) use decode_norms_portable as decode_norms;
